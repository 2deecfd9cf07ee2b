"""The collection engine against an in-memory vendor: windows, checkpoints, continuations, exactly-once."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from boto3.dynamodb.conditions import Key

import dispatcher_handler
import worker_handler
from chargelog import aws, collectors, stores
from chargelog.collectors.base import Page, VendorCalls, VendorConnection, VendorProfile, Window
from chargelog.collectors.vendor_http import VendorAuthError, VendorUnavailableError
from chargelog.dal.queue import QueueSendError, WorkQueue
from chargelog.dal.record_archive import RecordArchive
from chargelog.dal.record_queries import RecordStore, charger_action_partition
from chargelog.dal.records import DIGEST_FIELD, RecordWriter, charger_items, item_digest, record_from_item
from chargelog.dal.state import CollectorStateStore
from chargelog.logic import backfills, collection, dispatcher, health, sources
from chargelog.logic.collection import JobRunner
from chargelog.models.jobs import CollectionJob
from chargelog.models.keys import charger_partition
from chargelog.models.records import LogRecord, record_id_for
from chargelog.models.sources import SourceCreate
from chargelog_local.provision import LocalStack
from conftest import load_event

VENDOR = "plugchoice"  # the fake adapter stands in for the built-in one
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PROFILE = VendorProfile(
    lookback=timedelta(minutes=10),
    settle_delay=timedelta(seconds=30),
    requests_per_second=1000,
    burst=1000,
    page_size=4,
)


class Crash(Exception):
    """Stands in for the Lambda dying between two pages."""


class FakeVendor:
    """An offset-paged vendor API in memory, with a total, sorted by time, and hooks to misbehave."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.requests = 0
        self.crash_on_request: int | None = None
        self.before_page: Callable[[FakeVendor, int], None] | None = None

    def add(self, count: int, start: datetime, step: timedelta, action: str = "Heartbeat") -> None:
        for _ in range(count):
            self.records.append({"id": len(self.records) + 1, "at": start.isoformat(), "action": action})
            start += step

    def page(self, window: Window, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        self.requests += 1
        if self.crash_on_request == self.requests:
            raise Crash(f"killed before request {self.requests}")
        if self.before_page:
            self.before_page(self, offset)
        matching = sorted(
            (r for r in self.records if window.start <= datetime.fromisoformat(r["at"]) <= window.end),
            key=lambda r: r["at"],
        )
        return matching[offset : offset + limit], len(matching)


class FakeAdapter:
    def __init__(self, vendor: FakeVendor, connection: VendorConnection) -> None:
        self.vendor = vendor
        self.connection = connection
        self.calls = VendorCalls()

    def fetch_page(self, source_id: str, window: Window, cursor: str | None, action: str | None = None) -> Page:
        offset = int(cursor or 0)
        self.calls.requests += 1
        items, total = self.vendor.page(window, offset, self.connection.profile.page_size)
        end = offset + len(items)
        return Page(
            items=items,
            body={"data": items, "total": total},
            request={"offset": offset},
            next_cursor=str(end) if items and end < total else None,
            total=total,
        )

    def normalize(self, source_id: str, item: Any) -> LogRecord:
        if "broken" in item:
            raise ValueError(f"cannot read record: {item['broken']}")
        return LogRecord(
            vendor=VENDOR,
            source_id=source_id,
            charger_id=source_id,
            timestamp=item["at"],
            kind="ocpp",
            action=item["action"],
            record_id=record_id_for(VENDOR, source_id, item["id"]),
            raw=item,
            payload=item.get("payload"),
        )

    def close(self) -> None:
        pass


@pytest.fixture
def vendor(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> FakeVendor:
    fake = FakeVendor()
    # Load the built-in adapter first, so they cannot replace the fake; the real one comes back afterwards.
    collectors.has_adapter(VENDOR)

    def factory(connection: VendorConnection, _remaining: Callable[[], float]) -> FakeAdapter:
        return FakeAdapter(fake, connection)

    monkeypatch.setitem(collectors._ADAPTERS, VENDOR, (PROFILE, factory))
    return fake


def add_source(source_id: str = "cp-1", vendor: str = VENDOR, enabled: bool = True) -> None:
    sources.create_source(
        SourceCreate.model_validate({"vendor": vendor, "source_id": source_id, "enabled": enabled}),
        store=stores.sources(),
    )


def stored(stack: LocalStack, charger: str = "cp-1") -> list[dict[str, Any]]:
    return list(charger_items(stack.refs["Table"], charger))


def stored_ids(stack: LocalStack, charger: str = "cp-1") -> list[int]:
    return sorted(int(record_from_item(item)["raw"]["id"]) for item in stored(stack, charger))


def run(job: CollectionJob, remaining: Callable[[], float] = lambda: 900.0, **options: Any) -> collection.JobOutcome:
    return JobRunner(job, remaining, now=lambda: NOW, **options, stores=stores.collection()).run()


def scheduled(at: datetime = NOW) -> CollectionJob:
    return CollectionJob(vendor=VENDOR, source_id="cp-1", scheduled_at=at)


def state(stack: LocalStack) -> Any:
    return CollectorStateStore(stack.refs["Table"]).get(VENDOR, "cp-1")


def test_new_source_reads_its_initial_history_and_moves_the_mark(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(3, NOW - timedelta(hours=30), timedelta(minutes=1))  # older than the 24 h of history
    vendor.add(10, NOW - timedelta(hours=2), timedelta(minutes=1))
    vendor.add(2, NOW - timedelta(seconds=10), timedelta(seconds=1))  # inside the settle delay
    outcome = run(scheduled())
    assert outcome.status == "done"
    assert outcome.window == Window(NOW - timedelta(hours=24), NOW - timedelta(seconds=30))
    assert stored_ids(stack) == list(range(4, 14))
    assert outcome.pages_fetched == 3  # ceil(10 / 4)
    after = state(stack)
    assert after.high_water_mark == NOW - timedelta(seconds=30)
    assert (after.records_stored, after.pages_fetched, after.checkpoint) == (10, 3, None)
    assert after.last_success_at == NOW


def test_next_run_starts_at_the_mark_minus_lookback_and_stores_nothing_twice(
    stack: LocalStack, vendor: FakeVendor
) -> None:
    vendor.add(10, NOW - timedelta(hours=1), timedelta(minutes=1))
    run(scheduled())
    later = NOW + timedelta(minutes=5)
    vendor.add(2, NOW + timedelta(minutes=1), timedelta(seconds=20))
    # A late record: its time is before the mark, but inside the lookback.
    vendor.add(1, NOW - timedelta(minutes=5), timedelta(0))
    outcome = run(scheduled(later))
    assert outcome.window == Window(NOW - timedelta(seconds=30) - PROFILE.lookback, later - PROFILE.settle_delay)
    assert stored_ids(stack) == list(range(1, 14))
    assert len(stored(stack)) == 13


def test_a_job_killed_between_pages_resumes_from_its_checkpoint(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(20, NOW - timedelta(hours=1), timedelta(minutes=1))  # 5 pages of 4
    job = scheduled()
    vendor.crash_on_request = 3
    with pytest.raises(Crash):
        run(job)
    checkpoint = state(stack).checkpoint
    assert (checkpoint.job_id, checkpoint.cursor, checkpoint.read) == (job.job_id, "8", 8)
    assert state(stack).high_water_mark is None
    assert len(stored(stack)) == 8

    requests_before = vendor.requests
    outcome = run(job, attempt=2)  # SQS delivers the same message again
    assert outcome.pages_fetched == 3  # pages 3, 4 and 5 only
    assert vendor.requests - requests_before == 3
    assert stored_ids(stack) == list(range(1, 21))
    assert state(stack).high_water_mark == NOW - timedelta(seconds=30)


def test_low_remaining_time_saves_the_place_and_reenqueues_the_rest(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(12, NOW - timedelta(hours=1), timedelta(minutes=1))
    job = scheduled()
    # Once the second page is stored, under a minute is left (however often the job asks).
    outcome = run(job, remaining=lambda: 30.0 if len(stored(stack)) >= 8 else 900.0)
    assert outcome.status == "continued"
    assert len(stored(stack)) == 8
    messages = aws.client("sqs").receive_message(QueueUrl=stack.refs["PlugchoiceWorkQueue"]).get("Messages", [])
    (continuation,) = [CollectionJob.model_validate_json(m["Body"]) for m in messages]
    assert continuation == job
    assert continuation.correlation_id == job.correlation_id  # its log lines name the job that started it
    assert state(stack).lease_job_id is None  # released for the continuation
    assert (state(stack).queued_job_id, state(stack).job_queued_at) == (job.job_id, NOW)  # the schedule waits for it
    assert run(continuation).status == "done"
    assert stored_ids(stack) == list(range(1, 13))
    assert (state(stack).queued_job_id, state(stack).job_queued_at) == (None, None)


def test_a_job_that_waited_on_the_queue_reads_what_arrived_meanwhile(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(4, NOW - timedelta(hours=1), timedelta(minutes=1))
    vendor.add(3, NOW + timedelta(minutes=1), timedelta(minutes=1))  # while the job waited behind others
    later = NOW + timedelta(minutes=5)
    outcome = JobRunner(scheduled(), lambda: 900.0, now=lambda: later, sent_at=NOW, stores=stores.collection()).run()
    # Up to when it started, not only to when it was queued: the next job need not re-read its lookback for these.
    assert outcome.window == Window(NOW - timedelta(hours=24), later - PROFILE.settle_delay)
    assert stored_ids(stack) == list(range(1, 8))
    assert state(stack).high_water_mark == later - PROFILE.settle_delay


def test_a_message_sent_before_its_jobs_scheduled_time_adds_no_wait(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(4, NOW - timedelta(hours=1), timedelta(minutes=1))
    later = NOW + timedelta(minutes=5)
    # The clocks disagree (a job scheduled by another clock than the queue's): its window ends as scheduled.
    sent = NOW - timedelta(seconds=1)
    outcome = JobRunner(scheduled(), lambda: 900.0, now=lambda: later, sent_at=sent, stores=stores.collection()).run()
    assert outcome.window == Window(NOW - timedelta(hours=24), NOW - PROFILE.settle_delay)


def test_a_continuation_reads_at_least_as_far_as_the_job_that_handed_over(
    stack: LocalStack, vendor: FakeVendor
) -> None:
    vendor.add(12, NOW - timedelta(hours=1), timedelta(minutes=1))
    job = scheduled()
    later = NOW + timedelta(minutes=3)
    budget = iter([900.0, 30.0])
    runner = JobRunner(job, lambda: next(budget, 30.0), now=lambda: later, sent_at=NOW, stores=stores.collection())
    assert runner.run().status == "continued"
    messages = aws.client("sqs").receive_message(QueueUrl=stack.refs["PlugchoiceWorkQueue"]).get("Messages", [])
    (continuation,) = [CollectionJob.model_validate_json(m["Body"]) for m in messages]
    assert (continuation.job_id, continuation.correlation_id) == (job.job_id, job.correlation_id)
    assert continuation.scheduled_at == later  # where its window ends, unless it waits in turn
    assert run(continuation).window == Window(NOW - timedelta(hours=24), later - PROFILE.settle_delay)
    assert stored_ids(stack) == list(range(1, 13))


def test_records_arriving_while_paging_are_caught_by_a_second_pass(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(12, NOW - timedelta(hours=1), timedelta(minutes=1))
    inserted = []

    def insert_early_records_once(fake: FakeVendor, offset: int) -> None:
        if offset == 8 and not inserted:
            fake.add(2, NOW - timedelta(hours=1, seconds=-5), timedelta(seconds=1))  # shifts every offset by 2
            inserted.append(True)

    vendor.before_page = insert_early_records_once
    outcome = run(scheduled())
    assert outcome.complete
    assert stored_ids(stack) == list(range(1, 15))
    assert state(stack).high_water_mark == NOW - timedelta(seconds=30)


def test_a_chunk_that_keeps_changing_is_halved_until_it_settles(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(16, NOW - timedelta(hours=1), timedelta(minutes=1))

    inserted = 0

    def insert_on_every_later_page(fake: FakeVendor, offset: int) -> None:
        nonlocal inserted
        if offset:  # any chunk longer than one page changes while it is read, a second further on each time
            fake.add(1, NOW - timedelta(minutes=59, seconds=30) + timedelta(seconds=inserted), timedelta(0))
            inserted += 1

    vendor.before_page = insert_on_every_later_page
    outcome = run(scheduled())
    assert outcome.complete
    assert state(stack).high_water_mark == NOW - timedelta(seconds=30)
    assert stored_ids(stack) == sorted(r["id"] for r in vendor.records)


def test_a_second_with_more_than_a_page_that_keeps_changing_holds_the_mark(
    stack: LocalStack, vendor: FakeVendor
) -> None:
    vendor.add(8, NOW - timedelta(hours=1), timedelta(0))  # two pages' worth in the same instant

    def always_insert(fake: FakeVendor, offset: int) -> None:
        if offset:
            fake.add(1, NOW - timedelta(hours=1), timedelta(0))

    vendor.before_page = always_insert
    outcome = run(scheduled())
    busy_second = NOW - timedelta(hours=1)
    assert not outcome.complete
    mark = state(stack).high_water_mark
    assert mark is not None
    assert mark < busy_second
    vendor.before_page = None
    later = run(scheduled(NOW + timedelta(minutes=5)))
    assert later.complete
    assert later.window is not None
    assert later.window.start <= busy_second  # the next run reads that second again
    assert stored_ids(stack) == sorted(r["id"] for r in vendor.records)
    assert state(stack).high_water_mark == NOW + timedelta(minutes=5) - PROFILE.settle_delay


def test_a_new_sources_history_start_does_not_slide(stack: LocalStack, vendor: FakeVendor) -> None:
    history_start = NOW - timedelta(hours=24)
    vendor.add(8, history_start, timedelta(0))  # two pages in the window's first instant

    def always_insert(fake: FakeVendor, offset: int) -> None:
        if offset:
            fake.add(1, history_start, timedelta(0))

    vendor.before_page = always_insert
    first = run(scheduled())
    assert not first.complete
    assert state(stack).high_water_mark is None
    vendor.before_page = None
    later = run(scheduled(NOW + timedelta(hours=2)))  # a sliding 24-hour start would now miss those records
    assert later.complete
    assert first.window is not None
    assert later.window is not None
    assert first.window.start == later.window.start == history_start
    assert stored_ids(stack) == sorted(r["id"] for r in vendor.records)


def test_a_large_window_is_read_in_chunks_and_the_mark_moves_per_chunk(
    stack: LocalStack, vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collection, "MAX_CHUNK_RECORDS", 10)
    vendor.add(50, NOW - timedelta(hours=10), timedelta(minutes=10))
    # The mark as stored after each checkpoint: a chunk's end is written with the job's next state write.
    marks: list[datetime] = []
    save = CollectorStateStore.save_progress

    def saving(store: CollectorStateStore, *args: Any, **kwargs: Any) -> None:
        save(store, *args, **kwargs)
        if (mark := state(stack).high_water_mark) is not None and mark not in marks:
            marks.append(mark)

    monkeypatch.setattr(CollectorStateStore, "save_progress", saving)
    outcome = run(scheduled())
    assert stored_ids(stack) == list(range(1, 51))
    assert len(marks) >= 4  # moved during the job, not only at its end
    assert marks == sorted(marks)
    assert marks[-1] < NOW - timedelta(seconds=30) == state(stack).high_water_mark
    # Every chunk after the first fits; only the first, full-window page is spent on learning the density.
    assert outcome.vendor_requests <= outcome.pages_fetched + 2


def test_unparseable_records_are_quarantined_with_the_reason(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(5, NOW - timedelta(hours=1), timedelta(minutes=1))
    vendor.records[2]["broken"] = "timestamp typo"
    outcome = run(scheduled())
    assert outcome.records_quarantined == 1
    assert stored_ids(stack) == [1, 2, 4, 5]
    s3 = aws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.refs["RawBucket"], Prefix="quarantine/")["Contents"]]
    (key,) = keys
    assert key.startswith(f"quarantine/vendor={VENDOR}/source=cp-1/date=2026-11-21/")
    kept = json.loads(gzip.decompress(s3.get_object(Bucket=stack.refs["RawBucket"], Key=key)["Body"].read()))
    assert kept["reason"] == "cannot read record: timestamp typo"
    assert kept["item"]["id"] == 3
    assert state(stack).records_quarantined == 1


def test_pages_with_new_records_are_archived_raw(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(6, NOW - timedelta(hours=1), timedelta(minutes=1))
    run(scheduled())
    s3 = aws.client("s3")
    objects = s3.list_objects_v2(Bucket=stack.refs["RawBucket"], Prefix="raw/")["Contents"]
    assert len(objects) == 2
    assert all(o["Key"].startswith(f"raw/vendor={VENDOR}/source=cp-1/date=2026-11-21/") for o in objects)
    page = json.loads(
        gzip.decompress(s3.get_object(Bucket=stack.refs["RawBucket"], Key=objects[0]["Key"])["Body"].read())
    )
    assert page["body"]["total"] == 6


def test_a_record_too_large_for_an_item_keeps_its_payload_in_s3(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(2, NOW - timedelta(hours=1), timedelta(minutes=1))
    vendor.records[0]["payload"] = {"data": "x" * 500_000}
    run(scheduled())
    items = {json.loads(i["raw"])["id"] if "raw" in i else 1: i for i in stored(stack)}
    big = items[1]
    assert "payload" not in big
    assert "raw" not in big
    key = big["payload_ref"]
    body = aws.client("s3").get_object(Bucket=stack.refs["RawBucket"], Key=key)["Body"].read()
    assert json.loads(gzip.decompress(body))["payload"]["data"] == "x" * 500_000


def test_a_failing_job_records_its_error_backs_off_and_keeps_what_was_stored(
    stack: LocalStack, vendor: FakeVendor
) -> None:
    vendor.add(4, NOW - timedelta(hours=1), timedelta(minutes=1))
    run(scheduled())
    vendor.crash_on_request = vendor.requests + 1
    with pytest.raises(Crash):
        run(scheduled(NOW + timedelta(minutes=5)), attempt=5)
    after = state(stack)
    assert after.last_error == f"Crash: killed before request {vendor.requests}"
    assert after.consecutive_failures == 1
    assert after.backoff_until == NOW + timedelta(minutes=1)
    assert after.jobs_dead_lettered == 1  # the 5th receive is the last (JobMaxReceives)
    assert after.high_water_mark == NOW - timedelta(seconds=30)
    assert len(stored(stack)) == 4


def fail_from_request(number: int, error: Exception, until: int | None = None) -> Callable[[FakeVendor, int], None]:
    """A ``before_page`` hook: the vendor's requests ``number`` to ``until`` (for good when None) raise ``error``, as
    a client whose retries ran out does."""

    def hook(fake: FakeVendor, _offset: int) -> None:
        if fake.requests >= number and (until is None or fake.requests <= until):
            raise error

    return hook


def unavailable() -> VendorUnavailableError:
    return VendorUnavailableError("plugchoice GET /logs answered 503: Service Unavailable")


def delayed_jobs(stack: LocalStack) -> int:
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=stack.refs["PlugchoiceWorkQueue"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def test_a_vendor_error_after_progress_pauses_and_goes_on_in_the_same_invocation(
    stack: LocalStack, vendor: FakeVendor
) -> None:
    vendor.add(20, NOW - timedelta(hours=1), timedelta(minutes=1))  # 5 pages of 4
    vendor.before_page = fail_from_request(3, unavailable(), until=3)  # the third page's retries run out, once
    pauses: list[float] = []
    outcome = run(scheduled(), sleep=pauses.append)
    # The vendor answered two pages: it is flaky, not down. The job keeps its worker and its place.
    assert outcome.status == "done"
    assert pauses == [collection.resume_pause_seconds()]
    assert (outcome.vendor_calls.requests, outcome.pages_fetched) == (6, 5)
    assert stored_ids(stack) == list(range(1, 21))
    after = state(stack)
    assert (after.consecutive_failures, after.backoff_until, after.last_error) == (0, None, None)
    assert (after.high_water_mark, after.records_stored) == (NOW - timedelta(seconds=30), 20)
    assert delayed_jobs(stack) == 0


def test_vendor_errors_in_a_row_after_progress_hand_over_without_counting_a_failure(
    stack: LocalStack, vendor: FakeVendor
) -> None:
    vendor.add(20, NOW - timedelta(hours=1), timedelta(minutes=1))
    job = scheduled()
    in_a_row = collection.MAX_ERRORS_IN_A_ROW
    vendor.before_page = fail_from_request(3, unavailable(), until=2 + in_a_row)
    pauses: list[float] = []
    outcome = run(job, sleep=pauses.append)
    assert outcome.status == "continued"
    assert len(pauses) == in_a_row - 1  # it paused and went on, then handed over
    assert "vendor error after 2 pages" in outcome.detail
    after = state(stack)
    # The place is saved, the error kept; the source has not failed: no failure counted, no backoff.
    assert (after.checkpoint.job_id, after.checkpoint.cursor, after.checkpoint.read) == (job.job_id, "8", 8)
    assert after.last_error == "VendorUnavailableError: plugchoice GET /logs answered 503: Service Unavailable"
    assert after.last_error_at == NOW
    assert (after.consecutive_failures, after.backoff_until) == (0, None)
    assert (after.lease_job_id, after.queued_job_id, after.job_queued_at) == (None, job.job_id, NOW)
    assert after.records_stored == 8
    # Its continuation waits a little on the queue (a flaky vendor's next answer may be better), then goes on.
    assert delayed_jobs(stack) == 1
    assert collection.RETRY_AFTER_PROGRESS_SECONDS > 0
    requests_before = vendor.requests
    finished = run(job)
    assert finished.status == "done"
    assert vendor.requests - requests_before == 3  # pages 3, 4 and 5 only
    assert stored_ids(stack) == list(range(1, 21))
    done = state(stack)
    assert (done.high_water_mark, done.last_success_at, done.checkpoint) == (NOW - timedelta(seconds=30), NOW, None)
    assert done.records_stored == 20


def test_with_little_time_left_a_vendor_error_after_progress_hands_over_at_once(
    stack: LocalStack, vendor: FakeVendor
) -> None:
    vendor.add(20, NOW - timedelta(hours=1), timedelta(minutes=1))
    vendor.before_page = fail_from_request(3, unavailable(), until=3)
    pauses: list[float] = []
    # Enough to go on, not to pause as well: the continuation has a fresh invocation's time.
    left = collection.CONTINUE_BELOW_SECONDS + collection.resume_pause_seconds() - 1
    outcome = run(scheduled(), remaining=lambda: left, sleep=pauses.append)
    assert (outcome.status, pauses, delayed_jobs(stack)) == ("continued", [], 1)
    assert state(stack).consecutive_failures == 0


def test_a_vendor_error_before_any_progress_is_a_failure_and_backs_off(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(20, NOW - timedelta(hours=1), timedelta(minutes=1))
    job = scheduled()
    vendor.before_page = fail_from_request(3, unavailable(), until=2 + collection.MAX_ERRORS_IN_A_ROW)
    assert run(job, sleep=lambda _: None).status == "continued"
    # The continuation's first request fails too: no page stored in this invocation, the vendor may be down.
    vendor.before_page = fail_from_request(vendor.requests + 1, unavailable())
    with pytest.raises(VendorUnavailableError):
        run(job, attempt=1)
    after = state(stack)
    assert (after.consecutive_failures, after.backoff_until) == (1, NOW + timedelta(minutes=1))
    assert after.checkpoint.cursor == "8"  # SQS delivers it again: it resumes from here
    with pytest.raises(VendorUnavailableError):
        run(job, attempt=2)
    assert (state(stack).consecutive_failures, state(stack).backoff_until) == (2, NOW + timedelta(minutes=2))


def test_a_job_that_fails_after_progress_clears_the_failures_and_the_backoff(
    stack: LocalStack, vendor: FakeVendor
) -> None:
    add_source()
    vendor.add(20, NOW - timedelta(hours=1), timedelta(minutes=1))
    job = scheduled()
    vendor.crash_on_request = 1
    with pytest.raises(Crash):
        run(job)  # no page: a failure
    assert (state(stack).consecutive_failures, state(stack).backoff_until) == (1, NOW + timedelta(minutes=1))
    # Delivered again: two pages stored, then killed. The vendor answers: the failures start again, no backoff; the
    # error stays visible, and the source shows as retrying (GET /collectors) until a job finishes.
    vendor.crash_on_request = vendor.requests + 3
    with pytest.raises(Crash):
        run(job, attempt=2)
    after = state(stack)
    assert (after.consecutive_failures, after.backoff_until, after.lease_job_id) == (0, None, None)
    assert after.last_error == f"Crash: killed before request {vendor.requests}"
    assert after.checkpoint.cursor == "8"
    report = health.collectors_report(
        NOW, states=stores.collector_states(), sources=stores.sources(), queues=stores.work_queues()
    )
    assert [row["status"] for row in report["collectors"]] == ["retrying"]
    assert run(job, attempt=3).status == "done"
    assert stored_ids(stack) == list(range(1, 21))
    report = health.collectors_report(
        NOW, states=stores.collector_states(), sources=stores.sources(), queues=stores.work_queues()
    )
    assert [row["status"] for row in report["collectors"]] == ["ok"]


def test_a_refused_credential_after_progress_is_not_handed_over(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(20, NOW - timedelta(hours=1), timedelta(minutes=1))
    vendor.before_page = fail_from_request(3, VendorAuthError("plugchoice GET /logs refused the credentials (401)"))
    with pytest.raises(VendorAuthError):
        run(scheduled())
    after = state(stack)
    assert delayed_jobs(stack) == 0  # it would fail the same way: SQS delivers it again, then the dead-letter queue
    assert (after.consecutive_failures, after.lease_job_id) == (0, None)  # it stored two pages first
    assert "refused the credentials" in (after.last_error or "")


def test_dispatch_enqueues_due_sources_on_their_vendors_queue(
    stack: LocalStack, vendor: FakeVendor, lambda_context: Any, without_evenergy_collector: None
) -> None:
    for source_id in ("cp-1", "cp-2", "cp-3"):
        add_source(source_id)
    add_source("cp-off", enabled=False)
    add_source("evse-1", vendor="evenergy")  # a vendor without a collector
    store = CollectorStateStore(stack.refs["Table"])
    store.acquire_lease(VENDOR, "cp-2", "running-job", datetime.now(UTC), 600)  # busy
    store.record_failure(VENDOR, "cp-3", "failed-job", "boom", datetime.now(UTC), timedelta(hours=1), False)

    result = dispatcher_handler.lambda_handler(load_event("schedule_collect"), lambda_context)

    assert result == {"enqueued": 1, "without_adapter": 1, "not_due": 2, "pending": 0}
    sqs = aws.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=stack.refs["PlugchoiceWorkQueue"], MaxNumberOfMessages=10)["Messages"]
    job = CollectionJob.model_validate_json(message["Body"])
    assert (job.source_id, job.mode, job.scheduled_at) == (
        "cp-1",
        "scheduled",
        datetime(2026, 11, 21, 9, 30, tzinfo=UTC),
    )


def test_worker_reports_only_the_failed_job(stack: LocalStack, vendor: FakeVendor, lambda_context: Any) -> None:
    vendor.add(3, datetime(2026, 11, 21, 8, 0, tzinfo=UTC), timedelta(minutes=1))
    event = load_event("sqs_collection_jobs")  # an ocpplab job and a plugchoice job
    result = worker_handler.lambda_handler(event, lambda_context)
    # ocpplab's secret has no base_url in the template: that job fails with a clear error; the other succeeds.
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert len(stored(stack, "3f2a8a6e-1c1b-4d0e-9a57-5b0f1f6c2d11")) == 3
    ocpplab = CollectorStateStore(stack.refs["Table"]).get("ocpplab", "dep-123")
    assert "has no base_url" in (ocpplab.last_error or "")


def test_charger_time_and_action_queries_read_only_what_they_return(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(30, NOW - timedelta(hours=2), timedelta(minutes=1), action="Heartbeat")
    vendor.add(30, NOW - timedelta(hours=2, seconds=-30), timedelta(minutes=1), action="MeterValues")
    run(scheduled())
    table = aws.table(stack.refs["Table"])
    start, end = "2026-11-21T10:10:00", "2026-11-21T10:20:00~"
    by_time = table.query(
        KeyConditionExpression=Key("pk").eq(charger_partition("cp-1")) & Key("sk").between(start, end)
    )
    assert by_time["Count"] == 21  # 11 Heartbeats on the minute, 10 MeterValues on the half minute
    assert by_time["ScannedCount"] <= 2 * by_time["Count"]
    records = RecordStore(stack.refs["Table"])
    # Heartbeat from gsi1: its keys, then its items. MeterValues, most of a charger's records on real traffic (here
    # half), from the charger's partition: what the time range reads.
    for action, count, most in (("Heartbeat", 11, 2 * 11), ("MeterValues", 10, by_time["ScannedCount"])):
        items, read = records.in_range(charger_action_partition("cp-1", action), start, end)
        assert len(items) == count
        assert {i["action"] for i in items} == {action}
        assert read <= most


# ---------------------------------------------------------------------------------------------- pending jobs


def queued_jobs(stack: LocalStack) -> list[CollectionJob]:
    """Take every message off plugchoice's work queue (as a worker would)."""
    sqs = aws.client("sqs")
    jobs = []
    while messages := sqs.receive_message(
        QueueUrl=stack.refs["PlugchoiceWorkQueue"], MaxNumberOfMessages=10, VisibilityTimeout=0
    ).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=stack.refs["PlugchoiceWorkQueue"], ReceiptHandle=message["ReceiptHandle"])
            jobs.append(CollectionJob.model_validate_json(message["Body"]))
    return jobs


def test_a_source_whose_job_still_waits_gets_no_second_one(stack: LocalStack, vendor: FakeVendor) -> None:
    add_source("cp-1")
    add_source("cp-2")
    first = dispatcher.dispatch(
        NOW, sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues()
    )
    second = dispatcher.dispatch(
        NOW + timedelta(minutes=1),
        sources=stores.sources(),
        states=stores.collector_states(),
        queues=stores.work_queues(),
    )
    assert (first.enqueued, first.pending) == (2, 0)
    assert (second.enqueued, second.pending, second.not_due) == (0, 2, 0)
    jobs = queued_jobs(stack)
    assert sorted(job.source_id for job in jobs) == ["cp-1", "cp-2"]
    marked = {job.source_id: CollectorStateStore(stack.refs["Table"]).get(VENDOR, job.source_id) for job in jobs}
    assert {(job.job_id, NOW) for job in jobs} == {(s.queued_job_id, s.job_queued_at) for s in marked.values()}


def test_once_a_worker_takes_the_job_the_schedule_queues_the_next(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(3, NOW - timedelta(hours=1), timedelta(minutes=1))
    add_source("cp-1")
    dispatcher.dispatch(NOW, sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues())
    (job,) = queued_jobs(stack)
    assert run(job).status == "done"
    assert (state(stack).job_queued_at, state(stack).queued_job_id) == (None, None)
    later = dispatcher.dispatch(
        NOW + timedelta(minutes=5),
        sources=stores.sources(),
        states=stores.collector_states(),
        queues=stores.work_queues(),
    )
    assert (later.enqueued, later.pending) == (1, 0)
    (next_job,) = queued_jobs(stack)
    assert next_job.job_id != job.job_id
    assert state(stack).queued_job_id == next_job.job_id


def test_a_scheduled_job_skipped_as_busy_clears_its_mark(stack: LocalStack, vendor: FakeVendor) -> None:
    add_source("cp-1")
    dispatcher.dispatch(NOW, sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues())
    (job,) = queued_jobs(stack)
    CollectorStateStore(stack.refs["Table"]).acquire_lease(VENDOR, "cp-1", "a-backfill", NOW, 600)
    assert run(job).status == "skipped"
    assert state(stack).job_queued_at is None
    assert (
        dispatcher.dispatch(
            NOW + timedelta(minutes=11),
            sources=stores.sources(),
            states=stores.collector_states(),
            queues=stores.work_queues(),
        ).enqueued
        == 1
    )  # once the backfill's lease is over


def test_a_mark_older_than_the_pending_bound_is_queued_again(stack: LocalStack, vendor: FakeVendor) -> None:
    add_source("cp-1")
    bound = timedelta(seconds=collection.get_settings().job_pending_seconds)
    assert bound == timedelta(hours=1)  # the default
    dispatcher.dispatch(NOW, sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues())
    (lost,) = queued_jobs(stack)  # the message is lost: no worker ever clears its mark
    assert (
        dispatcher.dispatch(
            NOW + bound, sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues()
        ).pending
        == 1
    )
    again = dispatcher.dispatch(
        NOW + bound + timedelta(seconds=1),
        sources=stores.sources(),
        states=stores.collector_states(),
        queues=stores.work_queues(),
    )
    assert (again.enqueued, again.pending) == (1, 0)
    (requeued,) = queued_jobs(stack)
    assert state(stack).queued_job_id == requeued.job_id != lost.job_id
    assert state(stack).job_queued_at == NOW + bound + timedelta(seconds=1)


def test_of_two_dispatchers_racing_only_one_queues_the_job(
    stack: LocalStack, vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_source("cp-1")
    # Both read the collector states before either marked the source: the second sees no pending job.
    monkeypatch.setattr(CollectorStateStore, "list", lambda _self: iter([]))
    first = dispatcher.dispatch(
        NOW, sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues()
    )
    second = dispatcher.dispatch(
        NOW, sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues()
    )
    assert (first.enqueued, first.pending) == (1, 0)
    assert (second.enqueued, second.pending) == (0, 1)  # its conditional mark failed
    assert len(queued_jobs(stack)) == 1


def test_a_failed_send_clears_the_marks_so_the_next_schedule_queues_again(
    stack: LocalStack, vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_source("cp-1")

    def refuse(_self: WorkQueue, _messages: Any, delay_seconds: int = 0) -> int:
        raise QueueSendError("SQS refused 1 of 1 messages")

    with monkeypatch.context() as patch:
        patch.setattr(WorkQueue, "send", refuse)
        with pytest.raises(QueueSendError):
            dispatcher.dispatch(
                NOW, sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues()
            )
    assert state(stack).job_queued_at is None
    assert (
        dispatcher.dispatch(
            NOW + timedelta(minutes=1),
            sources=stores.sources(),
            states=stores.collector_states(),
            queues=stores.work_queues(),
        ).enqueued
        == 1
    )


def test_backfills_neither_set_nor_clear_the_pending_mark(stack: LocalStack, vendor: FakeVendor) -> None:
    vendor.add(3, NOW - timedelta(days=1), timedelta(minutes=1))
    add_source("cp-1")
    dispatcher.dispatch(NOW, sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues())
    (scheduled_job,) = queued_jobs(stack)
    backfill = backfills.queue_backfill(
        VENDOR,
        "cp-1",
        NOW - timedelta(days=2),
        NOW - timedelta(hours=12),
        now=NOW,
        sources=stores.sources(),
        queues=stores.work_queues(),
    )
    (queued_backfill,) = queued_jobs(stack)  # queued even though a scheduled job is pending
    assert queued_backfill.job_id == backfill.job_id
    assert run(queued_backfill).status == "done"
    assert state(stack).queued_job_id == scheduled_job.job_id  # the scheduled job still waits
    assert (
        dispatcher.dispatch(
            NOW + timedelta(minutes=1),
            sources=stores.sources(),
            states=stores.collector_states(),
            queues=stores.work_queues(),
        ).pending
        == 1
    )


# ---------------------------------------------------------------------------------------------- re-reads


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The raw ids of the record items each BatchWriteItem carries, in order."""
    ids: list[int] = []
    write_batch = RecordWriter._write_batch

    def counting(writer: RecordWriter, items: list[dict[str, Any]]) -> None:
        ids.extend(json.loads(item["raw"])["id"] for item in items)  # the fake vendor's pages hold raw inline
        write_batch(writer, items)

    monkeypatch.setattr(RecordWriter, "_write_batch", counting)
    return ids


@pytest.fixture
def archived(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The record ids each page sends to the record archive."""
    ids: list[str] = []
    put_page = RecordArchive.put_page

    def recording(archive: RecordArchive, records: list[LogRecord]) -> list[str]:
        ids.extend(record.record_id for record in records)
        return put_page(archive, records)

    monkeypatch.setattr(RecordArchive, "put_page", recording)
    return ids


def test_a_lookback_re_read_writes_only_new_and_late_records(
    stack: LocalStack, vendor: FakeVendor, written: list[int], archived: list[str]
) -> None:
    vendor.add(10, NOW - timedelta(minutes=8), timedelta(seconds=30))  # all inside the next run's lookback
    first = run(scheduled())
    assert (first.records_stored, len(written), len(archived)) == (10, 10, 10)
    written.clear()
    archived.clear()

    later = NOW + timedelta(minutes=5)
    vendor.add(2, NOW + timedelta(minutes=1), timedelta(seconds=20))
    vendor.add(1, NOW - timedelta(minutes=2), timedelta(0))  # late: before the mark, inside the lookback
    second = run(scheduled(later))
    assert second.pages_fetched == 4  # the 10 re-read and the 3 others: 13 records, pages of 4
    assert sorted(written) == [11, 12, 13]
    assert second.records_stored == 3
    assert sorted(archived) == sorted(record_id_for(VENDOR, "cp-1", n) for n in (11, 12, 13))
    assert stored_ids(stack) == list(range(1, 14))


def test_a_record_changed_in_place_is_written_again(stack: LocalStack, vendor: FakeVendor, written: list[int]) -> None:
    vendor.add(6, NOW - timedelta(minutes=8), timedelta(seconds=30))
    run(scheduled())
    written.clear()
    vendor.records[2]["payload"] = {"status": "done"}  # the vendor updated it (pending -> done, say)
    outcome = run(scheduled(NOW + timedelta(minutes=5)))
    assert written == [3]
    assert outcome.records_stored == 1
    (item,) = [i for i in stored(stack) if record_from_item(i)["raw"]["id"] == 3]
    assert record_from_item(item)["payload"] == {"status": "done"}


def test_a_backfill_over_a_stored_range_writes_nothing_unchanged(
    stack: LocalStack, vendor: FakeVendor, written: list[int]
) -> None:
    vendor.add(9, NOW - timedelta(hours=1), timedelta(minutes=1))
    run(scheduled())
    written.clear()
    backfill = CollectionJob(
        vendor=VENDOR,
        source_id="cp-1",
        scheduled_at=NOW,
        window_start=NOW - timedelta(hours=2),
        window_end=NOW,
        mode="backfill",
    )
    outcome = run(backfill)
    assert (outcome.pages_fetched, outcome.records_stored, written) == (3, 0, [])
    assert stored_ids(stack) == list(range(1, 10))


def test_an_items_digest_follows_what_it_holds_not_where_its_raw_form_is(stack: LocalStack) -> None:
    writer = stores.record_writer()
    record = LogRecord(
        vendor=VENDOR,
        source_id="cp-1",
        charger_id="cp-1",
        timestamp=NOW,
        kind="ocpp",
        action="Heartbeat",
        record_id=record_id_for(VENDOR, "cp-1", 1),
        raw={"id": 1},
        payload={"a": 1},
    )
    item = writer.item_for(record, "raw/vendor=plugchoice/source=cp-1/date=2026-11-21/one.json.gz#0")
    again = writer.item_for(record, "raw/vendor=plugchoice/source=cp-1/date=2026-11-21/two.json.gz#3")
    changed = writer.item_for(record.model_copy(update={"payload": {"a": 2}}), None)
    assert item[DIGEST_FIELD] == again[DIGEST_FIELD] == item_digest(item)
    assert changed[DIGEST_FIELD] != item[DIGEST_FIELD]
    long_payload = record.model_copy(update={"payload": {"text": "x" * 2000}})
    assert writer.item_for(long_payload)[DIGEST_FIELD] == writer.item_for(long_payload)[DIGEST_FIELD]
