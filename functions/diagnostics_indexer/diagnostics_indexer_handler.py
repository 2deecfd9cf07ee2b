"""S3 -> SQS -> here: each upload API Gateway stored under incoming/ becomes a recorded diagnostics file.

Logic: chargelog.logic.upload_indexer. A record that fails (S3 or DynamoDB errors) is reported back, so SQS
retries it and, past maxReceiveCount, moves it to the dead-letter queue.
"""

import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chargelog import stores
from chargelog.logic import upload_indexer
from chargelog.metric_names import ServiceMetric
from chargelog.observability import add_service_metric, keys_per_record, logger, metrics, tracer
from chargelog.settings import get_settings

processor = BatchProcessor(event_type=EventType.SQS)


@keys_per_record
@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    body = json.loads(record.body)
    if body.get("Event") == "s3:TestEvent":
        return  # S3 checks the destination with this when the notification is configured
    for s3_record in S3Event(body).records:
        if not s3_record.event_name.startswith("ObjectCreated:"):
            continue
        # Keys in S3 event notifications are URL-encoded, spaces as "+".
        key = unquote_plus(s3_record.s3.get_object.key)
        outcome = upload_indexer.index_upload(
            key,
            store=stores.diagnostics(),
            files=stores.diagnostics_files(s3_record.s3.bucket.name),
            limits=get_settings().upload_limits(),
        )
        if outcome.file is not None and not outcome.duplicate:
            add_service_metric(ServiceMetric.UPLOADS_STORED, 1)
            add_service_metric(ServiceMetric.UPLOAD_BYTES, outcome.file.size)
        elif outcome.rejected is not None:
            add_service_metric(ServiceMetric.UPLOADS_REJECTED, 1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
