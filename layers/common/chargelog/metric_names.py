"""Every custom metric chargelog writes (CloudWatch namespace ``chargelog``), with its unit and dimensions.

One list, read by the code that emits (``chargelog.observability``), by the template test that checks each alarm
and dashboard widget names a metric somebody writes, and by the local stack's metric view.

Dimensions are chosen for what they cost: each distinct (name, dimensions) pair is a custom metric, billed every
month it receives data. So the vendor is a dimension (four values) and a charger or source id never is.
Powertools adds ``service`` (POWERTOOLS_SERVICE_NAME) to every metric, so the dimension sets below include it.
Error-class counts are written only when they are not zero: a vendor that never throttles costs no
``VendorThrottles`` metric, and the alarms treat a missing datapoint as no errors.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

NAMESPACE = "chargelog"
SERVICE_DIMENSIONS: tuple[str, ...] = ("service",)
VENDOR_DIMENSIONS: tuple[str, ...] = ("service", "vendor")
COLD_START_DIMENSIONS: tuple[str, ...] = ("function_name", "service")


class VendorMetric(StrEnum):
    """Written with the vendor as a dimension (``service``, ``vendor``)."""

    RECORDS_STORED = "RecordsStored"
    RECORDS_QUARANTINED = "RecordsQuarantined"
    PAGES_FETCHED = "PagesFetched"
    VENDOR_REQUESTS = "VendorRequests"
    VENDOR_ERRORS = "VendorErrors"  # every failed vendor call, of any class below
    VENDOR_SERVER_ERRORS = "VendorServerErrors"  # 5xx
    VENDOR_THROTTLES = "VendorThrottles"  # 429
    VENDOR_CLIENT_ERRORS = "VendorClientErrors"  # other 4xx (401 and 403 among them)
    VENDOR_TIMEOUTS = "VendorTimeouts"  # timeouts and connection errors
    VENDOR_BAD_BODIES = "VendorBadBodies"  # a 2xx whose body does not parse or validate
    VENDOR_RETRIES = "VendorRetries"
    JOBS_REENQUEUED = "JobsReenqueued"  # a job handed over: out of time, or a vendor error after progress
    JOBS_DEAD_LETTERED = "JobsDeadLettered"  # a job's last allowed receive failed: SQS moves it to the DLQ
    # dispatcher: now - the oldest high-water mark among the vendor's enabled sources (a source never collected
    # counts from its registration: chargelog.logic.lag)
    COLLECTOR_LAG = "CollectorLagSeconds"
    SOURCES_BACKING_OFF = "SourcesBackingOff"  # dispatcher: sources waiting out a vendor's failures
    # dispatcher: sources due that the vendor's request budget for the pass left for a later one (chargelog.logic
    # .scheduling): above 0 pass after pass, the vendor's rate limit cannot keep up with its fleet at this freshness
    SOURCES_OVER_BUDGET = "SourcesOverBudget"
    SOURCES_REGISTERED = "SourcesRegistered"  # discovery (job or POST /sources/discover): new sources registered
    REPLAY_RECORDS_WRITTEN = "ReplayRecordsWritten"  # replay jobs: records rebuilt from the raw archive and written


class ServiceMetric(StrEnum):
    """Written with ``service`` only."""

    JOBS_ENQUEUED = "JobsEnqueued"  # dispatcher, every run (0 included: the dispatcher-silent alarm reads it)
    SOURCES_ENABLED = "SourcesEnabled"  # dispatcher, every run
    UPLOADS_STORED = "UploadsStored"  # diagnostics indexer: a file stored and indexed
    UPLOADS_REJECTED = "UploadsRejected"  # diagnostics indexer: a file refused (size, type, unknown request)
    UPLOAD_BYTES = "UploadBytes"
    UPLOADS_DENIED = "UploadsDenied"  # upload authorizer: a request refused (bad or expired token)
    EXPORTS_REQUESTED = "ExportsRequested"  # API: exports asked for (ExportsFailed / ExportsRequested: failure rate)
    EXPORTS_FAILED = "ExportsFailed"
    ALERT_NOTIFICATIONS_SENT = "AlertNotificationsSent"  # alert notifier: a charger alert's transition sent
    # alert notifier: a transition the per-charger hourly limit held back (AlertNotificationsPerHour)
    ALERT_NOTIFICATIONS_SUPPRESSED = "AlertNotificationsSuppressed"


COLD_START = "ColdStart"  # Powertools, capture_cold_start_metric=True; dimensions function_name and service


class MetricSpec(NamedTuple):
    name: str
    unit: str
    dimensions: tuple[str, ...]


_UNITS = {
    VendorMetric.COLLECTOR_LAG: "Seconds",
    ServiceMetric.UPLOAD_BYTES: "Bytes",
}


def catalog() -> dict[str, MetricSpec]:
    """Every custom metric by name."""
    specs = {str(name): MetricSpec(str(name), _UNITS.get(name, "Count"), VENDOR_DIMENSIONS) for name in VendorMetric}
    specs |= {str(name): MetricSpec(str(name), _UNITS.get(name, "Count"), SERVICE_DIMENSIONS) for name in ServiceMetric}
    specs[COLD_START] = MetricSpec(COLD_START, "Count", COLD_START_DIMENSIONS)
    return specs
