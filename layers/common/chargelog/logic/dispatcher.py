"""The dispatcher's pass: one collection job per due source on its vendor's work queue (the worker runs them:
chargelog.logic.collection), and with source discovery on, a discovery job per vendor. It holds no vendor secret and
loads no adapter, HTTP client or record store (tests/unit/test_cold_start.py)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chargelog import collectors
from chargelog.dal.queue import SEND_FAILURES, WorkQueues
from chargelog.dal.sources import SourceStore
from chargelog.dal.state import CollectorStateStore
from chargelog.logic import scheduling
from chargelog.logic.lag import lag_seconds
from chargelog.metric_names import ServiceMetric, VendorMetric
from chargelog.models.jobs import CollectionJob, DiscoveryJob
from chargelog.observability import logger
from chargelog.settings import Settings, get_settings
from chargelog.vendors import VENDORS, Vendor


@dataclass(frozen=True)
class DispatchSummary:
    enqueued: int
    without_adapter: int
    not_due: int  # leased by a running job, or backing off after failures
    pending: int = 0  # sources whose scheduled job still waits on the queue (no copy added)
    discoveries: int = 0  # discovery jobs queued (DiscoverSources on)
    discovery_failures: int = 0  # vendors whose discovery job could not be queued
    sources_enabled: int = 0
    # The scheduler's (chargelog.logic.scheduling): sources with nothing expected to collect yet, and due sources the
    # vendor's request budget for the pass left for a later one (per vendor with enabled sources).
    waiting: int = 0
    over_budget: dict[str, int] = field(default_factory=dict)
    # Per vendor with enabled sources: the largest lag among them (chargelog.logic.lag), and how many
    # wait out their backoff after failures.
    lag_seconds: dict[str, float] = field(default_factory=dict)
    backing_off: dict[str, int] = field(default_factory=dict)

    def service_metrics(self) -> dict[ServiceMetric, int]:
        """What every run writes (zeros included: the dispatcher-silent alarm reads JobsEnqueued)."""
        return {ServiceMetric.JOBS_ENQUEUED: self.enqueued, ServiceMetric.SOURCES_ENABLED: self.sources_enabled}

    def vendor_metrics(self) -> dict[str, dict[VendorMetric, float]]:
        """Per vendor with enabled sources, written with the vendor as a dimension."""
        return {
            vendor: {
                VendorMetric.COLLECTOR_LAG: self.lag_seconds[vendor],
                VendorMetric.SOURCES_BACKING_OFF: self.backing_off.get(vendor, 0),
                VendorMetric.SOURCES_OVER_BUDGET: self.over_budget.get(vendor, 0),
            }
            for vendor in sorted(self.lag_seconds)
        }


def scheduling_for(vendor: str, settings: Settings) -> tuple[scheduling.Policy, scheduling.Budget]:
    """The vendor's scheduling policy and request budget for one pass, from the deployment's settings and the
    vendor's documented profile (the dispatcher holds no vendor secret: docs/scheduling.md)."""
    profile = collectors.profile_for(vendor)
    pass_interval = timedelta(minutes=settings.schedule_minutes)
    policy = scheduling.Policy.for_vendor(
        profile,
        settings.scheduling_policy,
        pass_interval,
        timedelta(minutes=settings.max_poll_interval_minutes),
    )
    return policy, scheduling.Budget.of(profile, pass_interval, settings.worker_concurrency)


def dispatch(
    now: datetime, *, sources: SourceStore, states: CollectorStateStore, queues: WorkQueues
) -> DispatchSummary:
    """Enqueue a scheduled job for each enabled source whose vendor has an adapter, that is not busy, backed off after
    failures or still waiting for its last scheduled job, and that the scheduler chooses for this pass
    (chargelog.logic.scheduling: under ``SchedulingPolicy`` ``adaptive``, the sources expected to have records, the
    poked and the new, none left past ``MaxPollIntervalMinutes``, within the vendor's request budget; under
    ``every-pass``, all of them); with source discovery on, first a discovery job per vendor.

    Pending: before a job is queued its source's state is marked (``job_queued_at``, ``queued_job_id``) with a
    conditional write, so two dispatchers never both queue one; the worker clears the mark when it takes the job.
    A mark older than ``CHARGELOG_JOB_PENDING_SECONDS`` no longer holds the source back (a lost message, or a
    dispatcher that died between mark and send). Backfill and discovery jobs leave the mark alone."""
    settings = get_settings()
    discoveries, discovery_failures = _dispatch_discovery(queues, now) if settings.discover_sources else (0, 0)
    known = {(s.vendor, s.source_id): s for s in states.list()}
    pending_for = timedelta(seconds=settings.job_pending_seconds)
    views: dict[Vendor, list[scheduling.SourceView]] = defaultdict(list)
    without_adapter = not_due = pending = enabled = 0
    lag: dict[str, float] = {}
    backing_off: dict[str, int] = defaultdict(int)
    for source in sources.list(enabled_only=True):
        enabled += 1
        state = known.get((source.vendor, source.source_id))
        lag[source.vendor] = max(lag.get(source.vendor, 0.0), lag_seconds(state, source, now) or 0.0)
        backing_off[source.vendor] += int(state is not None and state.backed_off(now))
        if not collectors.has_adapter(source.vendor):
            without_adapter += 1
            continue
        if state is not None and (state.leased(now) or state.backed_off(now)):
            not_due += 1
            if state.leased(now):  # its running job spends the vendor's budget
                views[source.vendor].append(scheduling.view(state, source.source_id, in_flight=True))
            continue
        if state is not None and state.job_pending(now, pending_for):
            pending += 1
            views[source.vendor].append(scheduling.view(state, source.source_id, in_flight=True))
            continue
        views[source.vendor].append(scheduling.view(state, source.source_id))
    jobs: dict[str, list[CollectionJob]] = defaultdict(list)
    waiting = 0
    over_budget: dict[str, int] = {}
    for vendor, candidates in views.items():
        policy, budget = scheduling_for(vendor, settings)
        decision = scheduling.plan(now, candidates, budget, policy)
        waiting += decision.waiting
        over_budget[vendor] = len(decision.deferred)
        for poll in decision.polls:
            job = CollectionJob(vendor=vendor, source_id=poll.source_id, scheduled_at=now)
            if not states.mark_queued(job.vendor, job.source_id, job.job_id, now, stale_before=now - pending_for):
                pending += 1  # another dispatcher queued one since the states were read
                continue
            jobs[vendor].append(job)
    enqueued = _send_marked(states, queues, jobs)
    return DispatchSummary(
        enqueued=enqueued,
        without_adapter=without_adapter,
        not_due=not_due,
        pending=pending,
        discoveries=discoveries,
        discovery_failures=discovery_failures,
        sources_enabled=enabled,
        waiting=waiting,
        over_budget=over_budget,
        lag_seconds=lag,
        backing_off=dict(backing_off),
    )


def _send_marked(store: CollectorStateStore, queues: WorkQueues, jobs: dict[str, list[CollectionJob]]) -> int:
    """Send each vendor's marked jobs; if a send fails, clear the marks of the jobs not known to be sent (so the next
    schedule queues them again) and raise."""
    enqueued = 0
    sent: set[str] = set()
    try:
        for vendor, batch in jobs.items():
            enqueued += queues.of(vendor).send(batch)
            sent.update(job.job_id for job in batch)
    except Exception:
        for job in (job for batch in jobs.values() for job in batch if job.job_id not in sent):
            store.clear_queued(job.vendor, job.source_id, job.job_id)
        raise
    return enqueued


def _dispatch_discovery(queues: WorkQueues, now: datetime) -> tuple[int, int]:
    """A discovery job on each vendor's work queue, run by the worker (which holds the vendor secrets and
    skips vendors without credentials). One vendor's queue failing never stops the others."""
    queued = failed = 0
    for vendor in VENDORS:
        if not collectors.has_adapter(vendor):
            continue
        try:
            job = DiscoveryJob.model_validate({"vendor": vendor, "scheduled_at": now})
            queued += queues.of(vendor).send([job])
        except SEND_FAILURES as error:
            failed += 1
            logger.error("Could not queue source discovery", extra={"vendor": vendor, "error": str(error)})
    return queued, failed
