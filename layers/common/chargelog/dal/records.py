"""Normalized log records in the table, written as idempotent upserts.

Keys (see docs/storage.md): ``pk = "CHARGER#<charger_id>"``, ``sk = "<timestamp>#<record_id>"``, and for
records with an OCPP action ``gsi1pk = "CHARGER#<charger_id>#ACTION#<action>"`` (status records:
``"CHARGER#<charger_id>#KIND#status"``), ``gsi1sk = sk``. The fields extracted from the payloads
(``extracted``) are kept as JSON text, and the ones queries filter on (``transaction_id``,
``connector_status``) also as top-level attributes. A record
always lands on the same key, so a re-read page, a retry or an overlapping window overwrites it with the
same content instead of adding a copy.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Key

from chargelog import aws
from chargelog.dal import query_all
from chargelog.dal.archive import RawArchive
from chargelog.models.keys import (
    CHARGERS_PARTITION,
    action_partition,
    charger_entry_key,
    charger_partition,
    fleet_action_partition,
    kind_partition,
    site_partition,
    timestamp_key,
)
from chargelog.models.records import LogRecord

BATCH_LIMIT = 25
# DynamoDB's item limit is 400 KB; keep well clear of it (attribute names and overhead count too).
MAX_INLINE_ITEM_BYTES = 300_000
MAX_UNPROCESSED_ATTEMPTS = 8
PARALLEL_BATCHES = 8


class UnprocessedItemsError(RuntimeError):
    pass


KEY_ATTRIBUTES = frozenset({"pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk"})

# Documents nothing queries inside: kept as JSON text, which is far cheaper to write than typed nested maps.
JSON_TEXT_FIELDS = ("payload", "result", "raw")
# Also JSON text (small, never moved to S3 with the documents above); its FILTERED_FIELDS are copied to the item's
# top level, where FilterExpressions can reach them.
EXTRACTED_FIELD = "extracted"
FILTERED_FIELDS = ("transaction_id", "connector_status")


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def charger_items(table_name: str, charger_id: str) -> Iterator[dict[str, Any]]:
    """Every stored item of one charger, in time order."""
    return query_all(aws.table(table_name), KeyConditionExpression=Key("pk").eq(charger_partition(charger_id)))


def record_from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A stored item back as the record's fields (JSON text decoded, keys and TTL dropped)."""
    record = {k: v for k, v in item.items() if k not in KEY_ATTRIBUTES and k != "expires_at"}
    for field in (*JSON_TEXT_FIELDS, EXTRACTED_FIELD):
        if isinstance(record.get(field), str):
            record[field] = json.loads(record[field])
    for field in FILTERED_FIELDS:
        record.pop(field, None)  # copies of what `extracted` holds
    if "connector_id" in record:
        record["connector_id"] = int(record["connector_id"])
    return record


class RecordWriter:
    def __init__(
        self, table_name: str, archive: RawArchive, retention_days: int, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._table_name = table_name
        self._archive = archive
        self._retention = timedelta(days=retention_days)
        self._sleep = sleep

    @property
    def _table(self) -> Any:
        return aws.table(self._table_name)

    def item_for(self, record: LogRecord) -> dict[str, Any]:
        sort_key = f"{timestamp_key(record.timestamp)}#{record.record_id}"
        item: dict[str, Any] = record.model_dump(
            mode="json", exclude_none=True, exclude={*JSON_TEXT_FIELDS, EXTRACTED_FIELD}
        )
        if record.extracted is not None:
            item[EXTRACTED_FIELD] = record.extracted.model_dump_json(exclude_none=True)
            item.update(
                {name: value for name in FILTERED_FIELDS if (value := getattr(record.extracted, name)) is not None}
            )
        documents = {
            field: _json_text(value) for field in JSON_TEXT_FIELDS if (value := getattr(record, field)) is not None
        }
        item.update(
            pk=charger_partition(record.charger_id),
            sk=sort_key,
            expires_at=int((record.timestamp + self._retention).timestamp()),
        )
        if record.action:
            item.update(gsi1pk=action_partition(record.charger_id, record.action), gsi1sk=sort_key)
            item.update(gsi3pk=fleet_action_partition(record.action, record.timestamp.date()), gsi3sk=sort_key)
        elif record.kind != "ocpp":
            item.update(gsi1pk=kind_partition(record.charger_id, record.kind), gsi1sk=sort_key)
        if record.site_id:
            item.update(gsi2pk=site_partition(record.site_id), gsi2sk=sort_key)
        if sum(map(len, documents.values())) > MAX_INLINE_ITEM_BYTES:
            item["payload_ref"] = self._archive.put_payload(
                record.vendor,
                record.source_id,
                record.record_id,
                record.timestamp,
                {field: getattr(record, field) for field in documents},
            )
        else:
            item.update(documents)
        return item

    def write(self, records: Iterable[LogRecord]) -> int:
        """Upsert records; returns how many were written. Raises if DynamoDB keeps refusing some."""
        items: dict[tuple[str, str], dict[str, Any]] = {}
        records_seen: list[LogRecord] = []
        for record in records:
            records_seen.append(record)
            item = self.item_for(record)
            items[(item["pk"], item["sk"])] = item  # one put per key per batch, as DynamoDB requires
        pending = list(items.values())
        batches = [pending[start : start + BATCH_LIMIT] for start in range(0, len(pending), BATCH_LIMIT)]
        if len(batches) <= 1:
            for batch in batches:
                self._write_batch(batch)
        else:
            # BatchWriteItem is I/O-bound: a page's batches go out together (boto3 clients are thread-safe).
            with ThreadPoolExecutor(max_workers=min(PARALLEL_BATCHES, len(batches))) as pool:
                for done in as_completed([pool.submit(self._write_batch, batch) for batch in batches]):
                    done.result()
        self._note_chargers(records_seen)
        return len(pending)

    def _note_chargers(self, records: list[LogRecord]) -> None:
        """Keep the charger index (``GET /chargers``): per charger and source, its first and last record time."""
        spans: dict[tuple[str, str, str], tuple[datetime, datetime, str | None]] = {}
        for record in records:
            key = (record.charger_id, record.vendor, record.source_id)
            first, last, site = spans.get(key, (record.timestamp, record.timestamp, record.site_id))
            spans[key] = (min(first, record.timestamp), max(last, record.timestamp), site or record.site_id)
        for (charger_id, vendor, source_id), (first, last, site_id) in spans.items():
            item_key = {"pk": CHARGERS_PARTITION, "sk": charger_entry_key(charger_id, vendor, source_id)}
            names = {"charger_id": charger_id, "vendor": vendor, "source_id": source_id}
            if site_id:
                names["site_id"] = site_id
            for attribute, moment, comparison in (("first_record_at", first, ">"), ("last_record_at", last, "<")):
                # Only ever widen the span: a conditional update, so concurrent writers cannot narrow it.
                with contextlib.suppress(self._table.meta.client.exceptions.ConditionalCheckFailedException):
                    self._table.update_item(
                        Key=item_key,
                        UpdateExpression="SET #t = :t, " + ", ".join(f"#{n} = :{n}" for n in names),
                        ConditionExpression=f"attribute_not_exists(#t) OR #t {comparison} :t",
                        ExpressionAttributeNames={"#t": attribute, **{f"#{n}": n for n in names}},
                        ExpressionAttributeValues={
                            ":t": timestamp_key(moment),
                            **{f":{n}": v for n, v in names.items()},
                        },
                    )

    def _write_batch(self, items: list[dict[str, Any]]) -> None:
        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": item}} for item in items]
        serializer = self._table.meta.client  # resource client serializes Python types
        for attempt in range(MAX_UNPROCESSED_ATTEMPTS):
            response = serializer.batch_write_item(RequestItems={self._table_name: requests})
            requests = response.get("UnprocessedItems", {}).get(self._table_name, [])
            if not requests:
                return
            # Exponential backoff with full jitter, as AWS advises for unprocessed items.
            self._sleep(random.uniform(0, min(5.0, 0.05 * 2**attempt)))  # noqa: S311 - jitter, not crypto
        raise UnprocessedItemsError(
            f"DynamoDB left {len(requests)} items unprocessed after {MAX_UNPROCESSED_ATTEMPTS} attempts"
        )
