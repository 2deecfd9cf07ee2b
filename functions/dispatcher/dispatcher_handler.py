"""EventBridge schedule -> one collection job per due source on its vendor's work queue."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chargelog import stores
from chargelog.logic import dispatcher
from chargelog.observability import add_service_metric, logger, metrics, publish_vendor_metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The schedule's event is read for its time alone: Powertools' EventBridgeEvent would import its whole data
    # classes package (every event class it has) at cold start for that one field.
    scheduled_at = datetime.fromisoformat(event["time"]) if event.get("time") else datetime.now(UTC)
    summary = dispatcher.dispatch(
        scheduled_at, sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues()
    )
    for name, value in summary.service_metrics().items():
        add_service_metric(name, value)
    for vendor, values in summary.vendor_metrics().items():
        publish_vendor_metrics(vendor, values)
    result = {
        "enqueued": summary.enqueued,
        "without_adapter": summary.without_adapter,
        "not_due": summary.not_due,
        "pending": summary.pending,
    }
    over_budget = sum(summary.over_budget.values())
    if summary.waiting or over_budget:  # the adaptive scheduler left sources for later passes
        result |= {"waiting": summary.waiting, "over_budget": over_budget}
    if summary.discoveries or summary.discovery_failures:  # source discovery is on (DiscoverSources)
        result |= {"discoveries": summary.discoveries, "discovery_failures": summary.discovery_failures}
    logger.info("Dispatched collection jobs", extra=result)
    return result
