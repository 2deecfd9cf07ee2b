"""The raw archive bucket: every fetched page, oversize payloads and quarantined records.

Keys are Hive-style (``raw/vendor=…/source=…/date=YYYY-MM-DD/…``) so Athena can partition on them.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chargelog import json_pointer
from chargelog.dal import BucketStore, error_code

_UNSAFE = re.compile(r"[^A-Za-z0-9._:@-]")
RAW_PREFIX = "raw"


def safe_segment(text: str) -> str:
    """``text`` as one segment of an object key: characters other than letters, digits and ``._:@-`` become ``_``."""
    return _UNSAFE.sub("_", text)


# Between a page's key and an index in a record's ``raw_ref``; never in a key (see _UNSAFE and put_page).
RAW_REF_SEPARATOR = "#"


class ArchivedObjectGone(LookupError):
    """The object is not (or no longer: the bucket's lifecycle expired it) in the archive."""


def raw_ref(page_key: str, index: int) -> str:
    """Where a record's raw form is: its page and its index in the page's items."""
    return f"{page_key}{RAW_REF_SEPARATOR}{index}"


def source_prefix(vendor: str, source_id: str, prefix: str = RAW_PREFIX) -> str:
    """The start of every key of one source's objects (its fetched pages, under ``raw``)."""
    return f"{prefix}/vendor={vendor}/source={safe_segment(source_id)}/"


def _partition(prefix: str, vendor: str, source_id: str, day: datetime) -> str:
    return f"{source_prefix(vendor, source_id, prefix)}date={day.astimezone(UTC):%Y-%m-%d}"


def page_key(vendor: str, source_id: str, job_id: str, fetched_at: datetime, page_number: int) -> str:
    """Where a fetched page is kept: partitioned by vendor, source and the UTC date it was fetched."""
    return (
        f"{_partition(RAW_PREFIX, vendor, source_id, fetched_at)}/"
        f"{fetched_at.astimezone(UTC):%H%M%S%f}-{job_id[:12]}-p{page_number:06d}.json.gz"
    )


_PAGE_NAME = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/(\d{12})-[^/]*\.json\.gz$")


def page_fetched_at(key: str) -> datetime | None:
    """When the page at ``key`` (a `page_key`) was fetched, read from the key; None for a key not made so."""
    match = _PAGE_NAME.search(key)
    if match is None:
        return None
    return datetime.strptime(f"{match[1]} {match[2]}", "%Y-%m-%d %H%M%S%f").replace(tzinfo=UTC)


def _gzip_json(document: Any) -> bytes:
    return gzip.compress(json.dumps(document, separators=(",", ":"), default=str).encode(), compresslevel=6)


class RawArchive(BucketStore):
    def _put(self, key: str, document: Any) -> str:
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=_gzip_json(document),
            ContentType="application/json",
            ContentEncoding="gzip",
        )
        return key

    def put_page(
        self,
        vendor: str,
        source_id: str,
        job_id: str,
        fetched_at: datetime,
        request: dict[str, Any],
        body: Any,
        page_number: int,
        items_at: str | None = None,
    ) -> str:
        """Store one page exactly as the vendor sent it, with the request that fetched it and, when known, where its
        records sit in the body (``items_at``, a JSON pointer): records point at their raw form there by index."""
        key = page_key(vendor, source_id, job_id, fetched_at, page_number)
        document: dict[str, Any] = {"fetched_at": fetched_at.isoformat(), "request": request, "body": body}
        if items_at is not None:
            document["items_at"] = items_at
        return self._put(key, document)

    def put_payload(self, vendor: str, source_id: str, record_id: str, timestamp: datetime, document: Any) -> str:
        """A record's payload too large for a DynamoDB item."""
        key = f"{_partition('oversize', vendor, source_id, timestamp)}/{safe_segment(record_id)}.json.gz"
        return self._put(key, document)

    def quarantine(
        self, vendor: str, source_id: str, fetched_at: datetime, item: Any, reason: str, page_key: str, index: int
    ) -> str:
        """A vendor record that could not be parsed, kept with the reason and the page it came from."""
        page_name = page_key.rsplit("/", 1)[-1].removesuffix(".json.gz")
        key = f"{_partition('quarantine', vendor, source_id, fetched_at)}/{page_name}-{index:05d}.json.gz"
        return self._put(key, {"reason": reason, "page": page_key, "index": index, "item": item})

    def list_pages(
        self, vendor: str, source_id: str, fetched_from: datetime, fetched_to: datetime, after: str | None = None
    ) -> Iterator[str]:
        """The keys of one source's pages fetched in ``[fetched_from, fetched_to]``, in fetch order (keys sort by
        fetch time within a day's partition), after the key ``after`` when given. One ListObjectsV2 (and its
        continuations) per day."""
        resume_at = page_fetched_at(after) if after is not None else None
        day = (resume_at or fetched_from).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        paginator = self._s3.get_paginator("list_objects_v2")
        while day <= fetched_to:
            prefix = f"{_partition(RAW_PREFIX, vendor, source_id, day)}/"
            listing: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix}
            if after is not None and after.startswith(prefix):
                listing["StartAfter"] = after
            for page in paginator.paginate(**listing):
                for entry in page.get("Contents", []):
                    fetched_at = page_fetched_at(entry["Key"])
                    if fetched_at is not None and fetched_from <= fetched_at <= fetched_to:
                        yield entry["Key"]
            day += timedelta(days=1)

    def read(self, key: str) -> Any:
        """A stored document; `ArchivedObjectGone` when the bucket no longer has it (expired)."""
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404"):
                raise ArchivedObjectGone(key) from error
            raise
        return json.loads(gzip.decompress(body))

    def raw_items(self, refs: Iterable[str]) -> dict[str, Any]:
        """Records' raw forms by their ``raw_ref`` (``<page key>#<index>``: the index in the page's items, which sit
        at the page's ``items_at`` in its body); each page is read once."""
        by_page: dict[str, list[tuple[str, int]]] = {}
        for ref in refs:
            page_key, _, index = ref.rpartition(RAW_REF_SEPARATOR)
            by_page.setdefault(page_key, []).append((ref, int(index)))
        found: dict[str, Any] = {}
        for page_key, wanted in by_page.items():
            page = self.read(page_key)
            items = json_pointer.resolve(page["body"], page["items_at"])
            found.update((ref, items[index]) for ref, index in wanted)
        return found
