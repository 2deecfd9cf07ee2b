"""The OpenAPI document: what it declares, how the API serves it (/openapi.json, /docs), and that docs/ is current."""

from __future__ import annotations

import base64
import difflib
import gzip
import json
import re
from typing import Any

import pytest

import api_handler
from chargelog.api.app import API_KEY_SCHEME, app
from chargelog_cli import openapi
from chargelog_local.template import load_template
from conftest import load_event

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def template_routes() -> dict[tuple[str, str], bool]:
    """(METHOD, path) -> whether API Gateway asks for the key, from ApiFunction's events in template.yaml."""
    function = load_template()["Resources"]["ApiFunction"]["Properties"]
    return {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"]): event["Properties"]
        .get("Auth", {})
        .get("ApiKeyRequired", True)
        for event in function["Events"].values()
        if event["Type"] == "Api"
    }


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(openapi.render(app))


def request(
    context: Any, path: str, query: dict[str, str] | None = None, stage_prefix: bool = False, gzip_ok: bool = False
) -> tuple[int, dict[str, str], bytes]:
    event = json.loads(json.dumps(load_event("api_get_health")))
    event["path"] = event["resource"] = event["requestContext"]["resourcePath"] = path
    # On an execute-api URL the request path starts with the stage; on a custom domain or locally, not.
    event["requestContext"]["path"] = f"/prod{path}" if stage_prefix else path
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    encoding = "gzip" if gzip_ok else "identity"
    event["headers"]["Accept-Encoding"] = encoding
    event["multiValueHeaders"]["Accept-Encoding"] = [encoding]
    response = api_handler.lambda_handler(event, context)
    body = response.get("body") or ""
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = values[-1]
    if headers.get("content-encoding") == "gzip":
        raw = gzip.decompress(raw)
    return response["statusCode"], headers, raw


# ---------------------------------------------------------------------------------------------- the document


def test_the_document_names_the_api_and_its_key(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] == "chargelog API"
    assert document["info"]["version"]
    assert "x-api-key" in document["info"]["description"]
    assert document["components"]["securitySchemes"][API_KEY_SCHEME] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": document["components"]["securitySchemes"][API_KEY_SCHEME]["description"],
    }
    assert document["security"] == [{API_KEY_SCHEME: []}]


def test_every_operation_but_health_needs_the_key_as_in_the_template(document: dict[str, Any]) -> None:
    needs_key = {
        route: operation.get("security", document["security"]) == [{API_KEY_SCHEME: []}]
        for route, operation in operations(document).items()
    }
    assert {route for route, required in needs_key.items() if not required} == {("GET", "/health")}
    assert operations(document)[("GET", "/health")]["security"] == []
    template = template_routes()
    for route, required in needs_key.items():
        assert template.get(route) == required, f"{route}: the document and template.yaml disagree"


def test_the_template_serves_every_documented_route_and_the_document_itself(document: dict[str, Any]) -> None:
    served_outside_the_document = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/ui"), ("GET", "/ui/{proxy+}")}
    assert set(template_routes()) == set(operations(document)) | served_outside_the_document


def test_every_error_the_api_can_answer_is_a_documented_problem(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in json.dumps(document)  # Powertools' 422 shape, which is not ours
    assert set(document["components"]["schemas"]["Problem"]["required"]) == {"type", "title", "status", "detail"}
    for (method, path), operation in operations(document).items():
        responses = operation["responses"]
        for status, response in responses.items():
            if int(status) >= 400:
                (media,) = response["content"].values()
                assert media["schema"] == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
        has_input = bool(operation.get("parameters") or operation.get("requestBody"))
        assert ("422" in responses) == has_input, (method, path)
        if operation.get("requestBody"):
            assert {"400", "413", "415"} <= responses.keys(), (method, path)
        if (method, path) != ("GET", "/health"):
            assert responses["403"]["content"].keys() == {"application/json"}, "API Gateway sends it as JSON"
            assert responses["403"]["content"]["application/json"]["schema"]["$ref"].endswith("/Problem")
        else:
            assert "403" not in responses
    for status, content in document["paths"]["/sources"]["post"]["responses"].items():
        if status in ("409", "422"):
            assert content["content"].keys() == {"application/problem+json"}


def test_a_delete_is_documented_as_204_without_a_body(document: dict[str, Any]) -> None:
    removed = document["paths"]["/sources/{vendor}/{source_id}"]["delete"]["responses"]
    assert "200" not in removed
    assert removed["204"].get("content", {}) == {}


# ---------------------------------------------------------------------------------------------- served


def test_openapi_json_serves_the_document(aws_credentials: None, lambda_context: Any) -> None:
    status, headers, body = request(lambda_context, "/openapi.json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert body.decode() == openapi.render(app)


def test_on_an_execute_api_url_the_server_is_the_stage(aws_credentials: None, lambda_context: Any) -> None:
    _, _, body = request(lambda_context, "/openapi.json", stage_prefix=True)
    assert json.loads(body)["servers"] == [{"url": "/prod"}]
    _, _, body = request(lambda_context, "/docs", query={"format": "json"}, stage_prefix=True)
    assert json.loads(body)["servers"] == [{"url": "/prod"}]


def test_docs_is_a_swagger_ui_that_forgets_the_key_with_the_session(aws_credentials: None, lambda_context: Any) -> None:
    status, headers, body = request(lambda_context, "/docs", gzip_ok=True)
    assert status == 200
    assert headers["content-type"] == "text/html"
    assert headers["content-encoding"] == "gzip"
    html = body.decode()
    assert "SwaggerUIBundle" in html
    # Persisted, Swagger UI would keep the key in localStorage, past the browser session.
    assert "persistAuthorization: false" in html
    # Nothing from another site: Powertools' own copy of swagger-ui is in the page.
    assert not re.search(r"<(script|link)[^>]+(src|href)=", html)
    assert '"x-api-key"' in html
    status, _, body = request(lambda_context, "/docs", query={"format": "json"})
    assert status == 200
    assert json.loads(body) == json.loads(openapi.render(app))


# ---------------------------------------------------------------------------------------------- committed


def test_docs_openapi_json_is_what_the_code_generates() -> None:
    committed = openapi.DOCUMENT_PATH.read_text(encoding="utf-8") if openapi.DOCUMENT_PATH.exists() else ""
    generated = openapi.render(app)
    if committed != generated:
        diff = difflib.unified_diff(
            committed.splitlines(), generated.splitlines(), "docs/openapi.json", "generated", lineterm=""
        )
        pytest.fail(
            "docs/openapi.json differs from what the API's code generates: run `make openapi` and commit it.\n"
            + "\n".join(list(diff)[:40]),
            pytrace=False,
        )


def test_the_generator_writes_the_document_and_check_spots_a_stale_one(tmp_path: Any) -> None:
    target = tmp_path / "openapi.json"
    assert openapi.main(["--output", str(target), "--check"]) == 1
    assert openapi.main(["--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == openapi.render(app)
    assert target.read_text(encoding="utf-8").endswith("}\n")
    assert openapi.main(["--output", str(target), "--check"]) == 0
    target.write_text(target.read_text(encoding="utf-8").replace("chargelog API", "renamed"), encoding="utf-8")
    assert openapi.main(["--output", str(target), "--check"]) == 1
