"""Logger, Metrics and Tracer: created here once and imported everywhere.

The Logger's keys belong to the invocation that set them. Every handler starts with
``@logger.inject_lambda_context(clear_state=True)``, so a warm container's next invocation starts with none of the
last one's keys (its correlation id included); record handlers are wrapped in ``keys_per_record``, so one SQS
record's keys (an export id, a job's ids) are gone before the next record of the batch.

The keys live on the Logger's formatter, one per process. On AWS one invocation runs at a time, so that is enough;
the local stack (chargelog_local) runs every function in one process, each in its own thread, at the same time.
So the formatter keeps one set of keys per thread (``ThreadKeysFormatter``): each thread's lines name its own
function and invocation. Handlers use the Logger's ordinary methods, on AWS as locally.

Metrics are the same story: Powertools' ``Metrics`` keeps its metric, dimension and metadata sets as class
attributes, one set per process, so two functions running at once locally would add to and flush each other's
metrics. ``metrics`` here is a ``Metrics`` over ``ThreadMetricsProvider``, whose sets (and cold-start flag) are kept
per thread: on AWS, where one thread runs one invocation at a time, that is what Powertools does.

Every custom metric is in ``chargelog.metric_names`` (name, unit, dimensions): ``add_service_metric`` writes one
with ``service`` only (flushed with the handler's ``log_metrics``), ``publish_vendor_metrics`` writes a set of them
with the vendor as a dimension, as one EMF blob of their own (``EphemeralMetrics``), so a batch holding two vendors'
jobs writes each job's metrics under its own vendor.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import EphemeralMetrics
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider import cold_start
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from aws_lambda_powertools.shared import constants

from chargelog.metric_names import NAMESPACE, ServiceMetric, VendorMetric, catalog


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


class ThreadMetricsProvider(AmazonCloudWatchEMFProvider):
    """Powertools' EMF provider with what one invocation adds (metrics, dimensions, metadata, timestamp) kept per
    thread, and the cold start noted per thread.

    The provider reads and writes these only as attributes, so properties over a ``threading.local`` are all it
    takes: ``add_metric``, ``add_dimension``, ``flush_metrics`` and ``clear_metrics`` of one thread see that thread's
    sets only. A thread starts with the default dimensions (shared: they are configuration). Namespace and service
    are shared too, and read from the environment when used, not when this module is imported (the local stack and
    the tests set the functions' environment after that): POWERTOOLS_METRICS_NAMESPACE, else the catalogue's.
    """

    def __init__(self, **options: Any) -> None:
        self._threads = threading.local()
        self._namespace: str | None = None
        self._service: str | None = None
        super().__init__(**options)

    @property
    def namespace(self) -> str:
        return self._namespace or os.environ.get(constants.METRICS_NAMESPACE_ENV) or NAMESPACE

    @namespace.setter
    def namespace(self, value: str | None) -> None:
        self._namespace = value

    @property
    def service(self) -> str:
        return self._service or os.environ.get(constants.SERVICE_NAME_ENV) or ""

    @service.setter
    def service(self, value: str | None) -> None:
        self._service = value

    def _local(self, name: str, initial: Callable[[], Any]) -> Any:
        if not hasattr(self._threads, name):
            setattr(self._threads, name, initial())
        return getattr(self._threads, name)

    @property
    def metric_set(self) -> dict[str, Any]:
        return self._local("metric_set", dict)

    @metric_set.setter
    def metric_set(self, value: dict[str, Any]) -> None:
        self._threads.metric_set = value

    @property
    def dimension_set(self) -> dict[str, str]:
        return self._local("dimension_set", lambda: dict(getattr(self, "default_dimensions", {})))

    @dimension_set.setter
    def dimension_set(self, value: dict[str, str]) -> None:
        self._threads.dimension_set = value

    @property
    def dimension_sets(self) -> list[dict[str, str]]:
        return self._local("dimension_sets", list)

    @dimension_sets.setter
    def dimension_sets(self, value: list[dict[str, str]]) -> None:
        self._threads.dimension_sets = value

    @property
    def metadata_set(self) -> dict[str, Any]:
        return self._local("metadata_set", dict)

    @metadata_set.setter
    def metadata_set(self, value: dict[str, Any]) -> None:
        self._threads.metadata_set = value

    @property
    def timestamp(self) -> int | None:
        return self._local("timestamp", lambda: None)

    @timestamp.setter
    def timestamp(self, value: int | None) -> None:
        self._threads.timestamp = value

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)
        # Powertools keeps them when metrics are disabled (POWERTOOLS_METRICS_DISABLED): an invocation's metrics
        # never carry over to the thread's next one.
        self.clear_metrics()

    def _add_cold_start_metric(self, context: Any) -> None:
        """ColdStart once per thread (Powertools: once per process). A Lambda execution environment runs its
        invocations on one thread, so on AWS the two are the same; locally each function's thread is its container."""
        warm = self._local("warm", lambda: cold_start.initialization_type == "provisioned-concurrency")
        if warm or is_metrics_disabled():
            # Powertools writes ColdStart with ``single_metric``, which prints even when POWERTOOLS_METRICS_DISABLED
            # is set (3.37): the one metric that would ignore the switch, and land in a CLI's captured output.
            return
        self._threads.warm = True
        self.add_cold_start_metric(context=context)


logger = _logger()
metrics = Metrics(provider=ThreadMetricsProvider())
tracer = Tracer()
_CATALOG = catalog()


def add_service_metric(name: ServiceMetric, value: float) -> None:
    """One of the catalogue's service metrics (unit from the catalogue), flushed with the handler's metrics."""
    metrics.add_metric(name=str(name), unit=_CATALOG[name].unit, value=value)


# Written only when not zero (chargelog.metric_names): a vendor that never throttles costs no VendorThrottles metric.
ONLY_WHEN_NOT_ZERO = frozenset(
    {
        VendorMetric.VENDOR_SERVER_ERRORS,
        VendorMetric.VENDOR_THROTTLES,
        VendorMetric.VENDOR_CLIENT_ERRORS,
        VendorMetric.VENDOR_TIMEOUTS,
        VendorMetric.VENDOR_BAD_BODIES,
    }
)


def publish_vendor_metrics(vendor: str, values: Mapping[VendorMetric, float]) -> None:
    """Catalogue metrics with ``vendor`` as a dimension, printed now as one EMF blob of their own (the handler's
    ``metrics`` are not touched, so two vendors' metrics never share a blob); error classes only when not zero."""
    written = {name: value for name, value in values.items() if value or name not in ONLY_WHEN_NOT_ZERO}
    if not written:
        return
    blob = EphemeralMetrics(namespace=metrics.namespace, service=metrics.service)
    blob.add_dimension(name="vendor", value=vendor)
    for name, value in written.items():
        blob.add_metric(name=str(name), unit=_CATALOG[name].unit, value=value)
    blob.flush_metrics()


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
