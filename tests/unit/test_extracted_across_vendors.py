"""The same OCPP traffic read through OCPPLAB, Plugchoice and ChargePilot comes out with the same extracted fields.

Each vendor's items are built the way its simulator serves them (OCPPLAB: one record per frame, snake_case
payloads; Plugchoice: one log per CALL holding its answer, params sometimes JSON text; ChargePilot: one entry
per exchange with its own extracted fields) and normalized by the vendor's adapter.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

import pytest

from chargelog.collectors import chargepilot, ocpplab, plugchoice
from chargelog.collectors.base import VendorConnection
from chargelog.models.records import LogRecord
from chargelog_simulators.chargepilot import exchanges, log_entry
from chargelog_simulators.ocpplab import record_item
from chargelog_simulators.plugchoice import PlugchoiceSimulator
from chargelog_simulators.traffic import (
    AuthorizationFailures,
    Behaviour,
    DiagnosticsFailure,
    ErrorBurst,
    FaultedConnector,
    FirmwareFailure,
    TrafficFrame,
    generate_traffic,
)

START = datetime(2026, 11, 20, tzinfo=UTC)
CHARGER = "CP-NORM-1"
SITE = "site-norm"
PLUGCHOICE_UUID = "6f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8"


def _connection(vendor: str, profile: Any, **credentials: str) -> VendorConnection:
    return VendorConnection(vendor, "http://127.0.0.1:9", credentials, profile)


# Simulated traffic is healthy by default: the failures whose fields must come out alike are asked for.
MISBEHAVIOURS = Behaviour(
    misbehaviours=(
        FaultedConnector(START + timedelta(hours=1), connector=2, error_code="GroundFailure"),
        DiagnosticsFailure(START + timedelta(hours=2)),
        FirmwareFailure(START + timedelta(hours=3), timedelta(hours=1), failure="InstallationFailed"),
        AuthorizationFailures(START + timedelta(hours=5), connector=1),
        ErrorBurst(START + timedelta(hours=6)),
    )
)


@pytest.fixture(scope="module")
def traffic() -> list[TrafficFrame]:
    rng = Random(2)  # noqa: S311 - seeded traffic
    return generate_traffic(CHARGER, START, START + timedelta(hours=8), rng, connectors=2, behaviour=MISBEHAVIOURS)


@pytest.fixture(scope="module")
def by_vendor(traffic: list[TrafficFrame]) -> list[dict[str, LogRecord | None]]:
    """Per CALL: the records each vendor's adapter makes of it (OCPPLAB: the CALL and its answer apart)."""
    ocpplab_adapter = ocpplab.OcpplabAdapter(_connection("ocpplab", ocpplab.PROFILE, token="t"), lambda: 900.0)
    plugchoice_adapter = plugchoice.PlugchoiceAdapter(
        _connection("plugchoice", plugchoice.PROFILE, token="t"), lambda: 900.0
    )
    chargepilot_adapter = chargepilot.ChargepilotAdapter(
        _connection("chargepilot", chargepilot.PROFILE, api_key="k", api_secret="s"), lambda: 900.0
    )
    simulator = PlugchoiceSimulator(clock=lambda: START + timedelta(days=2), string_params_rate=0.3)
    simulator.add_charger(PLUGCHOICE_UUID)
    simulator.insert(PLUGCHOICE_UUID, traffic)
    plugchoice_logs = sorted(simulator.visible_records(PLUGCHOICE_UUID), key=lambda log: log["id"])
    pairs = list(exchanges(traffic))
    assert len(plugchoice_logs) == len(pairs)
    rows = []
    for (request, answer), log in zip(pairs, plugchoice_logs, strict=True):
        assert log["method"] == request.action
        rows.append(
            {
                "ocpplab_call": ocpplab_adapter.normalize(CHARGER, record_item(request)),
                "ocpplab_answer": ocpplab_adapter.normalize(CHARGER, record_item(answer)) if answer else None,
                "plugchoice": plugchoice_adapter.normalize(PLUGCHOICE_UUID, log),
                "chargepilot": chargepilot_adapter.normalize(
                    SITE, log_entry(SITE, "Norm site", CHARGER, request, answer)
                ),
            }
        )
    return rows


def _fields(record: LogRecord | None) -> dict[str, Any]:
    if record is None or record.extracted is None:
        return {}
    return record.extracted.model_dump(exclude_none=True, exclude={"vendor"})


def test_the_traffic_covers_every_kind_of_extracted_field(by_vendor: list[dict[str, LogRecord | None]]) -> None:
    found = Counter(name for row in by_vendor for name in _fields(row["plugchoice"]))
    assert {"connector_status", "error_code", "id_tag", "authorization_status", "transaction_id", "meter"} <= set(found)
    assert {"firmware_status", "diagnostics_status"} <= set(found)
    values = {
        (name, str(value))
        for row in by_vendor
        for name, value in _fields(row["plugchoice"]).items()
        if name in ("firmware_status", "diagnostics_status", "error_code", "authorization_status")
    }
    assert {
        ("firmware_status", "InstallationFailed"),
        ("diagnostics_status", "UploadFailed"),
        ("error_code", "GroundFailure"),
    } <= values
    assert {status for name, status in values if name == "authorization_status"} - {"Accepted"}


def test_ocpplab_and_plugchoice_extract_the_same_fields(by_vendor: list[dict[str, LogRecord | None]]) -> None:
    for row in by_vendor:
        ocpplab_fields = _fields(row["ocpplab_call"]) | _fields(row["ocpplab_answer"])
        assert ocpplab_fields == _fields(row["plugchoice"]), row["plugchoice"]


def test_chargepilot_extracts_the_same_fields_but_the_answers_transaction_id(
    by_vendor: list[dict[str, LogRecord | None]],
) -> None:
    """ChargePilot logs the request with only the answer's idTagInfo status: StartTransaction's answer (the
    transaction id) is not in its entry."""
    for row in by_vendor:
        expected = _fields(row["plugchoice"])
        assert row["plugchoice"] is not None
        if row["plugchoice"].action == "StartTransaction":
            expected.pop("transaction_id", None)
        assert _fields(row["chargepilot"]) == expected, row["chargepilot"]


def test_chargepilot_keeps_its_own_extracted_fields(by_vendor: list[dict[str, LogRecord | None]]) -> None:
    meter_values = [
        row["chargepilot"] for row in by_vendor if row["plugchoice"] and row["plugchoice"].action == "MeterValues"
    ]
    assert meter_values
    for record in meter_values:
        assert record is not None
        assert record.extracted is not None
        vendor = record.extracted.vendor or {}
        assert {"extracted_power", "extracted_current_phase1", "extracted_state_of_charge"} <= set(vendor)
        meter = record.extracted.meter
        assert meter is not None
        assert meter.power_w == vendor["extracted_power"]
        assert meter.current_a == vendor["extracted_current"]
        assert meter.soc_percent == vendor["extracted_state_of_charge"]
