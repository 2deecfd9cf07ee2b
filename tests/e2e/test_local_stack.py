"""Starts `chargelog local` as a subprocess and talks HTTP to it, as a newcomer would with curl."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from chargelog.local.runner import free_port

pytestmark = pytest.mark.e2e

API_KEY = "e2e-test-key-0123456789"
STARTUP_SECONDS = 60


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    url: str

    def output(self) -> str:
        return self.process.stdout.read() if self.process.stdout else ""


def _chargelog() -> list[str]:
    executable = shutil.which("chargelog", path=os.path.dirname(sys.executable))
    return [executable] if executable else [sys.executable, "-m", "chargelog.cli.main"]


@pytest.fixture(scope="module")
def local_stack() -> Iterator[RunningStack]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env["CHARGELOG_API_KEY"] = API_KEY
    process = subprocess.Popen(
        [*_chargelog(), "local", "--port", str(port), "--schedule-seconds", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    stack = RunningStack(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            pytest.fail(f"chargelog local exited with {process.returncode}:\n{stack.output()}")
        try:
            if httpx.get(f"{stack.url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"chargelog local did not answer within {STARTUP_SECONDS} s:\n{stack.output()}")
        time.sleep(0.2)
    yield stack
    if process.poll() is None:
        process.kill()
        process.wait(10)


def test_health_answers_without_a_key(local_stack: RunningStack) -> None:
    response = httpx.get(f"{local_stack.url}/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_add_list_remove_a_source_over_http(local_stack: RunningStack) -> None:
    headers = {"x-api-key": API_KEY}
    created = httpx.post(
        f"{local_stack.url}/sources",
        json={"vendor": "ocpplab", "source_id": "dep-e2e", "name": "E2E charger"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    listed = httpx.get(f"{local_stack.url}/sources", headers=headers).json()["sources"]
    assert ("ocpplab", "dep-e2e", "E2E charger") in [(s["vendor"], s["source_id"], s["name"]) for s in listed]
    assert httpx.delete(f"{local_stack.url}/sources/ocpplab/dep-e2e", headers=headers).status_code == 204
    listed = httpx.get(f"{local_stack.url}/sources", headers=headers).json()["sources"]
    assert "dep-e2e" not in [s["source_id"] for s in listed]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/sources"), ("POST", "/sources"), ("PATCH", "/sources/ocpplab/x"), ("DELETE", "/sources/ocpplab/x")],
)
@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_every_source_route_refuses_a_missing_or_wrong_key(
    local_stack: RunningStack, method: str, path: str, key: str | None
) -> None:
    headers = {"x-api-key": key} if key else {}
    response = httpx.request(method, f"{local_stack.url}{path}", json={"vendor": "ocpplab"}, headers=headers)
    assert response.status_code == 403
    assert response.json()["title"] == "Forbidden"


def test_bad_input_is_a_4xx_problem_over_http(local_stack: RunningStack) -> None:
    response = httpx.post(
        f"{local_stack.url}/sources",
        content=b'{"vendor": "nope"',
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    too_big = httpx.post(
        f"{local_stack.url}/sources",
        content=b"x" * (10 * 1024 * 1024 + 1),
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
    )
    assert too_big.status_code == 413


def test_the_cli_manages_sources_against_the_stack(local_stack: RunningStack) -> None:
    env = {**os.environ, "CHARGELOG_API_URL": local_stack.url, "CHARGELOG_API_KEY": API_KEY}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*_chargelog(), "sources", *args], capture_output=True, text=True, env=env, timeout=30)

    added = cli("add", "chargepilot", "site-7", "--name", "Site seven")
    assert added.returncode == 0, added.stderr
    assert "Added chargepilot/site-7 (site, Site seven)" in added.stdout
    duplicate = cli("add", "chargepilot", "site-7")
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip().count("\n") == 0
    assert "409" in duplicate.stderr
    assert "already exists" in duplicate.stderr
    assert "site-7" in cli("list", "--vendor", "chargepilot").stdout
    assert cli("disable", "chargepilot", "site-7").stdout.strip() == "chargepilot/site-7 is disabled."
    assert cli("remove", "chargepilot", "site-7").returncode == 0
    missing = cli("remove", "chargepilot", "site-7")
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
    unreachable = subprocess.run(
        [*_chargelog(), "sources", "list", "--api-url", "http://127.0.0.1:9", "--api-key", "k"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert unreachable.returncode == 1
    assert "cannot reach" in unreachable.stderr


def test_schedules_fire_and_ctrl_c_stops_cleanly(local_stack: RunningStack) -> None:
    time.sleep(2.5)  # --schedule-seconds 1: the dispatcher has run by now
    local_stack.process.send_signal(signal.SIGINT)
    assert local_stack.process.wait(timeout=20) == 0
    output = local_stack.output()
    assert "Dispatched collection jobs" in output
    assert f"export CHARGELOG_API_KEY={API_KEY}" in output
    assert output.rstrip().endswith("chargelog local: stopped.")
    assert "Traceback" not in output
