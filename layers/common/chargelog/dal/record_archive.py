"""The normalized record archive: every record the worker stores in the table, also in S3, for Athena.

One gzipped NDJSON object per stored page and UTC day of its records' timestamps (a page spanning midnight makes
two), Hive-partitioned by vendor and date (docs/athena.md; the Glue table ``records`` in template.yaml reads them)::

    records/vendor=<vendor>/date=<YYYY-MM-DD>/<source>-<digest>.ndjson.gz

``digest`` is a SHA-256 over the sorted ids of the records in the object, never the fetch time: a page read again
with the same records (a retry, a worker resumed from its checkpoint, a replayed backfill) lands on the same key,
and its content is byte for byte the same (lines in time and id order, gzip without a timestamp), so it overwrites
instead of adding a copy. A read whose pages split the records differently (the lookback of the next scheduled
run re-reads its last half hour) writes other objects holding some of the same records: queries count
``DISTINCT record_id`` (docs/athena.md).

Each line holds the record's normalized fields (``raw`` stays in the raw archive) with ``timestamp`` as fixed-width
UTC text (``2025-01-31T23:59:59.123456Z``: text order is time order) and fields without a value left out.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, date
from typing import Any, Final

from chargelog.dal import BucketStore
from chargelog.dal.archive import safe_segment
from chargelog.models.keys import timestamp_key
from chargelog.models.records import LogRecord

RECORDS_PREFIX: Final = "records"
DIGEST_HEX_LENGTH: Final = 32
# What the archive leaves out of a record: the vendor's entry as received is in the raw archive already.
EXCLUDED_FIELDS: Final = frozenset({"raw"})


def day_partition(vendor: str, day: date) -> str:
    """The prefix of one vendor's records of one UTC day."""
    return f"{RECORDS_PREFIX}/vendor={vendor}/date={day:%Y-%m-%d}"


def object_key(vendor: str, source_id: str, day: date, record_ids: Iterable[str]) -> str:
    """The key of the object holding these records of one source and day: the same for the same set of ids."""
    ids = "\n".join(sorted(set(record_ids)))
    digest = hashlib.sha256(ids.encode()).hexdigest()[:DIGEST_HEX_LENGTH]
    return f"{day_partition(vendor, day)}/{safe_segment(source_id)}-{digest}.ndjson.gz"


def archive_line(record: LogRecord) -> dict[str, Any]:
    """One record as a line of the archive holds it."""
    line = record.model_dump(mode="json", exclude_none=True, exclude=set(EXCLUDED_FIELDS))
    line["timestamp"] = timestamp_key(record.timestamp)
    return line


def ndjson_gz(records: Iterable[LogRecord]) -> bytes:
    """The records as gzipped NDJSON, one per record id, in time and id order; the same records give the same
    bytes (no timestamp in the gzip header)."""
    unique = {record.record_id: record for record in records}
    ordered = sorted(unique.values(), key=lambda record: (record.timestamp, record.record_id))
    text = "".join(
        json.dumps(archive_line(record), separators=(",", ":"), ensure_ascii=False) + "\n" for record in ordered
    )
    return gzip.compress(text.encode(), compresslevel=6, mtime=0)


def by_object(records: Iterable[LogRecord]) -> dict[str, list[LogRecord]]:
    """The records grouped into the objects they are archived in, by key."""
    groups: dict[tuple[str, str, date], list[LogRecord]] = defaultdict(list)
    for record in records:
        groups[(record.vendor, record.source_id, record.timestamp.astimezone(UTC).date())].append(record)
    return {
        object_key(vendor, source_id, day, (record.record_id for record in group)): group
        for (vendor, source_id, day), group in groups.items()
    }


class RecordArchive(BucketStore):
    """Writes pages of normalized records to the archive bucket (s3:PutObject under ``records/`` only)."""

    def put_page(self, records: Iterable[LogRecord]) -> list[str]:
        """Archive one page's records: one object per source and UTC day. Returns the keys written (none for no
        records)."""
        keys = []
        for key, group in by_object(records).items():
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=ndjson_gz(group),
                # A .gz file, not a gzip-encoded transfer: clients that download it keep it compressed.
                ContentType="application/gzip",
            )
            keys.append(key)
        return keys


def read_lines(body: bytes) -> Iterator[dict[str, Any]]:
    """The lines of one archive object (gzipped NDJSON), as written by `archive_line`."""
    for line in gzip.decompress(body).decode().splitlines():
        if line.strip():
            yield json.loads(line)


class RecordArchiveReader(BucketStore):
    """Reads the record archive back (s3:ListBucket and s3:GetObject under ``records/`` only): the records of one
    vendor's UTC day, from every object of its partition. Objects are partitioned by the UTC day of their records'
    timestamps (`by_object`), so a time range is read from the partitions of the UTC days it touches."""

    def day_keys(self, vendor: str, day: date) -> list[str]:
        """The keys of every object of one vendor's UTC day, oldest written first: a record changed in place is in
        an object of each version, and a reader keeping the last line it meets per record keeps the latest."""
        paginator = self._s3.get_paginator("list_objects_v2")
        entries = [
            (entry["LastModified"], str(entry["Key"]))
            for page in paginator.paginate(Bucket=self._bucket, Prefix=day_partition(vendor, day) + "/")
            for entry in page.get("Contents", [])
        ]
        return [key for _, key in sorted(entries)]

    def lines(self, key: str) -> Iterator[dict[str, Any]]:
        """The record lines of one object."""
        body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        return read_lines(body)

    def day_lines(self, vendor: str, day: date) -> Iterator[dict[str, Any]]:
        """Every line of one vendor's UTC day, object after object, oldest written first (a record read in two pages'
        splits, or changed in place, is in more than one object: the caller keeps the last line per record)."""
        for key in self.day_keys(vendor, day):
            yield from self.lines(key)
