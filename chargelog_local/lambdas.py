"""Runs the template's Lambda handlers in this process, in warm "containers" (execution environments) per function.

A container is one thread with its own copy of the handler's module, so a handler never runs twice at once in a
container and its module's globals (Powertools' batch processor, caches) are its own, as in one Lambda execution
environment; the layer (``chargelog``) is shared by all of them, as the process is. A function gets containers as
its invocations need them, up to ``max_containers``: as many as its SQS event sources may invoke it at once (their
ScalingConfig.MaximumConcurrency, chargelog_local.template) and one for everything else, so one slow job on a
vendor's queue never holds back another queue's jobs. Each invocation gets a context whose remaining time counts
down from the function's Timeout. The container's thread is also its logging context: the Logger keeps its keys per
thread (chargelog.observability), so each function's lines name it and its invocation, even while the others run.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from chargelog_local.template import FunctionSpec

Handler = Callable[[dict[str, Any], Any], Any]


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
    def __init__(self, spec: FunctionSpec, region: str, max_containers: int | None = None) -> None:
        self.spec = spec
        self.region = region
        self._module_name, self._function_name = spec.handler.rsplit(".", 1)
        code_dir = str(spec.code_dir)
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)
        # The first container runs the module as imported (the one tests and tools see); others load their own copy.
        module = importlib.import_module(self._module_name)
        self._handler: Handler = getattr(module, self._function_name)
        self.max_containers = max(1, max_containers or spec.max_containers)
        self._containers = ThreadPoolExecutor(max_workers=self.max_containers, thread_name_prefix=spec.logical_id)
        self._container = threading.local()  # the handler of the container (thread) running now
        self._started = 0
        self._started_lock = threading.Lock()
        self.module_copies: list[str] = []  # the modules of the containers after the first, by name
        self._in_flight: set[Future[Any]] = set()

    @property
    def name(self) -> str:
        return self.spec.logical_id

    @property
    def containers_started(self) -> int:
        """Containers started so far (each on its first invocation)."""
        with self._started_lock:
            return self._started

    def submit(self, event: dict[str, Any]) -> Future[Any]:
        """Start one invocation in an idle container (a new one if none is idle and the function may have another;
        else the first to come free); the future holds the handler's return value or its exception."""
        future = self._containers.submit(self._invoke, event)
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
        return self._container_handler()(event, context)

    def _container_handler(self) -> Handler:
        """The handler of the container this thread is: loaded on its first invocation (its init phase)."""
        handler: Handler | None = getattr(self._container, "handler", None)
        if handler is None:
            with self._started_lock:
                number, self._started = self._started, self._started + 1
            handler = self._handler if number == 0 else self._load_copy(number)
            self._container.handler = handler
        return handler

    def _load_copy(self, number: int) -> Handler:
        """A fresh import of the handler's module, under a name of its own: the container's globals."""
        origin = getattr(sys.modules[self._module_name], "__file__", None)
        if origin is None:
            raise ImportError(f"cannot load another copy of {self._module_name}: it has no file")
        name = f"{self._module_name}__{self.spec.logical_id}_container{number}_{uuid.uuid4().hex[:8]}"
        module_spec = importlib.util.spec_from_file_location(name, origin)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load another copy of {self._module_name} from {origin}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        self.module_copies.append(name)
        handler: Handler = getattr(module, self._function_name)
        return handler

    def shutdown(self) -> None:
        """Take no more invocations and cancel the queued ones; those running go on (see `wait_idle`)."""
        self._containers.shutdown(wait=False, cancel_futures=True)
        for name in self.module_copies:  # a running invocation keeps its module: its handler holds it
            sys.modules.pop(name, None)

    def wait_idle(self, timeout: float) -> bool:
        """Wait, at most `timeout` seconds, for the running invocations to end; True when none runs."""
        _, running = wait(list(self._in_flight), timeout=max(0.0, timeout))
        return not running
