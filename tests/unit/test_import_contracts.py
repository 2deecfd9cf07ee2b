"""The architecture's import contracts (pyproject.toml [tool.importlinter]) hold, and each one catches a breach.

`make lint` runs `lint-imports` on the code as it is; these tests run the same contracts through import-linter's
own reporting, once on the real import graph and once with one deliberate bad import added to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter import api  # noqa: F401  (configures import-linter's adapters)
from importlinter.application.app_config import settings
from importlinter.application.use_cases import lint_imports

REPO_ROOT = Path(__file__).resolve().parents[2]


class _GraphWithExtraImports:
    """Builds the real graph, then adds imports the code does not have."""

    def __init__(self, builder: Any, imports: tuple[tuple[str, str], ...]) -> None:
        self._builder, self._imports = builder, imports

    def build(self, root_package_names: list[str], cache_dir: str | None, **options: Any) -> grimp.ImportGraph:
        graph = self._builder.build(root_package_names=root_package_names, cache_dir=None, **options)
        for importer, imported in self._imports:
            graph.add_import(importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}")
        return graph


@pytest.fixture
def contracts_with(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # functions/ is found as a namespace package from the root
    monkeypatch.chdir(REPO_ROOT)
    real_builder = settings.GRAPH_BUILDER

    def check(contract_id: str | None, *imports: tuple[str, str]) -> bool:
        """Whether the contract (every contract if None) is kept with these imports added to the code's."""
        settings.configure(GRAPH_BUILDER=_GraphWithExtraImports(real_builder, imports))
        return lint_imports(
            str(REPO_ROOT / "pyproject.toml"),
            limit_to_contracts=(contract_id,) if contract_id else (),
            cache_dir=None,
            no_logo=True,
            is_debug_mode=True,  # a bad configuration raises instead of reading as a broken contract
        )

    yield check
    settings.configure(GRAPH_BUILDER=real_builder)


CONTRACTS = ("layers", "aws-sdk-in-dal", "runtime-alone", "no-cycles")


def test_every_contract_is_kept_by_the_code(contracts_with: Any) -> None:
    assert contracts_with(None)


@pytest.mark.parametrize(
    ("importer", "imported", "broken"),
    [
        ("chargelog.logic.sources", "boto3", "aws-sdk-in-dal"),
        ("chargelog.models.records", "chargelog.aws", "aws-sdk-in-dal"),
        ("functions.worker.worker_handler", "botocore", "aws-sdk-in-dal"),
        ("chargelog.models.records", "chargelog.logic.collection", "layers"),
        ("chargelog.dal.sources", "chargelog.api.app", "layers"),
        ("chargelog.dal.records", "chargelog.collectors.base", "layers"),
        ("chargelog.logic.logs", "chargelog.stores", "layers"),
        ("chargelog.api.app", "chargelog_local.runner", "runtime-alone"),
        ("functions.api.api_handler", "moto", "runtime-alone"),
    ],
)
def test_a_deliberate_violation_breaks_its_contract_and_no_other(
    contracts_with: Any, importer: str, imported: str, broken: str
) -> None:
    assert not contracts_with(broken, (importer, imported))
    for other in CONTRACTS:
        if other not in (broken, "no-cycles"):
            assert contracts_with(other, (importer, imported)), f"{importer} -> {imported} also broke {other}"


def test_a_cycle_between_runtime_modules_breaks_the_acyclic_contract(contracts_with: Any) -> None:
    one_way = ("chargelog.vendors", "chargelog.ocpp_frames")
    assert contracts_with("no-cycles", one_way)
    assert not contracts_with("no-cycles", one_way, ("chargelog.ocpp_frames", "chargelog.vendors"))
