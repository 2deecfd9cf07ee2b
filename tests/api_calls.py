"""Call the API function's handler as API Gateway's proxy integration would, and read its answer, in unit tests.

Every event is built from one sample event in events/ (so the fixtures stay the documentation), with the
method, path, query, headers and body of the call put in; the answer comes back with its body decoded and its
header names lower-cased (multiValueHeaders included), as a client sees it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import api_handler
from conftest import load_event

BASE_EVENT = "api_get_charger_logs"
JSON = "application/json"

# A query parameter given several times is a list of its values, as in `?action=A&action=B`.
Query = Mapping[str, str | Sequence[str]]


class ApiResponse(NamedTuple):
    """What the handler answered: the status, headers (names lower-cased, last value wins) and decoded body.

    A tuple, so `status, headers, text = get(...)` reads as before.
    """

    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty."""
        return json.loads(self.text) if self.text else None


def proxy_event(
    method: str,
    path: str,
    query: Query | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST proxy event for one call.

    `body` is sent as given when it is bytes, else as its JSON; a body travels base64-encoded, as binary media
    types make API Gateway send it. `headers` are set in both `headers` and `multiValueHeaders`.
    """
    event = load_event(BASE_EVENT)
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = event["resource"] = path
    event["pathParameters"] = None
    multi = {k: [v] if isinstance(v, str) else list(v) for k, v in (query or {}).items()}
    event["multiValueQueryStringParameters"] = multi or None
    event["queryStringParameters"] = {k: v[-1] for k, v in multi.items()} or None
    for name, value in (headers or {}).items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    if body is not None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        event["body"] = base64.b64encode(raw).decode()
        event["isBase64Encoded"] = True
    return event


def decode(response: dict[str, Any]) -> ApiResponse:
    """The handler's proxy response as a client reads it."""
    text = response.get("body") or ""
    if response.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = values[-1]
    return ApiResponse(response["statusCode"], headers, text)


def call_api(
    context: Any,
    method: str,
    path: str,
    query: Query | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> ApiResponse:
    """Send one call through `api_handler.lambda_handler` and decode its answer."""
    return decode(api_handler.lambda_handler(proxy_event(method, path, query, body, headers), context))


def get(context: Any, path: str, query: Query | None = None, accept: str = JSON) -> ApiResponse:
    """GET `path` asking for `accept`."""
    return call_api(context, "GET", path, query, headers={"Accept": accept})


def get_json(context: Any, path: str, query: Query | None = None) -> tuple[int, dict[str, str], Any]:
    """GET `path` as JSON: status, headers and the parsed body (None when empty)."""
    response = get(context, path, query)
    return response.status, response.headers, response.json()


def post_json(context: Any, path: str, body: Any, content_type: str = JSON) -> tuple[int, dict[str, str], Any]:
    """POST `body` (JSON, or bytes as they are) to `path`: status, headers and the parsed answer (None when empty)."""
    response = call_api(context, "POST", path, body=body, headers={"content-type": content_type})
    return response.status, response.headers, response.json()


def follow(context: Any, path: str, query: Query, key: str = "records") -> Iterator[dict[str, Any]]:
    """Every item under `key` on every page, following `next_cursor`; each page must be a 200."""
    cursor = None
    while True:
        status, _, body = get_json(context, path, {**query, "cursor": cursor} if cursor else query)
        assert status == 200, body
        yield from body[key]
        cursor = body["next_cursor"]
        if cursor is None:
            return
