"""Replays: rebuild one source's records of a range from the raw archive, without calling the vendor.

After a normalizer fix, to bring back records deleted from the table, or to rewrite every item of the hot window in
a new item layout. A replay lists the source's pages fetched from the range's start (a record of time t is fetched at
t or later) to ``fetched_to`` (by default when it was asked for), in fetch order; normalizes each page's records again
with the vendor's normalizer (`collectors.normalizer_for`: no secret, no HTTP); keeps those of ``[from, to]`` and
writes them through the collection's `RecordWriter`, comparing digests: an item holding the same is not written again,
so replaying twice writes nothing the second time, and records outside the range are not touched. A record that
several pages hold (a lookback re-reads its last minutes) is written once per run, as the latest page fetched has it;
its ``raw_ref`` points at the page replayed.

Like a collection job, a replay runs on its vendor's work queue; when the Lambda's time runs low it saves its place
(the last page written, in its progress item: `chargelog.dal.replays`) and re-enqueues itself. A retry after a crash
re-reads the pages after that place: rewriting them changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from chargelog import collectors, json_pointer
from chargelog.collectors import Normalizer
from chargelog.dal.archive import ArchivedObjectGone, RawArchive, page_fetched_at, raw_ref
from chargelog.dal.queue import SEND_FAILURES, WorkQueues
from chargelog.dal.record_archive import RecordArchive
from chargelog.dal.records import RecordWriter
from chargelog.dal.replays import ReplayGone, ReplayStore
from chargelog.dal.sources import SourceStore
from chargelog.errors import ConflictError
from chargelog.logic.backfills import CLOCK_SKEW, InvalidBackfillError, check_range, check_source
from chargelog.logic.charger_health.monitor import ChargerHealthMonitor, ChargerHealthStores
from chargelog.logic.collection import CONTINUE_BELOW_SECONDS, EVERYTHING
from chargelog.metric_names import VendorMetric
from chargelog.models.jobs import ReplayJob
from chargelog.models.records import LogRecord
from chargelog.models.replays import Replay, replay_id_for
from chargelog.observability import logger
from chargelog.settings import get_settings

# Pages read between two progress saves: a crash re-reads at most this many (rewriting nothing).
PAGES_PER_SAVE = 20
# Records remembered per run to write each once (a fingerprint each); past this many the memory starts afresh, and
# the writer's digest comparison keeps the rest from being written twice.
MAX_REMEMBERED = 200_000


@dataclass(frozen=True)
class ReplayStores:
    """What a replay reads and writes: its progress, the raw archive, the records (table and archive), the queues;
    with ``health``, the charger health detectors see the replayed records as they see a job's (docs/health.md: what
    they saw already changes nothing, so a replay never opens a second alert for an episode)."""

    replays: ReplayStore
    archive: RawArchive
    writer: RecordWriter
    record_archive: RecordArchive
    queues: WorkQueues
    health: ChargerHealthStores | None = None


def utc_now() -> datetime:
    return datetime.now(UTC)


def queue_replay(
    vendor: str,
    source_id: str,
    start: datetime,
    end: datetime,
    fetched_to: datetime | None = None,
    now: datetime | None = None,
    *,
    sources: SourceStore,
    replays: ReplayStore,
    queues: WorkQueues,
) -> Replay:
    """Check a replay of ``[start, end]`` of a registered source, store its progress item (queued) and queue its job on
    the vendor's work queue; returns the replay. ``fetched_to``: read only pages fetched by then (default: now)."""
    now = now or utc_now()
    job = replay_job(vendor, source_id, start, end, fetched_to, now)
    check_source(vendor, source_id, sources, doing="replay")
    replay = new_replay(job)
    replays.create(replay)
    try:
        queues.of(vendor).send([job])
    except SEND_FAILURES as error:
        replays.finish(vendor, source_id, job.job_id, "failed", now, f"could not be queued: {error}")
        raise
    logger.info(
        "Replay queued",
        extra={
            "vendor": vendor,
            "source_id": source_id,
            "replay_id": job.job_id,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "fetched_to": job.fetched_to.isoformat(),
        },
    )
    return replay


def new_replay(job: ReplayJob) -> Replay:
    """A replay's progress item as it starts: queued, nothing read yet."""
    return Replay.model_validate(
        {
            "replay_id": job.job_id,
            "vendor": job.vendor,
            "source_id": job.source_id,
            "window_start": job.window_start,
            "window_end": job.window_end,
            "fetched_to": job.fetched_to,
            "state": "queued",
            "created_at": job.scheduled_at,
            "updated_at": job.scheduled_at,
        }
    )


def replay_job(
    vendor: str, source_id: str, start: datetime, end: datetime, fetched_to: datetime | None, now: datetime
) -> ReplayJob:
    """A replay's job after checking its range (`InvalidBackfillError`, a 400): ``from`` before ``to``, neither in the
    future nor older than RawRetentionDays (the raw archive keeps pages that long), ``fetched_to`` (default now)
    not before ``from`` nor in the future."""
    if end <= start:
        raise InvalidBackfillError(f"'from' ({start.isoformat()}) is not before 'to' ({end.isoformat()}).")
    check_range(
        start,
        end,
        now,
        what="a replay rebuilds records fetched already",
        within_days=get_settings().raw_retention_days,
        kept="the raw archive's retention, RawRetentionDays: the pages fetched before are gone",
    )
    fetched_to = fetched_to or now
    if fetched_to < start:
        raise InvalidBackfillError(
            f"'fetched_to' ({fetched_to.isoformat()}) is before 'from' ({start.isoformat()}): no page fetched by then "
            "holds a record of the range."
        )
    if fetched_to > now + CLOCK_SKEW:
        raise InvalidBackfillError(f"'fetched_to' ({fetched_to.isoformat()}) is in the future.")
    if not collectors.has_normalizer(vendor):
        raise ConflictError(f"The {vendor} collector cannot normalize archived pages, so nothing can replay them.")
    return ReplayJob.model_validate(
        {
            "job_id": replay_id_for(now, uuid.uuid4().hex),
            "vendor": vendor,
            "source_id": source_id,
            "window_start": start,
            "window_end": end,
            "fetched_to": fetched_to,
            "scheduled_at": now,
        }
    )


@dataclass
class ReplayOutcome:
    status: Literal["done", "continued", "stopped"]
    pages_read: int = 0
    records_read: int = 0
    records_written: int = 0
    records_quarantined: int = 0
    pages_unreadable: int = 0

    def metrics(self) -> dict[VendorMetric, int]:
        """The replay's vendor metrics (chargelog.metric_names), written with its vendor as a dimension."""
        return {
            VendorMetric.REPLAY_RECORDS_WRITTEN: self.records_written,
            VendorMetric.RECORDS_QUARANTINED: self.records_quarantined,
            VendorMetric.JOBS_REENQUEUED: int(self.status == "continued"),
        }

    def counts(self) -> dict[str, int]:
        return {
            "pages_read": self.pages_read,
            "records_read": self.records_read,
            "records_written": self.records_written,
            "records_quarantined": self.records_quarantined,
            "pages_unreadable": self.pages_unreadable,
        }


@dataclass(frozen=True)
class ReplayProgress:
    """How far a replay has got, for progress bars: the fetch time of its last page read, within the fetch range."""

    job: ReplayJob
    fetched_until: datetime
    outcome: ReplayOutcome

    @property
    def fraction(self) -> float:
        span = (self.job.fetched_to - self.job.window_start).total_seconds()
        done = (self.fetched_until - self.job.window_start).total_seconds()
        return 1.0 if span <= 0 else max(0.0, min(1.0, done / span))


def _entries(document: Any) -> list[Any] | None:
    """An archived page's vendor records (``body`` at ``items_at``); None when the page does not say where they are."""
    if not isinstance(document, dict) or document.get("items_at") is None:
        return None
    try:
        entries = json_pointer.resolve(document.get("body"), str(document["items_at"]))
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return entries if isinstance(entries, list) else None


def _fingerprint(record: LogRecord) -> bytes:
    return hashlib.blake2b(record.model_dump_json().encode(), digest_size=12).digest()


@dataclass
class ReplayRunner:
    """Runs one replay job against the raw archive and the table."""

    job: ReplayJob
    remaining_seconds: Callable[[], float]
    stores: ReplayStores
    now: Callable[[], datetime] = utc_now
    on_progress: Callable[[ReplayProgress], None] | None = None
    outcome: ReplayOutcome = field(default_factory=lambda: ReplayOutcome(status="done"))
    # This run's records by id: a fingerprint of what was written (or found) for each.
    _seen: dict[str, bytes] = field(default_factory=dict)
    _health: ChargerHealthMonitor | None = None

    def __post_init__(self) -> None:
        if self.stores.health is not None:
            self._health = self.stores.health.monitor()

    def run(self) -> ReplayOutcome:
        job, replays = self.job, self.stores.replays
        normalize = collectors.normalizer_for(job.vendor)
        unsaved = ReplayOutcome(status="done")  # counted since the last save
        last_key: str | None = None
        try:
            after = replays.after_key(job.vendor, job.source_id, job.job_id)
            pages = self.stores.archive.list_pages(
                job.vendor, job.source_id, job.window_start, job.fetched_to, after=after
            )
            for key in pages:
                if self.outcome.pages_read and self.remaining_seconds() < CONTINUE_BELOW_SECONDS:
                    self._save(last_key, unsaved)
                    self.stores.queues.of(job.vendor).send([job])
                    self.outcome.status = "continued"
                    return self.outcome
                self._replay_page(key, normalize, unsaved)
                last_key = key
                if unsaved.pages_read + unsaved.pages_unreadable >= PAGES_PER_SAVE:
                    self._save(last_key, unsaved)
                    unsaved = ReplayOutcome(status="done")
            self._save(last_key, unsaved)
            replays.finish(job.vendor, job.source_id, job.job_id, "done", self.now())
        except ReplayGone as gone:
            # Its item was deleted (a way to stop a replay) or has expired: nothing to report progress to.
            logger.warning(
                "Replay stopped: its progress item is gone", extra={"replay_id": job.job_id, "error": str(gone)}
            )
            self.outcome.status = "stopped"
            return self.outcome
        except Exception as error:
            with contextlib.suppress(ReplayGone):
                replays.finish(
                    job.vendor, job.source_id, job.job_id, "failed", self.now(), f"{type(error).__name__}: {error}"
                )
            logger.error(
                "Replay failed",
                extra={"vendor": job.vendor, "source_id": job.source_id, "replay_id": job.job_id, "error": str(error)},
            )
            raise
        return self.outcome

    def _replay_page(self, key: str, normalize: Normalizer, unsaved: ReplayOutcome) -> None:
        job = self.job
        try:
            document = self.stores.archive.read(key)
        except ArchivedObjectGone:
            document = None  # expired since it was listed
        entries = _entries(document)
        if entries is None:
            # Archived before pages said where their records are (the records kept their raw forms in the table), or
            # expired since it was listed.
            self._count(unsaved, pages_unreadable=1)
            return
        fetched_at = page_fetched_at(key) or job.window_start
        records: list[LogRecord] = []
        refs: list[str] = []
        read = quarantined = 0
        for index, item in enumerate(entries):
            try:
                record = normalize(job.source_id, item)
            except ValueError as error:
                quarantined += 1
                self.stores.archive.quarantine(job.vendor, job.source_id, fetched_at, item, str(error), key, index)
                continue
            if not job.window_start <= record.timestamp <= job.window_end:
                continue
            fingerprint = _fingerprint(record)
            if self._seen.get(record.record_id) == fingerprint:
                continue  # an earlier page of this run held it as it is
            if len(self._seen) >= MAX_REMEMBERED:
                self._seen.clear()
            self._seen[record.record_id] = fingerprint
            read += 1
            records.append(record)
            refs.append(raw_ref(key, index))
        written = self.stores.writer.write(
            records, refs, compare_through=EVERYTHING, before_writing=self.stores.record_archive.put_page
        )
        self._count(unsaved, pages_read=1, records_read=read, records_written=written, records_quarantined=quarantined)
        self._observe_health(records)
        if self.on_progress is not None:
            self.on_progress(ReplayProgress(job, fetched_at, self.outcome))

    def _observe_health(self, records: list[LogRecord]) -> None:
        """The detectors see the replayed records (a failure there never fails the replay: the records are stored)."""
        if self._health is None or not records:
            return
        try:
            self._health.observe(records)
        except Exception:
            logger.exception("Charger health detection failed for a replayed page", extra={"records": len(records)})

    def _count(self, unsaved: ReplayOutcome, **counts: int) -> None:
        for name, value in counts.items():
            setattr(unsaved, name, getattr(unsaved, name) + value)
            setattr(self.outcome, name, getattr(self.outcome, name) + value)

    def _save(self, last_key: str | None, unsaved: ReplayOutcome) -> None:
        self.stores.replays.progress(
            self.job.vendor,
            self.job.source_id,
            self.job.job_id,
            self.now(),
            after_key=last_key,
            counts=unsaved.counts(),
        )


def run_replay(
    job: ReplayJob, remaining_seconds: Callable[[], float], *, stores: ReplayStores, **options: Any
) -> ReplayOutcome:
    return ReplayRunner(job, remaining_seconds, stores, **options).run()


def recent_replays(replays: ReplayStore, per_source: int) -> dict[tuple[str, str], list[Replay]]:
    """Each source's latest ``per_source`` replays (of the last 14 days), newest first."""
    by_source: dict[tuple[str, str], list[Replay]] = {}
    for replay in replays.list():
        by_source.setdefault((replay.vendor, replay.source_id), []).append(replay)
    return {
        key: sorted(found, key=lambda r: r.replay_id, reverse=True)[:per_source] for key, found in by_source.items()
    }
