"""The web viewer's static files (chargelog/api/ui.py) through the local API Gateway and the template's routes, as
`chargelog local` serves them: each file with its content type and security headers, no key needed (nor for
Swagger UI at /docs), a problem for an unknown file, /ui redirected to the page, also under a stage prefix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import api_handler
from chargelog.api import ui
from chargelog_local.provision import LocalStack
from conftest import load_event
from local_api import Api, serve_api

KEY = "viewer-files-test-key-0123456789"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {
        path.relative_to(ui.UI_DIR).as_posix(): path.read_bytes() for path in ui.UI_DIR.rglob("*") if path.is_file()
    }


@pytest.fixture
def api(stack: LocalStack, template: dict[str, Any]) -> Iterator[Api]:
    with serve_api(template, KEY) as served:
        yield served


def test_the_viewer_ships_its_page_and_modules(files: dict[str, bytes]) -> None:
    modules = {"app.js", "api.js", "dom.js", "fleet.js", "timeline.js", "alerts.js"}
    assert {"index.html", "style.css", *modules} <= set(files)


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}], ids=["no-key", "wrong-key"])
def test_every_file_is_served_with_its_type_and_headers_and_no_key(
    api: Api, files: dict[str, bytes], headers: dict[str, str]
) -> None:
    for name, content in files.items():
        response = httpx.get(f"{api.url}/ui/{name}", headers=headers, timeout=30)
        assert response.status_code == 200, (name, response.text)
        assert response.content == content, name
        suffix = name[name.rfind(".") :]
        if suffix in CONTENT_TYPES:
            assert response.headers["content-type"] == CONTENT_TYPES[suffix], name
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy
        assert "connect-src 'self';" in policy
        assert "default-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    # Data still needs the key: the gateway asks for it there.
    assert httpx.get(f"{api.url}/sources", headers=headers, timeout=30).status_code == 403


def test_ui_redirects_to_the_page(api: Api) -> None:
    for path in ("/ui", "/ui/"):
        response = httpx.get(f"{api.url}{path}", timeout=30)
        assert response.status_code == 302, path
        assert response.headers["location"] == "/ui/index.html"
    page = httpx.get(f"{api.url}/ui", follow_redirects=True, timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert b'<script type="module" src="app.js"></script>' in page.content


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/ui/nope.js", "The viewer has no file 'nope.js'."),
        ("/ui/vendor/nothing/here.js", "The viewer has no file 'vendor/nothing/here.js'."),
        # Deeper than the two routed depths, or climbing out: no route, never the file system.
        ("/ui/vendor/a/b/c.js", "No route matches this method and path."),
        ("/ui/..%2F..%2Ftemplate.yaml", "No route matches this method and path."),
    ],
)
def test_an_unknown_file_is_a_404_problem(api: Api, path: str, detail: str) -> None:
    response = httpx.get(f"{api.url}{path}", timeout=30)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 404
    assert problem["detail"] == detail


def test_swagger_ui_needs_no_key_but_the_document_does(api: Api) -> None:
    page = httpx.get(f"{api.url}/docs", timeout=60)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html"
    assert "SwaggerUIBundle" in page.text
    assert httpx.get(f"{api.url}/openapi.json", timeout=30).status_code == 403


def test_under_a_stage_prefix_ui_redirects_within_the_stage(stack: LocalStack, lambda_context: Any) -> None:
    event = json.loads(json.dumps(load_event("api_get_health")))
    event["path"] = event["resource"] = event["requestContext"]["resourcePath"] = "/ui"
    event["requestContext"]["path"] = "/Prod/ui/"
    response = api_handler.lambda_handler(event, lambda_context)
    assert response["statusCode"] == 302
    headers = {name.lower(): value for name, value in (response.get("headers") or {}).items()}
    headers |= {name.lower(): values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()}
    assert headers["location"] == "/Prod/ui/index.html"
