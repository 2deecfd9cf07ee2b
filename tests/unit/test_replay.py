"""Replays against the raw archive the collection engine wrote: rebuilt items, nothing written twice, the range kept
to, a normalizer change rewriting what it changes, and continuations when the Lambda's time runs low."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import worker_handler
from api_calls import get_json
from chargelog import aws, collectors, stores
from chargelog.collectors.base import Page, VendorCalls, VendorConnection, VendorProfile, Window
from chargelog.collectors.ocpplab import OcpplabAdapter
from chargelog.dal.archive import RawArchive, page_fetched_at, source_prefix
from chargelog.dal.records import DIGEST_FIELD, charger_items
from chargelog.logic import replay, sources
from chargelog.logic.collection import JobRunner
from chargelog.logic.replay import ReplayRunner
from chargelog.models.jobs import CollectionJob, ReplayJob
from chargelog.models.records import LogRecord
from chargelog.models.sources import SourceCreate
from chargelog.settings import get_settings
from chargelog_local.provision import LocalStack
from conftest import load_event

VENDOR = "ocpplab"  # its real normalizer; a fake stands in for its HTTP
SOURCE = "dep-1"
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
PROFILE = VendorProfile(
    lookback=timedelta(minutes=30), settle_delay=timedelta(0), requests_per_second=1000, burst=1000, page_size=1000
)


def entry(n: int, at: datetime, action: str = "Heartbeat") -> dict[str, Any]:
    """An OCPPLAB log entry: a CALL frame as the vendor sends it."""
    return {
        "direction": "cp_to_csms",
        "action": action,
        "message": json.dumps([2, f"m{n}", action, {"n": n}]),
        "timestamp": at.isoformat(),
    }


class ArchiveOnlyVendor:
    """A vendor's log API in memory, one page per request: what the worker fetches and archives."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add_hourly(self, hours: int, end: datetime) -> None:
        for n in range(hours):
            self.entries.append(entry(len(self.entries), end - timedelta(hours=hours - 1 - n)))


class FakeOcpplab:
    def __init__(self, vendor: ArchiveOnlyVendor, connection: VendorConnection) -> None:
        self.vendor = vendor
        self.connection = connection
        self.calls = VendorCalls()

    def fetch_page(self, source_id: str, window: Window, cursor: str | None, action: str | None = None) -> Page:
        self.calls.requests += 1
        items = [e for e in self.vendor.entries if window.start <= datetime.fromisoformat(e["timestamp"]) <= window.end]
        body = {"data": items, "total": len(items), "limit": 1000, "offset": 0}
        return Page(items=items, body=body, request={}, next_cursor=None, total=len(items), items_at="/data")

    normalize = staticmethod(OcpplabAdapter.normalize)

    def close(self) -> None:
        pass


@pytest.fixture
def vendor(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> ArchiveOnlyVendor:
    fake = ArchiveOnlyVendor()
    collectors.has_adapter(VENDOR)  # the built-in adapter first, so they cannot replace the fake

    def factory(connection: VendorConnection, _remaining: Callable[[], float]) -> FakeOcpplab:
        return FakeOcpplab(fake, connection)

    monkeypatch.setitem(collectors._ADAPTERS, VENDOR, (PROFILE, factory))
    secret = stores.vendor_secrets().of(VENDOR).name
    aws.client("secretsmanager").put_secret_value(
        SecretId=secret, SecretString='{"base_url": "https://vendor.invalid"}'
    )
    sources.create_source(SourceCreate.model_validate({"vendor": VENDOR, "source_id": SOURCE}), store=stores.sources())
    return fake


def collect(start: datetime, end: datetime, fetched_at: datetime) -> None:
    """The worker reads ``[start, end]`` at ``fetched_at``: one page archived, its records written."""
    job = CollectionJob.backfill(VENDOR, SOURCE, start, end, fetched_at)
    JobRunner(job, lambda: 900.0, now=lambda: fetched_at, stores=stores.collection()).run()


def collect_hourly(vendor: ArchiveOnlyVendor, hours: int) -> None:
    """Records an hour apart, each read twice: by the fetch just after it and (a lookback) by the next one."""
    vendor.add_hourly(hours, NOW)
    for n in range(hours):
        at = NOW - timedelta(hours=hours - 1 - n)
        collect(at - timedelta(minutes=70), at, at + timedelta(minutes=1))


def items(stack: LocalStack) -> dict[str, dict[str, Any]]:
    """The source's items by sort key, without their TTL: a rewritten item is hot for a window from its writing."""
    return {
        str(item["sk"]): {name: value for name, value in item.items() if name != "expires_at"}
        for item in charger_items(stack.refs["Table"], SOURCE)
    }


def expiries(stack: LocalStack) -> dict[str, int]:
    return {str(item["sk"]): int(item["expires_at"]) for item in charger_items(stack.refs["Table"], SOURCE)}


def queue_and_run(start: datetime, end: datetime, fetched_to: datetime | None = None, **options: Any) -> Any:
    queued = replay.queue_replay(
        VENDOR,
        SOURCE,
        start,
        end,
        fetched_to,
        now=NOW + timedelta(hours=1),
        sources=stores.sources(),
        replays=stores.replays(),
        queues=stores.work_queues(),
    )
    job = ReplayJob.model_validate_json(take_message(stack_queue())["Body"])
    assert job.job_id == queued.replay_id
    outcome = ReplayRunner(job, lambda: 900.0, stores.replay(), **options).run()
    return job, outcome


def stack_queue() -> str:
    return stores.work_queues().of(VENDOR).url


def take_message(url: str) -> dict[str, Any]:
    (message,) = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    aws.client("sqs").delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return message


def test_a_replay_restores_deleted_items_as_they_were_and_a_second_writes_nothing(
    stack: LocalStack, vendor: ArchiveOnlyVendor
) -> None:
    collect_hourly(vendor, 8)
    before = items(stack)
    assert len(before) == 8
    table = aws.table(stack.refs["Table"])
    start, end = NOW - timedelta(hours=5, minutes=30), NOW - timedelta(hours=1, minutes=30)
    deleted = [sk for sk in before if start <= datetime.fromisoformat(sk.split("#")[0]) <= end]
    assert len(deleted) == 4
    for sk in deleted:
        table.delete_item(Key={"pk": f"CHARGER#{SOURCE}", "sk": sk})

    job, outcome = queue_and_run(start, end)

    assert items(stack) == before  # the same items, digest and raw_ref included
    assert outcome.status == "done"
    assert outcome.records_written == 4
    assert outcome.records_read == 4  # each record once, though two pages hold each
    # Pages fetched from the range's start on: 6 of the 8 (each a minute after its newest record).
    assert outcome.pages_read == 6
    progress = stores.replays().get(VENDOR, SOURCE, job.job_id)
    assert progress is not None
    assert (progress.state, progress.pages_read, progress.records_written) == ("done", 6, 4)

    _, again = queue_and_run(start, end)
    assert again.records_written == 0
    assert again.records_read == 4
    assert items(stack) == before


def test_records_outside_the_range_are_left_alone(
    stack: LocalStack, vendor: ArchiveOnlyVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    collect_hourly(vendor, 6)
    table = aws.table(stack.refs["Table"])
    before = items(stack)
    every = sorted(before)
    for sk in every[:2]:
        table.delete_item(Key={"pk": f"CHARGER#{SOURCE}", "sk": sk})

    def changed(source_id: str, item: Any) -> LogRecord:
        return OcpplabAdapter.normalize(source_id, item).model_copy(update={"ocpp_version": "2.0.1"})

    monkeypatch.setitem(collectors._NORMALIZERS, VENDOR, changed)
    start, end = NOW - timedelta(hours=3, minutes=30), NOW - timedelta(hours=1, minutes=30)
    _, outcome = queue_and_run(start, end)

    after = items(stack)
    assert outcome.records_written == 2
    assert sorted(after) == every[2:]  # the two deleted before the range stay deleted
    assert [sk for sk in every[2:] if after[sk] != before[sk]] == every[2:4]  # 3 and 2 hours back only
    assert {after[sk]["ocpp_version"] for sk in every[2:4]} == {"2.0.1"}


def test_a_normalizer_change_rewrites_the_records_it_changes(
    stack: LocalStack, vendor: ArchiveOnlyVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    collect_hourly(vendor, 6)
    before = items(stack)

    def fixed(source_id: str, item: Any) -> LogRecord:
        record = OcpplabAdapter.normalize(source_id, item)
        if json.loads(item["message"])[3]["n"] % 2 == 0:
            return record.model_copy(update={"ocpp_version": "1.6"})  # a fix that knows more
        return record

    monkeypatch.setitem(collectors._NORMALIZERS, VENDOR, fixed)
    _, outcome = queue_and_run(NOW - timedelta(hours=10), NOW)

    after = items(stack)
    assert outcome.records_written == 3
    changed = {sk for sk in after if after[sk][DIGEST_FIELD] != before[sk][DIGEST_FIELD]}
    assert len(changed) == 3
    assert all(after[sk]["ocpp_version"] == "1.6" for sk in changed)
    assert all(after[sk] == before[sk] for sk in after.keys() - changed)
    # A changed record points at the page replayed: the first fetched that holds it.
    for sk in changed:
        page = after[sk]["raw_ref"].split("#")[0]
        fetched_at = page_fetched_at(source_prefix(VENDOR, SOURCE) + page)
        assert fetched_at is not None
        assert fetched_at - datetime.fromisoformat(sk.split("#")[0]) == timedelta(minutes=1)


def test_pages_fetched_after_fetched_to_are_not_read(stack: LocalStack, vendor: ArchiveOnlyVendor) -> None:
    collect_hourly(vendor, 4)
    _, outcome = queue_and_run(NOW - timedelta(hours=10), NOW, fetched_to=NOW - timedelta(hours=1, minutes=30))
    assert outcome.pages_read == 2  # fetched 3 h 59 min and 2 h 59 min back


def test_a_replay_short_of_time_saves_its_place_and_continues_on_the_queue(
    stack: LocalStack, vendor: ArchiveOnlyVendor
) -> None:
    collect_hourly(vendor, 6)
    table = aws.table(stack.refs["Table"])
    before = items(stack)
    for sk in before:
        table.delete_item(Key={"pk": f"CHARGER#{SOURCE}", "sk": sk})
    budget = iter([900.0, 10.0])  # asked before every page but the first: two pages, then the Lambda runs low
    queued = replay.queue_replay(
        VENDOR,
        SOURCE,
        NOW - timedelta(hours=10),
        NOW,
        now=NOW + timedelta(hours=1),
        sources=stores.sources(),
        replays=stores.replays(),
        queues=stores.work_queues(),
    )
    message = take_message(stack_queue())
    job = ReplayJob.model_validate_json(message["Body"])
    first = ReplayRunner(job, lambda: next(budget, 10.0), stores.replay()).run()
    assert first.status == "continued"
    assert first.pages_read == 2
    progress = stores.replays().get(VENDOR, SOURCE, queued.replay_id)
    assert progress is not None
    assert (progress.state, progress.pages_read) == ("running", 2)

    # The worker takes the continuation from the queue, as SQS delivers it.
    continuation = take_message(stack_queue())
    event = load_event("sqs_collection_jobs")
    record = event["Records"][0]
    record.update(messageId=continuation["MessageId"], body=continuation["Body"])
    event["Records"] = [record]
    assert worker_handler.lambda_handler(event, _context()) == {"batchItemFailures": []}

    progress = stores.replays().get(VENDOR, SOURCE, queued.replay_id)
    assert progress is not None
    assert (progress.state, progress.pages_read, progress.records_written) == ("done", 6, 6)
    assert items(stack) == before


def _context() -> Any:
    from chargelog_local.lambdas import LocalLambdaContext

    return LocalLambdaContext(function_name="test", memory_limit_in_mb=512, timeout_seconds=900, region="us-east-1")


def test_pages_archived_without_items_at_are_counted_and_skipped(stack: LocalStack, vendor: ArchiveOnlyVendor) -> None:
    archive = RawArchive(stack.refs["RawBucket"])
    at = NOW - timedelta(hours=2)
    archive.put_page(VENDOR, SOURCE, "old-job", at, {}, {"data": [entry(1, at)]}, 1)
    _, outcome = queue_and_run(NOW - timedelta(hours=3), NOW)
    assert (outcome.pages_read, outcome.pages_unreadable, outcome.records_written) == (0, 1, 0)
    assert items(stack) == {}


def test_a_replay_whose_item_was_deleted_stops_and_writes_nothing(stack: LocalStack, vendor: ArchiveOnlyVendor) -> None:
    collect_hourly(vendor, 3)
    table = aws.table(stack.refs["Table"])
    for sk in items(stack):
        table.delete_item(Key={"pk": f"CHARGER#{SOURCE}", "sk": sk})
    queued = replay.queue_replay(
        VENDOR,
        SOURCE,
        NOW - timedelta(hours=5),
        NOW,
        now=NOW + timedelta(hours=1),
        sources=stores.sources(),
        replays=stores.replays(),
        queues=stores.work_queues(),
    )
    job = ReplayJob.model_validate_json(take_message(stack_queue())["Body"])
    table.delete_item(Key={"pk": "REPLAY", "sk": f"{VENDOR}#{SOURCE}#{queued.replay_id}"})  # how one stops a replay

    outcome = ReplayRunner(job, lambda: 900.0, stores.replay()).run()

    assert (outcome.status, outcome.pages_read) == ("stopped", 0)
    assert items(stack) == {}
    assert list(stores.replays().list()) == []  # no partial item left behind


def test_a_range_older_than_the_hot_window_comes_back_into_the_api_for_a_hot_window(
    stack: LocalStack, vendor: ArchiveOnlyVendor, lambda_context: Any
) -> None:
    """Records collected 40 days ago have left the table (TTL); a replay of their range brings them back, readable
    through the API, with a TTL a hot window from now."""
    old = NOW - timedelta(days=40)
    for n in range(3):
        vendor.entries.append(entry(n, old + timedelta(minutes=n)))
    collect(old - timedelta(minutes=5), old + timedelta(minutes=5), old + timedelta(minutes=6))
    table = aws.table(stack.refs["Table"])
    collected = items(stack)
    assert len(collected) == 3
    for sk in collected:
        table.delete_item(Key={"pk": f"CHARGER#{SOURCE}", "sk": sk})  # what DynamoDB's TTL does a hot window on
    window = {"from": (old - timedelta(hours=1)).isoformat(), "to": (old + timedelta(hours=1)).isoformat()}
    status, _, body = get_json(lambda_context, f"/chargers/{SOURCE}/logs", window)
    assert (status, body["records"]) == (200, [])

    _, outcome = queue_and_run(old - timedelta(minutes=5), old + timedelta(minutes=5))

    assert outcome.records_written == 3
    status, _, body = get_json(lambda_context, f"/chargers/{SOURCE}/logs", window)
    assert status == 200
    assert [r["payload"]["n"] for r in body["records"]] == [0, 1, 2]
    hot_until = (datetime.now(UTC) + timedelta(days=get_settings().hot_retention_days)).timestamp()
    assert all(hot_until - 3600 < expires <= hot_until + 60 for expires in expiries(stack).values())
