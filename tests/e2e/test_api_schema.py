"""The API against its OpenAPI document (docs/openapi.json), over HTTP on a throwaway `chargelog local`.

Schemathesis generates requests from the document, valid and invalid, for every operation; each response must
be no server error and must match the document: a documented status code and content type, headers and body
that fit its schema. Valid requests must be accepted, invalid ones refused.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import PositiveDataAcceptanceConfig

from chargelog_cli.openapi import DOCUMENT_PATH
from conftest import RunningStack, chargelog_command, running_local_stack

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 40  # per operation: with the coverage phase's own cases, the module takes well under two minutes
REQUEST_TIMEOUT_SECONDS = 30  # API Gateway answers 504 at 29 s: a hang fails the test; a loaded machine does not
SEEDED_CHARGER = "dep-51d6fb38"  # one of the built-in OCPPLAB simulator's chargers

schema = schemathesis.openapi.from_path(DOCUMENT_PATH)
# Unknown query parameters are ignored, as most APIs do, so adding one makes no request invalid. Every request
# carries the key (the tests below cover requests without it), so the key header is not generated, nor dropped.
schema.config.generation.update(max_examples=MAX_EXAMPLES, allow_extra_parameters=False, with_security_parameters=False)
# API Gateway answers a method a path does not have with MISSING_AUTHENTICATION_TOKEN (a 404 here), never 405.
schema.config.checks.update(excluded_check_names=["unsupported_method"])
# A request can match the document and still ask for what cannot be: a cursor this API did not issue, 'from'
# after 'to'. Those are 400s, documented per route; the other defaults stand (2xx, 404, 409...).
schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
    expected_statuses=[*PositiveDataAcceptanceConfig().expected_statuses, "400"]
)

DOCUMENT = json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))
OPERATIONS = sorted(
    (method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item if method != "parameters"
)
# Served by the API, not described in the document; they need the key too.
# The document needs the key; its Swagger UI and the web viewer's files hold no data and open without it.
KEYED_DOCUMENT_ROUTES = [("GET", "/openapi.json")]
OPEN_PAGES = ["/docs", "/ui/index.html", "/ui/app.js", "/ui/style.css"]


@pytest.fixture(scope="module")
def api_stack() -> Iterator[RunningStack]:
    """A stack with no schedules (generated sources must not start collecting), seeded with an hour of records."""
    with running_local_stack(schedule_seconds=0) as stack:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **stack.exports()}
        now = datetime.now(UTC)
        window = ["--from", (now - timedelta(hours=1)).isoformat(), "--to", now.isoformat()]
        backfill = subprocess.run(
            [*chargelog_command(), "backfill", "ocpplab", SEEDED_CHARGER, *window],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert backfill.returncode == 0, backfill.stderr
        yield stack


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_document(case: Any, api_stack: RunningStack) -> None:
    logged = len(api_stack.lines)
    try:
        case.call_and_validate(
            base_url=api_stack.url, headers={"x-api-key": api_stack.api_key}, timeout=REQUEST_TIMEOUT_SECONDS
        )
    except Exception:
        time.sleep(0.5)  # the stack's own account of it, once its output has been read
        print("\n".join(line for line in api_stack.lines[logged:] if "ERROR" in line))
        raise


# ---------------------------------------------------------------------------------------------- the API key


@pytest.mark.parametrize(("method", "path"), [route for route in OPERATIONS if route != ("GET", "/health")])
@pytest.mark.parametrize("key", [None, "not-the-key"])
def test_every_documented_route_but_health_refuses_a_missing_or_wrong_key(
    api_stack: RunningStack, method: str, path: str, key: str | None
) -> None:
    url = api_stack.url + re.sub(r"\{[^}]+\}", "ocpplab", path)
    headers = {"x-api-key": key} if key else {}
    response = httpx.request(method, url, json={"name": "x"}, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS)
    assert response.status_code == 403, (method, path, response.text)
    assert response.json()["title"] == "Forbidden"


def test_only_health_and_the_pages_without_data_are_open(api_stack: RunningStack) -> None:
    assert ("GET", "/health") in OPERATIONS
    assert httpx.get(f"{api_stack.url}/health").status_code == 200
    for method, path in KEYED_DOCUMENT_ROUTES:
        assert httpx.request(method, api_stack.url + path).status_code == 403, path
    for path in OPEN_PAGES:
        assert httpx.get(api_stack.url + path).status_code == 200, path
    assert httpx.get(api_stack.url + "/ui", follow_redirects=False).headers["location"] == "/ui/index.html"


def test_the_stack_serves_the_committed_document_and_a_swagger_ui(api_stack: RunningStack) -> None:
    headers = {"x-api-key": api_stack.api_key}
    served = httpx.get(f"{api_stack.url}/openapi.json", headers=headers)
    assert served.status_code == 200
    assert served.text == DOCUMENT_PATH.read_text(encoding="utf-8"), "docs/openapi.json is stale: run make openapi"
    docs = httpx.get(f"{api_stack.url}/docs", headers=headers)
    assert docs.status_code == 200
    assert docs.headers["content-type"] == "text/html"
    assert "SwaggerUIBundle" in docs.text
    assert json.loads(httpx.get(f"{api_stack.url}/docs?format=json", headers=headers).text) == DOCUMENT


# ---------------------------------------------------------------------------------------------- with data


def call(stack: RunningStack, method: str, path: str, status: int, **case: Any) -> Any:
    """One request built from the document's operation, its response validated against it, and its status."""
    response = (
        schema[path][method]
        .Case(**case)
        .call_and_validate(base_url=stack.url, headers={"x-api-key": stack.api_key}, timeout=REQUEST_TIMEOUT_SECONDS)
    )
    assert response.status_code == status, response.text
    return response


def test_seeded_records_conform_in_every_format(api_stack: RunningStack) -> None:
    chargers = call(api_stack, "GET", "/chargers", 200).json()["chargers"]
    assert SEEDED_CHARGER in [charger["charger_id"] for charger in chargers]

    logs_path = "/chargers/{charger_id}/logs"
    charger = {"charger_id": SEEDED_CHARGER}
    first = call(api_stack, "GET", logs_path, 200, path_parameters=charger, query={"limit": 5}).json()
    assert len(first["records"]) == 5
    assert first["next_cursor"]
    query = {"limit": 5, "cursor": first["next_cursor"]}
    second = call(api_stack, "GET", logs_path, 200, path_parameters=charger, query=query).json()
    assert {r["id"] for r in second["records"]}.isdisjoint(r["id"] for r in first["records"])
    newest = call(api_stack, "GET", logs_path, 200, path_parameters=charger, query={"order": "desc", "limit": 3})
    assert newest.json()["records"][0]["timestamp"] >= first["records"][-1]["timestamp"]
    for accept, lines in (("text/csv", 6), ("application/x-ndjson", 5)):
        page = call(
            api_stack, "GET", logs_path, 200, path_parameters=charger, query={"limit": 5}, headers={"accept": accept}
        )
        assert len(page.text.splitlines()) == lines, page.text
        assert page.headers["x-next-cursor"]

    record = first["records"][0]
    found = call(
        api_stack,
        "GET",
        "/chargers/{charger_id}/logs/{record_id}",
        200,
        path_parameters={"charger_id": SEEDED_CHARGER, "record_id": record["id"]},
    ).json()
    assert found["id"] == record["id"]
    assert found["raw"]

    action = next(r["action"] for r in first["records"] if r["action"])
    fleet = call(api_stack, "GET", "/logs", 200, query={"action": [action], "limit": 5}).json()
    assert fleet["records"]
    assert {r["action"] for r in fleet["records"]} == {action}

    report = call(api_stack, "GET", "/collectors", 200).json()
    assert SEEDED_CHARGER in [row["source_id"] for row in report["collectors"]]


def test_a_source_lifecycle_conforms(api_stack: RunningStack) -> None:
    source = {"vendor": "ocpplab", "source_id": "dep-schema-check"}
    created = call(api_stack, "POST", "/sources", 201, body={**source, "name": "Schema check"}).json()
    assert created["name"] == "Schema check"
    # The function runs with the template's Powertools settings (a metrics namespace above all: without one,
    # the 100th value of a metric in a warm container is a 500).
    time.sleep(0.5)
    logged = [json.loads(line) for line in api_stack.lines if line.startswith("{") and "dep-schema-check" in line]
    assert logged
    assert {entry["service"] for entry in logged} == {"chargelog"}
    call(api_stack, "POST", "/sources", 409, body=source)
    listed = call(api_stack, "GET", "/sources", 200, query={"vendor": "ocpplab"}).json()["sources"]
    assert "dep-schema-check" in [s["source_id"] for s in listed]
    changed = call(
        api_stack, "PATCH", "/sources/{vendor}/{source_id}", 200, path_parameters=source, body={"enabled": False}
    ).json()
    assert changed["enabled"] is False
    call(api_stack, "PATCH", "/sources/{vendor}/{source_id}", 400, path_parameters=source, body={})
    call(api_stack, "DELETE", "/sources/{vendor}/{source_id}", 204, path_parameters=source)
    call(api_stack, "DELETE", "/sources/{vendor}/{source_id}", 404, path_parameters=source)
