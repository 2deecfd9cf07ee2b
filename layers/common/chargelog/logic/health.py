"""Collector health: the state of every source's collector, and the work queues' depths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chargelog import aws
from chargelog.dal.sources import SourceStore
from chargelog.dal.state import CollectorState, CollectorStateStore
from chargelog.settings import get_settings
from chargelog.vendors import VENDORS


def _status(state: CollectorState | None, now: datetime) -> str:
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
    rows = []
    for key in sorted(sources.keys() | states.keys()):
        source, state = sources.get(key), states.get(key)
        base = state or CollectorState(vendor=key[0], source_id=key[1])
        row = base.model_dump(exclude={"checkpoint", "lease_job_id", "lease_until"})
        row.update(
            name=source.name if source else None,
            enabled=source.enabled if source else None,
            status=_status(state, now) if source else "unregistered",
            lag_seconds=(now - base.high_water_mark).total_seconds() if base.high_water_mark else None,
        )
        rows.append(row)
    return {"collectors": rows, "queues": _queue_depths(settings)}


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
