"""Normalized log records in the table, written once, read back as the records they were.

Keys (see docs/storage.md): ``pk = "CHARGER#<charger_id>"``, ``sk = "<timestamp>#<record_id>"``; the indexes
reuse ``sk`` as their sort key and hold keys only (KEYS_ONLY): ``gsi1pk = "CHARGER#<charger_id>#ACTION#<action>"``
(not for the dense actions of `CHARGER_UNINDEXED_ACTIONS`, read from the charger's partition instead; nor for
status records, which are all of their chargers' records) and ``gsi3pk = "ACTION#<action>#<day>"``.
A site's records are found through its chargers (the charger index's entries are on gsi2).

An item holds what queries and list views need, and nothing the keys already say: ``charger_id`` (in ``pk``),
``timestamp`` and ``record_id`` (in ``sk``), ``vendor`` (the start of the record id) and ``source_id`` where it is
the charger id are left out; `record_from_item` puts them back. ``raw`` is in the raw archive: ``raw_ref``
names its page (relative to the source's prefix) and place. Long documents are zlib-compressed. A record always
lands on the same key, and an unchanged one is not written again (``digest``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import Binary, TypeDeserializer

from chargelog import aws
from chargelog.dal import (
    MAX_UNPROCESSED_ATTEMPTS,
    TableStore,
    UnprocessedItemsError,
    backoff_pause,
    query_all,
)
from chargelog.dal.archive import RawArchive, source_prefix
from chargelog.models.keys import (
    CHARGER_KINDS_FIELD,
    CHARGER_UNINDEXED_ACTIONS,
    CHARGERS_PARTITION,
    action_partition,
    charger_entry_key,
    charger_of_partition,
    charger_partition,
    fleet_action_partition,
    site_chargers_partition,
    split_sort_key,
    timestamp_json,
    timestamp_key,
)
from chargelog.models.records import LogRecord

BATCH_LIMIT = 25
# A charger index entry's span and site as stored, by (charger, vendor, source): see `RecordWriter.write`.
type ChargerSpans = dict[tuple[str, str, str], tuple[str, str, str | None]]
_DESERIALIZE = TypeDeserializer()
# DynamoDB's item limit is 400 KB; keep well clear of it (attribute names and overhead count too).
MAX_INLINE_ITEM_BYTES = 300_000
PARALLEL_BATCHES = 8
# Documents (payload, result, extracted) longer than this many bytes of JSON text are stored zlib-compressed, as a
# Binary attribute: measured on the simulators' traffic (docs/storage.md), below it zlib saves little or nothing.
COMPRESS_ABOVE = 400
ZLIB_LEVEL = 6


# A short hash of what an item holds (``digest``): a re-read record whose item would be the same is not written again.
DIGEST_FIELD = "digest"
# The item's TTL attribute: when the table forgets the record (`RecordWriter.item_for`).
EXPIRES_FIELD = "expires_at"
# Not part of what a record says: where its raw form was archived changes with every page that re-reads it, and the
# TTL with every write (counted from the writing for an old record), so a re-read does not rewrite an unchanged one.
NOT_DIGESTED = frozenset({DIGEST_FIELD, "raw_ref", EXPIRES_FIELD})


def _canonical(value: Any) -> Any:
    if isinstance(value, Binary):
        return value.value.hex()
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    return str(value)


def item_digest(item: dict[str, Any]) -> str:
    """What an item holds, apart from where its raw form is archived, as 16 characters (96 bits of BLAKE2b)."""
    content = {name: value for name, value in item.items() if name not in NOT_DIGESTED}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=_canonical)
    return base64.urlsafe_b64encode(hashlib.blake2b(canonical.encode(), digest_size=12).digest()).decode()


# gsi*sk: items written before the indexes sorted on ``sk`` itself.
KEY_ATTRIBUTES = frozenset({"pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk"})
# Record fields the item's keys say already (`record_from_item` reads them back from there).
FROM_KEYS = frozenset({"charger_id", "timestamp", "record_id", "vendor"})

# Documents nothing queries inside: kept as JSON text, which is far cheaper to write than typed nested maps (or,
# when long, compressed: see `_compressed`). ``raw`` only in items written before records pointed at their archived
# page (``raw_ref``), or by writers not given a page (tests, tools).
JSON_TEXT_FIELDS = ("payload", "result", "raw")
# A record's raw form in the raw archive: ``<page key>#<index in the page's items>`` (chargelog.dal.archive.raw_ref).
RAW_REF_FIELD = "raw_ref"
# How a full page key starts; an item's ``raw_ref`` is stored without its source's prefix (`source_prefix`).
RAW_PREFIX_MARK = "raw/"
# The documents stored compressed when long (`_compressed`); ``raw`` held in an item stays text, as it always was.
COMPRESSED = frozenset({"payload", "result", "extracted"})
# Also JSON text (small, never moved to S3 with the documents above); its FILTERED_FIELDS are copied to the item's
# top level, where FilterExpressions can reach them.
EXTRACTED_FIELD = "extracted"
FILTERED_FIELDS = ("transaction_id", "connector_status")


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def charger_items(table_name: str, charger_id: str) -> Iterator[dict[str, Any]]:
    """Every stored item of one charger, in time order."""
    return query_all(aws.table(table_name), KeyConditionExpression=Key("pk").eq(charger_partition(charger_id)))


def _decoded(value: Any) -> Any:
    """A stored document: JSON text, or (long ones) zlib-compressed JSON as a Binary attribute."""
    if isinstance(value, str):
        return json.loads(value)
    if isinstance(value, Binary | bytes | bytearray):
        return json.loads(zlib.decompress(bytes(value)))
    return value


def record_from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A stored item back as the record's fields (documents decoded; what the keys say put back; keys, TTL and digest
    dropped). A record written with a ``raw_ref`` has no ``raw`` here: `with_raw` reads it from the archive."""
    timestamp, record_id = split_sort_key(str(item["sk"]))
    charger_id = charger_of_partition(str(item["pk"]))
    record: dict[str, Any] = {
        "vendor": record_id.partition(":")[0],
        "source_id": charger_id,
        "charger_id": charger_id,
        "timestamp": timestamp_json(timestamp),
        "record_id": record_id,
    }
    record.update((k, v) for k, v in item.items() if k not in KEY_ATTRIBUTES and k not in (EXPIRES_FIELD, DIGEST_FIELD))
    for field in (*JSON_TEXT_FIELDS, EXTRACTED_FIELD):
        if field in record:
            record[field] = _decoded(record[field])
    for field in FILTERED_FIELDS:
        record.pop(field, None)  # copies of what `extracted` holds
    if "connector_id" in record:
        record["connector_id"] = int(record["connector_id"])
    if (ref := record.get(RAW_REF_FIELD)) is not None and not str(ref).startswith(RAW_PREFIX_MARK):
        record[RAW_REF_FIELD] = source_prefix(record["vendor"], record["source_id"]) + str(ref)
    return record


def with_raw(records: list[dict[str, Any]], archive: RawArchive) -> list[dict[str, Any]]:
    """Records (from `record_from_item`) with their raw forms: those held in the table as they are, those with a
    ``raw_ref`` read from the archived pages (each page once)."""
    found = archive.raw_items(ref for record in records if (ref := record.get(RAW_REF_FIELD)) is not None)
    complete = []
    for record in records:
        if RAW_REF_FIELD in record:
            record = {k: v for k, v in record.items() if k != RAW_REF_FIELD} | {"raw": found[record[RAW_REF_FIELD]]}
        complete.append(record)
    return complete


def _compressed(text: str, compress_above: int | None) -> str | Binary:
    """A document's JSON text as stored: as it is, or above ``compress_above`` UTF-8 bytes zlib-compressed (a Binary
    attribute) when that is smaller."""
    if compress_above is None or len(text) <= compress_above:
        return text
    encoded = text.encode()
    packed = zlib.compress(encoded, ZLIB_LEVEL)
    return Binary(packed) if len(encoded) > compress_above and len(packed) < len(encoded) else text


def _may_be_stored(record: LogRecord, item: dict[str, Any], known: ChargerSpans | None) -> bool:
    """Whether the table may hold a record already, as far as the charger index entries a caller saw stored tell:
    not if its time is outside its entry's span. Only records written leave it (`RecordWriter._note_chargers`, after
    their writes), so one stored is inside it. Should that be wrong (a write whose index update a crash lost), the
    record is only written again, on its own key."""
    held = known.get((record.charger_id, record.vendor, record.source_id)) if known is not None else None
    if held is None:
        return True
    moment = str(item["sk"]).partition("#")[0]  # the record's timestamp_key
    return held[0] <= moment <= held[1]


class RecordWriter(TableStore):
    def __init__(
        self,
        table_name: str,
        archive: RawArchive,
        hot_retention_days: int,
        sleep: Callable[[float], None] = time.sleep,
        compress_above: int | None = COMPRESS_ABOVE,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(table_name)
        self._archive = archive
        self._hot_window = timedelta(days=hot_retention_days)
        self._sleep = sleep
        self._compress_above = compress_above
        self._now = now

    def expires_at(self, record: LogRecord) -> int:
        """When the table forgets a record (epoch seconds, the TTL): the hot window after its time, or after now if
        that is later, so a backfilled old record stays as long as a new one. The record archive keeps it longer."""
        return int((max(record.timestamp, self._now()) + self._hot_window).timestamp())

    def item_for(self, record: LogRecord, raw_ref: str | None = None) -> dict[str, Any]:
        """The item a record is stored as. With ``raw_ref`` (where its page is archived, `archive.raw_ref`) the item
        points there instead of holding the raw form."""
        sort_key = f"{timestamp_key(record.timestamp)}#{record.record_id}"
        item: dict[str, Any] = record.model_dump(
            mode="json", exclude_none=True, exclude={*JSON_TEXT_FIELDS, EXTRACTED_FIELD, *FROM_KEYS}
        )
        if item.get("source_id") == record.charger_id:
            del item["source_id"]  # the charger's own log: `record_from_item` reads it from pk
        stored_fields = [field for field in JSON_TEXT_FIELDS if not (field == "raw" and raw_ref is not None)]
        texts = {field: _json_text(value) for field in stored_fields if (value := getattr(record, field)) is not None}
        if record.extracted is not None:
            item.update(
                {name: value for name in FILTERED_FIELDS if (value := getattr(record.extracted, name)) is not None}
            )
        if raw_ref is not None:
            prefix = source_prefix(record.vendor, record.source_id)
            item[RAW_REF_FIELD] = raw_ref.removeprefix(prefix) if raw_ref.startswith(prefix) else raw_ref
        item.update(
            pk=charger_partition(record.charger_id),
            sk=sort_key,
            expires_at=self.expires_at(record),
        )
        if record.action:
            if record.action not in CHARGER_UNINDEXED_ACTIONS:
                item["gsi1pk"] = action_partition(record.charger_id, record.action)
            item["gsi3pk"] = fleet_action_partition(record.action, record.timestamp.date())
        # Records of another kind (vendor status samples) have no index entry: they are all their chargers' records,
        # read from the charger's partition (the charger index's ``kinds`` says which chargers have them).
        # Decided on the JSON text, compressed or not: a document this large is read from S3 rather than from every
        # Query page that meets its item.
        if sum(map(len, texts.values())) > MAX_INLINE_ITEM_BYTES:
            item["payload_ref"] = self._archive.put_payload(
                record.vendor,
                record.source_id,
                record.record_id,
                record.timestamp,
                {field: getattr(record, field) for field in texts},
            )
            texts = {}
        if record.extracted is not None:
            # Stored, not computed again on every read: extracting costs a list page more time than its bytes cost.
            texts[EXTRACTED_FIELD] = record.extracted.model_dump_json(exclude_none=True)
        item.update(
            (field, _compressed(text, self._compress_above) if field in COMPRESSED else text)
            for field, text in texts.items()
        )
        item[DIGEST_FIELD] = item_digest(item)
        return item

    def write(
        self,
        records: Iterable[LogRecord],
        raw_refs: Sequence[str] | None = None,
        *,
        compare_through: datetime | None = None,
        before_writing: Callable[[list[LogRecord]], object] | None = None,
        chargers: ChargerSpans | None = None,
    ) -> int:
        """Upsert records; returns how many were written. Raises if DynamoDB keeps refusing some. ``raw_refs``: each
        record's place in the raw archive (`archive.raw_ref`), in the same order; without them the items hold the raw
        forms.

        ``compare_through``: records at or before this time may be stored already (a scheduled job's lookback re-reads
        them on every run): those whose stored item holds the same (``digest``) are not written again; one
        eventually consistent Query per charger over their keys' span (half a read unit per 4 KB read) instead of a
        write unit per KB and per index. ``before_writing`` gets the records about to be written (new or changed),
        before any is. ``chargers``: the charger index entries as this caller last saw them stored (kept by the caller
        from one write to the next, as a job does across its pages): an entry already covering the records written is
        not written again; and a record outside its charger's entry there is not compared (no record of the source
        is stored outside its entry's span, which only widens and is widened after every write), so a backfill of a
        range nothing holds yet reads nothing before writing, after its first page."""
        entries: dict[tuple[str, str], tuple[LogRecord, dict[str, Any]]] = {}
        for position, record in enumerate(records):
            item = self.item_for(record, raw_refs[position] if raw_refs is not None else None)
            entries[(item["pk"], item["sk"])] = (record, item)  # one put per key per batch, as DynamoDB requires
        if compare_through is not None:
            candidates = [
                item
                for record, item in entries.values()
                if record.timestamp <= compare_through and _may_be_stored(record, item, chargers)
            ]
            for key in self._stored_unchanged(candidates):
                del entries[key]
        changed = [record for record, _ in entries.values()]
        if before_writing is not None:
            before_writing(changed)
        pending = [item for _, item in entries.values()]
        batches = [pending[start : start + BATCH_LIMIT] for start in range(0, len(pending), BATCH_LIMIT)]
        if len(batches) <= 1:
            for batch in batches:
                self._write_batch(batch)
        else:
            # BatchWriteItem is I/O-bound: a page's batches go out together (boto3 clients are thread-safe).
            with ThreadPoolExecutor(max_workers=min(PARALLEL_BATCHES, len(batches))) as pool:
                for done in as_completed([pool.submit(self._write_batch, batch) for batch in batches]):
                    done.result()
        self._note_chargers(changed, chargers)
        return len(pending)

    def _stored_unchanged(self, items: list[dict[str, Any]]) -> set[tuple[str, str]]:
        """The keys of those items the table already holds with the same digest.

        One Query per charger over the span of the items' sort keys (projecting the digest), not a BatchGetItem: a
        Query is billed per 4 KB of the items it reads together, a BatchGetItem per item, each rounded up to 4 KB - for
        a page of records several times the read units."""
        spans: dict[str, tuple[str, str]] = {}
        for item in items:
            low, high = spans.get(item["pk"], (item["sk"], item["sk"]))
            spans[item["pk"]] = (min(low, item["sk"]), max(high, item["sk"]))
        stored: dict[tuple[str, str], str | None] = {}
        for partition, (low, high) in spans.items():
            for found in query_all(
                self._table,
                KeyConditionExpression=Key("pk").eq(partition) & Key("sk").between(low, high),
                ProjectionExpression="sk, #digest",
                ExpressionAttributeNames={"#digest": DIGEST_FIELD},
            ):
                stored[(partition, str(found["sk"]))] = found.get(DIGEST_FIELD)
        return {
            (item["pk"], item["sk"]) for item in items if stored.get((item["pk"], item["sk"])) == item[DIGEST_FIELD]
        }

    def _note_chargers(self, records: list[LogRecord], known: ChargerSpans | None) -> None:
        """Keep the charger index (``GET /chargers``): per charger and source, its first and last record time, its
        site (on index gsi2) and the kinds of record it has (``kinds``, a string set: a source's records are of one
        kind, so the entry's first write says it). Only records written now can widen a span: those stored before
        already did.

        One conditional UpdateItem per charger: the last time moves forward only, the first and the names are set
        where the entry is new (``if_not_exists``); it answers with the entry as stored, so a span that this job
        already knows to cover its records (``known``, kept by the caller across a job's pages) is not written again.
        Only records older than the entry's first time (a backfill) cost a second write."""
        spans: dict[tuple[str, str, str], tuple[str, str, str | None]] = {}
        kinds: dict[tuple[str, str, str], set[str]] = {}
        for record in records:
            key = (record.charger_id, record.vendor, record.source_id)
            moment = timestamp_key(record.timestamp)
            first, last, site = spans.get(key, (moment, moment, record.site_id))
            spans[key] = (min(first, moment), max(last, moment), site or record.site_id)
            kinds.setdefault(key, set()).add(record.kind)
        for entry, (first, last, site_id) in spans.items():
            held = known.get(entry) if known is not None else None
            if held is not None and held[0] <= first and last <= held[1] and site_id in (None, held[2]):
                continue  # the stored span covers these records already
            stored = self._note_charger(entry, first, last, site_id, kinds[entry])
            if known is not None:
                known[entry] = stored

    def _note_charger(
        self, entry: tuple[str, str, str], first: str, last: str, site_id: str | None, kinds: set[str]
    ) -> tuple[str, str, str | None]:
        """Widen one charger entry's span to ``[first, last]``; returns the span and site as stored then."""
        charger_id, vendor, source_id = entry
        item_key = {"pk": CHARGERS_PARTITION, "sk": charger_entry_key(charger_id, vendor, source_id)}
        names: dict[str, str] = {"charger_id": charger_id, "vendor": vendor, "source_id": source_id}
        if site_id:
            # On index gsi2, so a site's chargers are one small Query (`RecordStore.site_chargers`).
            names.update(site_id=site_id, gsi2pk=site_chargers_partition(site_id), gsi2sk=item_key["sk"])
        attribute_names = {"#first": "first_record_at", "#last": "last_record_at"} | {f"#{n}": n for n in names}
        values = {f":{n}": v for n, v in names.items()}
        try:
            # Moves the last time forward only, so concurrent writers cannot narrow the span.
            stored = self._table.update_item(
                Key=item_key,
                UpdateExpression="SET #last = :last, #first = if_not_exists(#first, :first), "
                + ", ".join(f"#{n} = :{n}" for n in names)
                + f" ADD {CHARGER_KINDS_FIELD} :kinds",
                ConditionExpression="attribute_not_exists(#last) OR #last < :last",
                ExpressionAttributeNames=attribute_names,
                ExpressionAttributeValues={":first": first, ":last": last, ":kinds": kinds, **values},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )["Attributes"]
        except self._table.meta.client.exceptions.ConditionalCheckFailedException as error:
            # Not later than the entry's last record: the entry as it is tells whether anything else would change.
            stored = {name: _DESERIALIZE.deserialize(value) for name, value in error.response.get("Item", {}).items()}
        older = first < str(stored.get("first_record_at", first))
        if older or (site_id and stored.get("site_id") != site_id):
            # Older than the entry's first record (a backfill), or a site it does not name yet: widen the span
            # backwards (never narrowing it) and name the site.
            request: dict[str, Any] = {
                "Key": item_key,
                "UpdateExpression": "SET " + ", ".join(f"#{n} = :{n}" for n in names),
                "ExpressionAttributeNames": {f"#{n}": n for n in names},
                "ExpressionAttributeValues": values,
                "ReturnValues": "ALL_NEW",
            }
            if older:
                request["UpdateExpression"] += ", #first = :first"
                request["ConditionExpression"] = "attribute_not_exists(#first) OR #first > :first"
                request["ExpressionAttributeNames"]["#first"] = "first_record_at"
                request["ExpressionAttributeValues"][":first"] = first
            with contextlib.suppress(self._table.meta.client.exceptions.ConditionalCheckFailedException):
                stored = self._table.update_item(**request)["Attributes"]
        site = stored.get("site_id")
        return str(stored.get("first_record_at", first)), str(stored.get("last_record_at", last)), site and str(site)

    def _write_batch(self, items: list[dict[str, Any]]) -> None:
        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": item}} for item in items]
        serializer = self._table.meta.client  # resource client serializes Python types
        for attempt in range(MAX_UNPROCESSED_ATTEMPTS):
            response = serializer.batch_write_item(RequestItems={self._table_name: requests})
            requests = response.get("UnprocessedItems", {}).get(self._table_name, [])
            if not requests:
                return
            backoff_pause(attempt, self._sleep)
        raise UnprocessedItemsError(
            f"DynamoDB left {len(requests)} items unprocessed after {MAX_UNPROCESSED_ATTEMPTS} attempts"
        )
