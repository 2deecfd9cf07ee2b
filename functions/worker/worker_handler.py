"""A vendor's work queue -> run each collection, discovery or replay job; failed jobs are retried, then to the DLQ.

Most jobs collect: discovery and replay load when a job of theirs comes (and a vendor's adapter when its vendor's
first job does, chargelog.collectors), not at cold start.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import TypeAdapter

from chargelog import stores
from chargelog.logic import collection
from chargelog.models.jobs import DiscoveryJob, ReplayJob, WorkItem
from chargelog.observability import keys_per_record, logger, metrics, publish_vendor_metrics, tracer

# Each record's body is parsed here, not by a Powertools parser model: that would load every event model of
# Powertools' parser (tens of milliseconds of cold start) for one field. The batch utility loads them too when
# pydantic is imported before it (for type hints), so it is imported first (tests/unit/test_cold_start.py).
processor = BatchProcessor(event_type=EventType.SQS)
work_items = TypeAdapter[WorkItem](WorkItem)


def _remaining_seconds(context: LambdaContext) -> Callable[[], float]:
    return lambda: context.get_remaining_time_in_millis() / 1000


@keys_per_record
@tracer.capture_method
def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    job = work_items.validate_json(record.body)  # invalid: the record fails, is retried, then dead-lettered
    logger.set_correlation_id(job.correlation_id)
    if isinstance(job, DiscoveryJob):
        _discover(job, lambda_context)
        return
    if isinstance(job, ReplayJob):
        _replay(job, lambda_context)
        return
    logger.append_keys(vendor=job.vendor, source_id=job.source_id, job_id=job.job_id)
    attempt = int(record.attributes.approximate_receive_count)
    outcome = collection.run_job(
        job,
        _remaining_seconds(lambda_context),
        attempt=attempt,
        stores=stores.collection(),
        on_finish=lambda finished: publish_vendor_metrics(job.vendor, finished.metrics()),
        # A job that waited on the queue reads what arrived meanwhile.
        sent_at=datetime.fromtimestamp(int(record.attributes.sent_timestamp) / 1000, UTC),
    )
    logger.info(
        "Job finished",
        extra={
            "status": outcome.status,
            "records": outcome.records_stored,
            "quarantined": outcome.records_quarantined,
            "pages": outcome.pages_fetched,
            "requests": outcome.vendor_requests,
            "complete": outcome.complete,
            "detail": outcome.detail,
            "alerts_opened": outcome.alerts_opened,
            "alerts_resolved": outcome.alerts_resolved,
            "health_failures": outcome.health_failures,
        },
    )


def _replay(job: ReplayJob, context: LambdaContext) -> None:
    from chargelog.logic import replay

    logger.append_keys(vendor=job.vendor, source_id=job.source_id, replay_id=job.job_id)
    outcome = replay.run_replay(job, _remaining_seconds(context), stores=stores.replay())
    publish_vendor_metrics(job.vendor, outcome.metrics())
    messages = {"done": "Replay finished", "continued": "Replay continues", "stopped": "Replay stopped"}
    logger.info(messages[outcome.status], extra=outcome.counts())


def _discover(job: DiscoveryJob, context: LambdaContext) -> None:
    from chargelog.logic import discovery

    logger.append_keys(vendor=job.vendor, job_id=job.job_id)
    outcome = discovery.run_discovery_job(
        job,
        _remaining_seconds(context),
        sources=stores.sources(),
        secrets=stores.vendor_secrets(),
        queues=stores.work_queues(),
        states=stores.collector_states(),
    )
    publish_vendor_metrics(job.vendor, outcome.metrics())
    extra = {
        "status": outcome.status,
        "found": outcome.found,
        "registered": outcome.registered,
        "enqueued": outcome.enqueued,
        "detail": outcome.detail,
    }
    if outcome.status == "vendor_failed":
        logger.error("Source discovery failed", extra=extra)
    else:
        logger.info("Source discovery finished", extra=extra)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
