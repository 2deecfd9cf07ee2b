"""Scheduled collection: run a job to an exact result (the dispatcher queues them: chargelog.logic.dispatcher).

How a job never loses or duplicates a record:
- Window: a scheduled job reads ``[high-water mark - lookback, scheduled time - settle delay]``, inclusive, where a
  job that waited on its queue counts its scheduled time that much later (it reads what arrived while it waited,
  rather than leaving it to the next job); a new source starts ``initial history`` back. A backfill job reads the
  range it was given.
- Chunks: the window is read in time chunks of at most ``MAX_CHUNK_RECORDS`` (narrowed from the vendor's
  total), oldest first. After each chunk the mark moves to the chunk's end - only once every record up to it
  is written, and only if the chunk was read consistently.
- Consistency: offset pages shift when records arrive while a client pages. A chunk counts as read only
  when the vendor's total was the same on its first and last page and equal to the records read; otherwise
  it is read again, and after ``MAX_PASSES`` halved, down to a single page, which one response returns
  whole. Only a second holding more than a page of records can stay inconsistent; then a scheduled job stops
  there, the mark stays before it, and the next run reads on from it (a backfill reads on).
- Checkpoints: after every page that another page of the same pass follows, the position is saved; a job killed
  between pages resumes there. When the Lambda's time runs low the job saves its place and re-enqueues itself.
- Faults cost time, never records: a job that stored pages and then met a vendor error its client gave up retrying
  (5xx, 429, timeouts, broken bodies) has not failed - the vendor answers, it is flaky. It pauses and goes on from
  where it stands, in the same invocation, keeping its worker (``resume_pause_seconds``); at the
  ``MAX_ERRORS_IN_A_ROW``-th such error without a page stored in between, or with little time left, it saves
  its place and re-enqueues itself as when out of time, a little later (``RETRY_AFTER_PROGRESS_SECONDS``), with the
  error kept as the source's ``last_error``. Only a job that made no progress counts as the source failing
  (``consecutive_failures``, backoff ``backoff_after``): backoff answers a vendor that is down or refuses the
  credentials, not one that is flaky. A job that made progress and then failed otherwise (killed, a store failing)
  raises as before - SQS delivers it again, and it resumes from its checkpoint - but neither counts a failure nor
  backs the source off.
- State writes: the collector state is written as seldom as these guarantees allow (docs/storage.md): the lease is
  taken in one write, the mark and the counts wait in memory for the job's next state write, and a job ends with one
  write (mark, counts, success, checkpoint and lease gone) - a one-page scheduled job costs two.
- Upserts: every record has a deterministic id and key, so re-reads never add copies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from chargelog import collectors
from chargelog.collectors.base import Page, VendorAdapter, VendorCalls, Window
from chargelog.collectors.read_ahead import ReadAhead
from chargelog.dal.archive import RawArchive, page_key, raw_ref
from chargelog.dal.queue import WorkQueues
from chargelog.dal.record_archive import RecordArchive
from chargelog.dal.records import ChargerSpans, RecordWriter
from chargelog.dal.secrets import VendorSecrets
from chargelog.dal.state import Activity, Checkpoint, CollectorState, CollectorStateStore, Counts
from chargelog.logic import activity
from chargelog.logic.charger_health.monitor import ChargerHealthStores
from chargelog.metric_names import VendorMetric
from chargelog.models.jobs import CollectionJob
from chargelog.models.records import LogRecord
from chargelog.observability import logger
from chargelog.settings import Settings, get_settings

MAX_CHUNK_RECORDS = 10_000
MAX_PASSES = 3
# Below this much remaining time a job saves its place and re-enqueues the rest.
CONTINUE_BELOW_SECONDS = 60.0
# A job holds its source this long after its last page (the worker's timeout plus a margin).
LEASE_SECONDS = 960.0
BUSY_RETRY_DELAY_SECONDS = 300
# A job that made progress pauses and goes on after a vendor error its client gave up retrying; at this many in a row
# (no page stored between them) it hands over instead: its continuation goes on from its checkpoint this much later.
MAX_ERRORS_IN_A_ROW = 3
RETRY_AFTER_PROGRESS_SECONDS = 30
ONE_TICK = timedelta(microseconds=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


class CollectionStores(NamedTuple):
    """What a collection job reads and writes: collector state, the raw archive, records (the table and their
    archive for Athena), the work queues and the vendors' secrets; and, with ``health``, the chargers' health state
    and alerts the detectors write from each stored page (docs/health.md)."""

    states: CollectorStateStore
    archive: RawArchive
    writer: RecordWriter
    queues: WorkQueues
    secrets: VendorSecrets
    record_archive: RecordArchive
    health: ChargerHealthStores | None = None


@dataclass
class JobOutcome:
    """What a job did. ``failed``: it raised (SQS delivers it again, or, on its last allowed receive,
    ``dead_lettered``, moves it to the dead-letter queue)."""

    status: Literal["done", "continued", "skipped", "deferred", "failed"]
    window: Window | None = None
    records_stored: int = 0
    records_quarantined: int = 0
    pages_fetched: int = 0
    vendor_calls: VendorCalls = field(default_factory=VendorCalls)
    complete: bool = True  # every chunk was read consistently
    dead_lettered: bool = False
    detail: str = ""
    # Charger health (docs/health.md): alerts this job's pages opened and resolved, and pages the detectors failed on.
    alerts_opened: int = 0
    alerts_resolved: int = 0
    health_failures: int = 0

    @property
    def vendor_requests(self) -> int:
        return self.vendor_calls.requests

    def metrics(self) -> dict[VendorMetric, int]:
        """The job's vendor metrics (chargelog.metric_names), written with its vendor as a dimension."""
        calls = self.vendor_calls
        return {
            VendorMetric.RECORDS_STORED: self.records_stored,
            VendorMetric.RECORDS_QUARANTINED: self.records_quarantined,
            VendorMetric.PAGES_FETCHED: self.pages_fetched,
            **vendor_call_metrics(calls),
            VendorMetric.JOBS_REENQUEUED: int(self.status == "continued"),
            VendorMetric.JOBS_DEAD_LETTERED: int(self.dead_lettered),
        }


def vendor_call_metrics(calls: VendorCalls) -> dict[VendorMetric, int]:
    """A client's calls as vendor metrics: requests, errors (all, and by class) and retries."""
    return {
        VendorMetric.VENDOR_REQUESTS: calls.requests,
        VendorMetric.VENDOR_ERRORS: calls.errors,
        VendorMetric.VENDOR_SERVER_ERRORS: calls.server_errors,
        VendorMetric.VENDOR_THROTTLES: calls.throttles,
        VendorMetric.VENDOR_CLIENT_ERRORS: calls.client_errors,
        VendorMetric.VENDOR_TIMEOUTS: calls.timeouts,
        VendorMetric.VENDOR_BAD_BODIES: calls.bad_bodies,
        VendorMetric.VENDOR_RETRIES: calls.retries,
    }


@dataclass
class Progress:
    """What a job has done so far, for progress bars."""

    window: Window
    covered_until: datetime
    records_stored: int
    pages_fetched: int

    @property
    def fraction(self) -> float:
        span = (self.window.end - self.window.start).total_seconds()
        done = (self.covered_until - self.window.start).total_seconds()
        return 1.0 if span <= 0 else max(0.0, min(1.0, done / span))


class _ContinueLater(Exception):
    def __init__(self, checkpoint: Checkpoint, error: Exception | None = None, delay_seconds: int = 0) -> None:
        super().__init__("continue later")
        self.checkpoint = checkpoint  # where the continuation resumes
        self.error = error  # the vendor error that stopped this invocation, if that is why it hands over
        self.delay_seconds = delay_seconds


def backoff_after(failures: int) -> timedelta:
    """How long a failing source is left alone: 1, 2, 4... minutes, at most an hour. Only failures of jobs that made no
    progress count (``JobRunner``): a flaky vendor costs retries, a vendor that is down costs backoff."""
    return timedelta(minutes=min(60, 2 ** max(0, failures - 1)))


def resume_pause_seconds() -> float:
    """The pause before a job goes on after a vendor error its client gave up retrying: half the client's longest
    backoff (15 s), read when used (tests that make the client's retries quick make this quick too)."""
    from chargelog.collectors import vendor_http  # the worker has it loaded; the API (replays) never needs it

    return float(vendor_http.MAX_BACKOFF_SECONDS) / 2


def goes_on_after(error: Exception) -> bool:
    """A vendor error worth going on after, from the checkpoint, once the job has made progress: the vendor was
    unavailable (5xx, 429, timeouts) or answered a broken body, and the client's retries ran out. A refused credential
    or request is not: it would fail the same way."""
    from chargelog.collectors.vendor_http import VendorError  # loaded with the adapter that raised it

    return isinstance(error, VendorError) and error.retryable


EVERYTHING = datetime.max.replace(tzinfo=UTC)  # a backfill may find any record of its window stored


@dataclass
class JobRunner:
    """Runs one collection job against its vendor and the table."""

    job: CollectionJob
    remaining_seconds: Callable[[], float]
    now: Callable[[], datetime] = utc_now
    on_progress: Callable[[Progress], None] | None = None
    attempt: int = 1
    settings: Settings = field(default_factory=get_settings)
    _: KW_ONLY
    stores: CollectionStores
    # Called with the outcome when the job ends, whether it returns or raises (then its status is "failed").
    on_finish: Callable[[JobOutcome], None] | None = None
    # When the job's message was sent to the queue (SQS's SentTimestamp), if known: how long it waited (`_read_until`).
    sent_at: datetime | None = None
    sleep: Callable[[float], None] = time.sleep  # the pause before going on after a vendor error

    def __post_init__(self) -> None:
        self.states = self.stores.states
        self.archive = self.stores.archive
        self.writer = self.stores.writer
        self.outcome = JobOutcome(status="done")
        self._pages = 0
        # Records at or before this time may be stored already, so the writer compares before writing them.
        self._stored_through: datetime | None = None
        # Written with the job's next state write: the counts since the last one, and a mark further than the stored.
        self._unsaved = Counts()
        self._stored_mark: datetime | None = None
        self._mark: datetime | None = None
        self._newest_record_at: datetime | None = None  # the newest record this job read (the scheduler's activity)
        # The charger index entries as this job last wrote them: one a later page leaves as it is is not written again.
        self._chargers: ChargerSpans = {}
        # The detectors of charger health, fed every stored page (re-read records too: they ignore what they saw).
        self._health = self.stores.health.monitor() if self.stores.health is not None else None
        # Where the job stands in the chunk it reads (saved after each page, and when it hands over).
        self._at: Checkpoint | None = None
        self._until = self.job.scheduled_at  # how far a scheduled job reads, before the settle delay (`_read_until`)
        self._errors_in_a_row = 0  # vendor errors gone on after since the last page stored (`_go_on_after`)

    # ------------------------------------------------------------------ the job
    def run(self) -> JobOutcome:
        job = self.job
        try:
            # Taken off the queue (run now, or skipped as busy): the schedule may queue the source's next job.
            state = self.states.take_job(
                job.vendor, job.source_id, job.job_id, self.now(), LEASE_SECONDS, clear_queued=job.mode == "scheduled"
            )
            if state is None:
                return self._busy()
            return self._run(state)
        except Exception:
            self.outcome.status = "failed"
            # Its last allowed receive: SQS moves the message to the dead-letter queue.
            self.outcome.dead_lettered = self.attempt >= self.settings.job_max_receives
            raise
        finally:
            if self.on_finish is not None:
                self.on_finish(self.outcome)

    def _run(self, state: CollectorState) -> JobOutcome:
        job = self.job
        scheduled = job.mode == "scheduled"
        adapter: VendorAdapter | None = None
        try:
            connection = collectors.connection_for(
                job.vendor, self.stores.secrets, workers=self.settings.worker_concurrency
            )
            # The next page is fetched and normalized while this one's records are written (collectors.read_ahead).
            # Not when the job will hand over after this page for lack of time: its successor would be read twice.
            adapter = ReadAhead(
                collectors.adapter_for(connection, self.remaining_seconds),
                worth_reading_ahead=lambda: self.remaining_seconds() >= CONTINUE_BELOW_SECONDS,
            )
            self._stored_mark = state.high_water_mark
            # A scheduled job re-reads its lookback, stored by earlier runs; a backfill re-reads what it is given.
            self._stored_through = state.high_water_mark if scheduled else EVERYTHING
            self._until = self._read_until()
            window = self._window(state, connection.profile.lookback, connection.profile.settle_delay)
            self.outcome.window = window
            if window.end >= window.start:
                self._read_window(adapter, window, state)
            self.states.finish_job(
                job.vendor,
                job.source_id,
                job.job_id,
                self.now(),
                mark=self._mark,
                counts=self._unsaved.taken(),
                activity=self._activity(state, window) if scheduled else None,
            )
        except _ContinueLater as later:
            self._hand_over(later)
        except Exception as error:
            if adapter is not None:
                adapter.calls.record(error)  # a failure the adapter found in a body, after its client returned
            if self._pages and self._at is not None and goes_on_after(error):
                # Progress, then a flaky vendor: not a failure of the source. Go on from here, a little later.
                self._hand_over(_ContinueLater(self._at, error, RETRY_AFTER_PROGRESS_SECONDS))
                return self.outcome
            self._record_failure(error)
            raise
        finally:
            if adapter is not None:
                self.outcome.vendor_calls = adapter.calls
                adapter.close()
        return self.outcome

    def _activity(self, state: CollectorState, window: Window) -> Activity:
        """The source's activity after this job, for the scheduler: what it stored over the span its read point moved
        (from the mark it started at, or its first window's start, to the mark it leaves)."""
        read_from = state.high_water_mark or window.start
        marks = [mark for mark in (self._mark, self._stored_mark) if mark is not None]
        return activity.observe(
            activity.activity_of(state),
            read_from=read_from,
            read_to=max([read_from, *marks]),
            records=self.outcome.records_stored,
            newest_record_at=self._newest_record_at,
        )

    def _hand_over(self, later: _ContinueLater) -> None:
        """Save the job's place and queue its continuation. Saved and released before the continuation is queued:
        should sending fail, SQS delivers this job again and it resumes from the same checkpoint."""
        job = self.job
        error = f"{type(later.error).__name__}: {later.error}" if later.error is not None else None
        self.states.hand_over(
            job.vendor,
            job.source_id,
            job.job_id,
            later.checkpoint,
            self.now(),
            requeued=job.mode == "scheduled",
            mark=self._mark,
            counts=self._unsaved.taken(),
            error=error,
        )
        # The continuation reads at least as far as this invocation would have (and further if it waits in turn).
        moved = job.mode == "scheduled" and self._until > job.scheduled_at
        continuation = job.model_copy(update={"scheduled_at": self._until}) if moved else job
        self.stores.queues.of(job.vendor).send([continuation], delay_seconds=later.delay_seconds)
        self.outcome.status = "continued"
        if error is not None:
            self.outcome.detail = f"vendor error after {self._pages} pages; continuing in {later.delay_seconds} s"
            logger.warning(
                "Collection job met a vendor error after progress; it goes on from its checkpoint",
                extra={
                    "vendor": job.vendor,
                    "source_id": job.source_id,
                    "job_id": job.job_id,
                    "attempt": self.attempt,
                    "pages": self._pages,
                    "delay_seconds": later.delay_seconds,
                    "error": str(later.error),
                },
            )

    def _busy(self) -> JobOutcome:
        if self.job.mode == "scheduled":
            # The job holding the source covers this one's window; the next schedule picks up after it.
            self.outcome.status = "skipped"
            self.outcome.detail = "another job is collecting this source"
            return self.outcome
        self.stores.queues.of(self.job.vendor).send([self.job], delay_seconds=BUSY_RETRY_DELAY_SECONDS)
        self.outcome.status = "deferred"
        self.outcome.detail = f"source busy; retrying in {BUSY_RETRY_DELAY_SECONDS} s"
        return self.outcome

    def _record_failure(self, error: Exception) -> None:
        """Record the error. A job that stored pages before failing moved its source forward: the vendor answers, so
        the source's failures start again from zero and it is not backed off (SQS delivers the job again, and it
        resumes from its checkpoint). Only a job that made no progress counts a failure and backs the source off."""
        job = self.job
        progressed = self._pages > 0
        dead_lettered = self.attempt >= self.settings.job_max_receives
        backoff = None
        if not progressed:
            state = self.states.get(job.vendor, job.source_id)
            backoff = backoff_after(state.consecutive_failures + 1)
        self.states.record_failure(
            job.vendor,
            job.source_id,
            job.job_id,
            f"{type(error).__name__}: {error}",
            self.now(),
            backoff,
            dead_lettered,
            mark=self._mark,
            counts=self._unsaved.taken(),
        )
        logger.error(
            "Collection job failed",
            extra={
                "vendor": job.vendor,
                "source_id": job.source_id,
                "job_id": job.job_id,
                "attempt": self.attempt,
                "dead_lettered": dead_lettered,
                "pages": self._pages,
                "counted_as_failure": not progressed,
                "error": str(error),
            },
        )

    def _read_until(self) -> datetime:
        """How far a scheduled job reads (before the settle delay): its scheduled time, and as much later as its message
        waited on the queue - so a job that waited behind others (a vendor's workers busy, a continuation's delay)
        reads what arrived meanwhile instead of leaving it to the next job, a whole lookback re-read later. The wait is
        measured in this runner's clock, from the message's send time to now, and counts only for a message sent at
        or after the job's scheduled time."""
        job, sent = self.job, self.sent_at
        if sent is None or sent < job.scheduled_at:
            return job.scheduled_at
        return job.scheduled_at + max(timedelta(0), self.now() - sent)

    def _window(self, state: CollectorState, lookback: timedelta, settle: timedelta) -> Window:
        job = self.job
        if job.window_start is not None and job.window_end is not None:
            return Window(job.window_start, job.window_end)
        end = self._until - settle
        if state.high_water_mark is not None:
            start = state.high_water_mark - lookback
        elif state.history_start is not None:
            start = state.history_start  # fixed by the source's first job, so later runs cannot slide past it
        else:
            start = job.scheduled_at - timedelta(hours=self.settings.initial_history_hours)
            self.states.set_history_start(job.vendor, job.source_id, start)
        return Window(start, end)

    # ------------------------------------------------------------------ chunks and passes
    def _read_window(self, adapter: VendorAdapter, window: Window, state: CollectorState) -> None:
        checkpoint = state.checkpoint if state.checkpoint and state.checkpoint.job_id == self.job.job_id else None
        chunk_start = checkpoint.chunk_start if checkpoint else window.start
        span = (checkpoint.chunk_end - checkpoint.chunk_start) if checkpoint else window.end - window.start
        scheduled = self.job.mode == "scheduled"
        while chunk_start <= window.end:
            chunk_end = checkpoint.chunk_end if checkpoint else min(window.end, chunk_start + span)
            consistent, chunk_end, shrunk = self._read_chunk(adapter, window, chunk_start, chunk_end, checkpoint)
            checkpoint = None
            if not consistent:
                self.outcome.complete = False
                if scheduled:
                    break  # the mark stays before this chunk, and the next run starts from it again
            elif scheduled and (self._stored_mark is None or chunk_end > self._stored_mark):
                self._mark = chunk_end  # written with the job's next state write
            # The next chunk spans as much as this one held; one shrunk for changing data grows back by doubling.
            span = max(chunk_end - chunk_start, timedelta(seconds=1)) * (2 if shrunk else 1)
            chunk_start = chunk_end + ONE_TICK
            self._report(window, chunk_end)

    def _read_chunk(
        self,
        adapter: VendorAdapter,
        window: Window,
        chunk_start: datetime,
        chunk_end: datetime,
        checkpoint: Checkpoint | None,
    ) -> tuple[bool, datetime, bool]:
        """Read one chunk to a consistent result; returns (consistent, the chunk's end as narrowed, whether it was
        shrunk for changing data)."""
        source_id = self.job.source_id
        # The position in this pass of the chunk: saved after every page, resumed from after a crash.
        at = checkpoint or Checkpoint(job_id=self.job.job_id, chunk_start=chunk_start, chunk_end=chunk_end)
        self._at = at
        page_size = 1  # the most records one response returned: what one page holds
        shrunk = False
        while True:
            while True:
                # Hand over only after some progress here, so a short-lived invocation cannot loop forever.
                if self._pages and self.remaining_seconds() < CONTINUE_BELOW_SECONDS:
                    raise _ContinueLater(at)
                try:
                    page = adapter.fetch_page(
                        source_id, Window(at.chunk_start, at.chunk_end), at.cursor, self.job.action
                    )
                except Exception as error:
                    if not self._go_on_after(adapter, error):
                        raise
                    continue  # the same page again, from where the job stands
                self._errors_in_a_row = 0
                if at.cursor is None:
                    at.total_first = page.total
                    narrower = self._narrowed(at.chunk_start, at.chunk_end, page.total)
                    if narrower is not None:
                        at.chunk_end = narrower
                        continue
                stored, quarantined = self._store(adapter, page)
                page_size = max(page_size, len(page.items))
                at.read += len(page.items)
                at.cursor = page.next_cursor
                self._unsaved.stored += stored
                self._unsaved.quarantined += quarantined
                self._unsaved.pages += 1 if stored or quarantined else 0
                if at.cursor is not None:
                    # Where the next page starts. After a pass's last page nothing is saved: what follows (the chunk
                    # read again, the next chunk's first page, or the job's end) saves what is then true, and a job
                    # killed before that re-reads this pass from its last checkpoint.
                    self._save(at)
                self._report(window, at.chunk_start)
                if at.cursor is None:
                    break
            if page.total is None or at.total_first == page.total == at.read:
                return True, at.chunk_end, shrunk
            at.passes += 1
            logger.warning(
                "Records changed while paging; reading the chunk again",
                extra={
                    "vendor": self.job.vendor,
                    "source_id": source_id,
                    "chunk_start": at.chunk_start.isoformat(),
                    "chunk_end": at.chunk_end.isoformat(),
                    "total_first": at.total_first,
                    "total_last": page.total,
                    "read": at.read,
                    "pass": at.passes,
                },
            )
            if at.passes >= MAX_PASSES:
                # Fewer pages leave less room for change: shrink the chunk towards what one page holds (at least
                # halving it). A chunk that fits in one page is read in one response, which cannot change under
                # the client, so this ends - unless one second holds more than a page.
                if at.chunk_end - at.chunk_start <= timedelta(seconds=1):
                    return False, at.chunk_end, True
                at.chunk_end = self._shrunk(at.chunk_start, at.chunk_end, page_size, page.total)
                at.passes = 0
                shrunk = True
            at.cursor, at.total_first, at.read = None, None, 0

    def _go_on_after(self, adapter: VendorAdapter, error: Exception) -> bool:
        """Whether to pause and go on in this invocation after a vendor error its client gave up retrying: only once
        this invocation has stored a page (the vendor answers: flaky, not down), short of MAX_ERRORS_IN_A_ROW errors
        without a page between them, and with time for the pause and more. Otherwise the error goes up: the job hands
        over (having made progress) or fails."""
        pause = resume_pause_seconds()
        if not (self._pages and goes_on_after(error)) or self._errors_in_a_row >= MAX_ERRORS_IN_A_ROW - 1:
            return False
        if self.remaining_seconds() < CONTINUE_BELOW_SECONDS + pause:
            return False
        self._errors_in_a_row += 1
        adapter.calls.record(error)  # a failure the adapter found in a body (its client's are counted already)
        logger.warning(
            "Vendor error after progress; the job goes on from where it stands after a pause",
            extra={
                "vendor": self.job.vendor,
                "source_id": self.job.source_id,
                "job_id": self.job.job_id,
                "pages": self._pages,
                "in_a_row": self._errors_in_a_row,
                "pause_seconds": pause,
                "error": str(error),
            },
        )
        self.sleep(pause)
        return True

    @staticmethod
    def _shrunk(start: datetime, end: datetime, page_size: int, total: int) -> datetime:
        """A chunk end at most half as far, and about as far as one page of records reaches."""
        fraction = min(0.5, page_size / max(total, 1))
        return max(start + (end - start) * fraction, start + timedelta(seconds=1))

    @staticmethod
    def _narrowed(start: datetime, end: datetime, total: int | None) -> datetime | None:
        """A shorter chunk end when the vendor has more records in this chunk than one chunk should hold."""
        if total is None or total <= MAX_CHUNK_RECORDS or end - start <= timedelta(seconds=1):
            return None
        return start + (end - start) * (0.8 * MAX_CHUNK_RECORDS / total)

    # ------------------------------------------------------------------ storage
    def _store(self, adapter: VendorAdapter, page: Page) -> tuple[int, int]:
        job = self.job
        fetched_at = self.now()
        self._pages += 1
        # Where the page is archived, if it is: only a page holding records to write (new or changed) or an item that
        # could not be read is, as records point there for their raw forms (``raw_ref``) and quarantined items name it.
        # A lookback re-read finding nothing new costs no PUT; the records it re-read point at the page that first
        # brought them.
        number = self._pages
        key = page_key(job.vendor, job.source_id, job.job_id, fetched_at, number)
        archived = False

        def archive_page() -> None:
            nonlocal archived
            if not archived:
                self.archive.put_page(
                    job.vendor,
                    job.source_id,
                    job.job_id,
                    fetched_at,
                    page.request,
                    page.body,
                    number,
                    page.items_at,
                )
                archived = True

        records: list[LogRecord] = []
        raw_refs: list[str] = []  # each record's place in the archived page, where its raw form is
        quarantined = 0
        for index, item in enumerate(page.items):
            try:
                records.append(adapter.normalize(job.source_id, item))
                raw_refs.append(raw_ref(key, index))
            except ValueError as error:
                quarantined += 1
                archive_page()
                self.archive.quarantine(job.vendor, job.source_id, fetched_at, item, str(error), key, index)
                logger.warning(
                    "Record quarantined",
                    extra={
                        "vendor": job.vendor,
                        "source_id": job.source_id,
                        "page": key,
                        "index": index,
                        "reason": str(error),
                    },
                )

        def before_writing(changed: list[LogRecord]) -> None:
            # New and changed records only (a lookback re-read is mostly records stored already): their raw page and
            # their archive for Athena first, then the table, so a record the table holds is in both archives, even
            # when a retry finds it unchanged. The checkpoint (saved by the caller) moves only after all the writes.
            if changed:
                archive_page()
                self.stores.record_archive.put_page(changed)

        if records:
            newest = max(record.timestamp for record in records)
            if self._newest_record_at is None or newest > self._newest_record_at:
                self._newest_record_at = newest
        stored = self.writer.write(
            records,
            raw_refs if page.items_at is not None else None,
            compare_through=self._stored_through,
            before_writing=before_writing,
            chargers=self._chargers,
        )
        self.outcome.records_stored += stored
        self.outcome.records_quarantined += quarantined
        self.outcome.pages_fetched += 1
        self._observe_health(records)
        return stored, quarantined

    def _observe_health(self, records: list[LogRecord]) -> None:
        """Run the health detectors on a stored page. A failure here never fails the collection: the records are
        stored, and the next scheduled job's lookback feeds them to the detectors again."""
        if self._health is None or not records:
            return
        try:
            tally = self._health.observe(records)
        except Exception:
            self.outcome.health_failures += 1
            logger.exception("Charger health detection failed for a stored page", extra={"records": len(records)})
            return
        self.outcome.alerts_opened += tally.opened
        self.outcome.alerts_resolved += tally.resolved

    def _save(self, checkpoint: Checkpoint) -> None:
        counts = self._unsaved.taken()
        self.states.save_progress(
            self.job.vendor,
            self.job.source_id,
            checkpoint,
            self.now(),
            LEASE_SECONDS,
            stored=counts.stored,
            quarantined=counts.quarantined,
            pages=counts.pages,
            mark=self._mark,
        )
        if self._mark is not None:
            self._stored_mark, self._mark = self._mark, None

    def _report(self, window: Window, covered_until: datetime) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(window, covered_until, self.outcome.records_stored, self.outcome.pages_fetched))


def run_job(
    job: CollectionJob,
    remaining_seconds: Callable[[], float],
    attempt: int = 1,
    *,
    stores: CollectionStores,
    **options: Any,
) -> JobOutcome:
    return JobRunner(job, remaining_seconds, attempt=attempt, stores=stores, **options).run()
