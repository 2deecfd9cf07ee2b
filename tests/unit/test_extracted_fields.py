"""The cross-vendor normalizer: fields read from OCPP 1.6 and 2.0.1 payloads (checked against the ``ocpp``
package's JSON schemas), units, the latest meter sample, ChargePilot's own fields, and odd payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import ocpp
import pytest
from jsonschema import Draft4Validator, Draft6Validator

from chargelog.models.extracted import ExtractedFields, extract_fields, with_vendor_fields
from chargelog.models.records import LogRecord, record_id_for

SCHEMAS = Path(ocpp.__file__).parent
T0 = "2026-11-20T10:00:00Z"
T1 = "2026-11-20T10:01:00Z"
AT1 = datetime(2026, 11, 20, 10, 1, tzinfo=UTC)


@cache
def _validator(version: str, action: str, response: bool) -> Draft4Validator | Draft6Validator:
    if version == "1.6":
        path = SCHEMAS / "v16" / "schemas" / f"{action}{'Response' if response else ''}.json"
        return Draft4Validator(json.loads(path.read_text("utf-8-sig")), format_checker=Draft4Validator.FORMAT_CHECKER)
    path = SCHEMAS / "v201" / "schemas" / f"{action}{'Response' if response else 'Request'}.json"
    return Draft6Validator(json.loads(path.read_text("utf-8-sig")), format_checker=Draft6Validator.FORMAT_CHECKER)


def valid(version: str, action: str, document: dict[str, Any], response: bool = False) -> dict[str, Any]:
    """The document, after checking it against its OCPP schema, so the samples are real OCPP."""
    errors = [error.message for error in _validator(version, action, response).iter_errors(document)]
    assert not errors, f"{version} {action}{' response' if response else ''}: {errors}"
    return document


def extracted(
    version: str, action: str, payload: dict[str, Any] | None = None, result: dict[str, Any] | None = None
) -> dict[str, Any]:
    if payload is not None:
        valid(version, action, payload)
    if result is not None:
        valid(version, action, result, response=True)
    message_type = "CALL" if payload is not None else "CALLRESULT"
    return extract_fields(action, message_type, payload, result, version).model_dump(exclude_none=True)


# ---------------------------------------------------------------------------------------------- OCPP 1.6
def test_16_status_notification_gives_connector_status_and_error_code() -> None:
    payload = {"connectorId": 2, "status": "Faulted", "errorCode": "GroundFailure", "timestamp": T0}
    assert extracted("1.6", "StatusNotification", payload) == {
        "connector_status": "Faulted",
        "error_code": "GroundFailure",
    }


def test_16_authorize_gives_id_tag_and_answer_status() -> None:
    got = extracted("1.6", "Authorize", {"idTag": "04A2B3C4"}, {"idTagInfo": {"status": "Blocked"}})
    assert got == {"id_tag": "04A2B3C4", "authorization_status": "Blocked"}


def test_16_start_transaction_gives_id_tag_meter_start_and_the_answers_transaction_id() -> None:
    payload = {"connectorId": 1, "idTag": "04A2B3C4", "meterStart": 1200, "timestamp": T1}
    result = {"transactionId": 4711, "idTagInfo": {"status": "Accepted"}}
    assert extracted("1.6", "StartTransaction", payload, result) == {
        "id_tag": "04A2B3C4",
        "authorization_status": "Accepted",
        "transaction_id": "4711",
        "meter": {"energy_wh": 1200.0, "sampled_at": AT1},
    }


def test_16_start_transaction_answer_alone_with_or_without_its_action() -> None:
    result = valid("1.6", "StartTransaction", {"transactionId": 4711, "idTagInfo": {"status": "Accepted"}}, True)
    for action in ("StartTransaction", None):
        fields = extract_fields(action, "CALLRESULT", None, result)
        assert fields.transaction_id == "4711"
        assert fields.authorization_status == "Accepted"


def test_16_stop_transaction_gives_transaction_id_and_meter_stop() -> None:
    payload = {
        "transactionId": 4711,
        "idTag": "04A2B3C4",
        "meterStop": 15250,
        "timestamp": T1,
        "reason": "Local",
        "transactionData": [
            {"timestamp": T1, "sampledValue": [{"value": "15.25", "unit": "kWh", "context": "Transaction.End"}]}
        ],
    }
    got = extracted("1.6", "StopTransaction", payload)
    assert got == {
        "id_tag": "04A2B3C4",
        "transaction_id": "4711",
        "meter": {"energy_wh": 15250.0, "sampled_at": AT1, "context": "Transaction.End"},
    }


def test_16_meter_values_latest_sample_per_phase_with_units_normalized() -> None:
    payload = {
        "connectorId": 1,
        "transactionId": 4711,
        "meterValue": [
            {"timestamp": T0, "sampledValue": [{"value": "1.0", "unit": "kWh"}, {"value": "9", "measurand": "SoC"}]},
            {
                "timestamp": T1,
                "sampledValue": [
                    {
                        "value": "12.5",
                        "context": "Sample.Periodic",
                        "measurand": "Energy.Active.Import.Register",
                        "unit": "kWh",
                    },
                    {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
                    *(
                        {"value": v, "measurand": "Current.Import", "phase": p, "unit": "A"}
                        for p, v in (("L1", "10.1"), ("L2", "10.2"), ("L3", "9.9"))
                    ),
                    {"value": "231.5", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
                    {"value": "64", "measurand": "SoC", "unit": "Percent"},
                    {"value": "3", "measurand": "Temperature", "unit": "Celsius"},
                ],
            },
        ],
    }
    got = extracted("1.6", "MeterValues", payload)
    assert got == {
        "transaction_id": "4711",
        "meter": {
            "sampled_at": AT1,
            "context": "Sample.Periodic",
            "energy_wh": 12500.0,
            "power_w": 7200.0,
            "current_a": 30.2,  # the phases' sum: no unphased current was sampled
            "soc_percent": 64.0,
            "phases": {
                "L1": {"current_a": 10.1},
                "L2": {"current_a": 10.2},
                "L3": {"current_a": 9.9},
                "L1-N": {"voltage_v": 231.5},
            },
        },
    }


def test_16_meter_value_without_measurand_is_the_energy_register_in_wh() -> None:
    payload = {"connectorId": 1, "meterValue": [{"timestamp": T1, "sampledValue": [{"value": "880"}]}]}
    assert extracted("1.6", "MeterValues", payload) == {"meter": {"energy_wh": 880.0, "sampled_at": AT1}}


def test_16_firmware_and_diagnostics_status() -> None:
    assert extracted("1.6", "FirmwareStatusNotification", {"status": "Installed"}) == {"firmware_status": "Installed"}
    assert extracted("1.6", "DiagnosticsStatusNotification", {"status": "UploadFailed"}) == {
        "diagnostics_status": "UploadFailed"
    }


def test_16_remote_stop_names_the_transaction() -> None:
    assert extracted("1.6", "RemoteStopTransaction", {"transactionId": 12}) == {"transaction_id": "12"}


def test_snake_case_payloads_as_ocpplab_logs_them() -> None:
    payload = {
        "connector_id": 1,
        "transaction_id": 4711,
        "meter_value": [
            {"timestamp": T1, "sampled_value": [{"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"}]}
        ],
    }
    fields = extract_fields("MeterValues", "CALL", payload, None)
    assert fields.transaction_id == "4711"
    assert fields.meter is not None
    assert fields.meter.power_w == 7200.0
    answer = extract_fields(
        "StartTransaction", "CALLRESULT", None, {"transaction_id": 9, "id_tag_info": {"status": "Accepted"}}
    )
    assert (answer.transaction_id, answer.authorization_status) == ("9", "Accepted")


# ---------------------------------------------------------------------------------------------- OCPP 2.0.1
def test_201_status_notification_has_a_connector_status_and_no_error_code() -> None:
    payload = {"timestamp": T0, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}
    assert extracted("2.0.1", "StatusNotification", payload) == {"connector_status": "Occupied"}


def test_201_transaction_event_gives_transaction_id_id_token_and_meter() -> None:
    payload = {
        "eventType": "Updated",
        "timestamp": T1,
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 3,
        "transactionInfo": {"transactionId": "tx-9f2", "chargingState": "Charging"},
        "idToken": {"idToken": "AB12CD", "type": "ISO14443"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": T1,
                "sampledValue": [
                    {"value": 7.2, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}},
                    {"value": 12.5, "unitOfMeasure": {"unit": "kWh"}},
                    {"value": 231.5, "measurand": "Voltage", "phase": "L1-N"},
                    {
                        "value": 2.4,
                        "measurand": "Power.Active.Import",
                        "phase": "L1",
                        "unitOfMeasure": {"unit": "W", "multiplier": 3},
                    },
                    {"value": 80, "measurand": "SoC", "context": "Sample.Periodic"},
                ],
            }
        ],
    }
    assert extracted("2.0.1", "TransactionEvent", payload) == {
        "id_tag": "AB12CD",
        "transaction_id": "tx-9f2",
        "meter": {
            "sampled_at": AT1,
            "context": "Sample.Periodic",
            "energy_wh": 12500.0,
            "power_w": 7200.0,
            "soc_percent": 80.0,
            "phases": {"L1-N": {"voltage_v": 231.5}, "L1": {"power_w": 2400.0}},
        },
    }


def test_201_meter_values_with_a_multiplier() -> None:
    payload = {
        "evseId": 1,
        "meterValue": [
            {"timestamp": T1, "sampledValue": [{"value": 12.5, "unitOfMeasure": {"unit": "Wh", "multiplier": 3}}]}
        ],
    }
    assert extracted("2.0.1", "MeterValues", payload) == {"meter": {"sampled_at": AT1, "energy_wh": 12500.0}}


def test_201_get_log_and_log_status_notification_give_the_request_id() -> None:
    get_log = {"logType": "DiagnosticsLog", "requestId": 17, "log": {"remoteLocation": "https://up.example.com/d"}}
    assert extracted("2.0.1", "GetLog", get_log) == {"log_request_id": 17}
    assert extracted("2.0.1", "LogStatusNotification", {"status": "Uploaded", "requestId": 17}) == {
        "diagnostics_status": "Uploaded",
        "log_request_id": 17,
    }


def test_201_firmware_authorize_and_request_start() -> None:
    assert extracted("2.0.1", "FirmwareStatusNotification", {"status": "Downloaded", "requestId": 3}) == {
        "firmware_status": "Downloaded"
    }
    assert extracted(
        "2.0.1",
        "Authorize",
        {"idToken": {"idToken": "AB12CD", "type": "ISO14443"}},
        {"idTokenInfo": {"status": "Accepted"}},
    ) == {"id_tag": "AB12CD", "authorization_status": "Accepted"}
    assert extracted("2.0.1", "RequestStartTransaction", None, {"status": "Accepted", "transactionId": "tx-1"}) == {
        "transaction_id": "tx-1"
    }


# ---------------------------------------------------------------------------------------------- odd input
@pytest.mark.parametrize(
    ("action", "message_type", "payload", "result"),
    [
        ("MeterValues", "CALL", {"meterValue": "x"}, None),
        (
            "MeterValues",
            "CALL",
            {"meterValue": [1, None, {"sampledValue": [{"value": "abc"}, "y", {"value": "NaN"}]}]},
            None,
        ),
        ("MeterValues", "CALL", {"meterValue": [{"timestamp": "yesterday", "sampledValue": [{"value": True}]}]}, None),
        (
            "MeterValues",
            "CALL",
            {"meterValue": [{"sampledValue": [{"value": "5", "unit": "kV", "measurand": "Voltage"}]}]},
            None,
        ),
        ("StatusNotification", "CALL", {"status": 3, "errorCode": ["x"]}, None),
        ("StartTransaction", "CALLRESULT", None, {"transactionId": True}),
        ("StartTransaction", "CALLERROR", None, {"errorCode": "InternalError", "transactionId": 3}),
        ("GetLog", "CALL", {"requestId": "17"}, None),
        ("TransactionEvent", "CALL", {"transactionInfo": "tx", "idToken": ["a"], "meterValue": {}}, None),
        (None, None, None, None),
        ("Heartbeat", "CALL", {}, {"currentTime": T0}),
    ],
)
def test_odd_payloads_give_no_fields_and_never_raise(
    action: str | None, message_type: str | None, payload: Any, result: Any
) -> None:
    assert extract_fields(action, message_type, payload, result).is_empty()


def test_a_meter_value_without_timestamps_uses_every_sample() -> None:
    fields = extract_fields("MeterValues", "CALL", {"meterValue": [{"sampledValue": [{"value": "5"}]}]}, None)
    assert fields.meter is not None
    assert (fields.meter.energy_wh, fields.meter.sampled_at) == (5.0, None)


# ---------------------------------------------------------------------------------------------- vendors' own fields
CHARGEPILOT_METER_FIELDS = {
    "extracted_voltage": None,
    "extracted_voltage_phase1": 231.0,
    "extracted_current": 30.0,
    "extracted_current_phase1": 10.0,
    "extracted_current_phase2": 10.0,
    "extracted_current_phase3": 10.0,
    "extracted_power": 6900.0,
    "extracted_state_of_charge": 55.0,
}


def test_chargepilot_fields_fill_what_the_payload_lacks_and_stay_visible() -> None:
    raw = {
        "request_id_tag": "04A2",
        "request_transaction_id": 88,
        "response_id_tag_info_status": "Accepted",
        "site_name": "x",
    }
    fields = with_vendor_fields(ExtractedFields(), "StartTransaction", raw)
    assert fields.model_dump(exclude_none=True) == {
        "id_tag": "04A2",
        "transaction_id": "88",
        "authorization_status": "Accepted",
        "vendor": {"request_id_tag": "04A2", "request_transaction_id": 88, "response_id_tag_info_status": "Accepted"},
    }


def test_chargepilot_meter_fields_when_the_payload_has_no_sample() -> None:
    fields = with_vendor_fields(ExtractedFields(), "MeterValues", CHARGEPILOT_METER_FIELDS)
    assert fields.meter is not None
    assert fields.meter.model_dump(exclude_none=True) == {
        "current_a": 30.0,
        "power_w": 6900.0,
        "soc_percent": 55.0,
        "phases": {"L1": {"voltage_v": 231.0, "current_a": 10.0}, "L2": {"current_a": 10.0}, "L3": {"current_a": 10.0}},
    }
    assert fields.vendor == {k: v for k, v in CHARGEPILOT_METER_FIELDS.items() if v is not None}


def test_payload_values_win_over_the_vendors() -> None:
    payload = {"connectorId": 1, "status": "Charging", "errorCode": "NoError"}
    own = {"request_status": "Faulted", "request_error_code": "GroundFailure"}
    fields = with_vendor_fields(extract_fields("StatusNotification", "CALL", payload, None), "StatusNotification", own)
    assert (fields.connector_status, fields.error_code, fields.vendor) == ("Charging", "NoError", own)
    only_vendor = with_vendor_fields(ExtractedFields(), "StatusNotification", own)
    assert (only_vendor.connector_status, only_vendor.error_code) == ("Faulted", "GroundFailure")


def test_status_of_a_vendor_field_goes_where_its_action_says() -> None:
    own = {"request_status": "Installed"}
    assert with_vendor_fields(ExtractedFields(), "FirmwareStatusNotification", own).firmware_status == "Installed"
    assert with_vendor_fields(ExtractedFields(), "DiagnosticsStatusNotification", own).diagnostics_status == "Installed"
    assert with_vendor_fields(ExtractedFields(), "Heartbeat", own).model_dump(exclude_none=True) == {"vendor": own}


# ---------------------------------------------------------------------------------------------- on the record
def _record(vendor: str, **fields: Any) -> LogRecord:
    return LogRecord.model_validate(
        {
            "vendor": vendor,
            "source_id": "s-1",
            "charger_id": "CP-1",
            "timestamp": AT1,
            "kind": "ocpp",
            "record_id": record_id_for(vendor, "s-1", None, n=1),
            "raw": {},
            **fields,
        }
    )


def test_every_record_gets_its_extracted_fields_and_none_when_there_are_none() -> None:
    status = _record(
        "plugchoice",
        action="StatusNotification",
        payload={"connectorId": 1, "status": "Charging", "errorCode": "NoError"},
    )
    assert status.extracted == ExtractedFields(connector_status="Charging", error_code="NoError")
    assert _record("ocpplab", action="Heartbeat", message_type="CALL", payload={}).extracted is None


def test_only_chargepilot_records_read_vendor_fields_from_raw() -> None:
    raw = {"request_id_tag": "04A2"}
    assert _record("chargepilot", action="Authorize", raw=raw).extracted == ExtractedFields(
        id_tag="04A2", vendor={"request_id_tag": "04A2"}
    )
    assert _record("plugchoice", action="Authorize", raw=raw).extracted is None


def test_given_extracted_fields_are_kept_and_status_records_get_none() -> None:
    given = ExtractedFields(transaction_id="7")
    assert _record("ocpplab", action="MeterValues", payload={"transactionId": 8}, extracted=given).extracted == given
    status = _record("evenergy", kind="status", payload={"is_plugged_in": True, "transactionId": 3})
    assert status.extracted is None
