"""Runs the template's Lambda handlers in this process, one warm "container" per function.

Each function gets a single worker thread, so a handler never runs twice at once (as in one Lambda
execution environment), and a context whose remaining time counts down from the function's Timeout. That thread
is also the function's logging context: the Logger keeps its keys per thread (chargelog.observability), so each
function's lines name it and its invocation, even while the others run.
"""

from __future__ import annotations

import importlib
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from chargelog_local.template import FunctionSpec


@dataclass
class LocalLambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    region: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.invoked_function_arn = f"arn:aws:lambda:{self.region}:123456789012:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self.identity = None
        self.client_context = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalFunction:
    def __init__(self, spec: FunctionSpec, region: str) -> None:
        self.spec = spec
        self.region = region
        module_name, function_name = spec.handler.rsplit(".", 1)
        code_dir = str(spec.code_dir)
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)
        module = importlib.import_module(module_name)
        self._handler: Callable[[dict[str, Any], Any], Any] = getattr(module, function_name)
        self._container = ThreadPoolExecutor(max_workers=1, thread_name_prefix=spec.logical_id)
        self._in_flight: set[Future[Any]] = set()

    @property
    def name(self) -> str:
        return self.spec.logical_id

    def submit(self, event: dict[str, Any]) -> Future[Any]:
        """Start one invocation; the future holds the handler's return value or its exception."""
        future = self._container.submit(self._invoke, event)
        self._in_flight.add(future)
        future.add_done_callback(self._in_flight.discard)
        return future

    def invoke(self, event: dict[str, Any]) -> Any:
        """Invoke and wait, at most the function's timeout (TimeoutError past it)."""
        return self.submit(event).result(timeout=self.spec.timeout_seconds)

    def _invoke(self, event: dict[str, Any]) -> Any:
        context = LocalLambdaContext(
            function_name=self.spec.logical_id,
            memory_limit_in_mb=self.spec.memory_mb,
            timeout_seconds=self.spec.timeout_seconds,
            region=self.region,
        )
        return self._handler(event, context)

    def shutdown(self) -> None:
        """Take no more invocations and cancel the queued ones; the running one goes on (see `wait_idle`)."""
        self._container.shutdown(wait=False, cancel_futures=True)

    def wait_idle(self, timeout: float) -> bool:
        """Wait, at most `timeout` seconds, for the running invocation to end; True when none runs."""
        _, running = wait(list(self._in_flight), timeout=max(0.0, timeout))
        return not running
