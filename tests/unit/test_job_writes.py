"""What a collection job writes: DynamoDB writes and S3 PUTs counted per request, so a costlier pattern fails.

A scheduled job every 5 minutes typically fetches one page of a few records, so every write it makes besides the
records' own is paid per few records (docs/cost.md, issue 12): taking the lease and finishing are one write each,
the charger index one conditional update per charger, and a re-read of the lookback that finds nothing new writes
no record, no charger entry and no S3 object.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.client import BaseClient

from api_calls import get_json
from chargelog import collectors, stores
from chargelog.collectors.base import Page, VendorCalls, VendorConnection, VendorProfile, Window
from chargelog.dal.archive import RAW_PREFIX
from chargelog.dal.record_archive import RECORDS_PREFIX
from chargelog.dal.records import DIGEST_FIELD
from chargelog.dal.state import MAX_ERROR_CHARS, Checkpoint, Counts
from chargelog.logic import sources
from chargelog.logic.collection import JobOutcome, JobRunner
from chargelog.models.jobs import CollectionJob
from chargelog.models.keys import CHARGERS_PARTITION
from chargelog.models.records import LogRecord, record_id_for
from chargelog.models.sources import SourceCreate
from chargelog.observability import logger
from chargelog_local.provision import LocalStack

VENDOR = "plugchoice"  # the fake adapter stands in for the built-in one
SOURCE = "cp-1"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PROFILE = VendorProfile(
    lookback=timedelta(minutes=30),
    settle_delay=timedelta(seconds=30),
    requests_per_second=1000,
    burst=1000,
    page_size=4,
)
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


class Vendor:
    """An offset-paged log API in memory whose pages hold the records at ``/data`` (so items point at archived pages
    for their raw forms, as the real adapters' do)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def add(self, count: int, start: datetime, step: timedelta = timedelta(seconds=20)) -> None:
        for _ in range(count):
            self.records.append({"id": len(self.records) + 1, "at": start.isoformat(), "action": "Heartbeat"})
            start += step

    def fetch_page(self, source_id: str, window: Window, cursor: str | None, action: str | None = None) -> Page:
        offset = int(cursor or 0)
        matching = sorted(
            (r for r in self.records if window.start <= datetime.fromisoformat(r["at"]) <= window.end),
            key=lambda r: r["at"],
        )
        items = matching[offset : offset + PROFILE.page_size]
        end = offset + len(items)
        return Page(
            items=items,
            body={"data": items, "total": len(matching)},
            request={"offset": offset},
            next_cursor=str(end) if items and end < len(matching) else None,
            total=len(matching),
            items_at="/data",
        )

    def normalize(self, source_id: str, item: Any) -> LogRecord:
        if "broken" in item:
            raise ValueError("cannot read record")
        return LogRecord(
            vendor=VENDOR,
            source_id=source_id,
            charger_id=source_id,
            timestamp=item["at"],
            kind="ocpp",
            action=item["action"],
            record_id=record_id_for(VENDOR, source_id, item["id"]),
            raw=item,
        )

    calls = VendorCalls()

    def close(self) -> None:
        pass


@pytest.fixture
def vendor(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Vendor:
    fake = Vendor()
    collectors.has_adapter(VENDOR)  # the built-in adapter first, so they cannot replace the fake

    def factory(connection: VendorConnection, _remaining: Callable[[], float]) -> Vendor:
        return fake

    monkeypatch.setitem(collectors._ADAPTERS, VENDOR, (PROFILE, factory))
    sources.create_source(SourceCreate.model_validate({"vendor": VENDOR, "source_id": SOURCE}), store=stores.sources())
    return fake


class Requests:
    """Every AWS request made while counting, by what it touched."""

    def __init__(self, stack: LocalStack) -> None:
        self.table = stack.refs["Table"]
        self.raw_bucket = stack.refs["RawBucket"]
        self.record_bucket = stack.refs["RecordArchiveBucket"]
        self.tally: Counter[str] = Counter()
        self.counting = False

    def seen(self, operation: str, params: dict[str, Any]) -> None:
        if not self.counting:
            return
        if operation in WRITES:
            if operation == "BatchWriteItem":
                self.tally["record batches"] += 1
                self.tally["record items"] += sum(len(r) for r in params["RequestItems"].values())
                return
            partition = params.get("Key", params.get("Item", {})).get("pk")
            pk = partition.get("S") if isinstance(partition, dict) else partition
            where = {"COLLECTOR": "state", CHARGERS_PARTITION: "charger index", "HEALTH": "health state"}.get(
                str(pk), f"other {pk}"
            )
            self.tally[f"{where} writes"] += 1
        elif operation == "PutObject":
            bucket, key = params["Bucket"], params["Key"]
            if bucket == self.raw_bucket and key.startswith(f"{RAW_PREFIX}/"):
                self.tally["raw page PUTs"] += 1
            elif bucket == self.record_bucket and key.startswith(f"{RECORDS_PREFIX}/"):
                self.tally["record archive PUTs"] += 1
            else:
                self.tally[f"other PUTs {key.split('/')[0]}"] += 1

    def during(self, action: Callable[[], JobOutcome]) -> tuple[JobOutcome, Counter[str]]:
        self.tally = Counter()
        self.counting = True
        try:
            outcome = action()
        finally:
            self.counting = False
        return outcome, self.tally


@pytest.fixture
def requests(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Requests:
    counter = Requests(stack)
    call = BaseClient._make_api_call

    def counting(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        counter.seen(operation, params)
        return call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    return counter


def queued(at: datetime) -> Callable[[], JobOutcome]:
    """A scheduled job marked as the source's pending one and queued, as the dispatcher does (not counted: the
    dispatcher's write); running it is what the worker does."""
    job = CollectionJob(vendor=VENDOR, source_id=SOURCE, scheduled_at=at)
    assert stores.collector_states().mark_queued(VENDOR, SOURCE, job.job_id, at, stale_before=at - timedelta(hours=1))
    return lambda: JobRunner(job, lambda: 900.0, now=lambda: at, stores=stores.collection()).run()


def steady(vendor: Vendor) -> datetime:
    """A source collected once already (its first job pins its history start and moves the mark); the next
    scheduled time."""
    vendor.add(2, NOW - timedelta(minutes=20))
    assert queued(NOW)().records_stored == 2
    return NOW + timedelta(minutes=5)


def test_a_one_page_scheduled_job_writes_its_state_twice(vendor: Vendor, requests: Requests) -> None:
    later = steady(vendor)
    vendor.add(2, NOW + timedelta(minutes=1))  # new since the last job; its lookback re-reads the 2 stored
    outcome, counted = requests.during(queued(later))
    assert (outcome.status, outcome.pages_fetched, outcome.records_stored) == ("done", 1, 2)
    assert counted == {
        "state writes": 2,  # take the lease (clearing the queued mark), then finish
        "record batches": 1,
        "record items": 2,  # the 2 re-read ones are unchanged
        "charger index writes": 1,
        # The charger's latest record moved from 11:40 into the next hour: the health detectors save their state
        # about once an hour of a charger's ordinary traffic (docs/health.md).
        "health state writes": 1,
        "raw page PUTs": 1,  # only the page holding the new records
        "record archive PUTs": 1,
    }
    state = stores.collector_states().get(VENDOR, SOURCE)
    assert state.high_water_mark == later - PROFILE.settle_delay
    assert (state.checkpoint, state.lease_job_id, state.lease_until, state.job_queued_at) == (None, None, None, None)
    assert (state.last_success_at, state.records_stored, state.consecutive_failures) == (later, 4, 0)


def test_a_re_read_finding_nothing_new_writes_no_record_and_puts_nothing(
    vendor: Vendor, requests: Requests, lambda_context: Any
) -> None:
    later = steady(vendor)
    outcome, counted = requests.during(queued(later))
    assert (outcome.status, outcome.pages_fetched, outcome.records_stored) == ("done", 1, 0)
    assert counted == {"state writes": 2}
    assert stores.collector_states().get(VENDOR, SOURCE).high_water_mark == later - PROFILE.settle_delay

    # Every stored record still comes back with its raw form, from the page that first brought it.
    _, _, page = get_json(lambda_context, f"/chargers/{SOURCE}/logs")
    assert len(page["records"]) == 2
    for entry in page["records"]:
        status, _, one = get_json(lambda_context, f"/chargers/{SOURCE}/logs/{entry['id']}")
        assert status == 200
        assert one["raw"]["id"] == int(entry["record_id"].rsplit(":", 1)[-1])


def test_a_multi_page_job_saves_a_checkpoint_only_where_another_page_follows(
    vendor: Vendor, requests: Requests, lambda_context: Any
) -> None:
    later = steady(vendor)
    vendor.add(10, NOW + timedelta(seconds=1))  # 12 records in the window: pages of 4
    outcome, counted = requests.during(queued(later))
    assert (outcome.pages_fetched, outcome.records_stored) == (3, 10)
    assert counted == {
        "state writes": 2 + 2,  # take, a checkpoint after each of the 2 pages another follows, finish
        "record batches": 3,
        "record items": 10,
        "charger index writes": 3,  # each page's records move the charger's last record time on
        "health state writes": 1,  # its latest record moved into a new hour (11:40 -> 12:00): once, not per page
        "raw page PUTs": 3,  # every page holds a new record (the first 2 re-read and 2 new)
        "record archive PUTs": 3,
    }
    state = stores.collector_states().get(VENDOR, SOURCE)
    assert (state.records_stored, state.checkpoint, state.high_water_mark) == (12, None, later - timedelta(seconds=30))
    _, _, body = get_json(lambda_context, "/chargers")
    [entry] = body["chargers"]
    assert entry["first_record_at"].startswith("2026-11-21T11:40:00")
    assert entry["last_record_at"].startswith("2026-11-21T12:03:01")


def test_a_page_with_an_unreadable_item_is_archived(vendor: Vendor, requests: Requests) -> None:
    later = steady(vendor)
    vendor.add(1, NOW + timedelta(minutes=1))
    vendor.records[-1]["broken"] = "yes"
    outcome, counted = requests.during(queued(later))
    assert (outcome.records_stored, outcome.records_quarantined) == (0, 1)
    assert counted == {"state writes": 2, "raw page PUTs": 1, "other PUTs quarantine": 1}


def test_a_failed_job_records_its_failure_with_a_short_error(
    vendor: Vendor, requests: Requests, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = steady(vendor)

    def failing(*_: Any) -> Page:
        raise RuntimeError("x" * 5000)

    monkeypatch.setattr(Vendor, "fetch_page", failing)
    monkeypatch.setattr(logger, "error", lambda *_, **__: None)
    with pytest.raises(RuntimeError):
        requests.during(queued(later))
    state = stores.collector_states().get(VENDOR, SOURCE)
    assert state.last_error is not None
    assert len(state.last_error) == MAX_ERROR_CHARS
    assert (state.consecutive_failures, state.lease_job_id, state.last_error_at) == (1, None, later)
    assert state.backoff_until is not None
    assert state.backoff_until > later
    assert state.high_water_mark == NOW - PROFILE.settle_delay  # left where the last good job put it
    assert requests.tally == {"state writes": 2}  # take, then the failure


# ---------------------------------------------------------------------------------------------- the state's guarantees


def test_finishing_after_losing_the_lease_leaves_the_new_holder_alone(stack: LocalStack) -> None:
    store = stores.collector_states()
    store.take_job(VENDOR, SOURCE, "old-job", NOW, 60, clear_queued=False)
    later = NOW + timedelta(minutes=5)  # the old job's lease expired; another took the source and saved a checkpoint
    assert store.take_job(VENDOR, SOURCE, "new-job", later, 600, clear_queued=False) is not None
    mine = Checkpoint(job_id="new-job", chunk_start=NOW, chunk_end=later, cursor="8")
    store.save_progress(VENDOR, SOURCE, mine, later, 600, stored=8, quarantined=0, pages=2)
    store.finish_job(VENDOR, SOURCE, "old-job", later, mark=NOW, counts=Counts(stored=3, pages=1))
    state = store.get(VENDOR, SOURCE)
    assert (state.lease_job_id, state.checkpoint) == ("new-job", mine)
    assert (state.high_water_mark, state.last_success_at, state.records_stored, state.pages_fetched) == (
        NOW,
        later,
        11,
        3,
    )


def test_the_mark_never_moves_back(stack: LocalStack) -> None:
    store = stores.collector_states()
    store.advance_mark(VENDOR, SOURCE, NOW)
    store.take_job(VENDOR, SOURCE, "job", NOW, 600, clear_queued=False)
    store.finish_job(VENDOR, SOURCE, "job", NOW, mark=NOW - timedelta(hours=1), counts=Counts(stored=1))
    state = store.get(VENDOR, SOURCE)
    assert (state.high_water_mark, state.lease_job_id, state.records_stored, state.last_success_at) == (
        NOW,
        None,
        1,
        NOW,
    )


def test_taking_a_job_leaves_a_newer_jobs_queued_mark(stack: LocalStack) -> None:
    store = stores.collector_states()
    assert store.mark_queued(VENDOR, SOURCE, "newer", NOW, stale_before=NOW - timedelta(hours=1))
    taken = store.take_job(VENDOR, SOURCE, "older", NOW, 600, clear_queued=True)
    assert taken is not None
    assert (taken.lease_job_id, taken.queued_job_id) == ("older", "newer")
    # Busy: a scheduled job skipped still clears its own mark, so the schedule may queue the next.
    assert store.mark_queued(VENDOR, SOURCE, "newest", NOW, stale_before=NOW + timedelta(seconds=1))
    assert store.take_job(VENDOR, SOURCE, "newest", NOW, 600, clear_queued=True) is None
    assert store.get(VENDOR, SOURCE).queued_job_id is None


def test_a_hand_over_saves_the_place_and_releases_the_lease_in_one_write(stack: LocalStack, requests: Requests) -> None:
    store = stores.collector_states()
    store.take_job(VENDOR, SOURCE, "job", NOW, 600, clear_queued=True)
    place = Checkpoint(job_id="job", chunk_start=NOW - timedelta(hours=1), chunk_end=NOW, cursor="40", read=40)
    requests.counting = True
    store.hand_over(VENDOR, SOURCE, "job", place, NOW, requeued=True, mark=None, counts=Counts(stored=40, pages=10))
    requests.counting = False
    assert requests.tally == {"state writes": 1}
    state = store.get(VENDOR, SOURCE)
    assert (state.checkpoint, state.lease_job_id, state.queued_job_id, state.job_queued_at) == (place, None, "job", NOW)
    assert (state.records_stored, state.pages_fetched) == (40, 10)


def test_a_backfill_compares_with_the_table_only_where_its_charger_may_hold_records(
    vendor: Vendor, requests: Requests, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backfill may find any record of its range stored, so it reads the table before writing (one Query per page
    over the page's keys), except where the charger index entry it saw stored says nothing can be: after its first
    page, a range nothing held yet is written without reading."""
    vendor.add(12, NOW - timedelta(hours=2), timedelta(minutes=1))  # 3 pages of 4
    record_reads: list[str] = []
    count = requests.seen

    def seen(operation: str, params: dict[str, Any]) -> None:
        # The writer's Query over a page's keys, projecting the stored digests (chargelog.dal.records).
        if requests.counting and operation == "Query" and DIGEST_FIELD in str(params.get("ExpressionAttributeNames")):
            record_reads.append(operation)
        count(operation, params)

    monkeypatch.setattr(requests, "seen", seen)

    def backfill() -> JobOutcome:
        job = CollectionJob(
            vendor=VENDOR,
            source_id=SOURCE,
            scheduled_at=NOW,
            window_start=NOW - timedelta(hours=3),
            window_end=NOW,
            mode="backfill",
        )
        return JobRunner(job, lambda: 900.0, now=lambda: NOW, stores=stores.collection()).run()

    outcome, counted = requests.during(backfill)
    assert (outcome.pages_fetched, outcome.records_stored, counted["record items"]) == (3, 12, 12)
    assert len(record_reads) == 1  # the first page only: the charger's entry was not known yet

    # Again over the same range: every record is inside the entry's span, so every page is compared, none written.
    record_reads.clear()
    outcome, counted = requests.during(backfill)
    assert (outcome.pages_fetched, outcome.records_stored, counted["record items"]) == (3, 0, 0)
    assert len(record_reads) == 3
