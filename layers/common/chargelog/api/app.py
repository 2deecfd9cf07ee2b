"""The API's resolver: every router, the error mapping, and the OpenAPI document it serves.

``GET /openapi.json`` serves the document, ``GET /docs`` a Swagger UI over it (and ``/docs?format=json``).
``make openapi`` writes the same document to docs/openapi.json (``chargelog_cli.openapi``).

Powertools' OpenAPI models (``aws_lambda_powertools.event_handler.openapi.models``: some 170 ms of pydantic model
building) are only needed to write the document, not to route or validate a request. So they load when the document
is first asked for (``/openapi.json``, ``/docs``), not at cold start: the security scheme is given as the document
has it, and the Swagger UI route is set up at the first request for it (``ChargelogResolver.enable_swagger_lazily``),
because Powertools' ``enable_swagger`` imports the models when called.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from chargelog import __version__
from chargelog.api import (
    alerts,
    collectors,
    diagnostics,
    exchanges,
    exports,
    health,
    logs,
    openapi,
    problems,
    sessions,
    sources,
    status,
    ui,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI, SecurityScheme
    from aws_lambda_powertools.utilities.typing import LambdaContext

API_KEY_SCHEME = "api_key"  # the name SAM gives the scheme in the API definition it deploys
# What API Gateway serves without a key (template.yaml: Auth.ApiKeyRequired false); every other route needs one.
OPEN_ROUTES = frozenset({("get", "/health")})

DESCRIPTION = """\
Collected OCPP logs of EV chargers, per charger, site and fleet; the sources chargelog collects; collector health;
alerts on misbehaving chargers and each charger's health; diagnostics requests (upload addresses for GetLog /
GetDiagnostics) and the files chargers upload to them.

Every route except `GET /health` needs the API key in the `x-api-key` header. Errors are
`application/problem+json` bodies with `type`, `title`, `status` and `detail`.
"""


class ChargelogResolver(APIGatewayRestResolver):
    """Powertools' resolver, with the document amended where /docs, /openapi.json and docs/openapi.json get it, and
    its Swagger UI set up when first asked for."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._swagger_path: str | None = None
        self._swagger_options: dict[str, Any] = {}
        self._swagger_lock = threading.Lock()

    def get_openapi_schema(self, **kwargs: Any) -> OpenAPI:
        from aws_lambda_powertools.event_handler.openapi.models import OpenAPI

        document = super().get_openapi_schema(**kwargs).model_dump(mode="json", by_alias=True, exclude_none=True)
        openapi.amend(document, open_routes=OPEN_ROUTES)
        return OpenAPI.model_validate(document)

    def enable_swagger_lazily(self, *, path: str, **options: Any) -> None:
        """Powertools' ``enable_swagger(path=path, **options)``, called when a request for ``path`` first comes."""
        self._swagger_path = path
        self._swagger_options = options

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        # The route matches the event's path exactly (no strip_prefixes here), as Powertools would match it.
        if self._swagger_path is not None and event.get("path") == self._swagger_path:
            with self._swagger_lock:
                if self._swagger_path is not None:
                    self.enable_swagger(path=self._swagger_path, **self._swagger_options)
                    self._swagger_path = None
        return super().resolve(event, context)


app = ChargelogResolver(enable_validation=True)
problems.register(app)
app.use(middlewares=[problems.check_json_body])
app.include_router(health.router)
app.include_router(sources.router)
app.include_router(collectors.router)
app.include_router(logs.router)
app.include_router(exchanges.router)
app.include_router(exports.router)
app.include_router(diagnostics.router)
app.include_router(status.router)
app.include_router(sessions.router)
app.include_router(alerts.router)
app.include_router(ui.router)

app.configure_openapi(
    title="chargelog API",
    version=__version__,
    description=DESCRIPTION,
    # As the document has it (Powertools' APIKey model, validated when the document is built).
    security_schemes={
        API_KEY_SCHEME: cast(
            "SecurityScheme",
            {
                "type": "apiKey",
                "in": "header",
                "name": "x-api-key",
                "description": "The API key: make run prints it; see the README",
            },
        )
    },
    security=[{API_KEY_SCHEME: []}],
)
# Swagger UI at /docs holds no data (it is open in the template; its calls send the key given in *Authorize*).
# Powertools puts its own copy of swagger-ui into the page: nothing is loaded from elsewhere. The key is not
# persisted: Swagger UI would keep it in localStorage, beyond the browser session.
app.enable_swagger_lazily(path="/docs", persist_authorization=False, compress=True)


@app.get("/openapi.json", include_in_schema=False)
def get_openapi_document() -> Response[str]:
    from aws_lambda_powertools.event_handler.openapi.models import Server

    # The server is the stage's base path on an execute-api URL, "/" elsewhere: as /docs does it.
    servers = [Server(url=app._get_base_path() or "/")]
    return Response(200, content_type="application/json", body=openapi.render(app, servers=servers))
