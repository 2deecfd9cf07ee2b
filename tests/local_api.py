"""The template's API function behind the local API Gateway on 127.0.0.1, for tests of the CLI over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from werkzeug.serving import WSGIRequestHandler, make_server

from chargelog_local import template as tpl
from chargelog_local.gateway import LocalApiGateway
from chargelog_local.lambdas import LocalFunction


class QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, *_: Any) -> None:
        pass


@dataclass
class Api:
    url: str
    queries: list[dict[str, list[str]]] = field(default_factory=list)  # each request's query string


@contextmanager
def serve_api(template: dict[str, Any], api_key: str) -> Iterator[Api]:
    """The API function behind the local gateway, on 127.0.0.1; it notes each request's query."""
    spec = next(s for s in tpl.functions(template) if s.logical_id == "ApiFunction")
    function = LocalFunction(spec, "us-east-1")
    gateway = LocalApiGateway(
        functions={spec.logical_id: function},
        routes=spec.routes,
        api_key=api_key,
        gateway_responses=tpl.gateway_responses(template),
        binary_media_types=tpl.binary_media_types(template),
        stage="local",
        region="us-east-1",
    )
    queries: list[dict[str, list[str]]] = []

    def noting(environ: dict[str, Any], start_response: Any) -> Any:
        queries.append(parse_qs(environ.get("QUERY_STRING", "")))
        return gateway(environ, start_response)

    server = make_server("127.0.0.1", 0, noting, threaded=True, request_handler=QuietRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Api(f"http://127.0.0.1:{server.server_port}", queries)
    finally:
        server.shutdown()
        function.shutdown()
