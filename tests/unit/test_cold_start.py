"""What the functions leave out of their cold start (issue 17, bench/coldstart.py): each import runs in a fresh
interpreter, as a Lambda's init does, and the test reads its sys.modules."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys

import pydantic

import chargelog
from chargelog.models.base import Model
from chargelog.settings import Settings
from conftest import REPO_ROOT

ADAPTERS = tuple(f"chargelog.collectors.{vendor}" for vendor in ("ocpplab", "plugchoice", "chargepilot", "evenergy"))
HTTP_CLIENT = ("httpx", "tenacity", "chargelog.collectors.vendor_http")
OPENAPI_MODELS = "aws_lambda_powertools.event_handler.openapi.models"


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


def test_a_vendor_loads_its_own_adapter_only() -> None:
    program = "import worker_handler\nfrom chargelog import collectors\nassert collectors.has_adapter('ocpplab')"
    assert loaded_after("worker", program, ADAPTERS) == ["chargelog.collectors.ocpplab"]
    program = "from chargelog import collectors\nassert collectors.normalizer_for('evenergy')"
    assert loaded_after("worker", program, ADAPTERS) == ["chargelog.collectors.evenergy"]


def test_the_dispatcher_loads_no_http_client_at_cold_start() -> None:
    assert loaded_after("dispatcher", "import dispatcher_handler", (*ADAPTERS, *HTTP_CLIENT)) == []


def test_the_api_loads_powertools_openapi_models_only_for_the_document() -> None:
    assert loaded_after("api", "import api_handler", (OPENAPI_MODELS,)) == []
    program = "from chargelog.api.app import app\napp.get_openapi_schema()"
    assert loaded_after("api", program, (OPENAPI_MODELS,)) == [OPENAPI_MODELS]


def test_the_api_loads_collection_and_replay_only_for_the_collectors_routes() -> None:
    # GET /collectors, backfills and replays import them when they run: no other route needs the collection engine.
    watched = ("chargelog.logic.collection", "chargelog.logic.replay", "chargelog.logic.charger_health.monitor")
    assert loaded_after("api", "import api_handler", watched) == []


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
