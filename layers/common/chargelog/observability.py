"""Logger, Metrics and Tracer: created here once and imported everywhere.

The Logger's keys belong to the invocation that set them. Every handler starts with
``@logger.inject_lambda_context(clear_state=True)``, so a warm container's next invocation starts with none of the
last one's keys (its correlation id included); record handlers are wrapped in ``keys_per_record``, so one SQS
record's keys (an export id, a job's ids) are gone before the next record of the batch.

The keys live on the Logger's formatter, one per process. On AWS one invocation runs at a time, so that is enough;
the local stack (chargelog_local) runs every function in one process, each in its own thread, at the same time.
So the formatter keeps one set of keys per thread (``ThreadKeysFormatter``): each thread's lines name its own
function and invocation. Handlers use the Logger's ordinary methods, on AWS as locally.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter


class ThreadKeysFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter with its keys (``log_format``) kept per thread.

    Everything that sets, removes or clears the Logger's keys goes through ``log_format``, so all of it (the
    Lambda context and correlation id of ``inject_lambda_context``, ``append_keys``, ``remove_keys``,
    ``clear_state``) touches the calling thread's keys only. A thread starts with the keys the Logger was
    configured with (the service), as a new invocation does after ``clear_state``.
    """

    def __init__(self, **options: Any) -> None:
        self._threads = threading.local()
        self._initial: dict[str, Any] = {}
        super().__init__(**options)
        self._initial = dict(self.log_format)

    @property
    def log_format(self) -> dict[str, Any]:
        keys: dict[str, Any] | None = getattr(self._threads, "keys", None)
        if keys is None:
            keys = self._threads.keys = dict(self._initial)
        return keys

    @log_format.setter
    def log_format(self, keys: dict[str, Any]) -> None:
        self._threads.keys = keys

    def start_threads_with_current_keys(self) -> None:
        """New threads start with this thread's keys: called once the Logger has configured them."""
        self._initial = dict(self.log_format)


def _logger() -> Logger:
    formatter = ThreadKeysFormatter()
    configured = Logger(logger_formatter=formatter)
    formatter.start_threads_with_current_keys()  # the service, and whatever else the Logger set up
    return configured


logger = _logger()
metrics = Metrics()
tracer = Tracer()


def keys_per_record[Handler: Callable[..., Any]](record_handler: Handler) -> Handler:
    """Keys a batch's record handler appends are removed (and keys it changed restored) when it returns, so the
    next record of the batch logs without them. Powertools' BatchProcessor still sees the handler's parameters
    (``lambda_context`` among them): ``functools.wraps`` keeps its signature."""

    @functools.wraps(record_handler)
    def handle(*args: Any, **kwargs: Any) -> Any:
        before = dict(logger.get_current_keys())
        try:
            return record_handler(*args, **kwargs)
        finally:
            logger.remove_keys([key for key in logger.get_current_keys() if key not in before])
            logger.append_keys(**before)

    return handle  # type: ignore[return-value]
