"""GET /chargers/{charger_id}/sessions through the API function's handler: transactions from 1.6 and 2.0.1 messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import api_calls
from chargelog.dal.archive import RawArchive
from chargelog.dal.records import RecordWriter
from chargelog.logic import sessions
from chargelog.models.records import LogRecord, record_id_for
from chargelog_local.provision import LocalStack

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
CHARGER = "CP-0001"
PATH = f"/chargers/{CHARGER}/sessions"
_serial = iter(range(1_000_000))


def message(
    at: datetime,
    message_type: str,
    direction: str,
    message_id: str,
    action: str | None = None,
    payload: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
    connector_id: int | None = None,
) -> LogRecord:
    n = next(_serial)
    return LogRecord(
        vendor="ocpplab",
        source_id=CHARGER,
        charger_id=CHARGER,
        connector_id=connector_id,
        timestamp=at,
        kind="ocpp",
        action=action,
        direction=direction,  # type: ignore[arg-type]
        message_type=message_type,  # type: ignore[arg-type]
        message_id=message_id,
        payload=payload,
        result=result,
        record_id=record_id_for("ocpplab", CHARGER, None, n=n),
        raw={"n": n},
    )


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def start_16(at: datetime, message_id: str, transaction_id: int | None, id_tag: str, meter: int) -> list[LogRecord]:
    """A StartTransaction CALL and (unless transaction_id is None) its CALLRESULT, logged without its action."""
    payload = {"connectorId": 1, "idTag": id_tag, "meterStart": meter, "timestamp": iso(at)}
    records = [message(at, "CALL", "cp_to_csms", message_id, "StartTransaction", payload=payload, connector_id=1)]
    if transaction_id is not None:
        result = {"transactionId": transaction_id, "idTagInfo": {"status": "Accepted"}}
        records.append(message(at + timedelta(milliseconds=300), "CALLRESULT", "csms_to_cp", message_id, result=result))
    return records


def stop_16(at: datetime, message_id: str, transaction_id: int, meter: int, reason: str = "Local") -> list[LogRecord]:
    payload = {"transactionId": transaction_id, "meterStop": meter, "timestamp": iso(at), "reason": reason}
    return [
        message(at, "CALL", "cp_to_csms", message_id, "StopTransaction", payload=payload),
        message(at + timedelta(milliseconds=200), "CALLRESULT", "csms_to_cp", message_id, "StopTransaction", result={}),
    ]


def event_201(at: datetime, message_id: str, event_type: str, transaction_id: str, energy_wh: float, **info: Any):
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": iso(at),
        "triggerReason": "Authorized" if event_type == "Started" else "MeterValuePeriodic",
        "seqNo": next(_serial),
        "transactionInfo": {"transactionId": transaction_id, **info},
        "evse": {"id": 2, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": iso(at),
                "sampledValue": [{"value": energy_wh, "measurand": "Energy.Active.Import.Register"}],
            }
        ],
    }
    if event_type == "Started":
        payload["idToken"] = {"idToken": "TAG-201", "type": "ISO14443"}
    return [
        message(at, "CALL", "cp_to_csms", message_id, "TransactionEvent", payload=payload),
        message(at + timedelta(milliseconds=150), "CALLRESULT", "csms_to_cp", message_id, result={}),
    ]


def write(stack: LocalStack, records: list[LogRecord]) -> None:
    writer = RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), hot_retention_days=400)
    writer.write(records)


def get_sessions(context: Any, query: dict[str, Any] | None = None) -> dict[str, Any]:
    status, _, body = api_calls.get_json(context, PATH, query)
    assert status == 200, body
    return body


def by_transaction(body: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {session["transaction_id"]: session for session in body["sessions"]}


def test_a_16_session_takes_its_id_from_the_start_answer_and_its_end_from_the_stop(
    stack: LocalStack, lambda_context: Any
) -> None:
    stopped = T0 + timedelta(minutes=42, seconds=30)
    write(
        stack,
        [
            *start_16(T0, "start-1", 17, "TAG-A", meter=1_000),
            message(T0 + timedelta(minutes=5), "CALL", "cp_to_csms", "mv-1", "MeterValues", payload={}),
            *stop_16(stopped, "stop-1", 17, meter=12_500, reason="EVDisconnected"),
        ],
    )
    body = get_sessions(lambda_context)
    assert body["truncated"] is False
    assert body["complete_from"] is None
    (session,) = body["sessions"]
    assert session["transaction_id"] == "17"
    assert session["ocpp_version"] == "1.6"
    assert session["state"] == "ended"
    assert session["connector_id"] == 1
    assert session["started_at"] == iso(T0)
    assert session["stopped_at"] == iso(stopped)
    assert session["duration_seconds"] == 42 * 60 + 30
    assert session["meter_start_wh"] == 1_000
    assert session["meter_stop_wh"] == 12_500
    assert session["energy_wh"] == 11_500
    assert session["id_tag"] == "TAG-A"
    assert session["authorization_status"] == "Accepted"
    assert session["stop_reason"] == "EVDisconnected"
    assert session["records"] == 2
    # The record ids open the records themselves.
    status, _, record = api_calls.get_json(lambda_context, f"/chargers/{CHARGER}/logs/{session['stop_record_id']}")
    assert status == 200
    assert record["action"] == "StopTransaction"
    status, _, record = api_calls.get_json(lambda_context, f"/chargers/{CHARGER}/logs/{session['start_record_id']}")
    assert record["action"] == "StartTransaction"


def test_a_201_session_follows_its_transaction_events(stack: LocalStack, lambda_context: Any) -> None:
    write(
        stack,
        [
            *event_201(T0, "te-1", "Started", "tx-abc", 500.0),
            *event_201(T0 + timedelta(minutes=10), "te-2", "Updated", "tx-abc", 4_500.0),
            *event_201(T0 + timedelta(minutes=20), "te-3", "Ended", "tx-abc", 9_000.0, stoppedReason="EVDisconnected"),
        ],
    )
    (session,) = get_sessions(lambda_context)["sessions"]
    assert session["transaction_id"] == "tx-abc"
    assert session["ocpp_version"] == "2.0.1"
    assert session["state"] == "ended"
    assert session["connector_id"] == 2
    assert session["duration_seconds"] == 20 * 60
    assert session["meter_start_wh"] == 500
    assert session["meter_stop_wh"] == 9_000
    assert session["energy_wh"] == 8_500
    assert session["id_tag"] == "TAG-201"
    assert session["stop_reason"] == "EVDisconnected"
    assert session["records"] == 3


def test_unfinished_sessions_and_a_stop_without_start(stack: LocalStack, lambda_context: Any) -> None:
    write(
        stack,
        [
            *stop_16(T0, "stop-0", 9, meter=3_000),  # its start is before anything collected
            *start_16(T0 + timedelta(hours=1), "start-2", 10, "TAG-B", meter=3_000),
            *event_201(T0 + timedelta(hours=2), "te-1", "Started", "tx-open", 100.0),
            *event_201(T0 + timedelta(hours=2, minutes=15), "te-2", "Updated", "tx-open", 2_100.0),
            *start_16(T0 + timedelta(hours=3), "start-3", None, "TAG-C", meter=5_000),  # never answered
        ],
    )
    body = get_sessions(lambda_context)
    # Newest first.
    assert [session["transaction_id"] for session in body["sessions"]] == [None, "tx-open", "10", "9"]
    sessions_by_id = by_transaction(body)
    stop_only = sessions_by_id["9"]
    assert stop_only["state"] == "stop_without_start"
    assert stop_only["started_at"] is None
    assert stop_only["stopped_at"] == iso(T0)
    assert stop_only["duration_seconds"] is None
    assert stop_only["energy_wh"] is None
    assert stop_only["meter_stop_wh"] == 3_000
    unfinished_16 = sessions_by_id["10"]
    assert unfinished_16["state"] == "unfinished"
    assert unfinished_16["stopped_at"] is None
    assert unfinished_16["energy_wh"] is None
    unfinished_201 = sessions_by_id["tx-open"]
    assert unfinished_201["state"] == "unfinished"
    assert unfinished_201["energy_wh"] == 2_000  # so far
    unanswered = sessions_by_id[None]
    assert unanswered["state"] == "unfinished"
    assert unanswered["authorization_status"] is None
    assert unanswered["id_tag"] == "TAG-C"


def test_a_reused_16_transaction_id_starts_a_new_session(stack: LocalStack, lambda_context: Any) -> None:
    write(
        stack,
        [
            *start_16(T0, "a", 1, "TAG-A", meter=0),  # never stopped: the charger rebooted
            *start_16(T0 + timedelta(hours=1), "b", 1, "TAG-B", meter=100),
            *stop_16(T0 + timedelta(hours=2), "c", 1, meter=600),
        ],
    )
    newest, oldest = get_sessions(lambda_context)["sessions"]
    assert (newest["id_tag"], newest["state"], newest["energy_wh"]) == ("TAG-B", "ended", 500)
    assert (oldest["id_tag"], oldest["state"]) == ("TAG-A", "unfinished")


def test_the_range_bounds_the_sessions(stack: LocalStack, lambda_context: Any) -> None:
    write(
        stack,
        [
            *start_16(T0, "s1", 1, "TAG-A", meter=0),
            *stop_16(T0 + timedelta(minutes=30), "e1", 1, meter=100),
            *start_16(T0 + timedelta(hours=5), "s2", 2, "TAG-B", meter=100),
            *stop_16(T0 + timedelta(hours=6), "e2", 2, meter=300),
        ],
    )
    body = get_sessions(lambda_context, {"from": iso(T0 + timedelta(minutes=10)), "to": iso(T0 + timedelta(hours=5))})
    sessions_by_id = by_transaction(body)
    assert sessions_by_id["1"]["state"] == "stop_without_start"
    assert sessions_by_id["2"]["state"] == "unfinished"
    status, _, problem = api_calls.get_json(lambda_context, PATH, {"from": iso(T0 + timedelta(hours=1)), "to": iso(T0)})
    assert status == 400
    assert "after" in problem["detail"]


def test_more_transaction_messages_than_one_answer_reads_is_said(
    stack: LocalStack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions, "MAX_SESSION_RECORDS", 4)
    records: list[LogRecord] = []
    for n in range(4):
        at = T0 + timedelta(hours=n)
        records += start_16(at, f"s{n}", n, "TAG", meter=0) + stop_16(at + timedelta(minutes=30), f"e{n}", n, meter=10)
    write(stack, records)
    body = get_sessions(lambda_context)
    assert body["truncated"] is True
    assert body["complete_from"] == iso(T0 + timedelta(hours=2))
    assert [session["transaction_id"] for session in body["sessions"]] == ["3", "2"]
    earlier = get_sessions(lambda_context, {"to": iso(T0 + timedelta(hours=2) - timedelta(microseconds=1))})
    assert earlier["truncated"] is False
    assert [session["transaction_id"] for session in earlier["sessions"]] == ["1", "0"]
