"""Errors as RFC 9457 problem bodies (``application/problem+json``), mapped in one place."""

from __future__ import annotations

import json
import math
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from chargelog.errors import ChargelogError, PayloadTooLargeError, UnsupportedMediaTypeError
from chargelog.observability import logger
from chargelog.settings import get_settings

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem(status: int, detail: str, title: str | None = None, **extra: Any) -> Response[Any]:
    body = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    # Powertools serialises dict bodies only for application/json, so serialise here.
    return Response(status_code=status, content_type=PROBLEM_CONTENT_TYPE, body=json.dumps(body))


def _validation_problem(error: RequestValidationError) -> Response[Any]:
    errors = [
        {
            "loc": [str(part) for part in item.get("loc", ())],
            "type": item.get("type", "invalid"),
            "msg": item.get("msg", "invalid value"),
        }
        for item in error.errors()
    ]
    if any(item["type"] == "json_invalid" for item in errors):
        return problem(400, "The request body is not valid JSON.", errors=errors)
    fields = ", ".join(sorted({".".join(item["loc"][1:]) or item["loc"][0] for item in errors}))
    return problem(422, f"Invalid request: check {fields}.", errors=errors)


def _body_precondition_error(app: APIGatewayRestResolver) -> ChargelogError | None:
    """A body that is not JSON at all, or too large, whatever else is wrong with it."""
    event = app.current_event
    body = event.body or ""
    if not body:
        return None
    content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        return UnsupportedMediaTypeError(
            f"Send the request body as application/json, not {content_type} "
            "(with curl: -H 'content-type: application/json')."
        )
    limit = get_settings().max_json_body_bytes
    size = math.floor(len(body) * 3 / 4) if event.is_base64_encoded else len(body)
    if size > limit:
        return PayloadTooLargeError(f"The request body is about {size} bytes; the limit is {limit}.")
    return None


def register(app: APIGatewayRestResolver) -> None:
    """Map every error a client can cause to a 4xx problem; anything else is logged as a 500."""

    def _precondition_or(fallback: Response[Any]) -> Response[Any]:
        # Powertools validates before any middleware runs, so its errors are checked here first.
        error = _body_precondition_error(app)
        return problem(error.status, error.detail, title=error.title) if error else fallback

    @app.exception_handler(RequestValidationError)
    def _on_validation(error: RequestValidationError) -> Response[Any]:
        return _precondition_or(_validation_problem(error))

    @app.exception_handler(RequestUnsupportedContentType)
    def _on_content_type(_: RequestUnsupportedContentType) -> Response[Any]:
        return _precondition_or(problem(415, "Send the request body as application/json."))

    @app.exception_handler(UnicodeDecodeError)
    def _on_undecodable(_: UnicodeDecodeError) -> Response[Any]:
        return _precondition_or(problem(400, "The request body is not UTF-8 text."))

    @app.exception_handler(ChargelogError)
    def _on_domain_error(error: ChargelogError) -> Response[Any]:
        return problem(error.status, error.detail, title=error.title)

    @app.not_found
    def _on_not_found(_: Exception) -> Response[Any]:
        return problem(404, "No route matches this method and path.")

    @app.exception_handler(Exception)
    def _on_unexpected(error: Exception) -> Response[Any]:
        logger.exception("Unhandled error")
        return problem(500, "Internal error; it has been logged.")


def check_json_body(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Refuse request bodies that are not JSON, or larger than a JSON request here can be."""
    error = _body_precondition_error(app)
    if error:
        raise error
    return next_middleware(app)
