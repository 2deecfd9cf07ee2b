"""Diagnostics uploads end to end through `chargelog local`: support asks for a file over the API, the charger
uploads it with curl (EVerest's PUT, OpenEVSE's form POST) to the upload address, S3's notification drives the
indexer, and the file comes back through its presigned download link byte for byte."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import RunningStack

pytestmark = pytest.mark.e2e

EVEREST_NAME = "diagnostics-2024-02-07T16:51:50.808ZblrG7o"


def _request_upload(stack: RunningStack, charger_id: str) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.url}/diagnostics/requests",
        headers={"x-api-key": stack.api_key},
        json={"charger_id": charger_id, "log_type": "DiagnosticsLog"},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def _curl(*args: str) -> tuple[int, str]:
    result = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


def _wait_for_files(stack: RunningStack, request_id: str, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        detail = httpx.get(
            f"{stack.url}/diagnostics/{request_id}", headers={"x-api-key": stack.api_key}, timeout=30
        ).json()
        if len(detail["files"]) >= count:
            return dict(detail)
        assert time.monotonic() < deadline, detail
        time.sleep(0.5)


def test_the_upload_address_is_the_local_upload_api(local_stack: RunningStack) -> None:
    upload_url = local_stack.exports()["CHARGELOG_UPLOAD_BASE_URL"]
    assert upload_url.startswith("http://127.0.0.1:")
    assert f"Uploads:  {upload_url}" in local_stack.output()
    created = _request_upload(local_stack, "CP-RIV-01")
    assert created["remote_location"].startswith(f"{upload_url}/u/CP-RIV-01/")
    assert created["remote_location"].endswith("/")


@pytest.mark.parametrize("size", [2_000, 9 * 1024 * 1024], ids=["small-text", "9MB-binary"])
def test_a_charger_uploads_with_curl_and_support_downloads_the_same_bytes(
    local_stack: RunningStack, tmp_path: Path, size: int
) -> None:
    created = _request_upload(local_stack, "CP-RIV-02")
    location = created["remote_location"]
    text = size < 10_000
    everest = tmp_path / EVEREST_NAME
    everest.write_bytes((b"INFO evse_manager: session\n" * 100)[:size] if text else os.urandom(size))
    openevse = tmp_path / "diagnostics.log"
    openevse.write_bytes((b"[MO] GetLog\n" * 200)[:size] if text else os.urandom(size))

    assert _curl("-T", str(everest), location) == (200, "OK")
    assert _curl("-F", f"file=@{openevse}", location) == (200, "OK")

    detail = _wait_for_files(local_stack, created["request_id"], 2)
    assert detail["state"] == "uploaded"
    by_name = {file["filename"]: file for file in detail["files"]}
    assert set(by_name) == {EVEREST_NAME, "diagnostics.log"}
    for path in (everest, openevse):
        file = by_name[path.name]
        downloaded = httpx.get(file["download_url"], timeout=60)
        assert downloaded.status_code == 200
        assert hashlib.sha256(downloaded.content).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
        assert file["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (by_name["diagnostics.log"]["multipart"], by_name[EVEREST_NAME]["multipart"]) == (True, False)


def test_an_upload_over_10_mb_is_a_413_problem_and_nothing_is_stored(local_stack: RunningStack, tmp_path: Path) -> None:
    created = _request_upload(local_stack, "CP-RIV-03")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(10 * 1024 * 1024 + 1))
    status, body = _curl("-T", str(big), created["remote_location"])
    assert status == 413
    assert '"status": 413' in body
    detail = httpx.get(
        f"{local_stack.url}/diagnostics/{created['request_id']}", headers={"x-api-key": local_stack.api_key}
    ).json()
    assert detail["files"] == []
