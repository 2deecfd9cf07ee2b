"""The API function's handler, fed with the sample events in events/, against the template's table."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Any

import pytest

import api_handler
from chargelog import aws
from chargelog_local.provision import LocalStack
from conftest import REPO_ROOT, load_event

PROBLEM_FIELDS = {"type", "title", "status", "detail"}


def call(event: dict[str, Any], context: Any) -> tuple[int, dict[str, str], Any]:
    response = api_handler.lambda_handler(event, context)
    body = response.get("body")
    if response.get("isBase64Encoded") and body:
        body = base64.b64decode(body).decode()
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = values[-1]
    return response["statusCode"], headers, json.loads(body) if body else None


def with_body(event: dict[str, Any], raw: bytes, content_type: str | None = "application/json") -> dict[str, Any]:
    event = json.loads(json.dumps(event))
    event["body"] = base64.b64encode(raw).decode()
    event["isBase64Encoded"] = True
    for key in ("headers", "multiValueHeaders"):
        event[key] = {k: v for k, v in event[key].items() if k.lower() != "content-type"}
    if content_type:
        event["headers"]["content-type"] = content_type
        event["multiValueHeaders"]["content-type"] = [content_type]
    return event


def create_event(**fields: Any) -> dict[str, Any]:
    body = {"vendor": "ocpplab", "source_id": "dep-123", "name": "Depot 3, bay 1"} | fields
    return with_body(load_event("api_create_source"), json.dumps(body).encode())


def source_items(stack: LocalStack) -> list[dict[str, Any]]:
    return aws.table(stack.refs["Table"]).query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "SOURCE"}
    )["Items"]


def test_health_needs_no_table_access_and_reports_ok(stack: LocalStack, lambda_context: Any) -> None:
    status, _, body = call(load_event("api_get_health"), lambda_context)
    assert status == 200
    assert body["status"] == "ok"
    assert body["stage"] == "prod"


def test_create_stores_the_source_and_returns_it(stack: LocalStack, lambda_context: Any) -> None:
    status, headers, body = call(load_event("api_create_source"), lambda_context)
    assert status == 201
    assert headers["location"] == "/sources/ocpplab/dep-123"
    assert body["kind"] == "charger"
    assert body["enabled"] is True
    assert body["name"] == "Depot 3, bay 1"
    (item,) = source_items(stack)
    assert item["sk"] == "ocpplab#dep-123"
    assert item["name"] == "Depot 3, bay 1"


def test_name_defaults_to_the_source_id(stack: LocalStack, lambda_context: Any) -> None:
    event = with_body(load_event("api_create_source"), b'{"vendor": "chargepilot", "source_id": "site-9"}')
    status, _, body = call(event, lambda_context)
    assert status == 201
    assert (body["name"], body["kind"]) == ("site-9", "site")


def test_a_second_create_conflicts_and_overwrites_nothing(stack: LocalStack, lambda_context: Any) -> None:
    assert call(load_event("api_create_source"), lambda_context)[0] == 201
    status, headers, body = call(create_event(name="Another name"), lambda_context)
    assert status == 409
    assert headers["content-type"] == "application/problem+json"
    assert body.keys() >= PROBLEM_FIELDS
    (item,) = source_items(stack)
    assert item["name"] == "Depot 3, bay 1"


def test_list_filters_by_vendor(stack: LocalStack, lambda_context: Any) -> None:
    call(load_event("api_create_source"), lambda_context)
    call(create_event(vendor="plugchoice", source_id="3f2a8a6e-1c1b-4d0e-9a57-5b0f1f6c2d11"), lambda_context)
    status, _, body = call(load_event("api_list_sources"), lambda_context)
    assert status == 200
    assert [(s["vendor"], s["source_id"]) for s in body["sources"]] == [("ocpplab", "dep-123")]
    unfiltered = load_event("api_list_sources")
    unfiltered["queryStringParameters"] = unfiltered["multiValueQueryStringParameters"] = None
    assert len(call(unfiltered, lambda_context)[2]["sources"]) == 2


def test_update_disables_and_delete_removes(stack: LocalStack, lambda_context: Any) -> None:
    call(load_event("api_create_source"), lambda_context)
    status, _, body = call(load_event("api_update_source"), lambda_context)
    assert status == 200
    assert body["enabled"] is False
    assert body["updated_at"] >= body["created_at"]
    status, _, body = call(load_event("api_delete_source"), lambda_context)
    assert (status, body) == (204, None)
    assert source_items(stack) == []


@pytest.mark.parametrize("event_name", ["api_update_source", "api_delete_source"])
def test_changing_a_missing_source_is_404(stack: LocalStack, lambda_context: Any, event_name: str) -> None:
    status, _, body = call(load_event(event_name), lambda_context)
    assert status == 404
    assert body["status"] == 404
    assert "ocpplab/dep-123" in body["detail"]


def test_update_with_nothing_to_change_is_400(stack: LocalStack, lambda_context: Any) -> None:
    call(load_event("api_create_source"), lambda_context)
    status, _, body = call(with_body(load_event("api_update_source"), b"{}"), lambda_context)
    assert status == 400
    assert "Nothing to change" in body["detail"]


BAD_BODIES = {
    "unknown vendor": (b'{"vendor": "acme", "source_id": "x"}', "application/json", 422),
    "missing source_id": (b'{"vendor": "ocpplab"}', "application/json", 422),
    "missing everything": (b"{}", "application/json", 422),
    "source_id a number": (b'{"vendor": "ocpplab", "source_id": 123}', "application/json", 422),
    "enabled a string": (b'{"vendor": "ocpplab", "source_id": "x", "enabled": "yes"}', "application/json", 422),
    "unknown field": (b'{"vendor": "ocpplab", "source_id": "x", "colour": "red"}', "application/json", 422),
    "slash in source_id": (b'{"vendor": "ocpplab", "source_id": "a/b"}', "application/json", 422),
    "empty name": (b'{"vendor": "ocpplab", "source_id": "x", "name": "  "}', "application/json", 422),
    "not an object": (b'["ocpplab", "x"]', "application/json", 422),
    "truncated JSON": (b'{"vendor": "ocpplab", "source_id": ', "application/json", 400),
    "not UTF-8": (b"\xff\xfe\x00garbage", "application/json", 400),
    "a 5,000-digit integer": (
        b'{"vendor": "ocpplab", "source_id": "x", "enabled": ' + b"1" * 5000 + b"}",
        "application/json",
        400,
    ),
    "a 5,000-digit integer, nested": (b'{"vendor": "ocpplab", "x": [[' + b"9" * 5000 + b"]]}", "application/json", 400),
    "a NUL in the name": (b'{"vendor": "ocpplab", "source_id": "x", "name": "a\\u0000b"}', "application/json", 422),
    "a bidi override in the name": (
        b'{"vendor": "ocpplab", "source_id": "x", "name": "\\u202eevil"}',
        "application/json",
        422,
    ),
    "a raw bidi override in the name": (
        '{"vendor": "ocpplab", "source_id": "x", "name": "\u202eevil"}'.encode(),
        "application/json",
        422,
    ),
    "an escape sequence in the name": (
        b'{"vendor": "ocpplab", "source_id": "x", "name": "\\u001b[2J"}',
        "application/json",
        422,
    ),
    "form encoded": (b"vendor=ocpplab&source_id=x", "application/x-www-form-urlencoded", 415),
    "text": (b'{"vendor": "ocpplab", "source_id": "x"}', "text/plain", 415),
    # Powertools parses form data before any middleware runs, and fails without a boundary: still a 415.
    "multipart, no boundary": (b'{"vendor": "ocpplab", "source_id": "x"}', "multipart/form-data", 415),
    "oversized": (
        b'{"vendor": "ocpplab", "source_id": "x", "name": "' + b"a" * 70_000 + b'"}',
        "application/json",
        413,
    ),
    "oversized garbage": (b"\xff" * 70_000, "application/json", 413),
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_bad_input_gets_a_problem_and_writes_nothing(stack: LocalStack, lambda_context: Any, case: str) -> None:
    raw, content_type, expected = BAD_BODIES[case]
    status, headers, body = call(with_body(load_event("api_create_source"), raw, content_type), lambda_context)
    assert status == expected
    assert headers["content-type"] == "application/problem+json"
    assert body.keys() >= PROBLEM_FIELDS
    assert body["status"] == expected
    assert source_items(stack) == []


def test_bad_path_parameters_are_422(stack: LocalStack, lambda_context: Any) -> None:
    event = load_event("api_delete_source")
    event["pathParameters"] = {"vendor": "acme", "source_id": "dep-123"}
    event["path"] = "/sources/acme/dep-123"
    status, _, body = call(event, lambda_context)
    assert status == 422
    assert body["errors"][0]["loc"] == ["path", "vendor"]


def test_the_api_function_does_not_load_the_vendor_adapters_at_cold_start() -> None:
    # Only POST /sources/discover talks to vendors; the HTTP client and adapters load when it runs, so the
    # other routes' cold start does not pay for them (bench/coldstart.py measures the difference).
    program = (
        "import sys, api_handler; "
        "print(sorted(m for m in "
        "('httpx', 'tenacity', 'chargelog.collectors.vendor_http', 'chargelog.logic.discovery') "
        "if m in sys.modules))"
    )
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "functions" / "api"), str(REPO_ROOT / "layers" / "common")]),
    }
    loaded = subprocess.run(
        [sys.executable, "-c", program], env=environment, capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "[]", loaded.stderr
