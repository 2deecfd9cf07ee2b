"""Acceptance (issue 14): the metrics the local stack keeps are the ones the alarms and the dashboard read.

The whole local stack runs in this process (``LocalRunner``: moto's server, the vendor simulators, every function
behind its gateway, queue pollers), with its schedule off: the test fires the dispatcher itself, with the time an
EventBridge schedule would send, so the collector lag it writes can be predicted to the second. OCPPLAB's simulator
answers every request with a 429 or a 5xx for a while (its ``Faults``), then recovers; ChargePilot stays healthy.
Then a source discovery and a replay, a diagnostics upload (asked for through the API, sent through the upload
API), a malformed one and a denied one, an export, the health monitor's sweep and one charger alert's
notification (the alert notifier on the alert queue, publishing to the charger-alert topic in moto). The EMF blobs
the stack kept (in memory, in ``metrics.ndjson`` and through ``GET /local/metrics``) are checked against the metric
catalogue, against what happened, and against the template's alarms.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any
from unittest import mock

import httpx
import pytest

from chargelog import aws
from chargelog.collectors import vendor_http
from chargelog.dal.alert_notices import AlertNotices
from chargelog.dal.alerts import alert_key
from chargelog.metric_names import NAMESPACE, ServiceMetric, VendorMetric, catalog
from chargelog.models.alerts import Alert, alert_id_for
from chargelog.settings import get_settings
from chargelog.vendors import VENDORS
from chargelog_local.runner import LocalOptions, LocalRunner
from chargelog_local.template import functions, load_template
from chargelog_local.triggers import scheduled_event
from chargelog_simulators import ocpplab as ocpplab_simulator
from chargelog_simulators.base import Faults
from chargelog_simulators.traffic import generate_heartbeats

FAULTED, FAULTED_SOURCE = "ocpplab", "dep-3f9c2a71"  # chargelog_simulators.ocpplab.LOCAL_FLEET
HEALTHY, HEALTHY_SOURCE = "chargepilot", "site-2f7a91"  # chargelog_simulators.chargepilot.LOCAL_SITES
QUEUE_WAIT = timedelta(seconds=10)  # the most a job's message waits on its queue here (it reads that much further)
SETTLE = timedelta(seconds=30)  # both vendors' VendorProfile.settle_delay: a job reads up to scheduled time - this
WAIT_SECONDS = 60
FUNCTIONS = {spec.logical_id for spec in functions(load_template())}  # every function of the template
# The catalogue's metrics this run does not write (error classes are written only when not zero), and the test of
# tests/unit/test_metrics.py that sees each written on its own path. No alarm reads one of them (checked below).
WORKER_PATHS = "test_the_worker_writes_every_job_metric_on_the_paths_that_count_them"
NOT_WRITTEN_HERE = {
    "VendorClientErrors": WORKER_PATHS,
    "VendorTimeouts": WORKER_PATHS,
    "VendorBadBodies": "test_a_body_that_is_not_the_documented_one_counts_once_as_a_bad_body",
    # An export fails when it runs out of time or S3 fails: not something a request to the API can cause.
    "ExportsFailed": "test_an_export_that_fails_writes_exports_failed_and_its_request_exports_requested",
    # One notification here, within the hourly limit.
    "AlertNotificationsSuppressed": "test_the_alert_notifier_writes_what_it_sent_and_what_it_held_back",
}

Blob = dict[str, Any]


@dataclass(frozen=True)
class Metric:
    """One metric value of an EMF blob, as CloudWatch would read it."""

    name: str
    unit: str
    namespace: str
    dimensions: frozenset[str]  # the directive's dimension names
    values: dict[str, Any]  # each dimension's value in the blob
    value: float

    @property
    def vendor(self) -> str | None:
        return self.values.get("vendor")


def metrics_of(blobs: list[Blob]) -> list[Metric]:
    """Every metric of every blob, in the order written; each blob must have EMF's shape."""
    found = []
    for blob in blobs:
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        (dimensions,) = directive["Dimensions"]
        assert all(name in blob for name in dimensions), f"a dimension without its value: {blob}"
        for definition in directive["Metrics"]:
            value = blob[definition["Name"]]
            # A function writing a metric more than once in an invocation (the alert notifier, once per notification
            # of its batch) leaves one blob with every value, as EMF allows: each value is a metric here.
            for single in value if isinstance(value, list) else [value]:
                found.append(
                    Metric(
                        name=definition["Name"],
                        unit=definition["Unit"],
                        namespace=directive["Namespace"],
                        dimensions=frozenset(dimensions),
                        values={name: blob[name] for name in dimensions},
                        value=single,
                    )
                )
    return found


class Stack:
    """The running LocalRunner, with the calls this test makes to it."""

    def __init__(self, runner: LocalRunner, faults: Faults, ocpplab: ocpplab_simulator.OcpplabSimulator) -> None:
        self.runner = runner
        self.faults = faults
        self.ocpplab = ocpplab
        self.http = httpx.Client(headers={"x-api-key": runner.api_key}, timeout=30)
        self.dispatched: list[datetime] = []  # each dispatcher run's scheduled time

    def api(self, method: str, path: str, **options: Any) -> httpx.Response:
        return self.http.request(method, f"{self.runner.api_url}{path}", **options)

    def metrics(self) -> list[Metric]:
        return metrics_of(self.runner.metrics_log.blobs())

    def wait_for(self, what: str, done: Callable[[list[Metric]], bool]) -> list[Metric]:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            found = self.metrics()
            if done(found):
                return found
            assert time.monotonic() < deadline, f"no {what} within {WAIT_SECONDS} s"
            time.sleep(0.1)

    def jobs_finished(self, vendor: str) -> int:
        """Collection jobs of the vendor the worker finished (each writes its VendorRequests, 0 included)."""
        return sum(1 for m in self.metrics() if m.name == "VendorRequests" and m.vendor == vendor)

    def dispatch(self, at: datetime, *, jobs: dict[str, int]) -> None:
        """Fire the dispatcher as the schedule would at ``at``; wait until the worker has finished the jobs it queues
        (``jobs``: vendor -> how many)."""
        before = {vendor: self.jobs_finished(vendor) for vendor in jobs}
        function = self.runner.functions["DispatcherFunction"]
        (rule,) = function.spec.schedules
        result = function.invoke(scheduled_event(rule, self.runner.options.region, now=at))
        assert result["enqueued"] == sum(jobs.values()), result
        self.dispatched.append(at)
        self.wait_for(
            f"jobs {jobs} finished",
            lambda _: all(self.jobs_finished(vendor) == before[vendor] + count for vendor, count in jobs.items()),
        )

    def collector(self, vendor: str, source_id: str) -> dict[str, Any]:
        report = self.api("GET", "/collectors").json()
        (found,) = [c for c in report["collectors"] if (c["vendor"], c["source_id"]) == (vendor, source_id)]
        return dict(found)


@contextmanager
def running_stack(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """``chargelog local`` in this process, schedules off, no source discovery; OCPPLAB's simulator answers with
    the test's ``Faults``. The environment the runner sets (moto's endpoint, the functions' variables) is undone.

    Started in the test's body, not in a fixture: the runner keeps the functions' EMF lines by replacing sys.stdout,
    and pytest puts its own capture back on sys.stdout at the start of each test phase."""
    faults = Faults()
    started: list[ocpplab_simulator.OcpplabSimulator] = []

    class FaultedOcpplab(ocpplab_simulator.OcpplabSimulator):
        def __init__(self, **options: Any) -> None:
            super().__init__(faults=faults, **options)
            started.append(self)

    monkeypatch.setattr(ocpplab_simulator, "OcpplabSimulator", FaultedOcpplab)  # start_local() builds this one
    # A 5xx is retried after 0.5, 1, 2, 4, 8 s (+ jitter): start the backoff small, so a failing job takes seconds.
    monkeypatch.setattr(vendor_http, "INITIAL_BACKOFF_SECONDS", 0.01)
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CHARGELOG_"))}
    options = LocalOptions(
        port=0,
        schedule_seconds=0,
        discover_sources=False,
        stack_name="chargelog-metrics",
        state_dir=state_dir,
        environ=environ,
    )
    with mock.patch.dict(os.environ):
        runner = LocalRunner(options)
        try:
            runner.start()
            (ocpplab,) = started
            stack = Stack(runner, faults, ocpplab)
            with stack.http:
                yield stack
        finally:
            runner.stop()
            aws.reset()
            get_settings.cache_clear()


def whole_seconds(moment: datetime) -> datetime:
    """EventBridge's scheduled times are whole seconds."""
    return moment.replace(microsecond=0)


def test_the_local_stack_writes_the_catalogues_metrics_per_vendor_and_the_lag_rises_and_falls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_stack(tmp_path / "state", monkeypatch) as stack:
        check_metrics(stack)


def check_metrics(stack: Stack) -> None:
    for vendor, source_id in ((FAULTED, FAULTED_SOURCE), (HEALTHY, HEALTHY_SOURCE)):
        created = stack.api("POST", "/sources", json={"vendor": vendor, "source_id": source_id})
        assert created.status_code == 201, created.text
    both = {FAULTED: 1, HEALTHY: 1}

    # 1. Both vendors healthy: each source's first job reads its history, the mark moves to scheduled time - settle,
    # and as much later as the job's message waited on the queue (a fraction of a second here).
    first = whole_seconds(datetime.now(UTC))
    stack.dispatch(first, jobs=both)
    mark = datetime.fromisoformat(stack.collector(FAULTED, FAULTED_SOURCE)["high_water_mark"])
    assert first - SETTLE <= mark < first - SETTLE + QUEUE_WAIT

    # 2. OCPPLAB goes down: every request answered 429 (Retry-After: 0) or 5xx. Its job fails; the source backs off.
    stack.faults.throttle_rate, stack.faults.retry_after_seconds, stack.faults.error_rate = 0.5, 0, 1.0
    down = max(whole_seconds(datetime.now(UTC)), first + timedelta(seconds=1))
    stack.dispatch(down, jobs=both)
    backing_off = stack.collector(FAULTED, FAULTED_SOURCE)
    assert (backing_off["status"], backing_off["consecutive_failures"]) == ("backing_off", 1)
    # 3. A second later it waits out its backoff: no job for it.
    stack.dispatch(down + timedelta(seconds=1), jobs={HEALTHY: 1})
    # 4. Past the backoff (a minute after the failure), still down: fails again.
    still_down = whole_seconds(datetime.now(UTC)) + timedelta(minutes=2)
    stack.dispatch(still_down, jobs=both)
    assert stack.collector(FAULTED, FAULTED_SOURCE)["consecutive_failures"] == 2
    # 5. OCPPLAB recovers; past the second backoff (two minutes) its job reads everything since the mark: what the
    # charger sent while OCPPLAB was down (its live traffic may have had nothing to say in these few seconds).
    stack.faults.throttle_rate = stack.faults.error_rate = 0.0
    sent_while_down = generate_heartbeats(mark + timedelta(seconds=1), datetime.now(UTC), Random(1), 2)  # noqa: S311
    stack.ocpplab.insert(FAULTED_SOURCE, sent_while_down)
    recovered = still_down + timedelta(minutes=3)
    stack.dispatch(recovered, jobs=both)
    assert stack.collector(FAULTED, FAULTED_SOURCE)["status"] == "ok"
    # 6. The next run: the lag is back to the settle delay and the minute since.
    stack.dispatch(recovered + timedelta(minutes=1), jobs=both)

    # The healthy vendor's other site discovered and registered; a replay of an hour of its source from the raw archive.
    discovered = stack.api("POST", "/sources/discover", json={"vendor": HEALTHY})
    assert discovered.status_code == 200, discovered.text
    assert discovered.json()["registered"] == 1
    replay_range = {"from": (first - timedelta(hours=2)).isoformat(), "to": (first - timedelta(hours=1)).isoformat()}
    replay = stack.api("POST", f"/collectors/{HEALTHY}/{HEALTHY_SOURCE}/replay", json=replay_range)
    assert replay.status_code == 202, replay.text

    # An upload asked for through the API and sent through the upload API; a malformed form; a denied one.
    request = stack.api("POST", "/diagnostics/requests", json={"charger_id": "CP-RIV-01", "log_type": "DiagnosticsLog"})
    assert request.status_code == 201, request.text
    location = request.json()["remote_location"]
    log_file = b"2026-12-03T08:00:00Z INFO evse_manager: charging session started\n" * 1000
    uploaded = httpx.put(f"{location}diagnostics.log", content=log_file, timeout=30)
    assert uploaded.status_code == 200, uploaded.text
    malformed = httpx.post(
        location, content=b"not a form", headers={"Content-Type": "multipart/form-data; boundary=XyZ"}, timeout=30
    )
    assert malformed.status_code == 200, malformed.text  # stored unread; the indexer rejects it
    token = location.rstrip("/").rsplit("/", 1)[1]
    wrong_token = token[:-1] + ("B" if token.endswith("A") else "A")  # the secret's last character changed
    denied = httpx.put(f"{location.replace(token, wrong_token)}x.log", content=b"x", timeout=30)
    assert denied.status_code == 403, denied.text

    # An export of the healthy vendor's records.
    exported = stack.api("POST", "/exports", json={"site_id": HEALTHY_SOURCE})
    assert exported.status_code == 202, exported.text
    export_id = exported.json()["id"]

    def export_state() -> str:
        return str(stack.api("GET", f"/exports/{export_id}").json()["state"])

    deadline = time.monotonic() + WAIT_SECONDS
    while export_state() not in ("done", "failed"):
        assert time.monotonic() < deadline, "the export did not finish"
        time.sleep(0.2)
    assert export_state() == "done"

    # The health monitor's sweep, as its schedule fires it; a charger alert, written and announced as the health
    # detectors do, which the alert notifier (polling the alert queue) sends to the charger-alert topic.
    monitor = stack.runner.functions["HealthMonitorFunction"]
    (rule,) = monitor.spec.schedules
    assert isinstance(monitor.invoke(scheduled_event(rule, stack.runner.options.region)), dict)
    assert stack.runner.stack is not None
    resources = stack.runner.stack.refs
    alert = Alert(
        alert_id=alert_id_for(FAULTED, FAULTED_SOURCE, FAULTED_SOURCE, "offline", None, "ocpplab:1"),
        kind="offline",
        state="open",
        charger_id=FAULTED_SOURCE,
        vendor=FAULTED,
        source_id=FAULTED_SOURCE,
        opened_at=first,
        summary="no record for 30 minutes",
    )
    aws.table(resources["Table"]).put_item(Item={**alert_key(alert.alert_id), **alert.model_dump(mode="json")})
    AlertNotices(resources["AlertQueue"]).send([(alert.alert_id, "open")])

    metrics = stack.wait_for(
        "UploadsStored, UploadsRejected, ReplayRecordsWritten and AlertNotificationsSent",
        lambda found: (
            {"UploadsStored", "UploadsRejected", "ReplayRecordsWritten", "AlertNotificationsSent"}
            <= {m.name for m in found}
        ),
    )

    # --- every metric is the catalogue's: namespace, unit, dimensions (names in the directive, values in the blob)
    specs = catalog()
    service = stack.runner.function_environment["POWERTOOLS_SERVICE_NAME"]
    for metric in metrics:
        assert metric.name in specs, f"{metric.name} is written but not in chargelog.metric_names"
        spec = specs[metric.name]
        assert (metric.namespace, metric.unit, metric.dimensions) == (NAMESPACE, spec.unit, frozenset(spec.dimensions))
        assert metric.values["service"] == service
        if "vendor" in metric.dimensions:
            assert metric.vendor in VENDORS
    vendor_metric_names = {m.name for m in metrics if m.vendor is not None}
    assert vendor_metric_names <= {str(name) for name in VendorMetric}
    assert {m.name for m in metrics if m.vendor is None and m.name != "ColdStart"} <= {str(n) for n in ServiceMetric}

    # --- the dispatcher, every run: JobsEnqueued and SourcesEnabled; per vendor, its lag and sources backing off
    runs = len(stack.dispatched)
    assert [m.value for m in metrics if m.name == "JobsEnqueued"] == [2, 2, 1, 2, 2, 2]
    assert [m.value for m in metrics if m.name == "SourcesEnabled"] == [2] * runs
    assert [m.value for m in metrics if m.name == "SourcesBackingOff" and m.vendor == FAULTED] == [0, 0, 1, 0, 0, 0]
    assert [m.value for m in metrics if m.name == "SourcesBackingOff" and m.vendor == HEALTHY] == [0] * runs
    lag = [m.value for m in metrics if m.name == "CollectorLagSeconds" and m.vendor == FAULTED]
    assert len(lag) == runs
    # While OCPPLAB is down (runs 2-4) and as it recovers (run 5, before its job), the lag is the time since the
    # mark of run 1: it rises with every run. After the recovered job, it falls to the settle delay and a minute.
    assert lag[1:5] == [(at - mark).total_seconds() for at in stack.dispatched[1:5]]
    assert lag[1] < lag[2] < lag[3] < lag[4]
    assert lag[4] > 5 * 60
    assert (SETTLE + timedelta(minutes=1) - QUEUE_WAIT).total_seconds() < lag[5]
    assert lag[5] <= (SETTLE + timedelta(minutes=1)).total_seconds() < lag[4]
    assert not {m.name for m in metrics if m.vendor in set(VENDORS) - {FAULTED, HEALTHY}}  # no source: no metrics

    # --- the worker, per job and under the job's vendor
    def jobs(vendor: str, name: str) -> list[float]:
        return [m.value for m in metrics if m.name == name and m.vendor == vendor]

    assert jobs(FAULTED, "VendorRequests")[1:3] == [6, 6]  # the two failed jobs: six attempts each
    assert jobs(FAULTED, "VendorErrors")[1:3] == [6, 6]
    assert jobs(FAULTED, "VendorRetries")[1:3] == [5, 5]
    throttles, server_errors = sum(jobs(FAULTED, "VendorThrottles")), sum(jobs(FAULTED, "VendorServerErrors"))
    assert throttles > 0
    assert server_errors > 0
    assert throttles + server_errors == 12  # each error counted once, in its class
    assert jobs(FAULTED, "RecordsStored")[1:3] == [0, 0]
    assert jobs(FAULTED, "RecordsStored")[0] > 0
    assert jobs(FAULTED, "RecordsStored")[3] > 0  # what it missed while down
    assert jobs(FAULTED, "VendorErrors")[3:] == [0, 0]  # recovered: no error in the last two jobs
    # Runs 1, 2, 4, 5 and 6; the failures were first receives of five. JobsDeadLettered and JobsReenqueued of 1 (a
    # job's last receive failing; a job out of time) are seen in tests/unit/test_metrics.py::WORKER_PATHS.
    assert jobs(FAULTED, "JobsDeadLettered") == [0] * 5
    assert jobs(FAULTED, "JobsReenqueued") == [0] * 5
    assert sum(jobs(HEALTHY, "VendorErrors")) == 0
    assert len(jobs(HEALTHY, "VendorRequests")) == runs + 1  # a job per run, and the discovery's calls
    assert not {m.name for m in metrics if m.vendor == HEALTHY} & {
        "VendorThrottles",
        "VendorServerErrors",
        "VendorClientErrors",
        "VendorTimeouts",
        "VendorBadBodies",
    }  # error classes only when not zero

    # --- discovery and the replay, under the vendor
    assert jobs(HEALTHY, "SourcesRegistered") == [1]
    # The replay rebuilds records the table holds as they are: it rewrites none (upserts write what changed).
    assert jobs(HEALTHY, "ReplayRecordsWritten") == [0]

    # --- uploads, the denial, the export
    def service_values(name: str) -> list[float]:
        return [m.value for m in metrics if m.name == name and m.vendor is None]

    assert service_values("UploadsStored") == [1]
    assert service_values("UploadBytes") == [len(log_file)]
    assert service_values("UploadsRejected") == [1]
    assert service_values("UploadsDenied") == [1]
    assert service_values("ExportsRequested") == [1]
    assert service_values("ExportsFailed") == []  # written when an export fails: none did
    # This run's alert, and any the detectors opened on the local fleet's misbehaving chargers (chargelog_simulators'
    # local_behaviours): one value per notification sent.
    sent = service_values("AlertNotificationsSent")
    assert sent
    assert set(sent) == {1}

    # --- ColdStart: once per container (execution environment) of each function this run invoked, with the function's
    # name as a dimension. A function triggered by a queue runs several containers at once (its event sources'
    # MaximumConcurrency), so it may start more than one; the others run one.
    cold = Counter(m.values["function_name"] for m in metrics if m.name == "ColdStart")
    assert set(cold) == FUNCTIONS
    queue_triggered = {spec.logical_id for spec in functions(load_template()) if spec.queues}
    assert {name: n for name, n in cold.items() if name not in queue_triggered} == dict.fromkeys(
        FUNCTIONS - queue_triggered, 1
    )

    # --- the catalogue's metrics this run never writes: each is written on a path a unit test takes
    assert set(specs) - {m.name for m in metrics} == set(NOT_WRITTEN_HERE)

    # --- the same blobs in metrics.ndjson, and GET /local/metrics shows the latest of each per vendor
    assert stack.runner.metrics_log.path is not None
    kept = [json.loads(line) for line in stack.runner.metrics_log.path.read_text().splitlines()]
    assert kept == stack.runner.metrics_log.blobs()
    shown = stack.api("GET", "/local/metrics").json()["metrics"]
    latest = {(m.name, m.vendor or "-"): m for m in metrics_of(kept)}
    assert {(row["metric"], row["vendor"]): (row["value"], row["unit"]) for row in shown} == {
        key: (m.value, m.unit) for key, m in latest.items()
    }
    assert next(row for row in shown if (row["metric"], row["vendor"]) == ("CollectorLagSeconds", FAULTED))[
        "dimensions"
    ] == {"service": service, "vendor": FAULTED}

    # --- every alarm on a chargelog metric reads one this run wrote, with the dimensions it was written with
    written = {(m.name, m.dimensions) for m in metrics}
    vendors_written = {(m.name, m.vendor) for m in metrics if m.vendor is not None}
    checked = set()
    for name, resource in load_template()["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        stats = (
            [properties]
            if "MetricName" in properties
            else [query["MetricStat"]["Metric"] for query in properties["Metrics"] if "MetricStat" in query]
        )
        for stat in stats:
            if stat.get("Namespace") != NAMESPACE:
                continue
            dimensions = {d["Name"]: d["Value"] for d in stat.get("Dimensions", [])}
            metric = stat["MetricName"]
            assert (metric, frozenset(dimensions)) in written, f"{name}: {metric} {sorted(dimensions)} not written"
            assert dimensions["service"] == service, name
            if dimensions.get("vendor") in (FAULTED, HEALTHY):
                assert (metric, dimensions["vendor"]) in vendors_written, name
            checked.add(metric)
    assert {"CollectorLagSeconds", "VendorErrors", "VendorRequests", "JobsEnqueued", "SourcesEnabled"} <= checked
