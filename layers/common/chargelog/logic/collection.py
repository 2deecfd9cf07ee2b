"""Scheduled collection: fan out one job per enabled source, and run a job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from chargelog import collectors
from chargelog.collectors import CollectionResult
from chargelog.dal.queue import WorkQueue
from chargelog.dal.sources import SourceStore
from chargelog.errors import ChargelogError
from chargelog.models.jobs import CollectionJob
from chargelog.settings import get_settings


@dataclass(frozen=True)
class DispatchSummary:
    enqueued: int
    without_collector: int


class CollectorUnavailableError(ChargelogError):
    status = 409
    title = "No Collector"


def dispatch(now: datetime) -> DispatchSummary:
    """Enqueue a job for every enabled source whose vendor has a collector."""
    settings = get_settings()
    jobs: list[CollectionJob] = []
    without_collector = 0
    for source in SourceStore(settings.table_name).list(enabled_only=True):
        if not collectors.has_collector(source.vendor):
            without_collector += 1
            continue
        jobs.append(CollectionJob(vendor=source.vendor, source_id=source.source_id, scheduled_at=now))
    enqueued = WorkQueue(settings.work_queue_url).send(jobs)
    return DispatchSummary(enqueued=enqueued, without_collector=without_collector)


def run_job(job: CollectionJob, remaining_ms: Callable[[], int]) -> CollectionResult:
    collector = collectors.for_vendor(job.vendor)
    if collector is None:
        raise CollectorUnavailableError(f"No collector is installed for vendor {job.vendor!r}.")
    return collector.collect(job, remaining_ms)
