"""OCPP-J frame parsing: each message type, each way a frame can be malformed, and the canonical JSON form."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from chargelog.ocpp_frames import MAX_MESSAGE_ID_LENGTH, MalformedFrameError, OcppFrame, frame_to_json, parse_frame

BOOT_NOTIFICATION_16 = (
    '[2, "19223201", "BootNotification", {"chargePointVendor": "VendorX", "chargePointModel": "SingleSocketCharger",'
    ' "chargePointSerialNumber": "CP-0042", "firmwareVersion": "1.4.2"}]'
)
BOOT_NOTIFICATION_RESULT_16 = (
    '[3, "19223201", {"status": "Accepted", "currentTime": "2024-05-01T10:00:00.000Z", "interval": 300}]'
)
METER_VALUES_16 = """[2, "a7f3c2d1-0001", "MeterValues", {
    "connectorId": 1,
    "transactionId": 58214,
    "meterValue": [{
        "timestamp": "2024-05-01T10:15:00Z",
        "sampledValue": [
            {"value": "15234.5", "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
             "unit": "Wh", "location": "Outlet"},
            {"value": "7.36", "measurand": "Power.Active.Import", "unit": "kW"},
            {"value": "31.9", "measurand": "Current.Import", "phase": "L1", "unit": "A"}
        ]
    }]
}]"""
STATUS_NOTIFICATION_16 = (
    '[2, "status-77", "StatusNotification", {"connectorId": 2, "errorCode": "NoError", "status": "Charging",'
    ' "timestamp": "2024-05-01T10:01:12Z"}]'
)
TRANSACTION_EVENT_201 = """[2, "5e6f1b0c-8f6d-4c33-9a52-2f6b3c1d9e01", "TransactionEvent", {
    "eventType": "Updated",
    "timestamp": "2024-05-01T10:20:00.000Z",
    "triggerReason": "MeterValuePeriodic",
    "seqNo": 3,
    "transactionInfo": {"transactionId": "tx-2024-0501-0007", "chargingState": "Charging"},
    "evse": {"id": 1, "connectorId": 1},
    "meterValue": [{"timestamp": "2024-05-01T10:20:00.000Z",
                    "sampledValue": [{"value": 18.25, "measurand": "Energy.Active.Import.Register",
                                      "unitOfMeasure": {"unit": "kWh"}}]}]
}]"""
CALLERROR_WITH_DETAILS = (
    '[4, "162376037", "FormationViolation", "Payload for action RemoteStartTransaction is not valid",'
    ' {"errors": [{"path": "$.idTag", "message": "string too long (max 20)"}], "vendorCode": "E-1021"}]'
)
REAL_FRAMES = [
    BOOT_NOTIFICATION_16,
    BOOT_NOTIFICATION_RESULT_16,
    METER_VALUES_16,
    STATUS_NOTIFICATION_16,
    TRANSACTION_EVENT_201,
    CALLERROR_WITH_DETAILS,
    '[2,"ü-1","DataTransfer",{"vendorId":"Ladesäule","data":"Grüße"}]',
]
LIMIT = MAX_MESSAGE_ID_LENGTH

MALFORMED: list[tuple[Any, str]] = [
    ("", "frame is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    ('[2, "1", "Heartbeat", {}', "frame is not valid JSON: Expecting ',' delimiter: line 1 column 25 (char 24)"),
    ('[2, "1", "Heartbeat", {"x": NaN}]', "frame is not valid JSON: NaN is not a JSON value"),
    ('[2, "1", "Heartbeat", {"x": -Infinity}]', "frame is not valid JSON: -Infinity is not a JSON value"),
    ('[2, "1", "Heartbeat", {"x": 1e400}]', "frame is not valid JSON: number 1e400 is out of range"),
    ("[" * 100_000, "frame is nested too deeply"),
    ('{"messageTypeId": 2}', "frame must be a JSON array, got object"),
    (
        '"[2, \\"1\\", \\"Heartbeat\\", {}]"',
        'frame must be a JSON array, got string "[2, \\"1\\", \\"Heartbeat\\", {}]"',
    ),
    ("null", "frame must be a JSON array, got null"),
    ({"messageTypeId": 2}, "frame must be JSON text or a decoded JSON array, got dict"),
    (b'[2, "1", "Heartbeat", {}]', "frame must be JSON text or a decoded JSON array, got bytes"),
    (
        [2, "1", "Heartbeat", {"ids": {1, 2}}],
        "frame holds values JSON cannot represent: Object of type set is not JSON serializable",
    ),
    (
        [2, "1", "Heartbeat", {"x": float("nan")}],
        "frame holds values JSON cannot represent: Out of range float values are not JSON compliant: nan",
    ),
    ("[]", "frame is an empty array; expected [messageTypeId, messageId, ...]"),
    ('[7, "1", {}]', "unknown message type id 7 (expected 2 CALL, 3 CALLRESULT or 4 CALLERROR)"),
    ('[2.5, "1", {}]', "unknown message type id 2.5 (expected 2 CALL, 3 CALLRESULT or 4 CALLERROR)"),
    ('[0, "1", {}]', "unknown message type id 0 (expected 2 CALL, 3 CALLRESULT or 4 CALLERROR)"),
    ('["2", "1", "Heartbeat", {}]', 'message type id must be a number, got string "2"'),
    ('[true, "1", {}]', "message type id must be a number, got boolean true"),
    ('[null, "1", {}]', "message type id must be a number, got null"),
    ('[[2], "1", {}]', "message type id must be a number, got array"),
    ('[2, "1", "Heartbeat"]', "CALL needs 4 elements [2, messageId, action, payload], got 3"),
    ('[2, "1", "Heartbeat", {}, {}]', "CALL needs 4 elements [2, messageId, action, payload], got 5"),
    ("[2]", "CALL needs 4 elements [2, messageId, action, payload], got 1"),
    ('[3, "1"]', "CALLRESULT needs 3 elements [3, messageId, payload], got 2"),
    ('[3, "1", {}, null]', "CALLRESULT needs 3 elements [3, messageId, payload], got 4"),
    (
        '[4, "1"]',
        "CALLERROR needs 3 to 5 elements [4, messageId, errorCode, errorDescription?, errorDetails?], got 2",
    ),
    (
        '[4, "1", "GenericError", "", {}, "extra"]',
        "CALLERROR needs 3 to 5 elements [4, messageId, errorCode, errorDescription?, errorDetails?], got 6",
    ),
    (
        '[2, "", "Heartbeat", {}]',
        f"message id must be a non-empty string of at most {LIMIT} characters, got an empty string",
    ),
    (
        f'[3, "{"x" * (LIMIT + 1)}", {{}}]',
        f"message id must be a non-empty string of at most {LIMIT} characters, got a string of {LIMIT + 1} characters",
    ),
    (
        '[2, 19223201, "Heartbeat", {}]',
        f"message id must be a non-empty string of at most {LIMIT} characters, got number 19223201",
    ),
    ("[3, null, {}]", f"message id must be a non-empty string of at most {LIMIT} characters, got null"),
    ('[2, "1", "", {}]', 'action must be a non-empty string, got string ""'),
    ('[2, "1", 5, {}]', "action must be a non-empty string, got number 5"),
    ('[2, "1", null, {}]', "action must be a non-empty string, got null"),
    ('[2, "1", "Heartbeat", []]', "payload must be a JSON object, got array"),
    ('[2, "1", "Heartbeat", null]', "payload must be a JSON object, got null"),
    ('[3, "1", "Accepted"]', 'payload must be a JSON object, got string "Accepted"'),
    ('[4, "1", 500, "boom", {}]', "errorCode must be a non-empty string, got number 500"),
    ('[4, "1", "", "boom", {}]', 'errorCode must be a non-empty string, got string ""'),
    ('[4, "1", null]', "errorCode must be a non-empty string, got null"),
    ('[4, "1", "GenericError", 42]', "errorDescription must be a string, got number 42"),
    ('[4, "1", "GenericError", "boom", "details"]', 'errorDetails must be a JSON object, got string "details"'),
    ('[4, "1", "GenericError", "boom", [1]]', "errorDetails must be a JSON object, got array"),
]


def test_parses_a_call() -> None:
    frame = parse_frame('[2, "19223201", "Heartbeat", {}]')

    assert frame == OcppFrame(message_type="CALL", message_id="19223201", action="Heartbeat", payload={})
    assert (frame.error_code, frame.error_description, frame.error_details) == (None, None, None)


def test_parses_a_callresult() -> None:
    frame = parse_frame('[3, "19223201", {"currentTime": "2024-05-01T10:00:00Z"}]')

    assert frame.message_type == "CALLRESULT"
    assert frame.message_id == "19223201"
    assert frame.action is None
    assert frame.payload == {"currentTime": "2024-05-01T10:00:00Z"}
    assert (frame.error_code, frame.error_description, frame.error_details) == (None, None, None)


def test_parses_a_callerror() -> None:
    frame = parse_frame('[4, "19223201", "NotImplemented", "Unknown action FooBar", {"action": "FooBar"}]')

    assert frame.message_type == "CALLERROR"
    assert frame.message_id == "19223201"
    assert (frame.action, frame.payload) == (None, None)
    assert frame.error_code == "NotImplemented"
    assert frame.error_description == "Unknown action FooBar"
    assert frame.error_details == {"action": "FooBar"}


@pytest.mark.parametrize(
    ("raw", "description", "details"),
    [
        ('[4, "1", "InternalError", "disk full"]', "disk full", {}),
        ('[4, "1", "InternalError"]', "", {}),
        ('[4, "1", "InternalError", null, null]', "", {}),
        ('[4, "1", "InternalError", "disk full", null]', "disk full", {}),
    ],
    ids=["no-details", "no-description-no-details", "nulls", "null-details"],
)
def test_callerror_without_description_or_details_gets_defaults(raw: str, description: str, details: Any) -> None:
    frame = parse_frame(raw)

    assert (frame.error_code, frame.error_description, frame.error_details) == ("InternalError", description, details)


@pytest.mark.parametrize("type_id", [2, 2.0])
def test_message_type_id_may_be_an_integral_float(type_id: float) -> None:
    assert parse_frame(f'[{type_id}, "1", "Heartbeat", {{}}]').message_type == "CALL"
    assert parse_frame([type_id, "1", "Heartbeat", {}]).message_type == "CALL"


def test_message_id_may_be_longer_than_ocpps_36_characters_up_to_the_limit() -> None:
    long_id = "gw-eu-1/" + "9" * (MAX_MESSAGE_ID_LENGTH - 8)

    assert MAX_MESSAGE_ID_LENGTH == 255
    assert parse_frame([3, long_id, {}]).message_id == long_id


@pytest.mark.parametrize(("raw", "message"), MALFORMED)
def test_malformed_frames_are_rejected_with_a_precise_message(raw: Any, message: str) -> None:
    with pytest.raises(MalformedFrameError) as raised:
        parse_frame(raw)

    assert str(raised.value) == message
    assert isinstance(raised.value, ValueError)
    assert raised.value.__suppress_context__  # the JSON library's traceback is noise for the caller


def test_long_values_are_shortened_in_error_messages() -> None:
    with pytest.raises(MalformedFrameError) as raised:
        parse_frame([3, "1", "A" * 500])

    assert str(raised.value) == 'payload must be a JSON object, got string "' + "A" * 36 + "..."


def test_decoded_list_is_copied_not_shared() -> None:
    payload: dict[str, Any] = {"connectorId": 1, "meterValue": [{"sampledValue": [{"value": "1"}]}]}
    elements = [2, "1", "MeterValues", payload]

    frame = parse_frame(elements)
    payload["meterValue"][0]["sampledValue"].append({"value": "2"})

    assert frame.payload == {"connectorId": 1, "meterValue": [{"sampledValue": [{"value": "1"}]}]}


def test_decoded_list_and_text_give_the_same_frame() -> None:
    assert parse_frame(json.loads(METER_VALUES_16)) == parse_frame(METER_VALUES_16)


def test_boot_notification() -> None:
    frame = parse_frame(BOOT_NOTIFICATION_16)

    assert (frame.message_type, frame.message_id, frame.action) == ("CALL", "19223201", "BootNotification")
    assert frame.payload is not None
    assert frame.payload["chargePointModel"] == "SingleSocketCharger"
    answer = parse_frame(BOOT_NOTIFICATION_RESULT_16)
    assert (answer.message_type, answer.message_id) == ("CALLRESULT", frame.message_id)
    assert answer.payload == {"status": "Accepted", "currentTime": "2024-05-01T10:00:00.000Z", "interval": 300}


def test_meter_values_keep_nested_sampled_values() -> None:
    frame = parse_frame(METER_VALUES_16)

    assert frame.action == "MeterValues"
    assert frame.payload is not None
    sampled = frame.payload["meterValue"][0]["sampledValue"]
    assert [value["measurand"] for value in sampled] == [
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Current.Import",
    ]
    assert sampled[2] == {"value": "31.9", "measurand": "Current.Import", "phase": "L1", "unit": "A"}


def test_status_notification() -> None:
    frame = parse_frame(STATUS_NOTIFICATION_16)

    assert frame.action == "StatusNotification"
    assert frame.payload == {
        "connectorId": 2,
        "errorCode": "NoError",
        "status": "Charging",
        "timestamp": "2024-05-01T10:01:12Z",
    }


def test_transaction_event_201() -> None:
    frame = parse_frame(TRANSACTION_EVENT_201)

    assert frame.action == "TransactionEvent"
    assert frame.message_id == "5e6f1b0c-8f6d-4c33-9a52-2f6b3c1d9e01"
    assert frame.payload is not None
    assert frame.payload["evse"] == {"id": 1, "connectorId": 1}
    assert frame.payload["meterValue"][0]["sampledValue"][0]["value"] == 18.25


def test_callerror_with_details() -> None:
    frame = parse_frame(CALLERROR_WITH_DETAILS)

    assert frame.error_code == "FormationViolation"
    assert frame.error_description == "Payload for action RemoteStartTransaction is not valid"
    assert frame.error_details == {
        "errors": [{"path": "$.idTag", "message": "string too long (max 20)"}],
        "vendorCode": "E-1021",
    }


@pytest.mark.parametrize("raw", REAL_FRAMES)
def test_round_trip_through_canonical_json(raw: str) -> None:
    frame = parse_frame(raw)
    text = frame_to_json(frame)

    assert parse_frame(text) == frame
    assert frame_to_json(parse_frame(text)) == text
    assert text == json.dumps(json.loads(raw), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def test_canonical_json_is_compact_with_sorted_keys() -> None:
    frame = parse_frame('[2 , "1" , "Authorize" , { "idTag" : "04E1F2A3" , "extra" : { "b" : 1 , "a" : 2 } } ]')

    assert frame_to_json(frame) == '[2,"1","Authorize",{"extra":{"a":2,"b":1},"idTag":"04E1F2A3"}]'


def test_canonical_json_of_equal_frames_is_equal_whatever_the_key_order() -> None:
    first = parse_frame('[3, "1", {"status": "Accepted", "interval": 300}]')
    second = parse_frame('[3, "1", {"interval": 300, "status": "Accepted"}]')

    assert first == second
    assert frame_to_json(first) == frame_to_json(second)


def test_canonical_json_writes_an_integral_float_type_id_as_an_integer() -> None:
    assert frame_to_json(parse_frame('[3.0, "1", {}]')) == '[3,"1",{}]'


def test_canonical_callerror_always_has_five_elements() -> None:
    assert frame_to_json(parse_frame('[4, "1", "GenericError"]')) == '[4,"1","GenericError","",{}]'


def test_frames_are_immutable() -> None:
    frame = parse_frame('[2, "1", "Heartbeat", {}]')

    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.action = "Reset"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"message_type": "CALL", "message_id": "1", "payload": {}}, "action must be a non-empty string, got null"),
        ({"message_type": "CALLRESULT", "message_id": "1"}, "payload must be a JSON object, got null"),
        (
            {"message_type": "CALLRESULT", "message_id": "1", "payload": {}, "action": "Heartbeat"},
            'a CALLRESULT frame has no action, got string "Heartbeat"',
        ),
        (
            {"message_type": "CALL", "message_id": "1", "action": "Heartbeat", "payload": {}, "error_code": "X"},
            'a CALL frame has no error_code, got string "X"',
        ),
        (
            {"message_type": "CALLERROR", "message_id": "1", "error_code": "X", "error_description": ""},
            "errorDetails must be a JSON object, got null",
        ),
        (
            {
                "message_type": "CALLERROR",
                "message_id": "1",
                "error_code": "X",
                "error_description": "",
                "error_details": {},
                "payload": {},
            },
            "a CALLERROR frame has no payload, got object",
        ),
        (
            {"message_type": "RESULT", "message_id": "1", "payload": {}},
            "message type must be CALL, CALLRESULT or CALLERROR, got 'RESULT'",
        ),
    ],
)
def test_constructing_an_inconsistent_frame_fails(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedFrameError) as raised:
        OcppFrame(**fields)

    assert str(raised.value) == message
