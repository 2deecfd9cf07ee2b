"""Reading collected logs: a charger's, a site's or the fleet's, filtered, in either order, page by page.

Each scope maps onto Queries (docs/storage.md):
- a charger: its partition, or with actions one gsi1 partition per action, merged;
- a site: its chargers' partitions (the charger index's gsi2 partition of the site names them), merged;
- the fleet: per action, the gsi3 partitions of the days in the range, one after another.
Other filters are FilterExpressions on top. Pages end at a sort key; the cursor carries it, signed.
"""

from __future__ import annotations

from copy import replace
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, NamedTuple

from chargelog.dal.archive import ArchivedObjectGone, RawArchive
from chargelog.dal.record_queries import (
    AllOf,
    Equals,
    Filter,
    MergedPage,
    OneOf,
    Order,
    Partition,
    RecordStore,
    charger_action_partition,
)
from chargelog.dal.records import RAW_REF_FIELD, record_from_item, with_raw
from chargelog.dal.secrets import Secret
from chargelog.errors import ChargelogError, NotFoundError
from chargelog.logic.cursors import decode_cursor, encode_cursor, query_digest
from chargelog.models.keys import (
    API_ID_SEPARATOR,
    charger_partition,
    fleet_action_partition,
    timestamp_key,
)

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
MAX_FLEET_DAYS = 92
DEFAULT_FLEET_HOURS = 24
ID_SEPARATOR = API_ID_SEPARATOR
_HIGHEST = "\U0010ffff"  # sorts after every record id, so an inclusive `to` takes the whole last instant


class InvalidQueryError(ChargelogError):
    status = 400
    title = "Bad Request"


class FleetRangeTooLongError(InvalidQueryError):
    """A fleet-wide range longer than its route allows: raised before any day of it is planned (a fleet Query reads
    a partition per action and day, so a range of centuries would take the API minutes to plan)."""


# LogFilters fields that are FilterExpressions on the item attribute of the same name.
FILTERED_ATTRIBUTES = (
    "direction",
    "message_type",
    "status",
    "vendor",
    "message_id",
    "transaction_id",
    "connector_status",
    "kind",
)


class LogFilters(NamedTuple):
    start: datetime | None = None
    end: datetime | None = None
    actions: tuple[str, ...] = ()
    direction: str | None = None
    message_type: str | None = None
    status: str | None = None
    vendor: str | None = None
    message_id: str | None = None
    transaction_id: str | None = None
    connector_status: str | None = None
    kind: str | None = None
    order: Order = "asc"
    limit: int = DEFAULT_LIMIT

    def described(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "actions": sorted(self.actions),
            "direction": self.direction,
            "message_type": self.message_type,
            "status": self.status,
            "vendor": self.vendor,
            "message_id": self.message_id,
            "transaction_id": self.transaction_id,
            "connector_status": self.connector_status,
            "kind": self.kind,
            "order": self.order,
        }


class Scope(NamedTuple):
    kind: Literal["charger", "site", "fleet"]
    value: str | None = None
    # A site's chargers (`with_site_chargers`): its records are read from their partitions.
    chargers: tuple[str, ...] = ()


def with_site_chargers(scope: Scope, *, records: RecordStore) -> Scope:
    """A site scope with the chargers its records are under (from the charger index); other scopes as they are."""
    if scope.kind != "site" or scope.value is None:
        return scope
    return replace(scope, chargers=tuple(records.site_chargers(scope.value)))


@dataclass
class LogPage:
    records: list[dict[str, Any]]
    next_cursor: str | None
    items_read: int


def record_api_id(item: dict[str, Any]) -> str:
    """A record's id in the API: its time and record id, which together find it with one GetItem."""
    timestamp, _, record_id = str(item["sk"]).partition("#")
    return f"{timestamp}{ID_SEPARATOR}{record_id}"


def _public(item: dict[str, Any]) -> dict[str, Any]:
    record = record_from_item(item)
    record.pop("raw", None)
    record.pop(RAW_REF_FIELD, None)
    record["id"] = record_api_id(item)
    return record


def listed_record(item: dict[str, Any]) -> dict[str, Any]:
    """A stored record as the logs listing shows it: its fields and API id, without the raw vendor form."""
    return _public(item)


def _filter(filters: LogFilters, scope: Scope) -> Filter | None:
    conditions: list[Filter] = []
    for name in FILTERED_ATTRIBUTES:
        value = getattr(filters, name)
        if value is not None:
            conditions.append(Equals(name, value))
    if filters.actions and scope.kind == "site":
        conditions.append(OneOf("action", tuple(filters.actions)))
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else AllOf(tuple(conditions))


def utc_days(start: datetime, end: datetime, order: Order = "asc") -> list[date]:
    """The UTC days a range touches (the fleet partitions' and the record archive's days are UTC days, whatever
    offset the range was given in)."""
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return days if order == "asc" else days[::-1]


def record_filter(scope: Scope, filters: LogFilters) -> Filter | None:
    """Everything a scope and filters ask of a record apart from its time, as one filter over its fields (a
    line of the record archive, with ``transaction_id`` and ``connector_status`` lifted out of ``extracted``)."""
    conditions: list[Filter] = []
    if scope.kind == "charger" and scope.value is not None:
        conditions.append(Equals("charger_id", scope.value))
    elif scope.kind == "site" and scope.value is not None:
        conditions.append(Equals("site_id", scope.value))
    if filters.actions:
        conditions.append(OneOf("action", tuple(sorted(set(filters.actions)))))
    conditions.extend(
        Equals(name, value) for name in FILTERED_ATTRIBUTES if (value := getattr(filters, name)) is not None
    )
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else AllOf(tuple(conditions))


def _bounds(
    filters: LogFilters, scope: Scope, now: datetime, max_fleet_days: int | None
) -> tuple[datetime | None, datetime | None]:
    start, end = filters.start, filters.end
    if start and end and start > end:
        raise InvalidQueryError(f"'from' ({start.isoformat()}) is after 'to' ({end.isoformat()}).")
    if scope.kind == "fleet":
        end = end or now
        start = start or end - timedelta(hours=DEFAULT_FLEET_HOURS)
        if start > end:
            raise InvalidQueryError(f"'from' ({start.isoformat()}) is after 'to' ({end.isoformat()}).")
        if max_fleet_days is not None and (end - start) > timedelta(days=max_fleet_days):
            raise FleetRangeTooLongError(
                f"A fleet-wide range can span at most {max_fleet_days} days; use POST /exports for more."
            )
    return start, end


def _partitions(
    scope: Scope, filters: LogFilters, start: datetime | None, end: datetime | None
) -> list[list[Partition]]:
    if scope.kind == "charger":
        assert scope.value is not None
        if filters.actions:
            return [[charger_action_partition(scope.value, action)] for action in sorted(set(filters.actions))]
        return [[Partition(charger_partition(scope.value))]]
    if scope.kind == "site":
        assert scope.value is not None
        # Each of the site's chargers' partitions, merged: a site has few chargers, and these are the items
        # themselves (no index copy to write, nor a second read per item).
        site = Equals("site_id", scope.value)
        return [[Partition(charger_partition(charger), only=site)] for charger in scope.chargers]
    if not filters.actions:
        raise InvalidQueryError("Fleet-wide queries need at least one 'action' (e.g. action=BootNotification).")
    assert start is not None
    assert end is not None
    days = utc_days(start, end, filters.order)
    return [
        [Partition(fleet_action_partition(action, day), "gsi3") for day in days]
        for action in sorted(set(filters.actions))
    ]


class LogQuery(NamedTuple):
    """The Queries behind a scope and filters: streams of partitions, the sort key range, the filter."""

    partitions: list[list[Partition]]
    low: str
    high: str
    order: Order
    filter: Filter | None
    start: datetime | None  # the range as resolved (a fleet query always has both ends)
    end: datetime | None


def plan_query(
    scope: Scope, filters: LogFilters, now: datetime, max_fleet_days: int | None = MAX_FLEET_DAYS
) -> LogQuery:
    """What to read for a scope and filters; InvalidQueryError when they cannot be answered."""
    start, end = _bounds(filters, scope, now, max_fleet_days)
    return LogQuery(
        partitions=_partitions(scope, filters, start, end),
        low=timestamp_key(start) if start else "0000",
        high=(timestamp_key(end) if end else "9999") + "#" + _HIGHEST,
        order=filters.order,
        filter=_filter(filters, scope),
        start=start,
        end=end,
    )


def read_page(
    query: LogQuery, limit: int, after: str | None = None, *, records: RecordStore
) -> tuple[list[dict[str, Any]], MergedPage]:
    """One page of a planned query, resuming strictly after the sort key ``after``: (public records, raw page)."""
    page = records.page(
        query.partitions,
        low=query.low,
        high=query.high,
        order=query.order,
        limit=limit,
        after=after,
        filter=query.filter,
    )
    return [_public(item) for item in page.items], page


def query_logs(
    scope: Scope,
    filters: LogFilters,
    cursor: str | None = None,
    now: datetime | None = None,
    *,
    records: RecordStore,
    cursor_secret: Secret,
) -> LogPage:
    """One page of records in a scope, and a cursor for the next (None when there is none)."""
    query = plan_query(with_site_chargers(scope, records=records), filters, now or datetime.now(UTC))
    return paged(
        query,
        {"scope": [scope.kind, scope.value], **filters.described()},
        filters.limit,
        cursor,
        records=records,
        cursor_secret=cursor_secret,
    )


def paged(
    query: LogQuery,
    described: dict[str, Any],
    limit: int,
    cursor: str | None,
    *,
    records: RecordStore,
    cursor_secret: Secret,
) -> LogPage:
    """One page of a planned query, resumed at a signed cursor issued for the same ``described`` query."""
    digest = query_digest({**described, "resolved": [str(query.start), str(query.end)]})
    after = decode_cursor(cursor, digest, cursor_secret) if cursor else None
    listed, page = read_page(query, limit, after, records=records)
    return LogPage(
        records=listed,
        next_cursor=encode_cursor(page.last_key, digest, cursor_secret) if page.last_key else None,
        items_read=page.items_read,
    )


def get_record(charger_id: str, record_id: str, *, records: RecordStore, archive: RawArchive) -> dict[str, Any]:
    """One record with its raw vendor form (and its payload from S3 when it was too large for the table)."""
    timestamp, separator, vendor_record_id = record_id.partition(ID_SEPARATOR)
    if not separator or not vendor_record_id:
        raise InvalidQueryError(
            f"A record id has the form <time>{ID_SEPARATOR}<record id>, as the 'id' field of a listed record."
        )
    item = records.get(charger_id, f"{timestamp}#{vendor_record_id}")
    if item is None:
        raise NotFoundError(f"Charger {charger_id!r} has no record {record_id!r}.")
    try:
        (record,) = with_raw([record_from_item(item)], archive)  # raw held in the item, or read from its page
        if "payload_ref" in record:
            record.update(archive.read(record.pop("payload_ref")))
    except ArchivedObjectGone as gone:
        raise NotFoundError(f"Record {record_id!r} of charger {charger_id!r} has expired.") from gone
    record["id"] = record_api_id(item)
    return record


CHARGER_ENTRY_FIELDS = ("charger_id", "vendor", "source_id", "site_id")


def list_chargers(*, records: RecordStore) -> list[dict[str, Any]]:
    """Every charger seen in collected records, per vendor and source, with its first and last record time.

    An entry holding one of the two times (an entry written before they were set together, or met between two
    writes) reads as the span of that one moment, never as an error."""
    chargers = []
    for item in records.chargers():
        first = item.get("first_record_at") or item.get("last_record_at")
        last = item.get("last_record_at") or first
        if first is None:
            continue
        entry = {name: item[name] for name in CHARGER_ENTRY_FIELDS if item.get(name) is not None}
        chargers.append(entry | {"first_record_at": first, "last_record_at": last})
    return chargers
