"""GET /collectors: per source, how collection is going - marks, lag, counts, errors, queued work, replays; and the
backfill and replay of one source's range."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import ConfigDict, Field

from chargelog import stores
from chargelog.api import problems
from chargelog.models.base import Model
from chargelog.models.fields import SourceId
from chargelog.models.jobs import CollectionJob
from chargelog.models.logs import ActionName, RangeBound
from chargelog.models.replays import Replay
from chargelog.vendors import Vendor

router = Router()


class QueueHealth(Model):
    queue: str = Field(description="A vendor's work queue, or 'dead-letter'")
    visible: int = Field(description="Jobs waiting to be picked up")
    in_flight: int = Field(description="Jobs a worker is running (or that wait out a failed attempt)")
    delayed: int = Field(description="Jobs queued with a delay (a backfill waiting for a busy source)")


class CollectorHealth(Model):
    vendor: str
    source_id: str
    name: str | None
    enabled: bool | None
    status: Literal["ok", "retrying", "failing", "backing_off", "never_run", "no_collector", "unregistered"] = Field(
        description=(
            "retrying: the last job met an error after it had stored pages, and goes on from its checkpoint (not a "
            "failure: the vendor answers); failing: jobs fail without progress (consecutive_failures); backing_off: "
            "failing, and left alone until backoff_until; no_collector: the vendor has no collector yet; "
            "unregistered: state of a removed source"
        )
    )
    high_water_mark: datetime | None = Field(description="Every record up to this time is stored")
    lag_seconds: float | None = Field(
        description="Seconds from the high-water mark to now; for a source never collected, from its registration"
    )
    last_run_at: datetime | None
    last_success_at: datetime | None = Field(description="When a job last finished successfully")
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int = Field(
        description="Jobs in a row that failed without storing a page (a job that made progress does not count)"
    )
    backoff_until: datetime | None = Field(description="The schedule leaves the source alone until then")
    records_stored: int
    records_quarantined: int
    pages_fetched: int
    jobs_dead_lettered: int = Field(description="This source's jobs that failed their last attempt")
    running: bool = Field(description="A job is collecting this source now")
    running_job_id: str | None = Field(description="That job's id (a queued backfill's job_id once it runs)")
    job_queued_at: datetime | None = Field(
        default=None,
        description=(
            "The schedule queued a job for this source then and no worker has taken it yet; it queues no other "
            "until one does, or the job has waited an hour (CHARGELOG_JOB_PENDING_SECONDS)"
        ),
    )
    vendor_queue: QueueHealth | None = Field(
        description="The vendor's work queue: jobs for all its sources (SQS does not count them per source)"
    )
    replays: list[Replay] = Field(
        default_factory=list,
        description="The source's latest replays (at most 5, of the last 14 days), newest first",
    )


class CollectorsReport(Model):
    collectors: list[CollectorHealth]
    queues: list[QueueHealth]


@router.get("/collectors", summary="Collector health per source, and queued / dead-lettered jobs")
def list_collectors() -> CollectorsReport:
    from chargelog.logic import health

    report = health.collectors_report(
        states=stores.collector_states(),
        sources=stores.sources(),
        queues=stores.work_queues(),
        replays=stores.replays(),
    )
    return CollectorsReport.model_validate(report)


class BackfillRequest(Model):
    model_config = ConfigDict(extra="forbid")

    start: RangeBound = Field(alias="from", description="Start of the range (inclusive), ISO 8601 with offset")
    end: RangeBound = Field(alias="to", description="End of the range (inclusive), ISO 8601 with offset")
    action: ActionName | None = Field(default=None, description="Only this OCPP action, where the vendor can filter")


@router.post(
    "/collectors/<vendor>/<source_id>/backfill",
    summary="Queue a backfill: collect a past range of one registered source again",
    responses={
        202: {"description": "Queued on the vendor's work queue; follow it in GET /collectors"},
        **problems.responses(
            {
                400: "Invalid range: reversed, in the future, or older than the record archive keeps records.",
                404: "The source is not registered.",
                409: "The vendor has no collector yet.",
            }
        ),
    },
)
def backfill_source(
    vendor: Annotated[Vendor, Path()],
    source_id: Annotated[SourceId, Path()],
    request: Annotated[BackfillRequest, Body()],
) -> Response[CollectionJob]:
    from chargelog.logic import backfills

    job = backfills.queue_backfill(
        vendor,
        source_id,
        request.start,
        request.end,
        request.action,
        sources=stores.sources(),
        queues=stores.work_queues(),
    )
    return Response(status_code=202, content_type="application/json", body=job, headers={"Location": "/collectors"})


class ReplayRequest(Model):
    model_config = ConfigDict(extra="forbid")

    start: RangeBound = Field(alias="from", description="Start of the range (inclusive), ISO 8601 with offset")
    end: RangeBound = Field(alias="to", description="End of the range (inclusive), ISO 8601 with offset")
    fetched_to: RangeBound | None = Field(
        default=None, description="Read only the pages fetched by then (default: now), ISO 8601 with offset"
    )


@router.post(
    "/collectors/<vendor>/<source_id>/replay",
    summary="Queue a replay: rebuild a range's records from the raw archive, without calling the vendor",
    responses={
        202: {"description": "Queued on the vendor's work queue; follow it in GET /collectors (its replays)"},
        **problems.responses(
            {
                400: "Invalid range: from not before to, in the future, older than RawRetentionDays (the raw "
                "archive's), or fetched_to before from.",
                404: "The source is not registered.",
                409: "The vendor has no collector yet.",
            }
        ),
    },
)
def replay_source(
    vendor: Annotated[Vendor, Path()],
    source_id: Annotated[SourceId, Path()],
    request: Annotated[ReplayRequest, Body()],
) -> Response[Replay]:
    from chargelog.logic import replay

    queued = replay.queue_replay(
        vendor,
        source_id,
        request.start,
        request.end,
        request.fetched_to,
        sources=stores.sources(),
        replays=stores.replays(),
        queues=stores.work_queues(),
    )
    return Response(status_code=202, content_type="application/json", body=queued, headers={"Location": "/collectors"})
