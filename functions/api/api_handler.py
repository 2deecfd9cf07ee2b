"""The chargelog REST API behind API Gateway (proxy integration)."""

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from chargelog.api import collectors, exchanges, exports, health, logs, problems, sources
from chargelog.observability import logger, metrics, tracer

app = APIGatewayRestResolver(enable_validation=True)
problems.register(app)
app.use(middlewares=[problems.check_json_body])
app.include_router(health.router)
app.include_router(sources.router)
app.include_router(collectors.router)
app.include_router(logs.router)
app.include_router(exchanges.router)
app.include_router(exports.router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
