"""The API's resolver: every router, the error mapping, and the OpenAPI document it serves.

``GET /openapi.json`` serves the document, ``GET /docs`` a Swagger UI over it (and ``/docs?format=json``).
``make openapi`` writes the same document to docs/openapi.json (``chargelog_cli.openapi``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.models import APIKey, OpenAPI, Server

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
    """Powertools' resolver, with the document amended where /docs, /openapi.json and docs/openapi.json get it."""

    def get_openapi_schema(self, **kwargs: Any) -> OpenAPI:
        document = super().get_openapi_schema(**kwargs).model_dump(mode="json", by_alias=True, exclude_none=True)
        openapi.amend(document, open_routes=OPEN_ROUTES)
        return OpenAPI.model_validate(document)


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
    security_schemes={
        API_KEY_SCHEME: APIKey.model_validate(
            {"in": "header", "name": "x-api-key", "description": "The API key: make run prints it; see the README"}
        )
    },
    security=[{API_KEY_SCHEME: []}],
)
# Swagger UI at /docs holds no data (it is open in the template; its calls send the key given in *Authorize*).
# Powertools puts its own copy of swagger-ui into the page: nothing is loaded from elsewhere. The key is not
# persisted: Swagger UI would keep it in localStorage, beyond the browser session.
app.enable_swagger(path="/docs", persist_authorization=False, compress=True)


@app.get("/openapi.json", include_in_schema=False)
def get_openapi_document() -> Response[str]:
    # The server is the stage's base path on an execute-api URL, "/" elsewhere: as /docs does it.
    servers = [Server(url=app._get_base_path() or "/")]
    return Response(200, content_type="application/json", body=openapi.render(app, servers=servers))
