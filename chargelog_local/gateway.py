"""API Gateway (REST API, Lambda proxy integration) on 127.0.0.1, for the local stack.

Each HTTP request becomes the proxy event API Gateway sends, and the same handler is called. What API
Gateway itself enforces is enforced here too, with the template's own gateway responses:
- a route must exist in the template (else MISSING_AUTHENTICATION_TOKEN);
- routes that need an API key get it in ``x-api-key`` (else INVALID_API_KEY);
- a request body is at most 10 MB (REQUEST_TOO_LARGE);
- the Lambda invocation payload (the event, with binary bodies base64-encoded) is at most 6 MB;
- the integration times out after 29 s (INTEGRATION_TIMEOUT), the function at its own Timeout;
- a Lambda response is at most 6 MB.

One route is the local stack's own, not the template's: ``GET /local/metrics`` (with the API key) answers the latest
value of each metric the functions wrote, per vendor (chargelog_local.metrics), for `chargelog metrics`.
"""

from __future__ import annotations

import base64
import fnmatch
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from chargelog_local.lambdas import LocalFunction
from chargelog_local.metrics import MetricsLog
from chargelog_local.template import ApiRoute

logger = logging.getLogger("chargelog_local.api")

API_GATEWAY_MAX_REQUEST_BYTES = 10 * 1024 * 1024
LAMBDA_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
LOCAL_METRICS_PATH = "/local/metrics"
INTEGRATION_TIMEOUT_SECONDS = 29.0

_DEFAULT_STATUS = {
    "INVALID_API_KEY": 403,
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "REQUEST_TOO_LARGE": 413,
    "INTEGRATION_TIMEOUT": 504,
    "DEFAULT_5XX": 502,
}


@dataclass(frozen=True)
class _CompiledRoute:
    route: ApiRoute
    pattern: re.Pattern[str]


def compile_path(path: str) -> re.Pattern[str]:
    """An API Gateway resource path (``/a/{b}/{c+}``) as a regex with one group per path parameter; a trailing
    slash matches the route without it."""
    regex = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("+}"):
            regex += f"(?P<{part[1:-2]}>.+)"
        elif part.startswith("{"):
            regex += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            regex += re.escape(part)
    return re.compile(f"^{regex}/?$")


def _compile(route: ApiRoute) -> _CompiledRoute:
    return _CompiledRoute(route, compile_path(route.path))


def render_gateway_response(
    gateway_responses: Mapping[str, tuple[int | None, str]],
    response_type: str,
    message: str,
    authorizer_context: Mapping[str, Any] | None = None,
) -> Response:
    """API Gateway's own error response, rendered from a template's gateway responses: the response type's, else
    DEFAULT_4XX's (or DEFAULT_5XX's for a 5xx type), with $context.error.* and $context.authorizer.* filled in."""
    default_status = _DEFAULT_STATUS.get(response_type, 400)
    fallback = "DEFAULT_5XX" if default_status >= 500 else "DEFAULT_4XX"
    status, body_template = gateway_responses.get(response_type, gateway_responses.get(fallback, (None, "")))
    if status is None:
        status = default_status
    body = body_template or '{"message": $context.error.messageString}'
    body = body.replace("$context.error.messageString", json.dumps(message))
    body = body.replace("$context.error.responseType", response_type)
    body = re.sub(
        r"\$context\.authorizer\.([A-Za-z0-9_]+)",
        lambda found: str((authorizer_context or {}).get(found.group(1), "")),
        body,
    )
    return Response(body, status=int(status), content_type="application/json")


def request_context(
    request: Request, resource: str, stage: str, *, api_id: str = "local", api_key: str | None = None
) -> dict[str, Any]:
    """The ``requestContext`` API Gateway (REST) puts in proxy and REQUEST authorizer events."""
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    return {
        "accountId": "123456789012",
        "apiId": api_id,
        "domainName": request.host,
        "domainPrefix": request.host.split(".")[0],
        "extendedRequestId": request_id,
        "httpMethod": request.method,
        "identity": {
            "sourceIp": request.remote_addr or "127.0.0.1",
            "userAgent": request.headers.get("user-agent"),
            "apiKey": api_key,
            "apiKeyId": "local-api-key" if api_key is not None else None,
            "accessKey": None,
            "accountId": None,
            "caller": None,
            "user": None,
            "userArn": None,
            "cognitoIdentityPoolId": None,
            "cognitoIdentityId": None,
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
        },
        # The path as the client sent it. Local URLs carry no stage prefix, as on a custom domain;
        # on an execute-api URL it would start with /{stage} (Powertools reads it for /docs).
        "path": request.path,
        "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        "requestId": request_id,
        "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "requestTimeEpoch": int(now.timestamp() * 1000),
        "resourceId": "local",
        "resourcePath": resource,
        "stage": stage,
    }


class LocalApiGateway:
    """A WSGI application that plays API Gateway in front of the template's functions."""

    def __init__(
        self,
        functions: Mapping[str, LocalFunction],
        routes: Iterable[ApiRoute],
        api_key: str,
        gateway_responses: Mapping[str, tuple[int | None, str]],
        binary_media_types: Iterable[str],
        stage: str,
        region: str,
        metrics_log: MetricsLog | None = None,
    ) -> None:
        self._functions = functions
        self._metrics_log = metrics_log
        # Literal paths before parameterised ones, as API Gateway prefers the most specific match.
        self._routes = sorted((_compile(r) for r in routes), key=lambda c: c.route.path.count("{"))
        self._api_key = api_key
        self._gateway_responses = gateway_responses
        self._binary_media_types = list(binary_media_types)
        self._stage = stage
        self._region = region

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        if (request.content_length or 0) > API_GATEWAY_MAX_REQUEST_BYTES:
            return self.gateway_error(
                "REQUEST_TOO_LARGE", f"HTTP content length exceeded {API_GATEWAY_MAX_REQUEST_BYTES} bytes."
            )
        body = request.stream.read(API_GATEWAY_MAX_REQUEST_BYTES + 1)
        if len(body) > API_GATEWAY_MAX_REQUEST_BYTES:
            return self.gateway_error(
                "REQUEST_TOO_LARGE", f"HTTP content length exceeded {API_GATEWAY_MAX_REQUEST_BYTES} bytes."
            )
        if self._metrics_log is not None and request.method == "GET" and request.path == LOCAL_METRICS_PATH:
            if not self._key_presented(request):
                return self.gateway_error("INVALID_API_KEY", "Forbidden")
            latest = json.dumps({"metrics": self._metrics_log.latest()})
            return Response(latest, status=200, content_type="application/json")
        match = self._match(request.method, request.path)
        if match is None:
            return self.gateway_error("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
        route, path_parameters = match
        if route.api_key_required and not self._key_presented(request):
            return self.gateway_error("INVALID_API_KEY", "Forbidden")

        event = self.proxy_event(request, body, route, path_parameters)
        payload_size = len(json.dumps(event))
        if payload_size > LAMBDA_MAX_PAYLOAD_BYTES:
            return self.gateway_error(
                "REQUEST_TOO_LARGE",
                f"Lambda invocation payload of {payload_size} bytes exceeds {LAMBDA_MAX_PAYLOAD_BYTES} bytes.",
            )
        return self._invoke(self._functions[route.function], event)

    # ------------------------------------------------------------------ pieces
    def _key_presented(self, request: Request) -> bool:
        presented_key = request.headers.get("x-api-key", "")
        return hmac.compare_digest(
            presented_key.encode("utf-8", "surrogateescape"), self._api_key.encode("utf-8", "surrogateescape")
        )

    def _match(self, method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
        for compiled in self._routes:
            if compiled.route.method not in (method, "ANY"):
                continue
            found = compiled.pattern.match(path)
            if found:
                return compiled.route, found.groupdict()
        return None

    def _is_binary(self, content_type: str | None) -> bool:
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        return any(
            pattern == "*/*" or fnmatch.fnmatch(media_type, pattern.lower()) for pattern in self._binary_media_types
        )

    def proxy_event(
        self, request: Request, body: bytes, route: ApiRoute, path_parameters: dict[str, str]
    ) -> dict[str, Any]:
        """The event API Gateway's Lambda proxy integration sends for this request."""
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        query = {key: values[-1] for key, values in request.args.lists()}
        multi_query = {key: list(values) for key, values in request.args.lists()}
        binary = bool(body) and self._is_binary(request.content_type)
        if not body:
            event_body = None
        elif binary:
            event_body = base64.b64encode(body).decode("ascii")
        else:
            event_body = body.decode("utf-8", errors="replace")
        api_key = (request.headers.get("x-api-key") or "") if route.api_key_required else None
        return {
            "resource": route.path,
            "path": request.path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": request_context(request, route.path, self._stage, api_key=api_key),
            "body": event_body,
            "isBase64Encoded": binary,
        }

    def _invoke(self, function: LocalFunction, event: dict[str, Any]) -> Response:
        wait = min(INTEGRATION_TIMEOUT_SECONDS, float(function.spec.timeout_seconds))
        started = time.monotonic()
        future = function.submit(event)
        try:
            result = future.result(timeout=wait)
        except FutureTimeout:
            if wait >= INTEGRATION_TIMEOUT_SECONDS:
                return self.gateway_error("INTEGRATION_TIMEOUT", "Endpoint request timed out")
            logger.error("%s timed out after %s s", function.name, wait)
            return self.gateway_error("DEFAULT_5XX", "Internal server error")
        except Exception:
            logger.exception("%s raised", function.name)
            return self.gateway_error("DEFAULT_5XX", "Internal server error")
        response = self._to_http(result)
        logger.info(
            "%s %s -> %s (%.0f ms)",
            event["httpMethod"],
            event["path"],
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    def _to_http(self, result: Any) -> Response:
        # What API Gateway calls a malformed Lambda proxy response is a 502 there, so here too.
        if not isinstance(result, dict) or "statusCode" not in result or not isinstance(result.get("body") or "", str):
            logger.error("Malformed Lambda proxy response: %r", result)
            return self.gateway_error("DEFAULT_5XX", "Internal server error")
        try:
            size = len(json.dumps(result))
            status = int(result["statusCode"])
            raw_body = result.get("body") or ""
            body = (
                base64.b64decode(raw_body, validate=True) if result.get("isBase64Encoded") else raw_body.encode("utf-8")
            )
        except (TypeError, ValueError):  # binascii.Error and UnicodeEncodeError are ValueErrors
            logger.error("Malformed Lambda proxy response: %r", result)
            return self.gateway_error("DEFAULT_5XX", "Internal server error")
        if size > LAMBDA_MAX_PAYLOAD_BYTES:
            return self.gateway_error("DEFAULT_5XX", "Internal server error")
        response = Response(body, status=status)
        response.headers.clear()
        for name, value in (result.get("headers") or {}).items():
            response.headers[name] = str(value)
        for name, values in (result.get("multiValueHeaders") or {}).items():
            response.headers.remove(name)
            for value in values:
                response.headers.add(name, str(value))
        return response

    def gateway_error(self, response_type: str, message: str) -> Response:
        """API Gateway's own error response, rendered from the template's GatewayResponses."""
        return render_gateway_response(self._gateway_responses, response_type, message)
