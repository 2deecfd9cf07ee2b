"""SQS work queue -> run each collection job; failed jobs are reported back for retry."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Json

from chargelog.logic import collection
from chargelog.models.jobs import CollectionJob
from chargelog.observability import logger, metrics, tracer


class JobRecord(SqsRecordModel):
    body: Json[CollectionJob]


processor = BatchProcessor(event_type=EventType.SQS, model=JobRecord)
_context: LambdaContext | None = None


def _remaining_ms() -> int:
    return _context.get_remaining_time_in_millis() if _context else 60_000


@tracer.capture_method
def record_handler(record: JobRecord) -> None:
    job = record.body
    logger.append_keys(vendor=job.vendor, source_id=job.source_id)
    result = collection.run_job(job, _remaining_ms)
    metrics.add_metric(name="RecordsStored", unit=MetricUnit.Count, value=result.records_stored)
    logger.info("Job done", extra={"records": result.records_stored, "pages": result.pages_fetched})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    global _context
    _context = context
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
