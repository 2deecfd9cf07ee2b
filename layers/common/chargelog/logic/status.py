"""A charger's status timeline: what state it and its connectors were in, over time, whatever the vendor.

Two kinds of records say it: vendor status records (kind ``status``, e.g. ev.energy's plugged-in / charging
samples) and OCPP StatusNotifications (a connector's status and error code). Status records are all of their
chargers' records, so they have no index entry and are read from the charger's partition (filtered on ``kind``)
when the charger index says the charger has them (items written before: index gsi1's ``CHARGER#c#KIND#status``);
StatusNotifications are index gsi1's ``CHARGER#c#ACTION#StatusNotification``. Both are merged in time order and
paged with signed cursors by the logs listing's own machinery (`chargelog.logic.logs`). A FilterExpression keeps
only records that report a status (a StatusNotification's CALLRESULT, logged apart by some vendors, does not).
"""

from __future__ import annotations

from copy import replace
from datetime import UTC, datetime
from typing import Any

from chargelog.dal.record_queries import AnyOf, Equals, Exists, Partition, RecordStore, charger_action_partition
from chargelog.dal.secrets import Secret
from chargelog.logic import logs
from chargelog.logic.logs import LogFilters, LogPage, Scope
from chargelog.models.keys import charger_partition, kind_partition

STATUS_ACTIONS = ("StatusNotification",)
STATUS_KIND = "status"
# Facts a vendor status record (kind "status") carries in its payload.
STATUS_RECORD_FIELDS = ("is_plugged_in", "is_charging", "charge_rate_watts", "sampled_at", "logged_at")
OCPP_STATUS_FIELDS = ("connector_status", "error_code")


def status_entry(record: dict[str, Any]) -> dict[str, Any]:
    """A listed record as a timeline entry: when, who, and the status facts it reports."""
    entry = {
        name: record.get(name)
        for name in ("id", "timestamp", "vendor", "source_id", "charger_id", "connector_id", "kind", "action")
    }
    if record.get("kind") == STATUS_KIND:
        payload = record.get("payload") or {}
        entry.update({name: payload.get(name) for name in STATUS_RECORD_FIELDS})
    else:
        extracted = record.get("extracted") or {}
        entry.update({name: extracted.get(name) for name in OCPP_STATUS_FIELDS})
    return entry


def _status_record_partitions(charger_id: str, records: RecordStore) -> list[list[Partition]]:
    """Where a charger's status records are: its own partition when it has some, none when it has none, and the
    gsi1 partition of items written before the charger index kept kinds when the index does not say."""
    kinds = records.charger_kinds(charger_id)
    if kinds is None:
        return [[Partition(kind_partition(charger_id, STATUS_KIND), "gsi1")]]
    if STATUS_KIND in kinds:
        return [[Partition(charger_partition(charger_id), only=Equals("kind", STATUS_KIND))]]
    return []


def status_timeline(
    charger_id: str,
    filters: LogFilters,
    cursor: str | None = None,
    now: datetime | None = None,
    *,
    records: RecordStore,
    cursor_secret: Secret,
) -> LogPage:
    """One page of a charger's status timeline (entries as `status_entry` makes them) and the next cursor."""
    scope = Scope("charger", charger_id)
    planned = logs.plan_query(scope, filters, now or datetime.now(UTC))
    query = replace(
        planned,
        partitions=[
            *_status_record_partitions(charger_id, records),
            *([charger_action_partition(charger_id, action)] for action in STATUS_ACTIONS),
        ],
        filter=AnyOf((Equals("kind", STATUS_KIND), Exists("connector_status"))),
    )
    page = logs.paged(
        query,
        {"view": "status", "charger": charger_id, **filters.described()},
        filters.limit,
        cursor,
        records=records,
        cursor_secret=cursor_secret,
    )
    return LogPage([status_entry(record) for record in page.records], page.next_cursor, page.items_read)
