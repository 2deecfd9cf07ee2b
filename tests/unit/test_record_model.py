"""The normalized log record: its validation, stable record ids, and reading connector ids out of payloads."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from chargelog.models.records import LogRecord, connector_id_from, record_id_for
from chargelog.vendors import VENDORS

CEST = timezone(timedelta(hours=2))
HASHED_ID = re.compile(r"^(plugchoice|ocpplab|chargepilot|evenergy):h:[0-9a-f]{32}$")

# The identifying fields of one ocpplab log entry that has no id of its own.
IDENTIFYING: dict[str, Any] = {
    "timestamp": datetime(2024, 5, 1, 10, 15, tzinfo=UTC),
    "charger_id": "CP-0042",
    "message_id": "a7f3c2d1-0001",
    "action": "MeterValues",
    "direction": "cp_to_csms",
}
# A different value of the same type for each identifying field.
CHANGED: dict[str, Any] = {
    "timestamp": datetime(2024, 5, 1, 10, 15, 0, 1, tzinfo=UTC),
    "charger_id": "CP-0043",
    "message_id": "a7f3c2d1-0002",
    "action": "StatusNotification",
    "direction": "csms_to_cp",
}


def record_fields(**overrides: Any) -> dict[str, Any]:
    """The fields of a valid record (a MeterValues CALL read from plugchoice), with some replaced."""
    raw = {
        "id": 123456,
        "charge_point": "CP-0042",
        "created_at": "2024-05-01T12:15:00+02:00",
        "message": '[2,"a7f3c2d1-0001","MeterValues",{"connectorId":1}]',
    }
    fields: dict[str, Any] = {
        "vendor": "plugchoice",
        "source_id": "cp-0042",
        "charger_id": "CP-0042",
        "connector_id": 1,
        "timestamp": datetime(2024, 5, 1, 10, 15, tzinfo=UTC),
        "kind": "ocpp",
        "action": "MeterValues",
        "direction": "cp_to_csms",
        "message_type": "CALL",
        "message_id": "a7f3c2d1-0001",
        "payload": {"connectorId": 1},
        "ocpp_version": "1.6",
        "record_id": "plugchoice:123456",
        "raw": raw,
    }
    return fields | overrides


# --- LogRecord -----------------------------------------------------------------------------------------


def test_a_full_ocpp_record_validates() -> None:
    record = LogRecord(**record_fields())

    assert record.vendor == "plugchoice"
    assert record.connector_id == 1
    assert record.raw == record_fields()["raw"]
    assert record.result is None
    assert record.status is None


def test_a_status_record_needs_only_the_identity_fields() -> None:
    record = LogRecord(
        vendor="evenergy",
        source_id="evse-9",
        charger_id="CP-9",
        timestamp=datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
        kind="status",
        status="Faulted",
        record_id="evenergy:h:0123456789abcdef0123456789abcdef",
        raw={"state": "Faulted"},
    )

    assert (record.action, record.direction, record.message_type, record.message_id) == (None, None, None, None)
    assert (record.connector_id, record.payload, record.ocpp_version) == (None, None, None)


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        LogRecord(**record_fields(timestamp=datetime(2024, 5, 1, 10, 15)))


def test_naive_timestamp_text_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        LogRecord(**record_fields(timestamp="2024-05-01T10:15:00"))


def test_timestamp_in_another_offset_is_converted_to_utc() -> None:
    record = LogRecord(**record_fields(timestamp=datetime(2024, 5, 1, 12, 15, tzinfo=CEST)))

    assert record.timestamp == datetime(2024, 5, 1, 10, 15, tzinfo=UTC)
    assert record.timestamp.utcoffset() == timedelta(0)
    assert record.timestamp.tzinfo is UTC


def test_timestamp_text_with_an_offset_is_converted_to_utc() -> None:
    record = LogRecord(**record_fields(timestamp="2024-05-01T12:15:00.250+02:00"))

    assert record.timestamp == datetime(2024, 5, 1, 10, 15, 0, 250_000, tzinfo=UTC)
    assert record.timestamp.tzinfo is UTC
    assert record.model_dump(mode="json")["timestamp"] == "2024-05-01T10:15:00.250000Z"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"vendor": "chargefox"}, "vendor"),
        ({"kind": "log"}, "kind"),
        ({"direction": "inbound"}, "direction"),
        ({"message_type": "RESULT"}, "message_type"),
        ({"connector_id": -1}, "connector_id"),
        ({"connector_id": "1"}, "connector_id"),
        ({"connector_id": True}, "connector_id"),
        ({"connector_id": 1.0}, "connector_id"),
        ({"charger_id": ""}, "charger_id"),
        ({"charger_id": 42}, "charger_id"),
        ({"source_id": "has space"}, "source_id"),
        ({"action": ""}, "action"),
        ({"message_id": ""}, "message_id"),
        ({"ocpp_version": "OCPP16J"}, "ocpp_version"),
        ({"ocpp_version": "2"}, "ocpp_version"),
        ({"payload": ["not", "an", "object"]}, "payload"),
        ({"result": "Accepted"}, "result"),
        ({"raw": None}, "raw"),
        ({"record_id": ""}, "record_id"),
        ({"severity": "info"}, "severity"),
    ],
)
def test_invalid_fields_are_rejected(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        LogRecord(**record_fields(**overrides))

    assert [error["loc"][0] for error in raised.value.errors()] == [field]


@pytest.mark.parametrize("version", ["1.5", "1.6", "2.0", "2.0.1", "2.1"])
def test_ocpp_versions_are_dotted_numbers(version: str) -> None:
    assert LogRecord(**record_fields(ocpp_version=version)).ocpp_version == version


@pytest.mark.parametrize("record_id", ["ocpplab:123456", "123456", "plugchoice123456"])
def test_record_id_must_name_the_records_vendor(record_id: str) -> None:
    with pytest.raises(ValidationError, match="must start with 'plugchoice:'"):
        LogRecord(**record_fields(record_id=record_id))


def test_records_are_immutable() -> None:
    record = LogRecord(**record_fields())

    with pytest.raises(ValidationError, match="frozen"):
        record.charger_id = "CP-0043"


def test_record_dumps_to_json_compatible_data() -> None:
    dumped = LogRecord(**record_fields()).model_dump(mode="json", exclude_none=True)

    assert dumped["timestamp"] == "2024-05-01T10:15:00Z"
    assert dumped["record_id"] == "plugchoice:123456"
    assert "result" not in dumped
    assert LogRecord.model_validate(dumped) == LogRecord(**record_fields())


# --- record_id_for -------------------------------------------------------------------------------------


def test_record_id_is_deterministic() -> None:
    first = record_id_for("ocpplab", "dep-123", None, **IDENTIFYING)
    again = record_id_for("ocpplab", "dep-123", None, **dict(reversed(list(IDENTIFYING.items()))))

    assert first == again
    assert HASHED_ID.match(first)
    assert first.startswith("ocpplab:h:")


def test_record_id_is_sha256_of_the_documented_canonical_json() -> None:
    """Stored records keep their ids across releases only if this form never changes: re-reads would store copies."""
    canonical = (
        '{"fields":{"action":"MeterValues","charger_id":"CP-0042","direction":"cp_to_csms",'
        '"message_id":"a7f3c2d1-0001","timestamp":"2024-05-01T10:15:00.000000Z"},'
        '"source_id":"dep-123","vendor":"ocpplab"}'
    )
    expected = "ocpplab:h:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]

    assert (
        record_id_for("ocpplab", "dep-123", None, **IDENTIFYING)
        == expected
        == "ocpplab:h:4a545f795eb98c6717488a1be180b13e"
    )


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_record_id_changes_with_each_identifying_field(field: str) -> None:
    changed = IDENTIFYING | {field: CHANGED[field]}

    assert record_id_for("ocpplab", "dep-123", None, **changed) != record_id_for(
        "ocpplab", "dep-123", None, **IDENTIFYING
    )


def test_record_id_changes_with_the_source() -> None:
    assert record_id_for("ocpplab", "dep-124", None, **IDENTIFYING) != record_id_for(
        "ocpplab", "dep-123", None, **IDENTIFYING
    )


def test_record_id_changes_when_a_field_is_added_renamed_or_none() -> None:
    base = record_id_for("ocpplab", "dep-123", None, **IDENTIFYING)
    variants = [
        IDENTIFYING | {"connector_id": 1},
        IDENTIFYING | {"connector_id": None},
        {("msg_id" if key == "message_id" else key): value for key, value in IDENTIFYING.items()},
        {key: value for key, value in IDENTIFYING.items() if key != "action"},
    ]

    ids = {record_id_for("ocpplab", "dep-123", None, **variant) for variant in variants}

    assert len(ids) == len(variants)
    assert base not in ids


def test_record_id_distinguishes_value_types() -> None:
    assert record_id_for("ocpplab", "s", None, seq=1) != record_id_for("ocpplab", "s", None, seq="1")


def test_record_id_is_the_same_for_one_instant_in_any_offset() -> None:
    in_utc = record_id_for("chargepilot", "site-1", None, at=datetime(2024, 5, 1, 10, 15, tzinfo=UTC))
    in_cest = record_id_for("chargepilot", "site-1", None, at=datetime(2024, 5, 1, 12, 15, tzinfo=CEST))

    assert in_utc == in_cest


def test_record_id_hashes_datetimes_in_a_fixed_iso_form() -> None:
    as_datetime = record_id_for("chargepilot", "site-1", None, at=datetime(2024, 5, 1, 12, 15, tzinfo=CEST))
    as_text = record_id_for("chargepilot", "site-1", None, at="2024-05-01T10:15:00.000000Z")
    as_date = record_id_for("chargepilot", "site-1", None, on=date(2024, 5, 1))

    assert as_datetime == as_text
    assert as_date == record_id_for("chargepilot", "site-1", None, on="2024-05-01")


def test_record_id_hashes_nested_values_by_content() -> None:
    first = record_id_for("evenergy", "evse-1", None, payload={"b": [1, 2], "a": {"y": 1, "x": 2}})
    second = record_id_for("evenergy", "evse-1", None, payload={"a": {"x": 2, "y": 1}, "b": [1, 2]})
    third = record_id_for("evenergy", "evse-1", None, payload={"a": {"x": 2, "y": 1}, "b": [2, 1]})

    assert first == second
    assert first != third


@pytest.mark.parametrize("vendor_id", [123456, "123456"])
def test_vendor_id_is_used_as_given_prefixed_with_the_vendor(vendor_id: str | int) -> None:
    assert record_id_for("plugchoice", "cp-0042", vendor_id) == "plugchoice:123456"


def test_vendor_id_takes_precedence_over_identifying_fields() -> None:
    assert record_id_for("plugchoice", "cp-0042", "log-9", **IDENTIFYING) == "plugchoice:log-9"
    assert record_id_for("plugchoice", "other-source", "log-9") == "plugchoice:log-9"


def test_record_ids_never_collide_across_vendors() -> None:
    by_vendor_id = {record_id_for(vendor, "src-1", 123456) for vendor in VENDORS}
    hashed = {record_id_for(vendor, "src-1", None, **IDENTIFYING) for vendor in VENDORS}

    assert len(by_vendor_id) == len(VENDORS)
    assert len(hashed) == len(VENDORS)
    assert len({record_id.split(":h:")[1] for record_id in hashed}) == len(VENDORS)  # the hashes differ too


def test_identifying_fields_may_be_named_like_the_parameters() -> None:
    record_id = record_id_for("ocpplab", "dep-123", None, vendor="x", source_id="y", vendor_id="z")

    assert HASHED_ID.match(record_id)


def test_record_ids_validate_as_the_vendors_own() -> None:
    for record_id in (record_id_for("plugchoice", "cp-0042", 1), record_id_for("plugchoice", "cp-0042", None, n=1)):
        assert LogRecord(**record_fields(record_id=record_id)).record_id == record_id


@pytest.mark.parametrize(
    ("arguments", "identifying", "error", "message"),
    [
        (("chargefox", "s", 1), {}, ValueError, "unknown vendor 'chargefox'"),
        (("ocpplab", "s", None), {}, ValueError, "needs the vendor's id or at least one identifying field"),
        (("ocpplab", "s", ""), {}, ValueError, "vendor_id must not be empty"),
        (("ocpplab", "s", "h:0123"), {}, ValueError, "would be mistaken for a hashed id"),
        (("ocpplab", "s", True), {}, TypeError, "vendor_id must be a string or an integer, got bool"),
        (("ocpplab", "s", 1.5), {}, TypeError, "vendor_id must be a string or an integer, got float"),
        (("ocpplab", "s", None), {"at": datetime(2024, 5, 1, 10, 15)}, ValueError, "naive datetime"),
        (("ocpplab", "s", None), {"value": float("nan")}, ValueError, "Out of range float"),
        (("ocpplab", "s", None), {"tags": {"a", "b"}}, TypeError, "cannot use a set as an identifying field value"),
    ],
)
def test_record_id_for_rejects_what_cannot_give_a_stable_id(
    arguments: tuple[Any, ...], identifying: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        record_id_for(*arguments, **identifying)


# --- connector_id_from ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "connector_id"),
    [
        ({"connectorId": 2, "status": "Charging"}, 2),
        ({"connectorId": 0, "status": "Available"}, 0),
        ({"connector_id": 3}, 3),
        ({"evse": {"id": 1, "connectorId": 2}, "eventType": "Started"}, 2),
        ({"evseId": 2, "meterValue": []}, 2),
        ({"evse": {"id": 4}}, 4),
        ({"evseId": 1, "connectorId": 2, "connectorStatus": "Occupied"}, 2),
        ({"connectorId": 1.0}, 1),
        ({"connectorId": None, "connector_id": 5}, 5),
        ({"connectorId": "1", "evse": {"id": 3}}, 3),
        ({"connectorId": "1"}, None),
        ({"connectorId": 1.5}, None),
        ({"connectorId": True}, None),
        ({"connectorId": -1}, None),
        ({"evse": 1}, None),
        ({"evse": {"connectorId": "2"}}, None),
        ({"currentTime": "2024-05-01T10:00:00Z"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_connector_id_from_payload(payload: dict[str, Any] | None, connector_id: int | None) -> None:
    assert connector_id_from(payload) == connector_id


def test_connector_id_from_gives_a_plain_int_a_record_accepts() -> None:
    connector_id = connector_id_from({"connectorId": 2.0})

    assert type(connector_id) is int
    assert LogRecord(**record_fields(connector_id=connector_id)).connector_id == 2
