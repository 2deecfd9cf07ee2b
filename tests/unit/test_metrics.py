"""Metrics: every catalogue metric (chargelog.metric_names) is written, with its unit and dimensions, by the code path
that counts it; vendor metrics carry the right vendor even when two vendors' jobs share a batch; functions running at
once in one process (the local stack) never mix their metrics; a job's correlation id is in its log lines."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

import alert_notifier_handler
import dispatcher_handler
import export_handler
import upload_authorizer_handler
import worker_handler
from api_calls import post_json
from chargelog import aws, collectors, stores
from chargelog.collectors.base import Page, VendorCalls, VendorConnection, VendorProfile, Window
from chargelog.collectors.vendor_http import RateLimiter, VendorHttpClient, VendorResponseError
from chargelog.dal.alert_notices import AlertNotices
from chargelog.dal.alerts import alert_key
from chargelog.dal.state import CollectorStateStore, Counts
from chargelog.logic import sources
from chargelog.metric_names import NAMESPACE, ServiceMetric, VendorMetric, catalog
from chargelog.models.alerts import Alert, alert_id_for
from chargelog.models.jobs import CollectionJob
from chargelog.models.records import LogRecord, record_id_for
from chargelog.models.sources import SourceCreate
from chargelog.observability import add_service_metric, logger, metrics
from chargelog.settings import get_settings
from chargelog_local.lambdas import LocalLambdaContext
from chargelog_local.metrics import EmfTee, MetricsLog
from chargelog_local.provision import LocalStack
from chargelog_local.triggers import sqs_event
from conftest import REGION, load_event

Blobs = Callable[[], list[dict[str, Any]]]
PROFILE = VendorProfile(
    lookback=timedelta(minutes=10),
    settle_delay=timedelta(seconds=30),
    requests_per_second=1000,
    burst=1000,
    page_size=50,
)


@pytest.fixture
def emf(aws_credentials: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Blobs:
    """Metrics on (the tests' default is off), and the EMF blobs printed from here on, parsed."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "chargelog")
    capsys.readouterr()
    seen: list[dict[str, Any]] = []

    def blobs() -> list[dict[str, Any]]:
        seen.extend(json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"'))
        return list(seen)

    return blobs


def written(blobs: list[dict[str, Any]]) -> list[tuple[str, str, frozenset[str], str | None, float]]:
    """(name, unit, dimension names, vendor, last value) of every metric in the blobs, checked against EMF's shape."""
    found = []
    for blob in blobs:
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        (dimensions,) = directive["Dimensions"]
        for definition in directive["Metrics"]:
            value = blob[definition["Name"]]
            found.append(
                (
                    definition["Name"],
                    definition["Unit"],
                    frozenset(dimensions),
                    blob.get("vendor"),
                    value[-1] if isinstance(value, list) else value,
                )
            )
    return found


def check_against_catalogue(blobs: list[dict[str, Any]]) -> set[str]:
    """Every metric written is in the catalogue, with its unit and dimensions; returns their names."""
    specs = catalog()
    names = set()
    for name, unit, dimensions, _, _ in written(blobs):
        assert name in specs, f"{name} is written but not in chargelog.metric_names"
        assert (unit, dimensions) == (specs[name].unit, frozenset(specs[name].dimensions)), name
        names.add(name)
    return names


def work(event: dict[str, Any], lambda_context: LocalLambdaContext) -> None:
    """The worker on a batch; SQS delivers failed jobs again (every record failed: the whole batch)."""
    with contextlib.suppress(BatchProcessingError):
        worker_handler.lambda_handler(event, lambda_context)


def context(name: str) -> LocalLambdaContext:
    return LocalLambdaContext(function_name=name, memory_limit_in_mb=512, timeout_seconds=900, region=REGION)


# ---------------------------------------------------------------------------------------------- a flaky vendor


class FlakyAdapter:
    """One page of records behind a real VendorHttpClient whose vendor answers each of ``answers`` in turn (then
    404s)."""

    def __init__(self, connection: VendorConnection, answers: list[httpx.Response | Exception]) -> None:
        self.connection = connection

        def answer(_request: httpx.Request) -> httpx.Response:
            reply = answers.pop(0) if answers else httpx.Response(404, text="gone")  # shared by the test's jobs
            if isinstance(reply, Exception):
                raise reply
            return reply

        self._http = VendorHttpClient(
            connection.vendor,
            "https://vendor.example",
            rate_limiter=RateLimiter(1000, 1000),
            remaining_seconds=lambda: 900.0,
            sleep=lambda _seconds: None,
            transport=httpx.MockTransport(answer),
        )

    @property
    def calls(self) -> VendorCalls:
        return self._http.calls

    def fetch_page(self, source_id: str, window: Window, cursor: str | None, action: str | None = None) -> Page:
        body, _ = self._http.get_json("/logs")
        if not isinstance(body.get("data"), list):
            raise VendorResponseError(f"{self.connection.vendor} GET /logs answered without data")
        items = body["data"]
        return Page(items=items, body=body, request={}, next_cursor=body.get("next"), total=None, items_at="/data")

    def normalize(self, source_id: str, item: Any) -> LogRecord:
        if "at" not in item:
            raise ValueError("no time")
        return LogRecord(
            vendor=self.connection.vendor,
            source_id=source_id,
            charger_id=source_id,
            timestamp=item["at"],
            kind="ocpp",
            action="Heartbeat",
            record_id=record_id_for(self.connection.vendor, source_id, item["id"]),
            raw=item,
        )

    def discover(self) -> Iterator[Any]:
        return iter(())

    def close(self) -> None:
        self._http.close()


def page_of(count: int) -> httpx.Response:
    at = datetime.now(UTC) - timedelta(minutes=5)
    data = [{"id": n, "at": (at + timedelta(seconds=n)).isoformat()} for n in range(count)]
    return httpx.Response(200, json={"data": data})


@pytest.fixture
def flaky_plugchoice(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> list[httpx.Response | Exception]:
    """plugchoice's adapter is a FlakyAdapter; the test fills in what its vendor answers."""
    answers: list[httpx.Response | Exception] = []
    collectors.has_adapter("plugchoice")  # the built-in adapter loads first, so they cannot replace the fake
    monkeypatch.setitem(
        collectors._ADAPTERS, "plugchoice", (PROFILE, lambda connection, _remaining: FlakyAdapter(connection, answers))
    )
    return answers


def job_record(job: CollectionJob, message_id: str, receive_count: int = 1) -> dict[str, Any]:
    (record, *_) = load_event("sqs_collection_jobs")["Records"]
    return record | {
        "messageId": message_id,
        "body": job.model_dump_json(),
        "attributes": record["attributes"] | {"ApproximateReceiveCount": str(receive_count)},
    }


# ---------------------------------------------------------------------------------------------- the tests


def test_a_batch_of_two_vendors_jobs_writes_each_jobs_metrics_under_its_own_vendor(
    emf: Blobs, flaky_plugchoice: list[httpx.Response | Exception]
) -> None:
    # plugchoice: a 503, a 429, a timeout, then a page of 3 records; ocpplab has no base_url (the template's secret)
    flaky_plugchoice += [
        httpx.Response(503, text="down"),
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.ReadTimeout("slow"),
        page_of(3),
    ]
    now = datetime.now(UTC)
    plugchoice = CollectionJob(vendor="plugchoice", source_id="cp-1", scheduled_at=now)
    ocpplab = CollectionJob(vendor="ocpplab", source_id="dep-1", scheduled_at=now)
    event = {"Records": [job_record(plugchoice, "m-1"), job_record(ocpplab, "m-2", receive_count=5)]}

    work(event, context("WorkerFunction"))

    by_vendor: dict[str | None, dict[str, float]] = {}
    for name, _, dimensions, vendor, value in written(emf()):
        if name != "ColdStart":
            assert ("vendor" in dimensions) == (vendor is not None)
            by_vendor.setdefault(vendor, {})[name] = value
    assert by_vendor["plugchoice"] == {
        "RecordsStored": 3,
        "RecordsQuarantined": 0,
        "PagesFetched": 1,
        "VendorRequests": 4,
        "VendorErrors": 3,
        "VendorServerErrors": 1,
        "VendorThrottles": 1,
        "VendorTimeouts": 1,
        "VendorRetries": 3,
        "JobsReenqueued": 0,
        "JobsDeadLettered": 0,
    }
    # Its last allowed receive (the template's maxReceiveCount, 5) failed: SQS moves it to the dead-letter queue.
    assert by_vendor["ocpplab"]["JobsDeadLettered"] == 1
    assert by_vendor["ocpplab"]["RecordsStored"] == 0
    assert "VendorClientErrors" not in by_vendor["ocpplab"]  # error classes only when not zero
    check_against_catalogue(emf())


def test_a_body_that_is_not_the_documented_one_counts_once_as_a_bad_body(
    emf: Blobs, flaky_plugchoice: list[httpx.Response | Exception]
) -> None:
    flaky_plugchoice += [httpx.Response(200, json={"unexpected": True})]
    job = CollectionJob(vendor="plugchoice", source_id="cp-1", scheduled_at=datetime.now(UTC))
    work({"Records": [job_record(job, "m-1")]}, context("WorkerFunction"))
    values = {name: value for name, _, _, vendor, value in written(emf()) if vendor == "plugchoice"}
    assert (values["VendorBadBodies"], values["VendorErrors"], values["VendorRequests"]) == (1, 1, 1)


def test_the_worker_logs_each_job_with_its_correlation_id(
    emf: Blobs, flaky_plugchoice: list[httpx.Response | Exception]
) -> None:
    flaky_plugchoice += [page_of(1), page_of(1)]
    now = datetime.now(UTC)
    first = CollectionJob(vendor="plugchoice", source_id="cp-1", scheduled_at=now)
    second = CollectionJob(vendor="plugchoice", source_id="cp-2", scheduled_at=now)
    stream = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(stream)
    try:
        event = {"Records": [job_record(first, "m-1"), job_record(second, "m-2")]}
        work(event, context("WorkerFunction"))
    finally:
        handler.setStream(previous)  # type: ignore[arg-type]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    finished = {line["source_id"]: line for line in lines if line["message"] == "Job finished"}
    assert finished["cp-1"]["correlation_id"] == first.correlation_id
    assert finished["cp-2"]["correlation_id"] == second.correlation_id
    assert first.correlation_id != second.correlation_id
    # A message queued before jobs had one still parses, and gets one.
    legacy = json.loads(first.model_dump_json())
    del legacy["correlation_id"]
    assert CollectionJob.model_validate(legacy).correlation_id


def test_the_dispatcher_writes_its_counts_and_each_vendors_lag_every_run(emf: Blobs, stack: LocalStack) -> None:
    for vendor, source_id in (("ocpplab", "dep-1"), ("ocpplab", "dep-2"), ("plugchoice", "cp-1")):
        sources.create_source(
            SourceCreate.model_validate({"vendor": vendor, "source_id": source_id}), store=stores.sources()
        )
    now = datetime.now(UTC)
    states = CollectorStateStore(stack.refs["Table"])
    states.take_job("ocpplab", "dep-1", "job-1", now, 60, clear_queued=True)
    states.finish_job("ocpplab", "dep-1", "job-1", now, mark=now - timedelta(hours=3), counts=Counts())
    states.take_job("plugchoice", "cp-1", "job-2", now, 60, clear_queued=True)
    states.finish_job("plugchoice", "cp-1", "job-2", now, mark=now - timedelta(minutes=2), counts=Counts())
    event = load_event("schedule_collect") | {"time": now.isoformat()}

    dispatcher_handler.lambda_handler(event, context("DispatcherFunction"))

    values = {(name, vendor): value for name, _, _, vendor, value in written(emf())}
    assert values[("JobsEnqueued", None)] == 3
    assert values[("SourcesEnabled", None)] == 3
    # ocpplab: the largest lag of its sources (dep-2, never collected, counts from its registration: seconds)
    assert 3 * 3600 - 5 <= values[("CollectorLagSeconds", "ocpplab")] <= 3 * 3600 + 60
    assert 100 <= values[("CollectorLagSeconds", "plugchoice")] <= 200
    assert values[("SourcesBackingOff", "ocpplab")] == 0
    assert values[("SourcesOverBudget", "ocpplab")] == 0
    assert ("CollectorLagSeconds", "evenergy") not in values  # no enabled source: no datapoint
    check_against_catalogue(emf())


def test_two_threads_adding_and_flushing_at_once_get_their_own_blobs(emf: Blobs) -> None:
    start = threading.Barrier(2)

    def function(metric: ServiceMetric, count: int) -> None:
        start.wait()
        for _ in range(count):
            add_service_metric(metric, 1)
        start.wait()  # both have added before either flushes
        metrics.flush_metrics()

    threads = [
        threading.Thread(target=function, args=(ServiceMetric.UPLOADS_STORED, 3)),
        threading.Thread(target=function, args=(ServiceMetric.UPLOADS_DENIED, 2)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    blobs = emf()
    assert len(blobs) == 2
    contents = sorted(
        (blob["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], blob[name])
        for blob in blobs
        for name in ("UploadsStored", "UploadsDenied")
        if name in blob
    )
    assert contents == [("UploadsDenied", [1.0, 1.0]), ("UploadsStored", [1.0, 1.0, 1.0])]
    for blob in blobs:  # each blob holds one thread's metric only
        assert len(blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]) == 1


def test_every_function_writes_its_cold_start_once_per_container(emf: Blobs, stack: LocalStack) -> None:
    event = load_event("upload_authorizer_request")  # no such request: denied
    upload_authorizer_handler.lambda_handler(event, context("UploadAuthorizerFunction"))
    upload_authorizer_handler.lambda_handler(event, context("UploadAuthorizerFunction"))
    denied = [value for name, _, _, _, value in written(emf()) if name == "UploadsDenied"]
    assert denied == [1, 1]
    other_thread = threading.Thread(
        target=upload_authorizer_handler.lambda_handler, args=(event, context("UploadAuthorizerFunction"))
    )
    other_thread.start()
    other_thread.join()
    cold = [blob for blob in emf() if "ColdStart" in blob]
    # One per thread (a container) at most: this thread's may have been written by an earlier test's invocation.
    assert 1 <= len(cold) <= 2
    assert {blob["function_name"] for blob in cold} == {"UploadAuthorizerFunction"}


def test_metrics_disabled_writes_no_cold_start_either(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The tests' default is metrics off; Powertools' own ColdStart (single_metric) would print regardless.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    event = load_event("upload_authorizer_request")
    capsys.readouterr()
    worker = threading.Thread(  # a thread of its own: a container that has not started yet
        target=upload_authorizer_handler.lambda_handler, args=(event, context("UploadAuthorizerFunction"))
    )
    worker.start()
    worker.join()
    assert '"_aws"' not in capsys.readouterr().out


def test_the_worker_writes_every_job_metric_on_the_paths_that_count_them(
    emf: Blobs, stack: LocalStack, flaky_plugchoice: list[httpx.Response | Exception]
) -> None:
    """Each path here is the production one: no alarm on a metric nobody writes."""
    now = datetime.now(UTC)
    flaky_plugchoice += [
        # cp-1: every retryable failure class, then a page with a record and one that cannot be read
        httpx.Response(503),
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.ConnectError("refused"),
        httpx.Response(200, json={"data": [{"id": 1, "at": now.isoformat()}, {"id": 2}]}),
        # cp-2: a page with more to come, read with under a minute left: handed over to a continuation
        httpx.Response(200, json={"data": [{"id": 3, "at": now.isoformat()}], "next": "2"}),
        # cp-3, its 4th receive: refused (401); its 5th and last: HTML, then (retried) a 404
        httpx.Response(401, text="no"),
        httpx.Response(200, text="<html>", headers={"Content-Type": "text/html"}),
    ]
    jobs = [CollectionJob(vendor="plugchoice", source_id=source, scheduled_at=now) for source in ("cp-1", "cp-2")]
    work({"Records": [job_record(jobs[0], "m-1")]}, context("WorkerFunction"))
    short = LocalLambdaContext(
        function_name="WorkerFunction", memory_limit_in_mb=512, timeout_seconds=59, region=REGION
    )
    work({"Records": [job_record(jobs[1], "m-2")]}, short)
    for receive in (4, 5):
        failing = CollectionJob(vendor="plugchoice", source_id="cp-3", scheduled_at=now)
        event = {"Records": [job_record(failing, f"m-{receive}", receive)]}
        work(event, context("WorkerFunction"))

    totals: dict[str, float] = {}
    for name, _, _, vendor, value in written(emf()):
        if vendor == "plugchoice":
            totals[name] = totals.get(name, 0) + value
    assert totals["RecordsStored"] == 2  # ids 1 and 3
    assert totals["RecordsQuarantined"] == 1
    assert totals["JobsReenqueued"] == 1
    assert totals["JobsDeadLettered"] == 1
    assert (totals["VendorServerErrors"], totals["VendorThrottles"], totals["VendorTimeouts"]) == (1, 1, 1)
    assert (totals["VendorClientErrors"], totals["VendorBadBodies"]) == (2, 1)  # the 401 and the 404
    job_metrics = {str(name) for name in VendorMetric} - {
        "CollectorLagSeconds",  # the dispatcher's (test above)
        "SourcesBackingOff",
        "SourcesOverBudget",
        "SourcesRegistered",  # discovery's
        "ReplayRecordsWritten",  # a replay's
    }
    assert job_metrics <= check_against_catalogue(emf())


def test_an_export_that_fails_writes_exports_failed_and_its_request_exports_requested(
    emf: Blobs, stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 fails while the export runs: ExportsFailed (the local stack's acceptance test cannot make an export fail
    through the API; test_exports covers that the export is recorded as failed and redelivered)."""
    status, _, body = post_json(context("ApiFunction"), "/exports", {"charger_id": "CP-1"})
    assert status == 202, body
    messages = aws.client("sqs").receive_message(
        QueueUrl=stack.refs["ExportQueue"], MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
    )["Messages"]
    monkeypatch.setenv("CHARGELOG_EXPORTS_BUCKET", "no-such-bucket")
    get_settings.cache_clear()
    event = sqs_event(messages, stack.attributes[("ExportQueue", "Arn")], REGION)
    with pytest.raises(BatchProcessingError):
        export_handler.lambda_handler(event, context("ExportFunction"))

    values = [(name, value) for name, _, _, _, value in written(emf()) if name.startswith("Exports")]
    assert values == [("ExportsRequested", 1), ("ExportsFailed", 1)]
    check_against_catalogue(emf())


def test_the_alert_notifier_writes_what_it_sent_and_what_it_held_back(
    emf: Blobs, stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two alerts of one charger, one notification an hour allowed: one sent (to the topic), one held back."""
    monkeypatch.setenv("CHARGELOG_ALERT_NOTIFICATIONS_PER_HOUR", "1")
    get_settings.cache_clear()
    table = aws.table(stack.refs["Table"])
    ids = []
    for episode in ("ocpplab:1", "ocpplab:2"):
        alert = Alert(
            alert_id=alert_id_for("ocpplab", "CP-1", "CP-1", "boot_loop", None, episode),
            kind="boot_loop",
            state="open",
            charger_id="CP-1",
            vendor="ocpplab",
            source_id="CP-1",
            opened_at=datetime.now(UTC),
            summary="3 boots in 10 minutes",
        )
        table.put_item(Item={**alert_key(alert.alert_id), **alert.model_dump(mode="json")})
        ids.append(alert.alert_id)
    AlertNotices(stack.refs["AlertQueue"]).send((alert_id, "open") for alert_id in ids)
    messages = aws.client("sqs").receive_message(
        QueueUrl=stack.refs["AlertQueue"], MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]
    assert len(messages) == 2
    event = sqs_event(messages, stack.attributes[("AlertQueue", "Arn")], REGION)
    assert alert_notifier_handler.lambda_handler(event, context("AlertNotifierFunction")) == {"batchItemFailures": []}

    values = sorted((name, value) for name, _, _, _, value in written(emf()) if name.startswith("AlertNotifications"))
    assert values == [("AlertNotificationsSent", 1), ("AlertNotificationsSuppressed", 1)]
    check_against_catalogue(emf())


RUNTIME = Path(__file__).resolve().parents[2]


def test_the_catalogue_is_what_the_code_writes() -> None:
    """Every metric is written through the catalogue's names (no literal name in an add_metric call), and every
    catalogue metric is written somewhere in the runtime (the paths are exercised above, in test_collection_engine,
    test_replay and the local stack's acceptance test)."""
    code = {
        path: path.read_text()
        for folder in ("layers/common/chargelog", "functions")
        for path in (RUNTIME / folder).rglob("*.py")
        if path.name != "metric_names.py"
    }
    for path, text in code.items():
        assert not re.search(r"add_metric\(\s*name\s*=\s*[\"']", text), f"{path}: a metric name outside the catalogue"
    referenced = {
        str(member)
        for member in (*VendorMetric, *ServiceMetric)
        if any(f"{type(member).__name__}.{member.name}" in text for text in code.values())
    }
    assert referenced == {str(member) for member in (*VendorMetric, *ServiceMetric)}


def test_the_local_stack_keeps_emf_lines_and_shows_the_latest_per_vendor(tmp_path: Any) -> None:
    terminal = io.StringIO()
    log = MetricsLog(tmp_path / "metrics.ndjson")
    tee = EmfTee(terminal, log)  # type: ignore[arg-type]
    blob = {
        "_aws": {
            "Timestamp": 1,
            "CloudWatchMetrics": [
                {
                    "Namespace": "chargelog",
                    "Dimensions": [["vendor", "service"]],
                    "Metrics": [{"Name": "CollectorLagSeconds", "Unit": "Seconds"}],
                }
            ],
        },
        "vendor": "ocpplab",
        "service": "chargelog",
        "CollectorLagSeconds": [60.0],
    }
    print(json.dumps(blob), file=tee)
    print("an ordinary line", file=tee)
    print(json.dumps(blob | {"CollectorLagSeconds": [120.0], "_aws": blob["_aws"] | {"Timestamp": 2}}), file=tee)
    assert terminal.getvalue() == "an ordinary line\n"
    assert len((tmp_path / "metrics.ndjson").read_text().splitlines()) == 2
    (latest,) = log.latest()
    assert (latest["metric"], latest["vendor"], latest["value"], latest["unit"], latest["at"]) == (
        "CollectorLagSeconds",
        "ocpplab",
        120.0,
        "Seconds",
        2,
    )
