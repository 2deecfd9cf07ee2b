"""Errors as RFC 9457 problem bodies (``application/problem+json``), mapped in one place."""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from chargelog.errors import ChargelogError, PayloadTooLargeError
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
    return Response(status_code=status, content_type=PROBLEM_CONTENT_TYPE, body=body)


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


def register(app: APIGatewayRestResolver) -> None:
    """Map every error a client can cause to a 4xx problem; anything else is logged as a 500."""

    @app.exception_handler(RequestValidationError)
    def _on_validation(error: RequestValidationError) -> Response[Any]:
        return _validation_problem(error)

    @app.exception_handler(RequestUnsupportedContentType)
    def _on_content_type(_: RequestUnsupportedContentType) -> Response[Any]:
        return problem(415, "Send the request body as application/json.")

    @app.exception_handler(UnicodeDecodeError)
    def _on_undecodable(_: UnicodeDecodeError) -> Response[Any]:
        return problem(400, "The request body is not UTF-8 text.")

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


def limit_json_body(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Refuse bodies larger than a JSON request to this API can reasonably be."""
    limit = get_settings().max_json_body_bytes
    body = app.current_event.body or ""
    size = math.floor(len(body) * 3 / 4) if app.current_event.is_base64_encoded else len(body)
    if size > limit:
        raise PayloadTooLargeError(f"The request body is {size} bytes; the limit is {limit}.")
    return next_middleware(app)
