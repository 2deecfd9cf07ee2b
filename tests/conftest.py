"""Shared fixtures: sample events from events/, and AWS resources built from template.yaml."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from chargelog import aws, collectors
from chargelog.settings import get_settings
from chargelog_local import moto_dynamodb
from chargelog_local.lambdas import LocalLambdaContext
from chargelog_local.provision import LocalStack, function_environment, provision
from chargelog_local.runner import free_port
from chargelog_local.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[1]
EVENTS_DIR = REPO_ROOT / "events"
REGION = "us-east-1"


def load_event(name: str) -> dict[str, Any]:
    """One of the sample events in events/ (they are the fixtures, so they cannot rot)."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials, so no test can reach a real account."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    aws.reset()
    get_settings.cache_clear()
    yield
    aws.reset()
    get_settings.cache_clear()


def _provision(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    stack = provision(template, f"chargelog-test-{uuid.uuid4().hex[:8]}", REGION)
    for key, value in function_environment(template, stack).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return stack


@pytest.fixture
def stack(aws_credentials: None, template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """The template's tables, buckets, queues and secrets in moto (in process), env set as deployed."""
    moto_dynamodb.serialize()  # each DynamoDB request atomic, as on AWS and in `chargelog local`
    with mock_aws():
        yield _provision(template, monkeypatch)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's server mode on 127.0.0.1, as the local stack runs it."""
    moto_dynamodb.serialize()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def server_stack(
    aws_credentials: None, moto_server: str, template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> LocalStack:
    """The template's resources in moto's server, reached through AWS_ENDPOINT_URL like on AWS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    aws.reset()
    return _provision(template, monkeypatch)


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext(function_name="test", memory_limit_in_mb=512, timeout_seconds=30, region=REGION)


# ---------------------------------------------------------------------------------------------- `chargelog local`

API_KEY = "e2e-test-key-0123456789"
STARTUP_SECONDS = 60


@dataclass
class RunningStack:
    """`chargelog local` running as a subprocess, with everything it has printed so far."""

    process: subprocess.Popen[str]
    url: str
    lines: list[str]
    api_key: str = API_KEY

    def output(self) -> str:
        return "\n".join(self.lines)

    def exports(self) -> dict[str, str]:
        """The environment the banner tells a second shell to export."""
        exported: dict[str, str] = {}
        for line in self.lines:
            if line.strip().startswith("export "):
                for assignment in line.strip()[len("export ") :].split():
                    key, _, value = assignment.partition("=")
                    exported[key] = value
        return exported


def chargelog_command() -> list[str]:
    executable = shutil.which("chargelog", path=os.path.dirname(sys.executable))
    return [executable] if executable else [sys.executable, "-m", "chargelog_cli.main"]


@contextmanager
def running_local_stack(schedule_seconds: int | None, *options: str) -> Iterator[RunningStack]:
    """Starts `chargelog local` on a free 127.0.0.1 port with API_KEY, as a newcomer would; kills it after.
    ``schedule_seconds`` None keeps the default schedule, as `make run` does; ``options`` are more arguments."""
    port = free_port()
    schedule = [] if schedule_seconds is None else ["--schedule-seconds", str(schedule_seconds)]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CHARGELOG_"))}
    env["CHARGELOG_API_KEY"] = API_KEY
    process = subprocess.Popen(
        [*chargelog_command(), "local", "--port", str(port), *schedule, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    # Keep reading, so the pipe never fills while the stack logs.
    threading.Thread(
        target=lambda: lines.extend(line.rstrip("\n") for line in process.stdout or []), daemon=True
    ).start()
    stack = RunningStack(process, f"http://127.0.0.1:{port}", lines)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not any("Ctrl-C stops everything." in line for line in list(lines)):
            if process.poll() is not None:
                pytest.fail(f"chargelog local exited with {process.returncode}:\n{stack.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"chargelog local did not start within {STARTUP_SECONDS} s:\n{stack.output()}")
            time.sleep(0.2)
        assert httpx.get(f"{stack.url}/health", timeout=5).status_code == 200
        yield stack
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def local_stack() -> Iterator[RunningStack]:
    """The local stack for one test module, firing its schedules every second. Source discovery is off: these
    tests register the sources they collect (tests/e2e/test_discovery_local.py runs the stack as `make run` does)."""
    with running_local_stack(1, "--no-discover-sources") as stack:
        yield stack


@pytest.fixture
def without_evenergy_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if ev.energy had no collector: for what chargelog does with a vendor it cannot collect yet."""
    collectors.has_adapter("evenergy")  # loads ev.energy's built-in collector, so the one removed stays removed
    monkeypatch.delitem(collectors._ADAPTERS, "evenergy")
