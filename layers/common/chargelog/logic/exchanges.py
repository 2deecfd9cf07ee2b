"""A charger's OCPP exchanges: each CALL with the CALLRESULT or CALLERROR that answered it, and how long it took.

A page of exchanges is a page of the charger's CALLs (its partition, or one gsi1 partition per action, merged;
``message_type = CALL`` as a FilterExpression), in either order, with a signed cursor on the CALL's sort key
as the logs listing pages. The page's answers come from the charger's partition over the time the page's CALLs
span plus `PAIRING_WINDOW`, filtered to CALLRESULT / CALLERROR: one Query per run of CALLs whose pairing
windows overlap, which for a listing without an action filter is one Query. CALLs of one action far apart (a
year of BootNotifications) then cost a few small Queries instead of one over the year.

Pairing. OCPP-J message ids are unique per sender, so an answer belongs to a CALL when it has the same message
id, comes from the other side (a CALL the charger sent is answered by the central system, and the other way
round), and is logged at or after the CALL and within `PAIRING_WINDOW` of it. A sender that reuses an id (a
charger whose counter restarts after a reboot) is handled by giving an answer to the latest such CALL before it;
an answer pairs with one CALL only. A vendor that logs a CALL together with its answer as one record (both
``payload`` and ``result`` set) pairs the record with itself; its response time is unknown.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from chargelog.dal.record_queries import (
    AllOf,
    Equals,
    Filter,
    OneOf,
    Order,
    Partition,
    RecordStore,
    charger_action_partition,
    sort_key_of,
)
from chargelog.dal.secrets import Secret
from chargelog.logic.cursors import decode_cursor, encode_cursor, query_digest
from chargelog.logic.logs import DEFAULT_LIMIT, InvalidQueryError, listed_record
from chargelog.models.keys import charger_partition, parse_timestamp_key, timestamp_key

# How long after a CALL its answer is looked for. OCPP-J leaves the timeout to the implementation; chargers
# and central systems commonly give up after 30-60 s. Five minutes covers slow answers and vendors that log
# late, and is short enough that a reused message id is not taken for an answer.
PAIRING_WINDOW = timedelta(minutes=5)
RESPONSE_TYPES = ("CALLRESULT", "CALLERROR")
CALLERROR_FIELDS = frozenset({"errorCode", "errorDescription", "errorDetails"})
_HIGHEST = "\U0010ffff"  # sorts after every record id: an inclusive bound takes the whole last instant
_OPPOSITE = {"cp_to_csms": "csms_to_cp", "csms_to_cp": "cp_to_csms"}

Outcome = Literal["answered", "error", "unanswered"]


@dataclass(frozen=True)
class ExchangeFilters:
    start: datetime | None = None
    end: datetime | None = None
    actions: tuple[str, ...] = ()
    direction: str | None = None  # of the CALL
    order: Order = "asc"
    limit: int = DEFAULT_LIMIT

    def described(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "actions": sorted(set(self.actions)),
            "direction": self.direction,
            "order": self.order,
        }


@dataclass
class ExchangePage:
    exchanges: list[dict[str, Any]]
    next_cursor: str | None
    items_read: int


def time_of(item: dict[str, Any]) -> datetime:
    """A stored record's time, from its sort key (fixed-width UTC, microseconds)."""
    return parse_timestamp_key(sort_key_of(item).partition("#")[0])


def _is_combined(call: dict[str, Any]) -> bool:
    """A CALL logged together with its answer: the record holds the answer as ``result``."""
    return call.get("result") is not None


def _combined_outcome(record: dict[str, Any]) -> Outcome:
    """A combined record's outcome: an error when its result is a CALLERROR's fields."""
    result = record.get("result")
    if isinstance(result, dict) and "errorCode" in result and set(result) <= CALLERROR_FIELDS:
        return "error"
    return "answered"


def pair(
    calls: list[dict[str, Any]], responses: list[dict[str, Any]], window: timedelta = PAIRING_WINDOW
) -> list[dict[str, Any]]:
    """Each CALL (stored items, in page order) as an exchange with its answer among ``responses``."""
    answers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for response in sorted(responses, key=sort_key_of):
        if response.get("message_id") is not None:
            answers[str(response["message_id"])].append(response)
    # The next CALL of the same sender with the same id: an answer after it belongs to that one.
    next_same: dict[str, datetime] = {}
    latest: dict[tuple[str, str | None], dict[str, Any]] = {}
    for call in sorted(calls, key=sort_key_of, reverse=True):
        key = (str(call.get("message_id")), call.get("direction"))
        if key in latest:
            next_same[sort_key_of(call)] = time_of(latest[key])
        latest[key] = call
    claimed: set[str] = set()
    paired: dict[str, dict[str, Any] | None] = {}
    for call in sorted(calls, key=sort_key_of):
        if _is_combined(call) or call.get("message_id") is None:
            continue
        at = time_of(call)
        until = at + window
        bound = next_same.get(sort_key_of(call))
        wanted = _OPPOSITE.get(str(call.get("direction")))
        paired[sort_key_of(call)] = None
        for response in answers.get(str(call["message_id"]), []):
            moment = time_of(response)
            if moment < at or sort_key_of(response) in claimed:
                continue
            if moment > until or (bound is not None and bound > at and moment >= bound):
                break
            if wanted is not None and response.get("direction") not in (wanted, None):
                continue
            claimed.add(sort_key_of(response))
            paired[sort_key_of(call)] = response
            break
    return [_exchange(call, paired.get(sort_key_of(call))) for call in calls]


def _exchange(call: dict[str, Any], response: dict[str, Any] | None) -> dict[str, Any]:
    record = listed_record(call)
    exchange: dict[str, Any] = {
        "message_id": call.get("message_id"),
        "action": call.get("action"),
        "direction": call.get("direction"),
        "call": record,
        "combined": False,
        "response": None,
        "outcome": "unanswered",
        "response_time_ms": None,
    }
    if _is_combined(call):
        exchange.update(combined=True, response=record, outcome=_combined_outcome(record))
    elif response is not None:
        elapsed = time_of(response) - time_of(call)
        exchange.update(
            response=listed_record(response),
            outcome="error" if response.get("message_type") == "CALLERROR" else "answered",
            response_time_ms=elapsed / timedelta(milliseconds=1),
        )
    return exchange


def _spans(calls: list[dict[str, Any]], window: timedelta) -> list[tuple[datetime, datetime]]:
    """The times answers to these CALLs can have: their pairing windows, overlapping ones merged."""
    spans: list[tuple[datetime, datetime]] = []
    for at in sorted(time_of(call) for call in calls if not _is_combined(call)):
        if spans and at <= spans[-1][1]:
            spans[-1] = (spans[-1][0], at + window)
        else:
            spans.append((at, at + window))
    return spans


def candidate_answers(
    records: RecordStore, charger_id: str, calls: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """The charger's CALLRESULTs and CALLERRORs that can answer these CALLs, and how many items were read."""
    found: list[dict[str, Any]] = []
    read = 0
    for start, end in _spans(calls, PAIRING_WINDOW):
        items, scanned = records.in_range(
            Partition(charger_partition(charger_id)),
            timestamp_key(start),
            timestamp_key(end) + "#" + _HIGHEST,
            filter=OneOf("message_type", RESPONSE_TYPES),
        )
        found.extend(items)
        read += scanned
    return found, read


def query_exchanges(
    charger_id: str,
    filters: ExchangeFilters,
    cursor: str | None = None,
    *,
    records: RecordStore,
    cursor_secret: Secret,
) -> ExchangePage:
    """One page of a charger's CALLs with their answers, and a cursor for the next (None when there is none)."""
    start, end = filters.start, filters.end
    if start and end and start > end:
        raise InvalidQueryError(f"'from' ({start.isoformat()}) is after 'to' ({end.isoformat()}).")
    digest = query_digest({"view": "exchanges", "charger": charger_id, **filters.described()})
    after = decode_cursor(cursor, digest, cursor_secret) if cursor else None
    if filters.actions:
        partitions = [[charger_action_partition(charger_id, a)] for a in sorted(set(filters.actions))]
    else:
        partitions = [[Partition(charger_partition(charger_id))]]
    calls_only: Filter = Equals("message_type", "CALL")
    if filters.direction is not None:
        calls_only = AllOf((calls_only, Equals("direction", filters.direction)))
    page = records.page(
        partitions,
        low=timestamp_key(start) if start else "0000",
        high=(timestamp_key(end) if end else "9999") + "#" + _HIGHEST,
        order=filters.order,
        limit=filters.limit,
        after=after,
        filter=calls_only,
    )
    responses, read = candidate_answers(records, charger_id, page.items)
    return ExchangePage(
        exchanges=pair(page.items, responses),
        next_cursor=encode_cursor(page.last_key, digest, cursor_secret) if page.last_key else None,
        items_read=page.items_read + read,
    )
