"""The export queue -> write each export's records to a file in the exports bucket; failures go back for retry."""

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chargelog import stores
from chargelog.logic import exports
from chargelog.metric_names import ServiceMetric
from chargelog.models.exports import ExportJob
from chargelog.observability import add_service_metric, keys_per_record, logger, metrics, tracer

# The body is parsed here, not by a Powertools parser model, and the batch utility is imported before pydantic:
# either would load every event model of Powertools' parser at cold start (see worker_handler).
processor = BatchProcessor(event_type=EventType.SQS)


def _remaining_seconds(context: LambdaContext) -> Callable[[], float]:
    return lambda: context.get_remaining_time_in_millis() / 1000


@keys_per_record
@tracer.capture_method
def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    export_id = ExportJob.model_validate_json(record.body).export_id  # invalid: retried, then dead-lettered
    logger.append_keys(export_id=export_id)
    try:
        export = exports.run_export(
            export_id,
            _remaining_seconds(lambda_context),
            store=stores.exports(),
            files=stores.export_files(),
            records=stores.records(),
            archive=stores.record_archive_reader(),
        )
    except Exception:
        add_service_metric(ServiceMetric.EXPORTS_FAILED, 1)
        raise
    if export is not None and export.state == "failed":
        add_service_metric(ServiceMetric.EXPORTS_FAILED, 1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
