"""`chargelog diagnostics request|list|download`: the CLI's main() against the API over HTTP (the template's
ApiFunction behind the local API Gateway on 127.0.0.1), downloads through real presigned links (moto's server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from chargelog import aws, stores
from chargelog.models.diagnostics import DiagnosticsFile, parse_token
from chargelog.settings import get_settings
from chargelog_cli.main import main
from chargelog_local import template as tpl
from chargelog_local.gateway import LocalApiGateway
from chargelog_local.lambdas import LocalFunction
from chargelog_local.provision import LocalStack
from diagnostics_files import store_file

API_KEY = "cli-diagnostics-test-key-0123456789"
UPLOAD_BASE = "https://uploads.example.com/prod"


class QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, *_: Any) -> None:
        pass


def serve_api(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("CHARGELOG_UPLOAD_BASE_URL", UPLOAD_BASE)
    get_settings.cache_clear()
    spec = next(s for s in tpl.functions(template) if s.logical_id == "ApiFunction")
    function = LocalFunction(spec, "us-east-1")
    gateway = LocalApiGateway(
        functions={spec.logical_id: function},
        routes=spec.routes,
        api_key=API_KEY,
        gateway_responses=tpl.gateway_responses(template),
        binary_media_types=tpl.binary_media_types(template),
        stage="local",
        region="us-east-1",
    )
    server = make_server("127.0.0.1", 0, gateway, threaded=True, request_handler=QuietRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("CHARGELOG_API_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("CHARGELOG_API_KEY", API_KEY)
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    function.shutdown()


@pytest.fixture
def api(stack: LocalStack, template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from serve_api(template, monkeypatch)


@pytest.fixture
def server_api(server_stack: LocalStack, template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from serve_api(template, monkeypatch)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["diagnostics", *args])
    out, err = capsys.readouterr()
    return code, out, err


def receive(stack: LocalStack, request_id: str, name: str, data: bytes, at: datetime) -> DiagnosticsFile:
    """As the upload path does it: the object under diagnostics/, then its record (a multipart POST)."""
    return store_file(
        stack,
        request_id,
        at,
        name,
        data,
        content_type="application/octet-stream",
        compression="none",
        upload_method="POST",
        multipart=True,
    )


def request_id_of(capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run(capsys, "request", "CP-1", "--json")
    assert code == 0, err
    return str(json.loads(out)["request_id"])


# ---------------------------------------------------------------------------------------------- request


def test_request_prints_the_address_and_both_payloads(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "request",
        "CP-1",
        "--log-type",
        "SecurityLog",
        "--from",
        "2026-11-20T08:00:00+01:00",
        "--to",
        "2026-11-21T00:00:00Z",
        "--retries",
        "2",
        "--retry-interval",
        "30",
        "--expires-in",
        "60",
    )
    assert code == 0, err
    lines = out.splitlines()
    location = lines[lines.index("remote_location:") + 1]
    assert location.startswith(f"{UPLOAD_BASE}/u/CP-1/")
    assert parse_token(location.rsplit("/", 2)[1]) is not None
    getlog_start = lines.index("OCPP 2.0.1 GetLog payload:") + 1
    getlog = json.loads("\n".join(lines[getlog_start : lines.index("", getlog_start)]))
    assert getlog == {
        "logType": "SecurityLog",
        "requestId": 1,
        "log": {
            "remoteLocation": location,
            "oldestTimestamp": "2026-11-20T07:00:00Z",
            "latestTimestamp": "2026-11-21T00:00:00Z",
        },
        "retries": 2,
        "retryInterval": 30,
    }
    diag_start = lines.index("OCPP 1.6 GetDiagnostics payload:") + 1
    getdiagnostics = json.loads("\n".join(lines[diag_start : lines.index("", diag_start)]))
    assert getdiagnostics["location"] == location
    assert getdiagnostics["startTime"] == "2026-11-20T07:00:00Z"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retries", "-1"], "not a whole number of 0 or more"),
        (["--from", "2026-11-20T08:00:00"], "has no UTC offset"),
        (["--log-type", "DebugLog"], "invalid choice"),
    ],
)
def test_request_refuses_bad_options(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["diagnostics", "request", "CP-1", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_api_errors_are_one_line(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "request", "CP-1", "--from", "2026-11-21T00:00:00Z", "--to", "2026-11-20T00:00:00Z")
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("chargelog: error: HTTP 400")
    assert "oldest_timestamp is after latest_timestamp" in err
    code, _, err = run(capsys, "download", "0" * 32)
    assert code == 1
    assert err.startswith("chargelog: error: HTTP 404")
    assert err.count("\n") == 1


# ---------------------------------------------------------------------------------------------- list


def test_list_shows_every_request_newest_first(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "CP-1")
    assert (code, out) == (0, "No diagnostics requests for CP-1.\n")
    ids = [request_id_of(capsys) for _ in range(3)]
    stores.diagnostics().note_upload_attempt(ids[1], datetime.now(UTC))

    code, out, err = run(capsys, "list", "CP-1")

    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split("  ")[0] == "REQUEST ID"
    assert [row.split()[0] for row in rows] == ids[::-1]
    assert [row.split()[4] for row in rows] == ["requested", "uploading", "requested"]
    code, out, _ = run(capsys, "list", "CP-1", "--json")
    listed = json.loads(out)
    assert [r["request_id"] for r in listed] == ids[::-1]
    assert all("remote_location" not in r for r in listed)


# ---------------------------------------------------------------------------------------------- download


def test_download_writes_every_file_and_checks_it(
    server_api: str, server_stack: LocalStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    request_id = request_id_of(capsys)
    now = datetime.now(UTC)
    first = bytes(range(256)) * 4000  # about 1 MB
    receive(server_stack, request_id, "diag:2026-11-21T09:00:00Z.tar.gz", first, now)
    receive(server_stack, request_id, "same.log", b"one", now + timedelta(seconds=1))
    receive(server_stack, request_id, "same.log", b"two", now + timedelta(seconds=2))
    out_dir = tmp_path / "out"

    code, out, err = run(capsys, "download", request_id, "--out", str(out_dir))

    assert code == 0, err
    assert (out_dir / "diag:2026-11-21T09:00:00Z.tar.gz").read_bytes() == first
    same = sorted(p.name for p in out_dir.iterdir() if p.name.endswith("same.log"))
    assert len(same) == 2  # two uploads of one name: both kept, told apart by their receive time
    assert sorted((out_dir / name).read_bytes() for name in same) == [b"one", b"two"]
    assert len(out.splitlines()) == 3
    assert not [p for p in out_dir.iterdir() if p.name.endswith(".part")]

    # Again: identical files are left as they are; a different local file is never overwritten.
    (out_dir / same[0]).write_bytes(b"mine")
    code, out, err = run(capsys, "download", request_id, "--out", str(out_dir))
    assert code == 1
    assert (out_dir / same[0]).read_bytes() == b"mine"
    assert err.strip() == f"chargelog: error: {out_dir / same[0]} exists and is another file; not overwriting it"
    assert out.count("already there") == 2


def test_download_refuses_bytes_that_do_not_match(
    server_api: str, server_stack: LocalStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    request_id = request_id_of(capsys)
    file = receive(server_stack, request_id, "d.log", b"recorded", datetime.now(UTC))
    aws.client("s3").put_object(Bucket=server_stack.refs["DiagnosticsBucket"], Key=file.key, Body=b"tampered")

    code, out, err = run(capsys, "download", request_id, "--out", str(tmp_path))

    assert (code, out) == (1, "")
    assert "arrived with another SHA-256 than recorded" in err
    assert list(tmp_path.iterdir()) == []


def test_download_of_a_request_without_files(api: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    request_id = request_id_of(capsys)
    code, _, err = run(capsys, "download", request_id, "--out", str(tmp_path))
    assert code == 1
    assert err == f"chargelog: error: request {request_id} has no files yet (state: requested)\n"
