"""Charger health in the table: the alerts (`AlertStore`) and each charger's health state (`HealthStore`).

Alerts (see docs/health.md, "Storage"): ``pk = "ALERT#<alert_id>"``, ``sk = "ALERT"``, the alert's fields (times
as ISO text, absent fields left out), and on index gsi2 ``gsi2pk = "ALERTS#<state>"``,
``gsi2sk = "<opened_at>#<alert_id>"``: each state's alerts are one partition in the order they opened, so "what is
open now" is one Query that reads open alerts only, however many have resolved. Resolving moves the alert to the
``resolved`` partition and gives it a TTL (``expires_at`` = resolved_at + the retention). ``notified`` is the string
set of the states the notifier has sent (`AlertStore.claim_notification`).

Health state: ``pk = "HEALTH"``, ``sk = "<charger_id>#<vendor>#<source_id>"`` (the charger index entry's own sort key):
the detectors' state as JSON text (zlib-compressed when long and that is smaller), and ``version``, which every write
checks and moves on (optimistic concurrency: the worker and the monitor may both write a charger's state).
"""

from __future__ import annotations

import builtins
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from boto3.dynamodb.types import Binary
from botocore.exceptions import ClientError

from chargelog.dal import TableStore, batch_get, is_condition_failure, query_all
from chargelog.models.alerts import ALERT_STATES, MAX_EVIDENCE, Alert
from chargelog.models.keys import charger_entry_key, iso, timestamp_key

ALERT_SORT_KEY: Final = "ALERT"
ALERTS_INDEX: Final = "gsi2"
HEALTH_PARTITION: Final = "HEALTH"
# The table's TTL attribute (template.yaml: TimeToLiveSpecification).
EXPIRES_FIELD: Final = "expires_at"
NOTIFIED_FIELD: Final = "notified"
# Sorts after every alert id: an inclusive upper time bound takes every alert opened in its last microsecond.
_HIGHEST: Final = "\U0010ffff"
# Alert items one page of `AlertStore.list` may read (DynamoDB's ScannedCount) before it ends early, with a position
# to go on from: a filter that keeps few alerts (one charger's, over a long resolved history) cannot make one request
# run into the API's timeout.
READ_BUDGET: Final = 5_000
# State JSON longer than this many bytes is stored zlib-compressed, when that is smaller (as record documents are,
# chargelog.dal.records.COMPRESS_ABOVE).
COMPRESS_ABOVE: Final = 400
ZLIB_LEVEL: Final = 6


def alert_key(alert_id: str) -> dict[str, str]:
    return {"pk": f"ALERT#{alert_id}", "sk": ALERT_SORT_KEY}


def alerts_partition(state: str) -> str:
    """The gsi2 partition of every alert in one state."""
    return f"ALERTS#{state}"


def alert_position(opened_at: datetime, alert_id: str) -> str:
    """An alert's gsi2 sort key: its opening time, then its id (unique, so a page can end between two alerts that
    opened at the same instant)."""
    return f"{timestamp_key(opened_at)}#{alert_id}"


def _alert_fields(alert: Alert) -> dict[str, Any]:
    """The alert's fields as attributes: times as ISO text, absent and empty fields left out."""
    fields = alert.model_dump(mode="python", exclude_none=True)
    for name in ("opened_at", "resolved_at"):
        if name in fields:
            fields[name] = iso(fields[name])
    for name in ("evidence", "resolution_evidence"):
        if not fields.get(name):
            fields.pop(name, None)
    return fields


def alert_from_item(item: dict[str, Any]) -> Alert:
    """An item as the alert it holds (attributes that are not the alert's fields, keys and bookkeeping, ignored)."""
    fields = {name: value for name, value in item.items() if name in Alert.model_fields}
    if fields.get("connector_id") is not None:
        fields["connector_id"] = int(fields["connector_id"])  # a Decimal, as DynamoDB numbers come back
    return Alert.model_validate(fields)


@dataclass
class _Stream:
    """One state partition of gsi2, newest first, read a chunk at a time."""

    table: Any
    state: str
    key_condition: ConditionBase | None  # on gsi2sk, if any
    skip: str | None  # an inclusive upper bound standing for an exclusive one: the key to leave out
    filter: ConditionBase | None
    buffer: list[dict[str, Any]] = field(default_factory=list)
    start_key: dict[str, Any] | None = None
    exhausted: bool = False
    read_through: str | None = None  # every item of this partition from the top down to this key has been read
    items_read: int = 0

    def fetch(self, chunk: int) -> None:
        key_condition = Key("gsi2pk").eq(alerts_partition(self.state))
        if self.key_condition is not None:
            key_condition = key_condition & self.key_condition
        query: dict[str, Any] = {
            "IndexName": ALERTS_INDEX,
            "KeyConditionExpression": key_condition,
            "ScanIndexForward": False,
            "Limit": chunk,
        }
        if self.filter is not None:
            query["FilterExpression"] = self.filter
        if self.start_key:
            query["ExclusiveStartKey"] = self.start_key
        response = self.table.query(**query)
        self.items_read += int(response.get("ScannedCount", 0))
        self.buffer.extend(item for item in response.get("Items", []) if item["gsi2sk"] != self.skip)
        self.start_key = response.get("LastEvaluatedKey")
        if self.start_key:
            self.read_through = str(self.start_key["gsi2sk"])
        else:
            self.exhausted = True


def _sort_key_condition(
    low: str | None, high: str | None, after: str | None
) -> tuple[ConditionBase | None, str | None]:
    """The key condition on gsi2sk for ``[low, high]`` strictly before ``after`` (newest first, a page resumes below
    its position), and the key to leave out of what it finds (BETWEEN is inclusive)."""
    upper, skip = high, None
    if after is not None and (high is None or after <= high):
        upper, skip = after, after
    if low is not None and upper is not None:
        return Key("gsi2sk").between(low, upper), skip
    if upper is not None:
        return (Key("gsi2sk").lt(upper) if skip else Key("gsi2sk").lte(upper)), None
    if low is not None:
        return Key("gsi2sk").gte(low), None
    return None, None


def _cut_short(streams: list[_Stream], taken: list[dict[str, Any]], limit: int) -> tuple[list[Alert], str | None]:
    """The read budget ran out: what is known, in order (every partition has been read down to the highest of
    the points they have reached), and that point to go on from."""
    boundary = max(str(stream.read_through) for stream in streams if not stream.exhausted)
    buffered = sorted(
        (item for stream in streams for item in stream.buffer if str(item["gsi2sk"]) >= boundary),
        key=lambda item: str(item["gsi2sk"]),
        reverse=True,
    )
    room = limit - len(taken)
    if len(buffered) > room:
        taken = taken + buffered[:room]
        return [alert_from_item(item) for item in taken], str(taken[-1]["gsi2sk"])
    return [alert_from_item(item) for item in taken + buffered], boundary


class AlertStore(TableStore):
    """The alerts: opened once per episode, resolved once, listed per state newest first."""

    def __init__(self, table_name: str, alert_retention_days: int) -> None:
        super().__init__(table_name)
        self._retention = timedelta(days=alert_retention_days)

    def expires_at(self, resolved_at: datetime) -> int:
        """When the table forgets a resolved alert (epoch seconds, the TTL). An open alert never expires."""
        return int((resolved_at + self._retention).timestamp())

    def item_for(self, alert: Alert) -> dict[str, Any]:
        item: dict[str, Any] = alert_key(alert.alert_id) | _alert_fields(alert)
        item["gsi2pk"] = alerts_partition(alert.state)
        item["gsi2sk"] = alert_position(alert.opened_at, alert.alert_id)
        if alert.state == "resolved":
            item[EXPIRES_FIELD] = self.expires_at(alert.resolved_at or alert.opened_at)
        return item

    def open(self, alert: Alert) -> bool:
        """Write a new alert; False (nothing written) when an alert with its id exists already, in any state: the
        same episode, read again."""
        try:
            self._table.put_item(Item=self.item_for(alert), ConditionExpression=Attr("pk").not_exists())
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def resolve(
        self, alert_id: str, resolved_at: datetime, resolution: str, resolution_evidence: Iterable[str] = ()
    ) -> Alert | None:
        """Resolve an open alert (moving it to the ``resolved`` partition, with its TTL); the alert as stored then,
        or None when it is not open (resolved already, or never opened). Evidence beyond `MAX_EVIDENCE` record ids
        is left out (the first ones are kept)."""
        evidence = list(resolution_evidence)[:MAX_EVIDENCE]
        values: dict[str, Any] = {
            ":resolved": "resolved",
            ":open": "open",
            ":at": iso(resolved_at),
            ":resolution": resolution,
            ":partition": alerts_partition("resolved"),
            ":expires": self.expires_at(resolved_at),
        }
        expression = (
            "SET #state = :resolved, resolved_at = :at, resolution = :resolution, gsi2pk = :partition, "
            f"{EXPIRES_FIELD} = :expires"
        )
        if evidence:
            expression += ", resolution_evidence = :evidence"
            values[":evidence"] = evidence
        try:
            stored = self._table.update_item(
                Key=alert_key(alert_id),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk) AND #state = :open",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if is_condition_failure(error):
                return None
            raise
        return alert_from_item(stored)

    def get(self, alert_id: str) -> Alert | None:
        """One alert (strongly consistent: what was just opened or resolved), or None."""
        item = self._table.get_item(Key=alert_key(alert_id), ConsistentRead=True).get("Item")
        return alert_from_item(item) if item else None

    def get_many(self, alert_ids: Iterable[str]) -> list[Alert]:
        """The alerts of these ids that exist, in the order given (each once); BatchGetItem, eventually consistent."""
        ids = list(dict.fromkeys(alert_ids))
        found = batch_get(self._table, [alert_key(alert_id) for alert_id in ids])
        return [
            alert_from_item(item)
            for alert_id in ids
            if (item := found.get((alert_key(alert_id)["pk"], ALERT_SORT_KEY))) is not None
        ]

    def list(
        self,
        *,
        state: str | None = None,
        charger_id: str | None = None,
        site_id: str | None = None,
        vendor: str | None = None,
        kind: str | None = None,
        opened_from: datetime | None = None,
        opened_to: datetime | None = None,
        limit: int = 100,
        after: str | None = None,
        read_budget: int = READ_BUDGET,
    ) -> tuple[list[Alert], str | None]:
        """Up to ``limit`` alerts, newest opened first, and the position to go on from (None at the end).

        One gsi2 Query per state partition (both when ``state`` is None, merged by ``gsi2sk``); ``after`` (a position
        this returned) resumes every partition strictly below it. The other filters are FilterExpressions: the
        Queries read on until ``limit`` alerts are found, the partitions end, or ``read_budget`` items were read -
        then the page may be short (even empty), and its position is where every partition has been read down to."""
        states = [state] if state is not None else list(ALERT_STATES)
        low = timestamp_key(opened_from) if opened_from is not None else None
        high = f"{timestamp_key(opened_to)}#{_HIGHEST}" if opened_to is not None else None
        if low is not None and high is not None and low > high:
            return [], None
        key_condition, skip = _sort_key_condition(low, high, after)
        if low is not None and skip is not None and low > skip:
            return [], None  # the position is below the range: nothing is left
        conditions = [
            Attr(name).eq(value)
            for name, value in (("charger_id", charger_id), ("site_id", site_id), ("vendor", vendor), ("kind", kind))
            if value is not None
        ]
        filter_condition = None
        for condition in conditions:
            filter_condition = condition if filter_condition is None else filter_condition & condition
        streams = [_Stream(self._table, name, key_condition, skip, filter_condition) for name in states]
        for stream in streams:
            # Every partition reads once whatever the budget, so each says where it stands (and a page always
            # moves on: each reads at least one item below ``after``).
            stream.fetch(limit + 1)
        taken: list[dict[str, Any]] = []
        while len(taken) < limit:
            for stream in streams:
                while not stream.buffer and not stream.exhausted:
                    if sum(s.items_read for s in streams) >= read_budget:
                        return _cut_short(streams, taken, limit)
                    # Ask for a little more than the page still needs: a filter may drop some, and one more
                    # says whether another page follows.
                    stream.fetch(limit - len(taken) + 1)
            heads = [stream for stream in streams if stream.buffer]
            if not heads:
                return [alert_from_item(item) for item in taken], None
            newest = max(heads, key=lambda stream: str(stream.buffer[0]["gsi2sk"]))
            taken.append(newest.buffer.pop(0))
        more = any(stream.buffer or not stream.exhausted for stream in streams)
        return [alert_from_item(item) for item in taken], str(taken[-1]["gsi2sk"]) if more else None

    def unnotified(self, *, changed_before: datetime, resolved_since: datetime) -> builtins.list[tuple[str, str]]:
        """The transitions nobody has claimed a notification for (``(alert_id, state)``): open alerts opened before
        ``changed_before`` without ``open`` in ``notified``, and alerts resolved between ``resolved_since`` and
        ``changed_before`` without ``resolved`` in it. One Query of the open partition (small: what is open now) and
        one of the resolved partition over the alerts opened since ``resolved_since`` (a resolve notice older than
        that is not sent again)."""
        before = iso(changed_before)
        pending: builtins.list[tuple[str, str]] = []
        for item in query_all(
            self._table,
            IndexName=ALERTS_INDEX,
            KeyConditionExpression=Key("gsi2pk").eq(alerts_partition("open"))
            & Key("gsi2sk").lt(timestamp_key(changed_before)),
            FilterExpression=Attr(NOTIFIED_FIELD).not_exists() | ~Attr(NOTIFIED_FIELD).contains("open"),
            ProjectionExpression="alert_id",
        ):
            pending.append((str(item["alert_id"]), "open"))
        for item in query_all(
            self._table,
            IndexName=ALERTS_INDEX,
            KeyConditionExpression=Key("gsi2pk").eq(alerts_partition("resolved"))
            & Key("gsi2sk").gte(timestamp_key(resolved_since)),
            FilterExpression=(Attr(NOTIFIED_FIELD).not_exists() | ~Attr(NOTIFIED_FIELD).contains("resolved"))
            & Attr("resolved_at").lt(before),
            ProjectionExpression="alert_id",
        ):
            pending.append((str(item["alert_id"]), "resolved"))
        return pending

    def claim_notification(self, alert_id: str, state: str) -> bool:
        """Mark that the notification of the alert's ``state`` is being sent: True only the first time (the caller
        sends it), False when it was claimed before (or the alert does not exist). `release_notification` undoes a
        claim whose send failed."""
        try:
            self._table.update_item(
                Key=alert_key(alert_id),
                UpdateExpression=f"ADD {NOTIFIED_FIELD} :states",
                ConditionExpression=f"attribute_exists(pk) AND NOT contains({NOTIFIED_FIELD}, :state)",
                ExpressionAttributeValues={":states": {state}, ":state": state},
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def release_notification(self, alert_id: str, state: str) -> None:
        """Forget a claim (its send failed), so the next attempt claims it again. Nothing for an unknown alert."""
        try:
            self._table.update_item(
                Key=alert_key(alert_id),
                UpdateExpression=f"DELETE {NOTIFIED_FIELD} :states",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":states": {state}},
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise


@dataclass(frozen=True)
class StoredHealth:
    """One charger's health state as stored, per source: the detectors' state (JSON text) and its version."""

    charger_id: str
    vendor: str
    source_id: str
    site_id: str | None
    state_json: str
    version: int


def _packed(text: str) -> str | Binary:
    """State JSON as stored: as it is, or over `COMPRESS_ABOVE` bytes zlib-compressed when that is smaller."""
    encoded = text.encode()
    if len(encoded) <= COMPRESS_ABOVE:
        return text
    packed = zlib.compress(encoded, ZLIB_LEVEL)
    return Binary(packed) if len(packed) < len(encoded) else text


def _unpacked(value: Any) -> str:
    if isinstance(value, Binary | bytes | bytearray):
        return zlib.decompress(bytes(value)).decode()
    return str(value)


def _stored_health(item: dict[str, Any]) -> StoredHealth:
    site = item.get("site_id")
    return StoredHealth(
        charger_id=str(item["charger_id"]),
        vendor=str(item["vendor"]),
        source_id=str(item["source_id"]),
        site_id=str(site) if site else None,
        state_json=_unpacked(item["state"]),
        version=int(item["version"]),
    )


class HealthStore(TableStore):
    """Each charger's health state (per vendor and source), written with optimistic concurrency."""

    @staticmethod
    def _key(vendor: str, source_id: str, charger_id: str) -> dict[str, str]:
        return {"pk": HEALTH_PARTITION, "sk": charger_entry_key(charger_id, vendor, source_id)}

    def get(self, vendor: str, source_id: str, charger_id: str) -> StoredHealth | None:
        """The charger's state as last written (strongly consistent), or None when it has none yet."""
        item = self._table.get_item(Key=self._key(vendor, source_id, charger_id), ConsistentRead=True).get("Item")
        return _stored_health(item) if item else None

    def put(
        self,
        vendor: str,
        source_id: str,
        charger_id: str,
        site_id: str | None,
        state_json: str,
        expected_version: int | None,
    ) -> int | None:
        """Write the charger's state if it is still at ``expected_version`` (None: if it has none yet); the version
        written, or None when another writer got there first (read it again and retry)."""
        version = 1 if expected_version is None else expected_version + 1
        item: dict[str, Any] = self._key(vendor, source_id, charger_id) | {
            "charger_id": charger_id,
            "vendor": vendor,
            "source_id": source_id,
            "state": _packed(state_json),
            "version": version,
        }
        if site_id:
            item["site_id"] = site_id
        condition = Attr("pk").not_exists() if expected_version is None else Attr("version").eq(expected_version)
        try:
            self._table.put_item(Item=item, ConditionExpression=condition)
        except ClientError as error:
            if is_condition_failure(error):
                return None
            raise
        return version

    def for_charger(self, charger_id: str) -> list[StoredHealth]:
        """The charger's states, one per vendor and source that has its records (usually one)."""
        items = query_all(
            self._table,
            KeyConditionExpression=Key("pk").eq(HEALTH_PARTITION) & Key("sk").begins_with(f"{charger_id}#"),
        )
        # A charger whose id starts with this one's and "#" is another charger.
        return [_stored_health(item) for item in items if item.get("charger_id") == charger_id]

    def all(self) -> Iterator[StoredHealth]:
        """Every charger's state, every page of the partition."""
        return (
            _stored_health(item)
            for item in query_all(self._table, KeyConditionExpression=Key("pk").eq(HEALTH_PARTITION))
        )
