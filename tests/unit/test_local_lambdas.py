"""The local stack's Lambda containers: one invocation at a time, and a stop that lets the running one end."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from chargelog_local.lambdas import LocalFunction
from chargelog_local.template import FunctionSpec

HANDLER = """
import threading

started = threading.Event()
release = threading.Event()
finished = []


def handler(event, context):
    started.set()
    release.wait(10)
    finished.append(event["n"])
    return event["n"]
"""


@pytest.fixture
def slow_function(tmp_path: Path, request: pytest.FixtureRequest) -> LocalFunction:
    module = f"slow_handler_{request.node.name.replace('[', '_').replace(']', '_')}"
    (tmp_path / f"{module}.py").write_text(HANDLER)
    spec = FunctionSpec(
        logical_id="SlowFunction",
        code_dir=tmp_path,
        handler=f"{module}.handler",
        timeout_seconds=30,
        memory_mb=128,
        environment={},
        routes=(),
        schedules=(),
        queues=(),
    )
    return LocalFunction(spec, "eu-west-1")


def _module(function: LocalFunction):  # type: ignore[no-untyped-def]
    import sys

    return sys.modules[function.spec.handler.rsplit(".", 1)[0]]


def test_shutdown_cancels_queued_invocations_and_lets_the_running_one_end(slow_function: LocalFunction) -> None:
    module = _module(slow_function)
    running = slow_function.submit({"n": 1})
    assert module.started.wait(5)
    queued = slow_function.submit({"n": 2})

    slow_function.shutdown()
    assert queued.cancelled()
    assert not slow_function.wait_idle(0.2)  # still running: not idle yet

    threading.Timer(0.2, module.release.set).start()
    assert slow_function.wait_idle(5)
    assert running.result() == 1
    assert module.finished == [1]


def test_an_idle_function_is_idle_at_once(slow_function: LocalFunction) -> None:
    slow_function.shutdown()
    assert slow_function.wait_idle(0)
