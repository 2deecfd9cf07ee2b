"""Backfills asked for through the API: a past range of one registered source, queued on its vendor's work queue.

The job is the one `chargelog backfill` runs in-process (`CollectionJob.backfill`); here it goes to the vendor's
queue, so the worker runs it like any other job: paced with the vendor's other jobs, checkpointed, retried,
dead-lettered after ``JobMaxReceives`` attempts, visible in ``GET /collectors``. It leaves the high-water mark
alone, and re-reading what is already stored only overwrites records with themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chargelog import collectors
from chargelog.dal.queue import WorkQueues
from chargelog.dal.sources import SourceStore
from chargelog.errors import ChargelogError, ConflictError, NotFoundError
from chargelog.models.jobs import CollectionJob
from chargelog.observability import logger
from chargelog.settings import get_settings

# A client's clock may run this far ahead of ours: "to now" is not refused for a few seconds of skew.
CLOCK_SKEW = timedelta(minutes=5)


class InvalidBackfillError(ChargelogError):
    status = 400
    title = "Bad Request"


def check_range(start: datetime, end: datetime, now: datetime, what: str, within_days: int, kept: str) -> None:
    """Refuse (`InvalidBackfillError`, a 400) a range that is reversed, ends in the future (``what``: why that is
    refused) or starts more than ``within_days`` back (``kept``: what keeps records, or pages, that long)."""
    if end < start:
        raise InvalidBackfillError(f"'from' ({start.isoformat()}) is after 'to' ({end.isoformat()}).")
    if end > now + CLOCK_SKEW:
        raise InvalidBackfillError(f"'to' ({end.isoformat()}) is in the future: {what}.")
    oldest = now - timedelta(days=within_days)
    if start < oldest:
        raise InvalidBackfillError(
            f"'from' ({start.isoformat()}) is more than {within_days} days back ({kept}). Start at "
            f"{oldest.isoformat()} or later."
        )


def check_source(vendor: str, source_id: str, sources: SourceStore, doing: str) -> None:
    """Refuse a source that is not registered (404) or whose vendor has no collector (409): nothing can ``doing`` it."""
    if sources.get(vendor, source_id) is None:
        raise NotFoundError(f"Source {vendor}/{source_id} is not registered; add it with POST /sources first.")
    if not collectors.has_adapter(vendor):
        raise ConflictError(f"There is no collector for {vendor} yet, so nothing can {doing} {vendor}/{source_id}.")


def queue_backfill(
    vendor: str,
    source_id: str,
    start: datetime,
    end: datetime,
    action: str | None = None,
    now: datetime | None = None,
    *,
    sources: SourceStore,
    queues: WorkQueues,
) -> CollectionJob:
    """Queue a backfill of ``[start, end]`` (inclusive) of a registered source; returns the queued job.

    The range must be in the past and start within the record archive's retention (``ArchiveRetentionDays``): older
    records would leave the archive as soon as they were written there. A range older than the table's hot window is
    fine: the records stay in the table ``HotRetentionDays`` from their writing, and in the archive after that.
    """
    now = now or datetime.now(UTC)
    settings = get_settings()
    check_range(
        start,
        end,
        now,
        what="a backfill reads a past range; the schedule collects what is still to come",
        within_days=settings.archive_retention_days,
        kept="the record archive's retention, ArchiveRetentionDays: records older than that are kept nowhere",
    )
    check_source(vendor, source_id, sources, doing="backfill")
    job = CollectionJob.backfill(vendor, source_id, start, end, now, action)
    queues.of(vendor).send([job])
    logger.info(
        "Backfill queued",
        extra={
            "vendor": vendor,
            "source_id": source_id,
            "job_id": job.job_id,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "action": action,
        },
    )
    return job
