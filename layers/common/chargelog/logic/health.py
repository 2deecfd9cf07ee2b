"""Collector health: the state of every source's collector, and the work queues' depths.

SQS counts messages per queue, not per source: each source's entry carries its vendor's queue depth (the jobs
waiting for any of that vendor's sources), whether a job is running on it now (its lease) and which, and how
many of its jobs were dead-lettered (counted by the worker on a job's last attempt), and since when its scheduled
job has waited on the queue (``job_queued_at``, cleared when a worker takes it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chargelog import aws, collectors
from chargelog.dal.sources import SourceStore
from chargelog.dal.state import CollectorState, CollectorStateStore
from chargelog.settings import get_settings
from chargelog.vendors import VENDORS


def _status(state: CollectorState | None, now: datetime, has_collector: bool) -> str:
    if not has_collector and (state is None or state.last_run_at is None):
        return "no_collector"
    if state is None or state.last_run_at is None:
        return "never_run"
    if state.backed_off(now):
        return "backing_off"
    if state.last_error_at and (state.last_success_at is None or state.last_error_at > state.last_success_at):
        return "failing"
    return "ok"


def collectors_report(now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    settings = get_settings()
    states = {(s.vendor, s.source_id): s for s in CollectorStateStore(settings.table_name).list()}
    sources: dict[tuple[str, str], Any] = {(s.vendor, s.source_id): s for s in SourceStore(settings.table_name).list()}
    queues = _queue_depths(settings)
    by_queue = {queue["queue"]: queue for queue in queues}
    rows = []
    for key in sorted(sources.keys() | states.keys()):
        source, state = sources.get(key), states.get(key)
        base = state or CollectorState(vendor=key[0], source_id=key[1])
        running = base.leased(now)
        row = base.model_dump(exclude={"checkpoint", "lease_job_id", "lease_until", "queued_job_id"})
        row.update(
            name=source.name if source else None,
            enabled=source.enabled if source else None,
            status=_status(state, now, collectors.has_adapter(base.vendor)) if source else "unregistered",
            lag_seconds=(now - base.high_water_mark).total_seconds() if base.high_water_mark else None,
            running=running,
            running_job_id=base.lease_job_id if running else None,
            vendor_queue=by_queue.get(base.vendor),
        )
        rows.append(row)
    return {"collectors": rows, "queues": queues}


def _queue_depths(settings: Any) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    queues = [(vendor, settings.queue_url(vendor)) for vendor in VENDORS]
    queues.append(("dead-letter", settings.dead_letter_queue_url))
    depths = []
    for name, url in queues:
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        depths.append(
            {
                "queue": name,
                "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
                "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
                "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
            }
        )
    return depths
