"""GET /collectors: per source, how collection is going - marks, lag, counts, errors, queued work."""

from __future__ import annotations

from datetime import datetime

from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel

from chargelog.logic import health

router = Router()


class CollectorHealth(BaseModel):
    vendor: str
    source_id: str
    name: str | None
    enabled: bool | None
    status: str  # ok | failing | backing_off | never_run | unregistered
    high_water_mark: datetime | None
    lag_seconds: float | None
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    backoff_until: datetime | None
    records_stored: int
    records_quarantined: int
    pages_fetched: int
    jobs_dead_lettered: int


class QueueHealth(BaseModel):
    queue: str  # a vendor, or "dead-letter"
    visible: int
    in_flight: int
    delayed: int


class CollectorsReport(BaseModel):
    collectors: list[CollectorHealth]
    queues: list[QueueHealth]


@router.get("/collectors", summary="Collector health per source, and queued / dead-lettered jobs")
def list_collectors() -> CollectorsReport:
    report = health.collectors_report()
    return CollectorsReport.model_validate(report)
