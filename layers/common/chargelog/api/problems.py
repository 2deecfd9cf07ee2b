"""Errors as RFC 9457 problem bodies (``application/problem+json``), mapped in one place."""

from __future__ import annotations

import json
import math
import re
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import Field

from chargelog.errors import ChargelogError, PayloadTooLargeError, UnsupportedMediaTypeError
from chargelog.models.base import Model
from chargelog.observability import logger
from chargelog.settings import get_settings

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"


class ValidationIssue(Model):
    loc: list[str] = Field(description='Where: "body", "query", "path" or "header", then the field')
    type: str = Field(description="pydantic's error type, e.g. missing, enum, string_too_long")
    msg: str


class Problem(Model):
    """An error, as RFC 9457 describes it. Every 4xx and 5xx of this API has this body."""

    type: str = Field(description='"about:blank": the status says it all')
    title: str = Field(description="The status's phrase")
    status: int
    detail: str = Field(description="What went wrong with this request, for a person")
    errors: list[ValidationIssue] | None = Field(default=None, description="With 400 and 422: each invalid input")


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
    try:
        event.json_body  # noqa: B018 - parsed once (a cached property): the validation that follows reads it
    except (ValueError, RecursionError):  # not JSON or UTF-8, a number too long to convert, nesting too deep
        return ChargelogError("The request body is not valid JSON (or holds a number too long to read).")
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
        # Powertools parses a body before any middleware can refuse it, and can fail at it (multipart/form-data
        # with no boundary): a body refused anyway is the client's error, whatever the parser made of it.
        refused = _body_precondition_error(app)
        if refused:
            return problem(refused.status, refused.detail, title=refused.title)
        logger.exception("Unhandled error")
        return problem(500, "Internal error; it has been logged.")


def check_json_body(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Refuse request bodies that are not JSON, or larger than a JSON request here can be."""
    error = _body_precondition_error(app)
    if error:
        raise error
    return next_middleware(app)


# ---------------------------------------------------------------------------------------------- in the document


def responses(descriptions: dict[int, str], content_type: str = PROBLEM_CONTENT_TYPE) -> dict[int, OpenAPIResponse]:
    """Problem responses for a route's ``responses=``, e.g. ``{404: "No such source"}``; add its success too."""
    return {
        status: {"description": description, "content": {content_type: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}}}
        for status, description in descriptions.items()
    }


# Problems any operation of a kind can answer; a route's own ``responses=`` adds what only it can.
INVALID_INPUT = "A parameter or body field is missing, of the wrong type or out of range; `errors` lists each."
NO_ROUTE = "A path parameter holds characters no route takes."
BODY_PROBLEMS = {
    400: "The body is not valid JSON (or not UTF-8).",
    413: "The body is larger than this API takes.",
    415: "The body is not application/json.",
}
# API Gateway answers these itself, from template.yaml's GatewayResponses: a problem body, sent as application/json.
GATEWAY_CONTENT_TYPE = "application/json"
KEY_PROBLEMS = {
    403: "The x-api-key header is missing or holds no valid key.",
    429: "Too many requests with this API key (the usage plan's throttle).",
}


def document(openapi: dict[str, Any], open_routes: frozenset[tuple[str, str]]) -> None:
    """Declares the problems Powertools cannot know of: its 422 body is not ours, and the gateway's are not its."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            declared = operation.setdefault("responses", {})
            if PROBLEM_CONTENT_TYPE not in declared.get("422", {}).get("content", {}):
                declared.pop("422", None)  # Powertools' shape, on every operation; ours is a Problem
            statuses: dict[int, str] = {}
            if operation.get("parameters") or operation.get("requestBody"):
                statuses[422] = INVALID_INPUT
            if operation.get("requestBody"):
                statuses |= BODY_PROBLEMS
            if any(parameter["in"] == "path" for parameter in operation.get("parameters", [])):
                statuses[404] = NO_ROUTE
            generic = responses(statuses)
            if (method, path) not in open_routes:
                generic |= responses(KEY_PROBLEMS, content_type=GATEWAY_CONTENT_TYPE)
            for status, response in generic.items():
                declared.setdefault(str(status), response)
    _drop_unreferenced_schemas(openapi)


def _drop_unreferenced_schemas(openapi: dict[str, Any]) -> None:
    """Powertools lists its validation-error schemas whether anything refers to them or not."""
    schemas = openapi["components"]["schemas"]
    reached: set[str] = set()
    pending = [{key: value for key, value in openapi.items() if key != "components"}]
    while pending:
        for name in re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(pending.pop())):
            if name in schemas and name not in reached:
                reached.add(name)
                pending.append(schemas[name])
    for name in set(schemas) - reached:
        del schemas[name]
