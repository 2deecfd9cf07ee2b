"""API Gateway REQUEST authorizer of the upload API: checks the token in the path, names the object to store.

Caching is off (authorizerResultTtlInSeconds: 0), so this runs for every upload. Decisions: chargelog.logic.uploads.
The token (a path parameter) is never logged: only the request id it names. Nor traced: the answer's policy names
the method ARN, whose path holds the token, so the tracer does not capture the response (and the upload API's stage
has no X-Ray tracing: its traces would record the URL).
"""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from chargelog import stores
from chargelog.logic import uploads
from chargelog.metric_names import ServiceMetric
from chargelog.observability import add_service_metric, logger, metrics, tracer
from chargelog.settings import get_settings


def _policy(effect: str, method_arn: str, principal: str, context: dict[str, str]) -> dict[str, Any]:
    """The authorizer's answer: an IAM policy on this one method ARN, and the context the integration reads."""
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}],
        },
        "context": context,
    }


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@event_source(data_class=APIGatewayAuthorizerRequestEvent)
def lambda_handler(event: APIGatewayAuthorizerRequestEvent, context: LambdaContext) -> dict[str, Any]:
    # When API Gateway received the request: the time in the object's key.
    received_at = datetime.fromtimestamp(event.request_context.request_time_epoch / 1000, UTC)
    decision = uploads.authorize_upload(
        method=event.http_method,
        resource=event.resource,
        path_parameters=event.path_parameters,
        headers=event.headers,
        received_at=received_at,
        store=stores.diagnostics(),
        limits=get_settings().upload_limits(),
    )
    logger.info(
        "Upload allowed" if decision.allowed else "Upload denied",
        extra={
            "request_id": decision.request_id,
            "http_method": event.http_method,
            "resource": event.resource,
            "reason": decision.reason or None,
            "object_key": decision.context.get("object_key"),
        },
    )
    if not decision.allowed:
        add_service_metric(ServiceMetric.UPLOADS_DENIED, 1)
    return _policy(
        "Allow" if decision.allowed else "Deny", event.method_arn, decision.request_id or "unknown", decision.context
    )
