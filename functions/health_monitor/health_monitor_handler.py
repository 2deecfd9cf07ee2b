"""EventBridge schedule -> the charger health sweep: what absence reveals (silent chargers, connectors still faulted,
stuck sessions, boot loops gone quiet), opening and resolving alerts (docs/health.md)."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chargelog import stores
from chargelog.logic.charger_health import sweep
from chargelog.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The schedule's event is read for its time alone: Powertools' EventBridgeEvent would import its whole data
    # classes package (every event class it has) at cold start for that one field.
    now = datetime.fromisoformat(event["time"]) if event.get("time") else datetime.now(UTC)
    summary = sweep.run(now, stores=stores.health_sweep())
    logger.info("Health sweep finished", extra={"sweep": summary})
    return summary
