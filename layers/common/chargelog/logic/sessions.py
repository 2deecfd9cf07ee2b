"""A charger's charging sessions (transactions), built from the OCPP messages that start, update and stop them.

OCPP 1.6: a StartTransaction CALL opens a session; the transaction id is in its CALLRESULT (paired by message id,
as `chargelog.logic.exchanges` pairs them), or in the record itself when the vendor logs the answer with it; a
StopTransaction CALL (``transactionId``, ``meterStop``, ``reason``) ends it. OCPP 2.0.1: TransactionEvent CALLs
(``eventType`` Started / Updated / Ended) carry ``transactionInfo.transactionId`` in every event, the meter
values, and ``stoppedReason`` in the Ended event.

Range-bounded: the CALLs of those actions in ``[from, to]`` are read (one gsi1 partition per action, merged),
newest first, at most `MAX_SESSION_RECORDS` of them. When the range holds more, the answer is ``truncated`` and
says from when on it is complete (``complete_from``): a narrower range (``to`` at that time) gives the earlier
sessions. A session is only what its records in the range say: one whose start is before the range is a
``stop_without_start`` (or ``unfinished`` when its stop is not in the range either); one whose stop is after it
is ``unfinished``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from chargelog.dal.record_queries import Equals, RecordStore, charger_action_partition
from chargelog.logic import exchanges
from chargelog.logic.logs import InvalidQueryError, listed_record
from chargelog.models.keys import parse_timestamp_key, timestamp_key

START_ACTION = "StartTransaction"
STOP_ACTION = "StopTransaction"
EVENT_ACTION = "TransactionEvent"
TRANSACTION_ACTIONS = (START_ACTION, STOP_ACTION, EVENT_ACTION)
# The most transaction CALLs one answer reads: about 2,500 OCPP 1.6 sessions (a start and a stop each), fewer
# OCPP 2.0.1 ones (a TransactionEvent Updated per meter sample). More in the range: the answer is truncated.
MAX_SESSION_RECORDS = 5_000
_HIGHEST = "\U0010ffff"

SessionState = Literal["ended", "unfinished", "stop_without_start"]


@dataclass
class _Session:
    transaction_id: str | None
    ocpp_version: str
    records: list[dict[str, Any]] = field(default_factory=list)
    start: dict[str, Any] | None = None  # the record that started it (StartTransaction, TransactionEvent Started)
    stop: dict[str, Any] | None = None  # the record that ended it (StopTransaction, TransactionEvent Ended)
    authorization_status: str | None = None  # of the start's answer (1.6 idTagInfo.status)


@dataclass
class SessionList:
    sessions: list[dict[str, Any]]
    truncated: bool
    complete_from: datetime | None  # with truncated: sessions are complete from this time on
    records_read: int


def _extracted(record: dict[str, Any]) -> dict[str, Any]:
    return record.get("extracted") or {}


def _payload(record: dict[str, Any]) -> dict[str, Any]:
    payload = record.get("payload")
    return payload if isinstance(payload, dict) else {}


def _event_type(record: dict[str, Any]) -> str | None:
    event_type = _payload(record).get("eventType") or _payload(record).get("event_type")
    return event_type if isinstance(event_type, str) else None


def _reported_time(record: dict[str, Any]) -> datetime:
    """When the charger says the message's event happened (its payload's ``timestamp``), else the record's time."""
    reported = _payload(record).get("timestamp")
    if isinstance(reported, str):
        try:
            moment = datetime.fromisoformat(reported)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    return _record_time(record)


def _record_time(record: dict[str, Any]) -> datetime:
    moment = record["timestamp"]
    return moment if isinstance(moment, datetime) else datetime.fromisoformat(str(moment))


def _energy_wh(record: dict[str, Any]) -> float | None:
    meter = _extracted(record).get("meter") or {}
    energy = meter.get("energy_wh")
    return float(energy) if isinstance(energy, int | float) else None


def _connector(record: dict[str, Any]) -> int | None:
    if record.get("connector_id") is not None:
        return int(record["connector_id"])
    payload = _payload(record)
    for value in (payload.get("connectorId"), (payload.get("evse") or {}).get("id")):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _stop_reason(record: dict[str, Any]) -> str | None:
    payload = _payload(record)
    reason = payload.get("reason") or (payload.get("transactionInfo") or {}).get("stoppedReason")
    return reason if isinstance(reason, str) else None


def _read_calls(
    charger_id: str, start: datetime | None, end: datetime | None, *, records: RecordStore
) -> tuple[list[dict[str, Any]], bool, int]:
    """The transaction CALL items in the range, newest first, at most MAX_SESSION_RECORDS; whether more exist; items
    read."""
    partitions = [[charger_action_partition(charger_id, action)] for action in TRANSACTION_ACTIONS]
    low = timestamp_key(start) if start else "0000"
    high = (timestamp_key(end) if end else "9999") + "#" + _HIGHEST
    items: list[dict[str, Any]] = []
    read = 0
    after: str | None = None
    while True:
        page = records.page(
            partitions,
            low=low,
            high=high,
            order="desc",
            limit=MAX_SESSION_RECORDS + 1 - len(items),
            after=after,
            filter=Equals("message_type", "CALL"),
        )
        items.extend(page.items)
        read += page.items_read
        if len(items) > MAX_SESSION_RECORDS:
            return items[:MAX_SESSION_RECORDS], True, read
        if page.last_key is None:
            return items, False, read
        after = page.last_key


def _transaction_id(exchange: dict[str, Any]) -> str | None:
    for record in (exchange["call"], exchange.get("response") or {}):
        transaction_id = _extracted(record).get("transaction_id")
        if transaction_id is not None:
            return str(transaction_id)
    return None


def build_sessions(exchanged: list[dict[str, Any]]) -> list[_Session]:
    """Sessions from transaction exchanges (`exchanges.pair` of the CALLs), in time order of their records.

    A start opens a session under its transaction id (a second start with the same id leaves the first unfinished);
    a stop or a 2.0.1 event joins the open session with its id, or opens one without a start."""
    sessions: list[_Session] = []
    open_by_id: dict[str, _Session] = {}
    for exchange in sorted(exchanged, key=lambda one: (_record_time(one["call"]), one["call"]["id"])):
        call = exchange["call"]
        action = call.get("action")
        transaction_id = _transaction_id(exchange)
        version = "2.0.1" if action == EVENT_ACTION else "1.6"
        event_type = _event_type(call) if action == EVENT_ACTION else None
        starts = action == START_ACTION or event_type == "Started"
        stops = action == STOP_ACTION or event_type == "Ended"
        session = open_by_id.get(transaction_id) if transaction_id is not None else None
        if session is None or starts:
            session = _Session(transaction_id, version)
            sessions.append(session)
            if transaction_id is not None:
                open_by_id[transaction_id] = session
        session.records.append(call)
        if starts and session.start is None:
            session.start = call
            answer = exchange.get("response") or {}
            session.authorization_status = _extracted(answer).get("authorization_status") or _extracted(call).get(
                "authorization_status"
            )
        if stops:
            session.stop = call
            if transaction_id is not None:
                open_by_id.pop(transaction_id, None)
    return sessions


def session_entry(session: _Session) -> dict[str, Any]:
    """A session as the API shows it."""
    first, last = session.records[0], session.records[-1]
    started_at = _reported_time(session.start) if session.start else None
    stopped_at = _reported_time(session.stop) if session.stop else None
    readings = [(record, energy) for record in session.records if (energy := _energy_wh(record)) is not None]
    meter_start = _energy_wh(session.start) if session.start else None
    meter_stop = _energy_wh(session.stop) if session.stop else None
    if meter_start is None and session.start is not None and readings:
        meter_start = readings[0][1]  # 2.0.1: the Started event may carry no meter value; the first that does
    if meter_stop is None and session.stop is not None and readings:
        meter_stop = readings[-1][1]
    energy = None
    if meter_start is not None and meter_stop is not None:
        energy = meter_stop - meter_start
    elif meter_start is not None and len(readings) > 1 and readings[-1][0] is not session.start:
        energy = readings[-1][1] - meter_start  # so far: an unfinished session's latest reading
    state: SessionState
    if session.stop is None:
        state = "unfinished"
    elif session.start is None:
        state = "stop_without_start"
    else:
        state = "ended"
    id_tag = next((tag for record in session.records if (tag := _extracted(record).get("id_tag"))), None)
    return {
        "transaction_id": session.transaction_id,
        "ocpp_version": session.ocpp_version,
        "state": state,
        "connector_id": next((c for r in session.records if (c := _connector(r)) is not None), None),
        "started_at": started_at,
        "stopped_at": stopped_at,
        "duration_seconds": (stopped_at - started_at).total_seconds() if started_at and stopped_at else None,
        "meter_start_wh": meter_start,
        "meter_stop_wh": meter_stop,
        "energy_wh": energy,
        "id_tag": id_tag,
        "authorization_status": session.authorization_status,
        "stop_reason": _stop_reason(session.stop) if session.stop else None,
        "start_record_id": session.start["id"] if session.start else None,
        "stop_record_id": session.stop["id"] if session.stop else None,
        "first_record_at": _record_time(first),
        "last_record_at": _record_time(last),
        "records": len(session.records),
    }


def charger_sessions(
    charger_id: str, start: datetime | None, end: datetime | None, *, records: RecordStore
) -> SessionList:
    """A charger's sessions with records in ``[start, end]``, newest first (by their first record)."""
    if start and end and start > end:
        raise InvalidQueryError(f"'from' ({start.isoformat()}) is after 'to' ({end.isoformat()}).")
    calls, truncated, read = _read_calls(charger_id, start, end, records=records)
    # Only a start's answer says something a session needs (1.6: the transaction id; the authorization).
    starts = [
        call
        for call in calls
        if call.get("action") == START_ACTION
        or (call.get("action") == EVENT_ACTION and _event_type(listed_record(call)) == "Started")
    ]
    answers, answers_read = exchanges.candidate_answers(records, charger_id, starts)
    paired = exchanges.pair(calls, answers)
    sessions = [session_entry(session) for session in build_sessions(paired)]
    sessions.sort(key=lambda session: session["first_record_at"], reverse=True)
    complete_from = parse_timestamp_key(str(calls[-1]["sk"]).partition("#")[0]) if truncated and calls else None
    return SessionList(sessions, truncated, complete_from, read + answers_read)
