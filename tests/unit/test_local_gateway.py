"""LocalApiGateway, the local stack's API Gateway, driven through werkzeug's test client (no sockets).

Behind it run real LocalFunctions on a small handler module written to a temporary directory, and the
gateway renders the template's own GatewayResponses and BinaryMediaTypes, so what these tests see is
what `chargelog local` serves.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from werkzeug.test import Client, EnvironBuilder, TestResponse
from werkzeug.wrappers import Response

from chargelog_local import gateway as gateway_module
from chargelog_local.gateway import API_GATEWAY_MAX_REQUEST_BYTES, LAMBDA_MAX_PAYLOAD_BYTES, LocalApiGateway
from chargelog_local.lambdas import LocalFunction
from chargelog_local.template import ApiRoute, FunctionSpec, binary_media_types, gateway_responses
from conftest import load_event

API_KEY = "local-test-key-0123456789"
FUNCTION = "ApiFunction"
REGION = "us-east-1"
STAGE = "local"
MB = 1024 * 1024
PROBLEM_FIELDS = {"type", "title", "status", "detail"}

# The template's routes for ApiFunction (the API's default is ApiKeyRequired, /health opts out).
ROUTES = (
    ApiRoute(FUNCTION, "/health", "GET", False),
    ApiRoute(FUNCTION, "/sources", "GET", True),
    ApiRoute(FUNCTION, "/sources", "POST", True),
    ApiRoute(FUNCTION, "/sources/{vendor}/{source_id}", "PATCH", True),
    ApiRoute(FUNCTION, "/sources/{vendor}/{source_id}", "DELETE", True),
)

HANDLER_SOURCE = """
import time

EVENTS = []
CONTEXTS = []
RESULT = None
SLEEP_SECONDS = 0.0


def record(event, context):
    EVENTS.append(event)
    CONTEXTS.append(context)
    if RESULT is not None:
        return RESULT
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"ok": true}'}


def sleepy(event, context):
    EVENTS.append(event)
    time.sleep(SLEEP_SECONDS)
    return {"statusCode": 200, "body": "too late"}


def boom(event, context):
    EVENTS.append(event)
    raise RuntimeError("handler failed")
"""

MakeClient = Callable[..., Client]


@pytest.fixture(scope="module")
def handlers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The handler module, under a name no other test module uses."""
    code_dir = tmp_path_factory.mktemp("gateway_handlers")
    name = f"gateway_test_handlers_{uuid.uuid4().hex}"
    (code_dir / f"{name}.py").write_text(HANDLER_SOURCE)
    sys.path.insert(0, str(code_dir))
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)
    if str(code_dir) in sys.path:
        sys.path.remove(str(code_dir))


@pytest.fixture
def handler(handlers: ModuleType) -> ModuleType:
    handlers.EVENTS.clear()
    handlers.CONTEXTS.clear()
    handlers.RESULT = None
    handlers.SLEEP_SECONDS = 0.0
    return handlers


@pytest.fixture
def make_client(template: dict[str, Any], handler: ModuleType) -> Iterator[MakeClient]:
    """Builds a gateway in front of one LocalFunction running `handler.<function>`."""
    functions: list[LocalFunction] = []

    def make(function: str = "record", timeout_seconds: int = 5) -> Client:
        spec = FunctionSpec(
            logical_id=FUNCTION,
            code_dir=Path(handler.__file__).parent,
            handler=f"{handler.__name__}.{function}",
            timeout_seconds=timeout_seconds,
            memory_mb=512,
            environment={},
            routes=ROUTES,
            schedules=(),
            queues=(),
        )
        local_function = LocalFunction(spec, REGION)
        functions.append(local_function)
        gateway = LocalApiGateway(
            functions={FUNCTION: local_function},
            routes=ROUTES,
            api_key=API_KEY,
            gateway_responses=gateway_responses(template),
            binary_media_types=binary_media_types(template),
            stage=STAGE,
            region=REGION,
        )
        return Client(gateway)

    yield make
    for local_function in functions:
        local_function.shutdown()


@pytest.fixture
def client(make_client: MakeClient) -> Client:
    return make_client()


def template_problem(template: dict[str, Any], response_type: str, message: str = "") -> dict[str, Any]:
    """The template's GatewayResponse body for `response_type`, with `message` as the error message."""
    body = gateway_responses(template)[response_type][1]
    return json.loads(body.replace("$context.error.messageString", json.dumps(message)))


def problem(response: Response, status: int) -> dict[str, Any]:
    """The gateway's problem body, after checking its status and shape."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data())
    assert set(body) == PROBLEM_FIELDS
    assert body["type"] == "about:blank"
    assert body["status"] == status
    return body


def keyed(**headers: str) -> dict[str, str]:
    return {"x-api-key": API_KEY, **headers}


def random_bytes(size: int) -> bytes:
    """`size` unpredictable bytes that certainly include 0x00 and 0xff."""
    return b"\x00\xff" + os.urandom(size - 4) + b"\xff\x00"


def lowered(headers: dict[str, Any]) -> dict[str, Any]:
    return {name.lower(): value for name, value in headers.items()}


# ---------------------------------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/sources/ocpplab"),
        ("GET", "/sources/ocpplab/dep-123/extra"),
        ("PUT", "/sources"),
        ("GET", "/sources/ocpplab/dep-123"),
        ("POST", "/health"),
    ],
)
def test_unmatched_method_or_path_is_the_templates_404_problem(
    client: Client, handler: ModuleType, template: dict[str, Any], method: str, path: str
) -> None:
    response = client.open(path, method=method, headers=keyed())

    body = problem(response, 404)
    assert body == template_problem(template, "MISSING_AUTHENTICATION_TOKEN")
    assert body["title"] == "Not Found"
    assert handler.EVENTS == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": ""},
        {"x-api-key": "wrong"},
        {"x-api-key": API_KEY + "x"},
        {"x-api-key": API_KEY[:-1]},
    ],
    ids=["no-key", "empty-key", "wrong-key", "key-with-suffix", "key-prefix"],
)
def test_key_required_route_without_the_right_key_is_403_and_not_invoked(
    client: Client, handler: ModuleType, template: dict[str, Any], headers: dict[str, str]
) -> None:
    response = client.get("/sources", headers=headers)

    body = problem(response, 403)
    assert body == template_problem(template, "INVALID_API_KEY")
    assert handler.EVENTS == []


def test_non_ascii_key_is_403(client: Client, handler: ModuleType) -> None:
    response = client.get("/sources", headers={"x-api-key": "cl\u00e9"})

    problem(response, 403)
    assert handler.EVENTS == []


def test_key_required_route_with_the_right_key_invokes_the_handler(client: Client, handler: ModuleType) -> None:
    response = client.get("/sources", headers=keyed())

    assert response.status_code == 200
    assert response.get_json() == {"ok": True}
    assert len(handler.EVENTS) == 1
    identity = handler.EVENTS[0]["requestContext"]["identity"]
    assert identity["apiKey"] == API_KEY
    assert identity["apiKeyId"]
    context = handler.CONTEXTS[0]
    assert context.function_name == FUNCTION
    assert 0 < context.get_remaining_time_in_millis() <= 5000


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}], ids=["no-key", "wrong-key"])
def test_route_without_key_requirement_needs_no_key(
    client: Client, handler: ModuleType, headers: dict[str, str]
) -> None:
    response = client.get("/health", headers=headers)

    assert response.status_code == 200
    assert len(handler.EVENTS) == 1
    identity = handler.EVENTS[0]["requestContext"]["identity"]
    assert identity["apiKey"] is None
    assert identity["apiKeyId"] is None


# ---------------------------------------------------------------------------------------- the event


def test_proxy_event_carries_path_parameters_query_headers_and_context(client: Client, handler: ModuleType) -> None:
    raw = b'{"enabled": false}'
    response = client.patch(
        "/sources/ocpplab/dep-123",
        query_string=[("vendor", "a"), ("vendor", "b"), ("page", "2")],
        headers=keyed(**{"Content-Type": "application/json", "X-Custom": "hello"}),
        data=raw,
    )

    assert response.status_code == 200
    (event,) = handler.EVENTS
    assert event["resource"] == "/sources/{vendor}/{source_id}"
    assert event["path"] == "/sources/ocpplab/dep-123"
    assert event["httpMethod"] == "PATCH"
    assert event["pathParameters"] == {"vendor": "ocpplab", "source_id": "dep-123"}
    # API Gateway's queryStringParameters keeps the last of repeated values, the multi-value map all.
    assert event["queryStringParameters"] == {"vendor": "b", "page": "2"}
    assert event["multiValueQueryStringParameters"] == {"vendor": ["a", "b"], "page": ["2"]}
    headers = lowered(event["headers"])
    assert headers["x-custom"] == "hello"
    assert headers["content-type"] == "application/json"
    assert headers["x-api-key"] == API_KEY
    assert lowered(event["multiValueHeaders"])["x-custom"] == ["hello"]
    assert event["stageVariables"] is None
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw
    context = event["requestContext"]
    assert context["resourcePath"] == "/sources/{vendor}/{source_id}"
    assert context["httpMethod"] == "PATCH"
    assert context["stage"] == STAGE
    assert context["path"] == "/sources/ocpplab/dep-123"  # local URLs have no stage prefix
    assert context["identity"]["apiKey"] == API_KEY
    assert context["requestId"]
    assert isinstance(context["requestTimeEpoch"], int)
    # What the handler gets must survive the JSON round trip Lambda puts it through.
    assert json.loads(json.dumps(event)) == event


def test_no_query_string_and_no_path_parameters_are_null(client: Client, handler: ModuleType) -> None:
    client.get("/sources", headers=keyed())

    (event,) = handler.EVENTS
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None


SAMPLE_EVENTS = [
    "api_create_source",
    "api_list_sources",
    "api_update_source",
    "api_delete_source",
    "api_get_health",
]


def replay(client: Client, sample: dict[str, Any]) -> TestResponse:
    """Sends the HTTP request a sample event describes."""
    headers = {name: value for name, value in sample["headers"].items() if name.lower() != "host"}
    if "x-api-key" in lowered(headers):
        headers = {name: value for name, value in headers.items() if name.lower() != "x-api-key"}
        headers["x-api-key"] = API_KEY
    query = [(k, v) for k, values in (sample["multiValueQueryStringParameters"] or {}).items() for v in values]
    data = base64.b64decode(sample["body"]) if sample["body"] else None
    return client.open(sample["path"], method=sample["httpMethod"], headers=headers, query_string=query, data=data)


@pytest.mark.parametrize("name", SAMPLE_EVENTS)
def test_replayed_sample_request_gives_the_sample_event(client: Client, handler: ModuleType, name: str) -> None:
    sample = load_event(name)

    response = replay(client, sample)

    assert response.status_code == 200
    (event,) = handler.EVENTS
    for key in (
        "resource",
        "path",
        "httpMethod",
        "pathParameters",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "stageVariables",
        "body",
        "isBase64Encoded",
    ):
        assert event[key] == sample[key], key
    assert event["requestContext"]["resourcePath"] == sample["requestContext"]["resourcePath"]
    assert event["requestContext"]["httpMethod"] == sample["requestContext"]["httpMethod"]
    sample_key = sample["requestContext"]["identity"]["apiKey"]
    assert event["requestContext"]["identity"]["apiKey"] == (API_KEY if sample_key else None)
    assert set(lowered(sample["headers"])) - {"host"} <= set(lowered(event["headers"]))


def test_event_keys_match_the_sample_event(client: Client, handler: ModuleType) -> None:
    sample = load_event("api_create_source")

    replay(client, sample)

    (event,) = handler.EVENTS
    assert set(event) == set(sample)
    assert set(event["requestContext"]["identity"]) == set(sample["requestContext"]["identity"])


def test_event_request_context_keys_match_the_sample_event(client: Client, handler: ModuleType) -> None:
    sample = load_event("api_create_source")

    replay(client, sample)

    (event,) = handler.EVENTS
    assert set(event["requestContext"]) == set(sample["requestContext"])


# ---------------------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    "content_type",
    ["application/octet-stream", "application/json", "text/plain; charset=utf-8", "image/png", None],
)
def test_every_body_is_base64_and_round_trips_exactly(
    client: Client, handler: ModuleType, content_type: str | None
) -> None:
    raw = random_bytes(64 * 1024)
    headers = keyed(**({"Content-Type": content_type} if content_type else {}))

    response = client.post("/sources", headers=headers, data=raw)

    assert response.status_code == 200
    (event,) = handler.EVENTS
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"], validate=True) == raw


def test_get_without_body_has_null_body(client: Client, handler: ModuleType) -> None:
    client.get("/sources", headers=keyed())

    (event,) = handler.EVENTS
    assert event["body"] is None
    assert event["isBase64Encoded"] is False


def test_body_over_10_mb_is_413_and_not_invoked(client: Client, handler: ModuleType, template: dict[str, Any]) -> None:
    response = client.post("/sources", headers=keyed(), data=b"\x00" * (API_GATEWAY_MAX_REQUEST_BYTES + 1))

    body = problem(response, 413)
    assert body == template_problem(
        template, "REQUEST_TOO_LARGE", f"HTTP content length exceeded {API_GATEWAY_MAX_REQUEST_BYTES} bytes."
    )
    assert body["title"] == "Content Too Large"
    assert handler.EVENTS == []


def test_chunked_body_over_10_mb_is_413_and_not_invoked(client: Client, handler: ModuleType) -> None:
    # No Content-Length: the gateway must count what it reads.
    builder = EnvironBuilder(
        path="/sources",
        method="POST",
        headers=keyed(**{"Transfer-Encoding": "chunked"}),
        input_stream=io.BytesIO(b"\xff" * (API_GATEWAY_MAX_REQUEST_BYTES + 1)),
    )
    environ = builder.get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input_terminated"] = True

    response = Response.from_app(client.application, environ, buffered=True)

    problem(response, 413)
    assert handler.EVENTS == []


def test_binary_body_whose_event_exceeds_the_lambda_payload_limit_is_413(client: Client, handler: ModuleType) -> None:
    raw = random_bytes(5 * MB)  # under API Gateway's 10 MB, but about 6.7 MB once base64-encoded
    assert len(raw) < API_GATEWAY_MAX_REQUEST_BYTES
    assert len(base64.b64encode(raw)) > LAMBDA_MAX_PAYLOAD_BYTES

    response = client.post("/sources", headers=keyed(**{"Content-Type": "application/zip"}), data=raw)

    body = problem(response, 413)
    assert str(LAMBDA_MAX_PAYLOAD_BYTES) in body["detail"]
    assert handler.EVENTS == []


def test_4_mb_body_passes(client: Client, handler: ModuleType) -> None:
    raw = random_bytes(4 * MB)

    response = client.post("/sources", headers=keyed(**{"Content-Type": "application/zip"}), data=raw)

    assert response.status_code == 200
    (event,) = handler.EVENTS
    assert base64.b64decode(event["body"]) == raw


# ---------------------------------------------------------------------------------------- responses


def test_proxy_response_maps_status_headers_and_binary_body(client: Client, handler: ModuleType) -> None:
    raw = random_bytes(8 * 1024)
    handler.RESULT = {
        "statusCode": 201,
        "headers": {"Content-Type": "application/octet-stream", "X-Request-Id": "abc"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "isBase64Encoded": True,
        "body": base64.b64encode(raw).decode("ascii"),
    }

    response = client.get("/sources", headers=keyed())

    assert response.status_code == 201
    assert response.get_data() == raw
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["X-Request-Id"] == "abc"
    assert response.headers.getlist("Set-Cookie") == ["a=1", "b=2"]


def test_proxy_response_text_body_is_utf8(client: Client, handler: ModuleType) -> None:
    handler.RESULT = {
        "statusCode": 404,
        "headers": {"Content-Type": "text/plain"},
        "body": "caf\u00e9 \u26a1",
    }

    response = client.get("/sources", headers=keyed())

    assert response.status_code == 404
    assert response.get_data() == "caf\u00e9 \u26a1".encode()


def test_proxy_response_without_body_is_empty(client: Client, handler: ModuleType) -> None:
    handler.RESULT = {"statusCode": 204}

    response = client.delete("/sources/ocpplab/dep-123", headers=keyed())

    assert response.status_code == 204
    assert response.get_data() == b""


@pytest.mark.parametrize(
    "result",
    [
        pytest.param({"body": "no status code"}, id="missing-statusCode"),
        pytest.param({"statusCode": 200, "body": {"a": 1}}, id="dict-body"),
        pytest.param({"statusCode": 200, "body": b"bytes"}, id="bytes-body"),
        pytest.param("a string", id="not-a-dict"),
        pytest.param([{"statusCode": 200}], id="list"),
        pytest.param(
            {"statusCode": "abc", "body": ""},
            id="non-integer-statusCode",
        ),
        pytest.param(
            {"statusCode": 200, "body": "", "headers": {"X-When": object()}},
            id="not-json-serialisable",
        ),
    ],
)
def test_malformed_proxy_response_is_502(
    client: Client, handler: ModuleType, template: dict[str, Any], result: Any
) -> None:
    handler.RESULT = result

    response = client.get("/sources", headers=keyed())

    body = problem(response, 502)
    assert body == template_problem(template, "DEFAULT_5XX", "Internal server error")
    assert len(handler.EVENTS) == 1


def test_proxy_response_over_6_mb_is_502(client: Client, handler: ModuleType) -> None:
    handler.RESULT = {"statusCode": 200, "body": "x" * (LAMBDA_MAX_PAYLOAD_BYTES + 1)}

    response = client.get("/sources", headers=keyed())

    problem(response, 502)


# ---------------------------------------------------------------------------------------- failures


def test_function_timeout_is_502(make_client: MakeClient, handler: ModuleType) -> None:
    handler.SLEEP_SECONDS = 2.0
    client = make_client("sleepy", timeout_seconds=1)

    started = time.monotonic()
    response = client.get("/sources", headers=keyed())
    elapsed = time.monotonic() - started

    body = problem(response, 502)
    assert body["detail"] == "Internal server error"
    assert 0.9 <= elapsed < 1.9


def test_integration_timeout_is_504(
    make_client: MakeClient, handler: ModuleType, template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_module, "INTEGRATION_TIMEOUT_SECONDS", 0.5)
    handler.SLEEP_SECONDS = 1.5
    client = make_client("sleepy", timeout_seconds=5)

    started = time.monotonic()
    response = client.get("/sources", headers=keyed())
    elapsed = time.monotonic() - started

    body = problem(response, 504)
    assert body == template_problem(template, "INTEGRATION_TIMEOUT", "Endpoint request timed out")
    assert body["title"] == "Gateway Timeout"
    assert 0.4 <= elapsed < 1.4


def test_handler_exception_is_502(make_client: MakeClient, handler: ModuleType) -> None:
    client = make_client("boom")

    response = client.post("/sources", headers=keyed(), data=b"{}")

    body = problem(response, 502)
    assert body["detail"] == "Internal server error"
    assert len(handler.EVENTS) == 1
