"""The facts a log record's OCPP payloads hold, in one shape whatever the vendor or the OCPP version.

`extract_fields` reads them from a record's action, message type, payload (the request's) and result (the
answer's) for OCPP 1.6 and 2.0.1 messages; `with_vendor_fields` adds what a vendor extracted itself
(ChargePilot's ``request_*``, ``response_*``, ``req_cs_profile_sched_*`` and ``extracted_*`` fields), filling
what the payloads did not give. Queries filter on ``transaction_id`` and ``connector_status`` whatever the
vendor (docs/storage.md).

The shape (every field optional; only what a record holds is set):

- ``connector_status`` / ``error_code``: a StatusNotification's status (1.6 ``status``, 2.0.1
  ``connectorStatus``) and 1.6 ``errorCode`` (2.0.1 has none there);
- ``id_tag``: 1.6 ``idTag``, 2.0.1 ``idToken.idToken``; ``authorization_status``: the answer's
  ``idTagInfo.status`` (1.6) or ``idTokenInfo.status`` (2.0.1);
- ``transaction_id`` (text): 1.6 StartTransaction's answer, ``transactionId`` of a request (StopTransaction,
  MeterValues, RemoteStopTransaction...), 2.0.1 ``transactionInfo.transactionId`` (TransactionEvent) and
  RequestStartTransaction's answer;
- ``firmware_status``: (Signed)FirmwareStatusNotification ``status``; ``diagnostics_status``: 1.6
  DiagnosticsStatusNotification ``status``, LogStatusNotification ``status``; ``log_request_id``: GetLog's
  or LogStatusNotification's ``requestId``;
- ``meter``: the latest sample of the message (MeterValues, TransactionEvent, StopTransaction's
  ``transactionData``; Start/StopTransaction's ``meterStart``/``meterStop`` as the energy register at the
  request's ``timestamp``): ``sampled_at``, ``energy_wh`` (Energy.Active.Import.Register), ``power_w``
  (Power.Active.Import), ``current_a`` (Current.Import), ``voltage_v``, ``soc_percent``, ``context``, and per
  phase (``L1``, ``L2-N``... as the charger names it) ``phases: {"L1": {"voltage_v", "current_a",
  "power_w"}}``. Units are normalized (kW → W, kWh → Wh, 2.0.1 multipliers applied). Without an unphased
  power or current sample, ``power_w`` / ``current_a`` are the sum over the phases L1, L2, L3 when all three
  are given (as ChargePilot computes its totals);
- ``vendor``: the vendor's own extracted fields as it sent them (non-null ones only; ChargePilot).

Payload keys may be camelCase (as OCPP defines them) or snake_case (as OCPPLAB logs them: ``id_tag``).

Standard library and pydantic only: this module loads on every Lambda cold start. Nothing here raises on an
odd payload: a shape it does not know leaves the fields absent.
"""

import math
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ConfigDict

from chargelog.models.base import Model

STATUS_ACTIONS: Final = frozenset({"StatusNotification"})
FIRMWARE_ACTIONS: Final = frozenset({"FirmwareStatusNotification", "SignedFirmwareStatusNotification"})
DIAGNOSTICS_ACTIONS: Final = frozenset({"DiagnosticsStatusNotification", "LogStatusNotification"})
LOG_REQUEST_ACTIONS: Final = frozenset({"GetLog", "LogStatusNotification"})
# Actions whose answer carries the transaction id the central system (or charger) assigned.
TRANSACTION_ANSWERS: Final = frozenset({"StartTransaction", "RequestStartTransaction"})

ENERGY: Final = "Energy.Active.Import.Register"
_QUANTITY_BY_MEASURAND: Final = {
    ENERGY: "energy_wh",
    "Power.Active.Import": "power_w",
    "Current.Import": "current_a",
    "Voltage": "voltage_v",
    "SoC": "soc_percent",
}
_PHASED: Final = frozenset({"power_w", "current_a", "voltage_v"})
# unit -> factor to the quantity's base unit (W, Wh, A, V, %)
_UNIT_FACTORS: Final = {
    "W": 1.0,
    "kW": 1000.0,
    "Wh": 1.0,
    "kWh": 1000.0,
    "A": 1.0,
    "V": 1.0,
    "Percent": 1.0,
}
_UNITS_OF: Final = {
    "energy_wh": {"Wh", "kWh"},
    "power_w": {"W", "kW"},
    "current_a": {"A"},
    "voltage_v": {"V"},
    "soc_percent": {"Percent"},
}
_DEFAULT_UNIT: Final = {"energy_wh": "Wh", "power_w": "W", "current_a": "A", "voltage_v": "V", "soc_percent": "Percent"}
_SUMMED_PHASES: Final = ("L1", "L2", "L3")

# ChargePilot's extracted fields (docs: chargepilot-ocpp-logs.txt) that are kept under ``vendor``.
VENDOR_FIELD_PREFIXES: Final = ("request_", "response_", "req_cs_profile_sched_", "extracted_")
_VENDOR_PHASES: Final = {"_phase1": "L1", "_phase2": "L2", "_phase3": "L3"}


class PhaseReading(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    voltage_v: float | None = None
    current_a: float | None = None
    power_w: float | None = None


class MeterReading(Model):
    """The latest sample of a message's meter values, in W, Wh, A, V and percent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampled_at: datetime | None = None
    context: str | None = None
    energy_wh: float | None = None
    power_w: float | None = None
    current_a: float | None = None
    voltage_v: float | None = None
    soc_percent: float | None = None
    phases: dict[str, PhaseReading] | None = None


class ExtractedFields(Model):
    """What a record's payloads say, in one shape for every vendor (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connector_status: str | None = None
    error_code: str | None = None
    id_tag: str | None = None
    authorization_status: str | None = None
    transaction_id: str | None = None
    firmware_status: str | None = None
    diagnostics_status: str | None = None
    log_request_id: int | None = None
    meter: MeterReading | None = None
    vendor: dict[str, Any] | None = None

    def is_empty(self) -> bool:
        return not self.model_dump(exclude_none=True)


def extract_fields(
    action: str | None,
    message_type: str | None,
    payload: dict[str, Any] | None,
    result: dict[str, Any] | None,
    ocpp_version: str | None = None,
) -> ExtractedFields:
    """The fields an OCPP record's payload and result hold; empty for anything else. Never raises.

    ``payload`` is the request's (a CALL's), ``result`` the answer's (a CALLRESULT's). A CALLERROR's result
    holds no facts. The version is not needed to tell the shapes apart (1.6 and 2.0.1 name things
    differently), but is accepted so callers can pass what they have.
    """
    del ocpp_version  # the field names tell the versions apart
    try:
        return _extract(action, message_type, payload, result)
    except Exception:  # an odd payload must never stop a record from being stored
        return ExtractedFields()


def with_vendor_fields(fields: ExtractedFields, action: str | None, raw: dict[str, Any]) -> ExtractedFields:
    """``fields`` with the vendor's own extracted fields of ``raw`` kept under ``vendor`` and filling the gaps.

    Only fields the payloads did not give are filled from the vendor's. Never raises.
    """
    try:
        return _with_vendor_fields(fields, action, raw)
    except Exception:  # as extract_fields
        return fields


# ---------------------------------------------------------------------------------------------- payloads
def _extract(
    action: str | None, message_type: str | None, payload: dict[str, Any] | None, result: dict[str, Any] | None
) -> ExtractedFields:
    request = _camel_keys(payload) if isinstance(payload, dict) else {}
    answer = _camel_keys(result) if isinstance(result, dict) and message_type != "CALLERROR" else {}
    if action is None and message_type == "CALLRESULT" and "transactionId" in answer and "idTagInfo" in answer:
        action = "StartTransaction"  # a StartTransaction.conf logged without its action
    found: dict[str, Any] = {}
    if action in STATUS_ACTIONS:
        found["connector_status"] = _text(request.get("status")) or _text(request.get("connectorStatus"))
        found["error_code"] = _text(request.get("errorCode"))
    found["id_tag"] = _text(request.get("idTag")) or _text(_get(request, "idToken", "idToken"))
    found["authorization_status"] = _text(_get(answer, "idTagInfo", "status")) or _text(
        _get(answer, "idTokenInfo", "status")
    )
    found["transaction_id"] = (
        _identifier(request.get("transactionId"))
        or _identifier(_get(request, "transactionInfo", "transactionId"))
        or (_identifier(answer.get("transactionId")) if action in TRANSACTION_ANSWERS else None)
    )
    if action in FIRMWARE_ACTIONS:
        found["firmware_status"] = _text(request.get("status"))
    if action in DIAGNOSTICS_ACTIONS:
        found["diagnostics_status"] = _text(request.get("status"))
    if action in LOG_REQUEST_ACTIONS:
        found["log_request_id"] = _integer(request.get("requestId"))
    found["meter"] = _meter(action, request)
    return ExtractedFields.model_validate({k: v for k, v in found.items() if v is not None})


def _meter(action: str | None, request: dict[str, Any]) -> MeterReading | None:
    reading = _latest_sample(request.get("meterValue"))
    if reading is None and action == "StopTransaction":
        reading = _latest_sample(request.get("transactionData"))
    register = {"StartTransaction": "meterStart", "StopTransaction": "meterStop"}.get(action or "")
    if register is not None:
        energy = _number(request.get(register))
        if energy is not None:
            reading = (reading or {}) | {"energy_wh": energy, "sampled_at": _time(request.get("timestamp"))}
    if not reading:
        return None
    return MeterReading.model_validate({k: v for k, v in reading.items() if v is not None})


def _latest_sample(meter_values: Any) -> dict[str, Any] | None:
    """The quantities of the latest meterValue entries (all those sharing the latest timestamp), merged."""
    if not isinstance(meter_values, list):
        return None
    entries = [(entry, _time(entry.get("timestamp"))) for entry in meter_values if isinstance(entry, dict)]
    if not entries:
        return None
    dated = [moment for _, moment in entries if moment is not None]
    latest = max(dated) if dated else None
    reading: dict[str, Any] = {}
    phases: dict[str, dict[str, float]] = {}
    for entry, moment in entries:
        if moment != latest:
            continue
        for sample in entry.get("sampledValue") or ():
            if isinstance(sample, dict):
                _add_sample(sample, reading, phases)
    if not reading and not phases:
        return None
    for quantity in ("power_w", "current_a"):
        values = [phases.get(phase, {}).get(quantity) for phase in _SUMMED_PHASES]
        if quantity not in reading and all(value is not None for value in values):
            reading[quantity] = round(math.fsum(v for v in values if v is not None), 3)
    if phases:
        reading["phases"] = phases
    reading["sampled_at"] = latest
    return reading


def _add_sample(sample: dict[str, Any], reading: dict[str, Any], phases: dict[str, dict[str, float]]) -> None:
    quantity = _QUANTITY_BY_MEASURAND.get(sample.get("measurand") or ENERGY)
    if quantity is None:
        return
    value = _number(sample.get("value"))
    if value is None:
        return
    unit_of_measure = sample.get("unitOfMeasure")  # 2.0.1: {"unit": "kWh", "multiplier": 0}
    if isinstance(unit_of_measure, dict):
        unit = unit_of_measure.get("unit") or _DEFAULT_UNIT[quantity]
        multiplier = _integer(unit_of_measure.get("multiplier")) or 0
    else:
        unit = sample.get("unit") or _DEFAULT_UNIT[quantity]
        multiplier = 0
    if unit not in _UNITS_OF[quantity]:
        return  # e.g. a voltage in kV or an energy in varh: not this quantity
    value = value * _UNIT_FACTORS[unit] * 10.0**multiplier
    phase = _text(sample.get("phase"))
    if context := _text(sample.get("context")):
        reading["context"] = context
    if phase and quantity in _PHASED:
        phases.setdefault(phase, {})[quantity] = value
    elif not phase:
        reading[quantity] = value


# ---------------------------------------------------------------------------------------------- vendors
def _with_vendor_fields(fields: ExtractedFields, action: str | None, raw: dict[str, Any]) -> ExtractedFields:
    own = {
        name: value
        for name, value in raw.items()
        if isinstance(name, str) and name.startswith(VENDOR_FIELD_PREFIXES) and value is not None
    }
    if not own:
        return fields
    filled = fields.model_dump(exclude_none=True)
    gaps: dict[str, Any] = {
        "id_tag": _text(own.get("request_id_tag")),
        "transaction_id": _identifier(own.get("request_transaction_id")),
        "authorization_status": _text(own.get("response_id_tag_info_status")),
    }
    status = _text(own.get("request_status"))
    if action in STATUS_ACTIONS:
        gaps["connector_status"] = status
        gaps["error_code"] = _text(own.get("request_error_code"))
    elif action in FIRMWARE_ACTIONS:
        gaps["firmware_status"] = status
    elif action in DIAGNOSTICS_ACTIONS:
        gaps["diagnostics_status"] = status
    for name, value in gaps.items():
        if value is not None and name not in filled:
            filled[name] = value
    meter = _vendor_meter(action, own)
    if meter and "meter" not in filled:  # the payload's sample, when there is one, is the better source
        filled["meter"] = meter
    filled["vendor"] = own
    return ExtractedFields.model_validate(filled)


def _vendor_meter(action: str | None, own: dict[str, Any]) -> dict[str, Any]:
    meter: dict[str, Any] = {}
    phases: dict[str, dict[str, float]] = {}
    for quantity, unit in (("voltage", "voltage_v"), ("current", "current_a"), ("power", "power_w")):
        total = _number(own.get(f"extracted_{quantity}"))
        if total is not None:
            meter[unit] = total
        for suffix, phase in _VENDOR_PHASES.items():
            value = _number(own.get(f"extracted_{quantity}{suffix}"))
            if value is not None:
                phases.setdefault(phase, {})[unit] = value
    soc = _number(own.get("extracted_state_of_charge"))
    if soc is not None:
        meter["soc_percent"] = soc
    stop = _number(own.get("request_meter_stop"))
    if stop is not None and action == "StopTransaction":
        meter["energy_wh"] = stop
    if phases:
        meter["phases"] = phases
    return meter


# ---------------------------------------------------------------------------------------------- values
def _camel_keys(value: Any) -> Any:
    """JSON data with snake_case keys (as OCPPLAB logs payloads: ``id_tag_info``) in OCPP's camelCase."""
    if isinstance(value, dict):
        return {_camel(key) if isinstance(key, str) else key: _camel_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_camel_keys(item) for item in value]
    return value


def _camel(key: str) -> str:
    if "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _get(document: dict[str, Any], *path: str) -> Any:
    value: Any = document
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _identifier(value: Any) -> str | None:
    """A transaction id as text: 1.6 gives integers, 2.0.1 strings; an integral float counts as the integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return str(value)
    return _text(value)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else None


def _number(value: Any) -> float | None:
    """A number, from a number or numeric text (1.6 sends sampled values as text); finite only."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)
