"""What the functions leave out of their cold start (issue 17, bench/coldstart.py): each import runs in a fresh
interpreter, as a Lambda's init does, and the test reads its sys.modules."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from typing import Any

import pydantic
import pytest
from aws_lambda_powertools.event_handler.api_gateway import Router

import chargelog
from chargelog import api as chargelog_api
from chargelog.api.app import ROUTES
from chargelog.models.base import Model
from chargelog.settings import Settings
from conftest import REPO_ROOT

ADAPTERS = tuple(f"chargelog.collectors.{vendor}" for vendor in ("ocpplab", "plugchoice", "chargepilot", "evenergy"))
HTTP_CLIENT = ("httpx", "tenacity", "chargelog.collectors.vendor_http")
OPENAPI_MODELS = "aws_lambda_powertools.event_handler.openapi.models"
PARSER_MODELS = "aws_lambda_powertools.utilities.parser.models"


def loaded_after(function: str, program: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` are in sys.modules after ``program`` runs in a fresh interpreter, with the function's
    folder and the layer on the path as on Lambda."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "functions" / function), str(REPO_ROOT / "layers" / "common")]),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    check = f"{program}\nimport json, sys\nprint(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", check], env=environment, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def test_the_worker_loads_no_adapter_nor_http_client_nor_its_rarer_jobs_at_cold_start() -> None:
    watched = (
        *ADAPTERS,
        *HTTP_CLIENT,
        "chargelog.logic.discovery",
        "chargelog.logic.replay",
        "chargelog.logic.collection",
    )
    # Collection is every scheduled job: it loads with the handler; the rest when a job needs it.
    assert loaded_after("worker", "import worker_handler", watched) == ["chargelog.logic.collection"]


def test_the_worker_loads_neither_the_apis_source_and_health_bodies_nor_the_schedulers_planning_at_cold_start() -> None:
    # A job needs a source's id type (models.fields), an alert and its thresholds (models.alerts) and the activity it
    # observed (logic.activity); the API's bodies and pages and the dispatcher's planning are other functions' work.
    watched = (
        "chargelog.models.sources",
        "chargelog.models.health_views",
        "chargelog.logic.scheduling",
        "chargelog.models.alerts",
        "chargelog.logic.activity",
    )
    assert loaded_after("worker", "import worker_handler", watched) == [
        "chargelog.logic.activity",
        "chargelog.models.alerts",
    ]


@pytest.mark.parametrize("function", ["worker", "export", "alert_notifier", "diagnostics_indexer"])
def test_the_queue_consumers_load_no_powertools_parser_models_at_cold_start(function: str) -> None:
    # Every event model of Powertools' parser: a model for one SQS body is not worth it, and the batch utility
    # loads them itself when pydantic comes before it.
    assert loaded_after(function, f"import {function}_handler", (PARSER_MODELS,)) == []


@pytest.mark.parametrize("function", ["diagnostics_indexer", "upload_authorizer"])
def test_the_upload_functions_load_no_record_model_nor_store_at_cold_start(function: str) -> None:
    # Records are read by the API's lifecycle of a request, not when an upload is authorized or indexed.
    watched = (
        "chargelog.dal.records",
        "chargelog.dal.record_queries",
        "chargelog.dal.archive",
        "chargelog.models.records",
        "chargelog.models.logs",
    )
    assert loaded_after(function, f"import {function}_handler", watched) == []


@pytest.mark.parametrize("function", ["dispatcher", "health_monitor"])
def test_the_scheduled_functions_load_no_powertools_data_classes_at_cold_start(function: str) -> None:
    # They read the schedule's time: not worth every event class Powertools' data classes package imports.
    assert loaded_after(function, f"import {function}_handler", ("aws_lambda_powertools.utilities.data_classes",)) == []


def test_a_vendor_loads_its_own_adapter_only() -> None:
    program = "import worker_handler\nfrom chargelog import collectors\nassert collectors.has_adapter('ocpplab')"
    assert loaded_after("worker", program, ADAPTERS) == ["chargelog.collectors.ocpplab"]
    program = "from chargelog import collectors\nassert collectors.normalizer_for('evenergy')"
    assert loaded_after("worker", program, ADAPTERS) == ["chargelog.collectors.evenergy"]


def test_the_dispatcher_loads_no_http_client_nor_the_collection_engine_at_cold_start() -> None:
    engine = (
        "chargelog.logic.collection",
        "chargelog.logic.charger_health.monitor",
        "chargelog.dal.records",
        "chargelog.dal.archive",
        "chargelog.dal.secrets",
    )
    # Nor the record model: the adapter interface names it for type checkers only (chargelog.collectors).
    records = ("chargelog.models.records", "chargelog.models.extracted", "chargelog.ocpp_frames")
    assert loaded_after("dispatcher", "import dispatcher_handler", (*ADAPTERS, *HTTP_CLIENT, *engine, *records)) == []


def test_the_api_loads_powertools_openapi_models_only_for_the_document() -> None:
    assert loaded_after("api", "import api_handler", (OPENAPI_MODELS,)) == []
    program = "from chargelog.api.app import app\napp.get_openapi_schema()"
    assert loaded_after("api", program, (OPENAPI_MODELS,)) == [OPENAPI_MODELS]


def test_the_api_loads_collection_and_replay_only_for_the_collectors_routes() -> None:
    # GET /collectors, backfills and replays import them when they run: no other route needs the collection engine.
    watched = ("chargelog.logic.collection", "chargelog.logic.replay", "chargelog.logic.charger_health.monitor")
    assert loaded_after("api", "import api_handler", watched) == []


API_ROUTERS = tuple(f"chargelog.api.{module}" for module in ROUTES)
# A request through the resolver, in a fresh interpreter with the settings a deployed API has (dummy values).
RESOLVE = """
import json, os, sys, types
from chargelog.settings import Settings
os.environ.update({field.alias: "x" for field in Settings.model_fields.values() if field.is_required() and field.alias})
import api_handler
event = json.load(open(sys.argv[1]))
def resolve(method, path):
    response = api_handler.app.resolve({**event, "httpMethod": method, "path": path}, types.SimpleNamespace())
    print(json.dumps([method, path, response["statusCode"]]))
"""


def test_the_api_loads_no_router_at_cold_start() -> None:
    # Each router (its logic, data access and models) loads with the first request for one of its paths.
    assert loaded_after("api", "import api_handler", API_ROUTERS) == []


def test_a_request_loads_the_routers_of_its_path_only() -> None:
    event = REPO_ROOT / "events" / "api_get_health.json"
    program = f"import sys; sys.argv[1:] = [{str(event)!r}]\n{RESOLVE}"
    health = f"{program}\nresolve('GET', '/health')"
    assert loaded_after("api", health, API_ROUTERS) == ["chargelog.api.health"]
    # Any method: a path's routers load even when its method is not theirs (a 404, as with every router included).
    viewer = f"{program}\nresolve('DELETE', '/ui/index.html')\nresolve('GET', '/nowhere')"
    assert loaded_after("api", viewer, API_ROUTERS) == ["chargelog.api.ui"]
    # /chargers/{charger_id}/... is served by five routers: a charger's health is the alerts router's.
    assert loaded_after("api", f"{program}\nresolve('GET', '/chargers/CP-1/health')", API_ROUTERS) == [
        "chargelog.api.alerts"
    ]


def test_the_api_names_every_router_and_the_rules_of_its_routes() -> None:
    # ROUTES is how the resolver knows which router a path needs before importing it: it must be the routers' own.
    routers = {
        module.name.removeprefix("chargelog.api.")
        for module in pkgutil.iter_modules(chargelog_api.__path__, "chargelog.api.")
        if isinstance(getattr(importlib.import_module(module.name), "router", None), Router)
    }
    assert set(ROUTES) == routers
    for module, rules in ROUTES.items():
        router = importlib.import_module(f"chargelog.api.{module}").router
        assert sorted({rule for rule, *_ in router._routes}) == sorted(rules), module
        # Whatever a router adds besides its routes would apply only from its first request on: it adds none.
        assert router._router_middlewares == [], module
        assert router._exception_handlers == {}, module
        assert router.context == {}, module


def test_routes_keep_their_order_whatever_order_their_routers_load_in() -> None:
    # Powertools matches a request against routes in the order they were added; lazily included routers must not
    # change which route answers. Load them in reverse, then compare with including them all at once.
    order = "import json\nprint(json.dumps([[r.method, r.path] for r in app._static_routes + app._dynamic_routes]))"
    paths = [rule.replace("<", "").replace(">", "") for rules in ROUTES.values() for rule in rules]
    lazily = f"from chargelog.api.app import app\nfor path in {paths[::-1]!r}: app.include_routers_for(path)\n{order}"
    at_once = f"from chargelog.api.app import app\napp.include_all_routers()\n{order}"
    assert printed("api", lazily) == printed("api", at_once)
    assert len(printed("api", at_once)) == sum(map(len, ROUTES.values())) + 3  # a PATCH and DELETE share a rule


def printed(function: str, program: str) -> Any:
    """The JSON the program prints last, run as loaded_after runs it."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "functions" / function), str(REPO_ROOT / "layers" / "common")]),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(
        [sys.executable, "-c", program], env=environment, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_every_chargelog_model_is_built_at_first_use() -> None:
    # A model's module may be imported by a function that never uses it: pydantic builds it when it is first used
    # (chargelog.models.base). Settings are the exception: every invocation reads them.
    for module in pkgutil.walk_packages(chargelog.__path__, "chargelog."):
        importlib.import_module(module.name)
    models = [cls for cls in _subclasses(pydantic.BaseModel) if cls.__module__.startswith("chargelog.")]
    assert len(models) > 50
    eager = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in models
        if not cls.model_config.get("defer_build") and cls not in (Settings, Model)
    ]
    assert eager == []


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found
