"""The AlertQueue -> one notification per alert transition: the ChargerAlertTopic and the optional webhook. A notice
whose sending failed goes back for retry (then to the dead-letter queue); duplicates are dropped."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chargelog import stores
from chargelog.logic import alert_notifications
from chargelog.metric_names import ServiceMetric
from chargelog.models.alert_notices import AlertNotice
from chargelog.observability import add_service_metric, keys_per_record, logger, metrics, tracer
from chargelog.settings import get_settings

# The body is parsed here, not by a Powertools parser model, and the batch utility is imported before pydantic:
# either would load every event model of Powertools' parser at cold start (see worker_handler).
processor = BatchProcessor(event_type=EventType.SQS)


@keys_per_record
@tracer.capture_method
def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    notice = AlertNotice.model_validate_json(record.body)  # invalid: retried, then dead-lettered
    logger.append_keys(alert_id=notice.alert_id, alert_state=notice.state)
    try:
        outcome = alert_notifications.notify(
            notice,
            datetime.now(UTC),
            stores=stores.alert_notifier(),
            per_hour=get_settings().alert_notifications_per_hour,
        )
    except Exception:
        # Tried again after the visibility timeout, then dead-lettered. No message here holds the webhook's URL.
        logger.exception("Alert notification failed")
        raise
    if outcome.status == "sent":
        add_service_metric(ServiceMetric.ALERT_NOTIFICATIONS_SENT, 1)
    elif outcome.status == "suppressed":
        add_service_metric(ServiceMetric.ALERT_NOTIFICATIONS_SUPPRESSED, 1)
    logger.info(
        "Alert notification",
        extra={
            "outcome": outcome.status,
            "charger_id": outcome.charger_id,
            "suppressed": outcome.suppressed,
            "channels": list(outcome.channels),
        },
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
