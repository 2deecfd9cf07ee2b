"""Collector health: the state of every source's collector, and the work queues' depths.

SQS counts messages per queue, not per source: each source's entry carries its vendor's queue depth (the jobs
waiting for any of that vendor's sources), whether a job is running on it now (its lease) and which, and how
many of its jobs were dead-lettered (counted by the worker on a job's last attempt), and since when its scheduled
job has waited on the queue (``job_queued_at``, cleared when a worker takes it), and its latest replays.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chargelog import collectors
from chargelog.dal.queue import WorkQueues
from chargelog.dal.replays import ReplayStore
from chargelog.dal.sources import SourceStore
from chargelog.dal.state import CollectorState, CollectorStateStore
from chargelog.logic.lag import lag_seconds
from chargelog.logic.replay import recent_replays
from chargelog.models.sources import Source
from chargelog.vendors import VENDORS

# Replays listed per source in the report (those of the last 14 days: their items expire then).
REPLAYS_PER_SOURCE = 5


def _status(state: CollectorState | None, now: datetime, has_collector: bool) -> str:
    if not has_collector and (state is None or state.last_run_at is None):
        return "no_collector"
    if state is None or state.last_run_at is None:
        return "never_run"
    if state.backed_off(now):
        return "backing_off"
    if state.last_error_at and (state.last_success_at is None or state.last_error_at > state.last_success_at):
        # A job that made progress before its error does not count as failing (chargelog.logic.collection): it goes
        # on from its checkpoint, and the source is "retrying" until it finishes.
        return "failing" if state.consecutive_failures else "retrying"
    return "ok"


def collectors_report(
    now: datetime | None = None,
    *,
    states: CollectorStateStore,
    sources: SourceStore,
    queues: WorkQueues,
    replays: ReplayStore | None = None,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    replayed = recent_replays(replays, REPLAYS_PER_SOURCE) if replays is not None else {}
    by_source = {(s.vendor, s.source_id): s for s in states.list()}
    registered: dict[tuple[str, str], Source] = {(s.vendor, s.source_id): s for s in sources.list()}
    depths = _queue_depths(queues)
    by_queue = {queue["queue"]: queue for queue in depths}
    rows = []
    for key in sorted(registered.keys() | by_source.keys()):
        source, state = registered.get(key), by_source.get(key)
        base = state or CollectorState(vendor=key[0], source_id=key[1])
        running = base.leased(now)
        row = base.model_dump(exclude={"checkpoint", "lease_job_id", "lease_until", "queued_job_id"})
        row.update(
            name=source.name if source else None,
            enabled=source.enabled if source else None,
            status=_status(state, now, collectors.has_adapter(base.vendor)) if source else "unregistered",
            lag_seconds=lag_seconds(base, source, now),
            running=running,
            running_job_id=base.lease_job_id if running else None,
            vendor_queue=by_queue.get(base.vendor),
            replays=[replay.model_dump() for replay in replayed.get(key, [])],
        )
        rows.append(row)
    return {"collectors": rows, "queues": depths}


def _queue_depths(queues: WorkQueues) -> list[dict[str, Any]]:
    named = [(vendor, queues.of(vendor)) for vendor in VENDORS]
    named.append(("dead-letter", queues.dead_letter))
    return [{"queue": name, **queue.depth()} for name, queue in named]
