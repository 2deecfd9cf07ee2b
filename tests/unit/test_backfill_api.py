"""POST /collectors/{vendor}/{source_id}/backfill through the API handler: the job lands on the vendor's queue,
and the worker runs it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import worker_handler
from api_calls import call_api
from chargelog import aws, collectors, stores
from chargelog.collectors.base import Page, VendorCalls, VendorProfile, Window
from chargelog.dal.records import charger_items, record_from_item
from chargelog.dal.state import CollectorStateStore
from chargelog.logic import sources
from chargelog.models.jobs import CollectionJob
from chargelog.models.records import LogRecord, record_id_for
from chargelog.models.sources import SourceCreate
from chargelog_local.provision import LocalStack
from conftest import load_event

NOW = datetime.now(UTC).replace(microsecond=0)
FAKE_VENDOR = "plugchoice"  # a fake stands in for the built-in adapter
QUEUES = ("PlugchoiceWorkQueue", "OcpplabWorkQueue", "ChargepilotWorkQueue", "EvenergyWorkQueue")


class FakeLogApi:
    """A vendor log API in memory: one page per request, filtered by window and action."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.calls = VendorCalls()

    def fetch_page(self, source_id: str, window: Window, cursor: str | None, action: str | None = None) -> Page:
        self.calls.requests += 1
        items = [
            r
            for r in self.records
            if window.start <= datetime.fromisoformat(r["at"]) <= window.end and action in (None, r["action"])
        ]
        return Page(items=items, body={"data": items}, request={"cursor": cursor}, next_cursor=None, total=len(items))

    def normalize(self, source_id: str, item: Any) -> LogRecord:
        return LogRecord(
            vendor=FAKE_VENDOR,
            source_id=source_id,
            charger_id=source_id,
            timestamp=item["at"],
            kind="ocpp",
            action=item["action"],
            record_id=record_id_for(FAKE_VENDOR, source_id, item["id"]),
            raw=item,
        )

    def close(self) -> None:
        pass


@pytest.fixture
def fake_api(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> FakeLogApi:
    hours = [
        {"id": n, "at": (NOW - timedelta(hours=n)).isoformat(), "action": "BootNotification" if n % 2 else "Heartbeat"}
        for n in range(1, 11)
    ]
    api = FakeLogApi(hours)
    profile = VendorProfile(
        lookback=timedelta(minutes=10), settle_delay=timedelta(0), requests_per_second=100, burst=100, page_size=100
    )
    # Load the built-in adapter first, so they cannot replace the fake; the real one comes back afterwards.
    collectors.has_adapter(FAKE_VENDOR)
    monkeypatch.setitem(collectors._ADAPTERS, FAKE_VENDOR, (profile, lambda _connection, _remaining: api))
    return api


def register(vendor: str, source_id: str) -> None:
    sources.create_source(
        SourceCreate.model_validate({"vendor": vendor, "source_id": source_id}), store=stores.sources()
    )


def post_backfill(
    context: Any, vendor: str, source_id: str, body: Any, raw: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    sent = raw if raw is not None else json.dumps(body).encode()
    response = call_api(
        context,
        "POST",
        f"/collectors/{vendor}/{source_id}/backfill",
        body=sent,
        headers={"content-type": "application/json"},
    )
    return response.status, response.headers, response.json()


def queued(stack: LocalStack, queue: str) -> list[dict[str, Any]]:
    """Every message on a queue (received, so they stay invisible to later receives in the test)."""
    response = aws.client("sqs").receive_message(
        QueueUrl=stack.refs[queue], MaxNumberOfMessages=10, AttributeNames=["All"]
    )
    return list(response.get("Messages", []))


def test_a_backfill_is_queued_on_the_vendors_queue_with_its_window(stack: LocalStack, lambda_context: Any) -> None:
    register("ocpplab", "dep-123")
    start, end = NOW - timedelta(days=3), NOW - timedelta(days=2)
    status, headers, job = post_backfill(
        lambda_context,
        "ocpplab",
        "dep-123",
        {"from": start.isoformat(), "to": end.isoformat(), "action": "BootNotification"},
    )
    assert status == 202, job
    assert headers["location"] == "/collectors"
    assert job["job_id"]
    assert (job["vendor"], job["source_id"], job["mode"], job["action"]) == (
        "ocpplab",
        "dep-123",
        "backfill",
        "BootNotification",
    )
    (message,) = queued(stack, "OcpplabWorkQueue")
    on_queue = CollectionJob.model_validate_json(message["Body"])
    assert on_queue.job_id == job["job_id"]
    assert (on_queue.window_start, on_queue.window_end) == (start, end)
    assert datetime.fromisoformat(job["window_start"]) == start
    assert datetime.fromisoformat(job["window_end"]) == end
    assert all(not queued(stack, queue) for queue in QUEUES if queue != "OcpplabWorkQueue")


def test_the_worker_runs_the_queued_backfill_and_leaves_the_mark_alone(
    stack: LocalStack, lambda_context: Any, fake_api: FakeLogApi
) -> None:
    register(FAKE_VENDOR, "cp-1")
    body = {"from": (NOW - timedelta(hours=6)).isoformat(), "to": (NOW - timedelta(hours=2)).isoformat()}
    status, _, job = post_backfill(lambda_context, FAKE_VENDOR, "cp-1", body | {"action": "BootNotification"})
    assert status == 202, job
    (message,) = queued(stack, "PlugchoiceWorkQueue")
    event = load_event("sqs_collection_jobs")
    record = event["Records"][1]  # the sample's plugchoice record, carrying the queued message
    record.update(messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"], body=message["Body"])
    event["Records"] = [record]

    assert worker_handler.lambda_handler(event, lambda_context) == {"batchItemFailures": []}

    stored = sorted(record_from_item(item)["raw"]["id"] for item in charger_items(stack.refs["Table"], "cp-1"))
    assert stored == [3, 5]  # the BootNotifications 2 to 6 hours back
    state = CollectorStateStore(stack.refs["Table"]).get(FAKE_VENDOR, "cp-1")
    assert state.high_water_mark is None
    assert state.records_stored == 2
    assert state.last_success_at is not None


@pytest.mark.parametrize(
    ("vendor", "source_id", "body", "expected", "detail"),
    [
        ("acme", "dep-123", {"from": "2026-11-20T00:00:00Z", "to": "2026-11-20T01:00:00Z"}, 422, "vendor"),
        ("ocpplab", "dep-404", "recent", 404, "not registered"),
        ("ocpplab", "dep-123", "reversed", 400, "after"),
        ("ocpplab", "dep-123", "future", 400, "future"),
        ("ocpplab", "dep-123", "too old", 400, "retention"),
        ("evenergy", "evse-1", "recent", 409, "no collector"),
        ("ocpplab", "dep-123", {"from": "2026-11-20T00:00:00Z"}, 422, "to"),
        ("ocpplab", "dep-123", {"from": "2026-11-20T00:00:00", "to": "2026-11-20T01:00:00"}, 422, "from"),
        ("ocpplab", "dep-123", {"from": "x", "to": "2026-11-20T01:00:00Z"}, 422, "from"),
        ("ocpplab", "dep-123", "recent with a bad action", 422, "action"),
        ("ocpplab", "dep-123", "recent with an unknown field", 422, "window"),
    ],
)
def test_bad_backfills_get_a_problem_and_queue_nothing(
    stack: LocalStack,
    lambda_context: Any,
    without_evenergy_collector: None,
    vendor: str,
    source_id: str,
    body: Any,
    expected: int,
    detail: str,
) -> None:
    register("ocpplab", "dep-123")
    register("evenergy", "evse-1")
    recent = {"from": (NOW - timedelta(hours=3)).isoformat(), "to": (NOW - timedelta(hours=1)).isoformat()}
    body = (
        {
            "recent": recent,
            "reversed": {"from": recent["to"], "to": recent["from"]},
            "future": {"from": recent["from"], "to": (NOW + timedelta(hours=1)).isoformat()},
            "too old": {"from": (NOW - timedelta(days=401)).isoformat(), "to": recent["to"]},
            "recent with a bad action": recent | {"action": "Boot Notification"},
            "recent with an unknown field": recent | {"window": "1d"},
        }.get(body, body)
        if isinstance(body, str)
        else body
    )
    status, headers, problem = post_backfill(lambda_context, vendor, source_id, body)
    assert status == expected, problem
    assert headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert detail in json.dumps(problem)
    assert all(not queued(stack, queue) for queue in QUEUES)


def test_a_body_that_is_not_json_is_a_400(stack: LocalStack, lambda_context: Any) -> None:
    register("ocpplab", "dep-123")
    status, _, problem = post_backfill(lambda_context, "ocpplab", "dep-123", None, raw=b'{"from": ')
    assert status == 400
    assert problem["status"] == 400
