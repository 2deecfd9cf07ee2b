"""The API's resolver: every router, the error mapping, and the OpenAPI document it serves.

``GET /openapi.json`` serves the document, ``GET /docs`` a Swagger UI over it (and ``/docs?format=json``).
``make openapi`` writes the same document to docs/openapi.json (``chargelog_cli.openapi``).

Each router's module loads when a request first comes for one of its paths, not at cold start: a container's first
request pays for its own route's logic, data access and models, not the whole API's (issue 17, bench/coldstart.py).
``ROUTES`` names every router's paths (a test checks it against the routers' own), so the resolver knows which
router a path needs without importing it; the document (``get_openapi_schema``) includes every router. Routes keep
the order eager inclusion gives them, whatever order their routers load in, so a request matches the same route.

Powertools' OpenAPI models (``aws_lambda_powertools.event_handler.openapi.models``: some 170 ms of pydantic model
building) are only needed to write the document, not to route or validate a request. So they load when the document
is first asked for (``/openapi.json``, ``/docs``), not at cold start: the security scheme is given as the document
has it, and the Swagger UI route is set up at the first request for it (``ChargelogResolver.enable_swagger_lazily``),
because Powertools' ``enable_swagger`` imports the models when called.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from chargelog import __version__
from chargelog.api import openapi, problems

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.api_gateway import Route
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


# Every router (a module of chargelog.api with a ``router``) and the rules of its routes, in the order the API includes
# them: the order Powertools tries routes in (static rules first, then dynamic, each in this order).
ROUTES: dict[str, tuple[str, ...]] = {
    "health": ("/health",),
    "sources": ("/sources", "/sources/discover", "/sources/<vendor>/<source_id>"),
    "collectors": (
        "/collectors",
        "/collectors/<vendor>/<source_id>/backfill",
        "/collectors/<vendor>/<source_id>/replay",
    ),
    "logs": (
        "/chargers",
        "/logs",
        "/chargers/<charger_id>/logs",
        "/chargers/<charger_id>/logs/<record_id>",
        "/sites/<site_id>/logs",
    ),
    "exchanges": ("/chargers/<charger_id>/exchanges",),
    "exports": ("/exports", "/exports/<export_id>"),
    "diagnostics": ("/diagnostics/requests", "/diagnostics", "/diagnostics/<request_id>"),
    "status": ("/chargers/<charger_id>/status",),
    "sessions": ("/chargers/<charger_id>/sessions",),
    "alerts": ("/alerts", "/alerts/<alert_id>", "/chargers/<charger_id>/health"),
    "ui": ("/ui", "/ui/<name>", "/ui/vendor/<package>/<name>"),
}


class ChargelogResolver(APIGatewayRestResolver):
    """Powertools' resolver, with routers included when a request first needs them (``include_routers_lazily``), the
    document amended where /docs, /openapi.json and docs/openapi.json get it, and its Swagger UI set up when first
    asked for."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._swagger_path: str | None = None
        self._swagger_options: dict[str, Any] = {}
        self._swagger_lock = threading.Lock()
        self._lazy_routes: dict[str, tuple[re.Pattern[str], ...]] = {}  # router module -> its rules, until included
        self._router_rank: dict[str, int] = {}  # router module -> its place in the order of inclusion
        self._routers_lock = threading.Lock()

    def include_routers_lazily(self, package: str, routes: Mapping[str, tuple[str, ...]]) -> None:
        """Include ``package.<module>.router`` for each of ``routes``' modules (in their order) when a request's path
        first matches one of its rules, or the document is asked for."""
        pending = dict(self._lazy_routes)
        for module, rules in routes.items():
            name = f"{package}.{module}"
            pending[name] = tuple(self._compile_regex(rule) for rule in rules)
            self._router_rank[name] = len(self._router_rank)
        self._lazy_routes = pending

    def include_routers_for(self, path: str) -> None:
        """Include every router with a route whose rule matches ``path`` (any method), so the request is matched
        against every route it would be matched against if all were included."""

        def wanted(rules: tuple[re.Pattern[str], ...]) -> bool:
            return any(rule.match(path) for rule in rules)

        if any(wanted(rules) for rules in self._lazy_routes.values()):
            self._include_routers(wanted)

    def include_all_routers(self) -> None:
        if self._lazy_routes:
            self._include_routers(lambda _: True)

    def _include_routers(self, wanted: Callable[[tuple[re.Pattern[str], ...]], bool]) -> None:
        # The routes lists and the pending routers are replaced, never changed in place once built: a request being
        # resolved on another thread (the local stack) sees them before or after, with every route it can match.
        with self._routers_lock:
            pending = self._lazy_routes
            names = [name for name, rules in pending.items() if wanted(rules)]
            if not names:
                return
            for name in names:
                self.include_router(importlib.import_module(name).router)
            # Powertools tries routes in the order they were added: put them back in the order of inclusion, the
            # resolver's own routes (the document's) after every router's, as when all are included at once.
            self._static_routes = sorted(self._static_routes, key=self._rank)
            self._dynamic_routes = sorted(self._dynamic_routes, key=self._rank)
            self._lazy_routes = {name: rules for name, rules in pending.items() if name not in names}

    def _rank(self, route: Route) -> int:
        return self._router_rank.get(route.func.__module__, len(self._router_rank))

    def get_openapi_schema(self, **kwargs: Any) -> OpenAPI:
        from aws_lambda_powertools.event_handler.openapi.models import OpenAPI

        self.include_all_routers()
        document = super().get_openapi_schema(**kwargs).model_dump(mode="json", by_alias=True, exclude_none=True)
        openapi.amend(document, open_routes=OPEN_ROUTES)
        return OpenAPI.model_validate(document)

    def enable_swagger_lazily(self, *, path: str, **options: Any) -> None:
        """Powertools' ``enable_swagger(path=path, **options)``, called when a request for ``path`` first comes."""
        self._swagger_path = path
        self._swagger_options = options

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        path = event.get("path")
        if self._lazy_routes and isinstance(path, str):
            self.include_routers_for(self._remove_prefix(path))
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
app.include_routers_lazily("chargelog.api", ROUTES)

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
