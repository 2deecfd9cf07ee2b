"""EventBridge schedule -> one collection job per due source on its vendor's work queue."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from chargelog import stores
from chargelog.logic import collection
from chargelog.observability import logger, metrics, tracer


@event_source(data_class=EventBridgeEvent)
@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    scheduled_at = datetime.fromisoformat(event.time) if event.time else datetime.now(UTC)
    summary = collection.dispatch(
        scheduled_at, sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues()
    )
    metrics.add_metric(name="JobsEnqueued", unit=MetricUnit.Count, value=summary.enqueued)
    metrics.add_metric(name="SourcesWithoutAdapter", unit=MetricUnit.Count, value=summary.without_adapter)
    metrics.add_metric(name="SourcesNotDue", unit=MetricUnit.Count, value=summary.not_due)
    metrics.add_metric(name="SourcesJobPending", unit=MetricUnit.Count, value=summary.pending)
    result = {
        "enqueued": summary.enqueued,
        "without_adapter": summary.without_adapter,
        "not_due": summary.not_due,
        "pending": summary.pending,
    }
    if summary.discoveries or summary.discovery_failures:  # source discovery is on (DiscoverSources)
        metrics.add_metric(name="DiscoveriesEnqueued", unit=MetricUnit.Count, value=summary.discoveries)
        metrics.add_metric(name="DiscoveryEnqueueFailures", unit=MetricUnit.Count, value=summary.discovery_failures)
        result |= {"discoveries": summary.discoveries, "discovery_failures": summary.discovery_failures}
    logger.info("Dispatched collection jobs", extra=result)
    return result
