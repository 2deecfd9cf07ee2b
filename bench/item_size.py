"""Log record item size per vendor, before and after the item diet: DynamoDB bytes as AWS counts them.

Each vendor's simulator (its ``chargelog local`` fleet, seeded, a day of traffic ending now) is read over HTTP by
the vendor's adapter, the last ``--hours`` of every source, page by page as the worker reads them. Every item is
normalized (``adapter.normalize``) and turned into its table item (``RecordWriter.item_for``) twice:

- before: the raw form inline as JSON text, payload and result as JSON text (``item_for(record)``, no
  compression) - the layout until this change;
- after: ``raw_ref`` to the archived page instead of ``raw``, payload and result compressed above
  ``COMPRESS_ABOVE`` bytes (``item_for(record, raw_ref)``).

Size per AWS's rules: the sum over attributes of the name's UTF-8 bytes plus the value's (String: UTF-8 bytes;
Binary: bytes; Number: 1 byte plus 1 per two significant digits; Boolean / Null: 1; List / Map: 3 bytes plus 1 per
element plus the elements). Write units: ceil(size / 1 KB) per item (per copy: each index that projects it writes
its own). Also the raw archive's gzipped page bytes, with and without the page's ``items_at``, and what archiving the
items list beside the body would have cost; and bytes per document field with zlib at several thresholds.

    .venv/bin/python bench/item_size.py              # all four vendors, the last 6 hours
    .venv/bin/python bench/item_size.py --hours 2 --vendors ocpplab evenergy
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import statistics
import sys
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]

from boto3.dynamodb.types import Binary  # noqa: E402

from chargelog import collectors  # noqa: E402
from chargelog.collectors.base import Page, VendorAdapter, VendorConnection, Window  # noqa: E402
from chargelog.dal.archive import RawArchive, page_key, raw_ref  # noqa: E402
from chargelog.dal.records import COMPRESS_ABOVE, ZLIB_LEVEL, RecordWriter  # noqa: E402

VENDORS = ("ocpplab", "plugchoice", "chargepilot", "evenergy")
THRESHOLDS: tuple[int | None, ...] = (None, 0, 100, 200, 300, 400, 800, 1600)
JOB_ID = "0123456789abcdef0123456789abcdef"


# ---------------------------------------------------------------------------------------------- DynamoDB item size
def value_size(value: Any) -> int:
    """A DynamoDB attribute value's size, as AWS counts it."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, Binary):
        return len(value.value)
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float | Decimal):
        digits = str(Decimal(str(value)).normalize()).lstrip("-").replace(".", "").lstrip("0") or "0"
        digits = digits.split("E")[0].rstrip("0") or "0"
        return 1 + math.ceil(len(digits) / 2)
    if isinstance(value, dict):
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return 3 + sum(1 + value_size(v) for v in value)
    raise TypeError(f"not a DynamoDB value: {type(value).__name__}")


def item_size(item: dict[str, Any]) -> int:
    """An item's size: its attributes' names and values."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


# ---------------------------------------------------------------------------------------------- simulator traffic
def _simulator(vendor: str) -> tuple[str, dict[str, str], Callable[[], None], list[str]]:
    """The vendor's local simulator: base URL, credentials, stop, and its sources."""
    if vendor == "ocpplab":
        from chargelog_simulators import ocpplab

        url, credentials, stop = ocpplab.start_local()
        return url, credentials, stop, [charger for charger, *_ in ocpplab.LOCAL_FLEET]
    if vendor == "plugchoice":
        from chargelog_simulators import plugchoice

        url, credentials, stop = plugchoice.start_local()
        return url, credentials, stop, [charger for charger, *_ in plugchoice.LOCAL_FLEET]
    if vendor == "chargepilot":
        from chargelog_simulators import chargepilot

        url, credentials, stop = chargepilot.start_local()
        return url, credentials, stop, [site for site, *_ in chargepilot.LOCAL_SITES]
    from chargelog_simulators import evenergy

    url, credentials, stop = evenergy.start_local()
    return url, credentials, stop, list(evenergy.LOCAL_EVSES)


def vendor_pages(vendor: str, hours: float) -> Iterator[tuple[str, Page]]:
    """Every page of the vendor's local fleet's last ``hours``, as (source id, page)."""
    url, credentials, stop, sources = _simulator(vendor)
    try:
        collectors.has_adapter(vendor)  # loads the vendor's built-in adapter
        profile, _ = collectors._ADAPTERS[vendor]
        connection = VendorConnection(vendor, url, credentials, profile.tuned({"requests_per_second": 10_000}))
        adapter: VendorAdapter = collectors.adapter_for(connection, lambda: 900.0)
        end = datetime.now(UTC) - timedelta(minutes=1)
        window = Window(end - timedelta(hours=hours), end)
        for source in sources:
            cursor: str | None = None
            while True:
                page = adapter.fetch_page(source, window, cursor)
                yield source, page
                if (cursor := page.next_cursor) is None:
                    break
        adapter.close()
    finally:
        stop()


# ---------------------------------------------------------------------------------------------- measuring
@dataclass
class Tally:
    records: int = 0
    pages: int = 0
    before: list[int] = field(default_factory=list)
    after: list[int] = field(default_factory=list)
    before_units: int = 0
    after_units: int = 0
    field_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # before, per attribute
    documents: dict[int | None, int] = field(default_factory=lambda: defaultdict(int))  # payload+result bytes
    page_gzip_before: int = 0
    page_gzip_after: int = 0
    page_gzip_with_items: int = 0
    ref_only: list[int] = field(default_factory=list)  # raw_ref, documents as text
    compressed_documents: int = 0
    zlib_seconds: float = 0.0  # compressing them
    unzlib_seconds: float = 0.0  # and decompressing them


def _gzip_size(document: Any) -> int:
    return len(gzip.compress(json.dumps(document, separators=(",", ":"), default=str).encode(), compresslevel=6))


def measure(vendor: str, hours: float) -> Tally:
    archive = RawArchive("measure-only")  # item_for touches it only for an item over 300 KB
    plain = RecordWriter("table", archive, hot_retention_days=90, compress_above=None)
    writers = {threshold: RecordWriter("table", archive, 90, compress_above=threshold) for threshold in THRESHOLDS}
    current = writers.get(COMPRESS_ABOVE) or RecordWriter("table", archive, 90)
    tally = Tally()
    fetched_at = datetime.now(UTC)
    for number, (source, page) in enumerate(vendor_pages(vendor, hours), start=1):
        tally.pages += 1
        key = page_key(vendor, source, JOB_ID, fetched_at, number)
        document = {"fetched_at": fetched_at.isoformat(), "request": page.request, "body": page.body}
        tally.page_gzip_before += _gzip_size(document)
        tally.page_gzip_after += _gzip_size({**document, "items_at": page.items_at})
        tally.page_gzip_with_items += _gzip_size({**document, "items": page.items})
        for index, entry in enumerate(page.items):
            record = _normalize(vendor, source, entry)
            old = plain.item_for(record)
            ref = raw_ref(key, index) if page.items_at is not None else None
            new = current.item_for(record, ref)
            tally.ref_only.append(item_size(plain.item_for(record, ref)))
            for name in ("payload", "result"):
                if isinstance(new.get(name), Binary):
                    text = old[name].encode()
                    started = time.perf_counter()
                    packed = zlib.compress(text, ZLIB_LEVEL)
                    tally.zlib_seconds += time.perf_counter() - started
                    started = time.perf_counter()
                    zlib.decompress(packed)
                    tally.unzlib_seconds += time.perf_counter() - started
                    tally.compressed_documents += 1
            assert "raw" not in new, "every adapter declares where its items are"
            tally.records += 1
            tally.before.append(item_size(old))
            tally.after.append(item_size(new))
            tally.before_units += write_units(tally.before[-1])
            tally.after_units += write_units(tally.after[-1])
            for name, value in old.items():
                tally.field_bytes[name] += len(name) + value_size(value)
            for threshold, writer in writers.items():
                item = writer.item_for(record, "ref")
                tally.documents[threshold] += sum(
                    len(name) + value_size(item[name]) for name in ("payload", "result") if name in item
                )
    return tally


_ADAPTERS: dict[str, VendorAdapter] = {}


def _normalize(vendor: str, source: str, entry: Any) -> Any:
    if vendor not in _ADAPTERS:
        collectors.has_adapter(vendor)  # loads the vendor's built-in adapter
        profile, _ = collectors._ADAPTERS[vendor]
        _ADAPTERS[vendor] = collectors.adapter_for(VendorConnection(vendor, "http://unused", {}, profile), lambda: 1.0)
    return _ADAPTERS[vendor].normalize(source, entry)


def report(vendor: str, tally: Tally) -> None:
    before, after = statistics.fmean(tally.before), statistics.fmean(tally.after)
    total = sum(tally.before)
    print(f"\n== {vendor}: {tally.records} records in {tally.pages} pages")
    print(
        f"  mean item  before {before:7.0f} B   after {after:7.0f} B   ({after / before - 1:+.0%})   "
        f"median {statistics.median(tally.before):.0f} -> {statistics.median(tally.after):.0f} B"
    )
    print(
        f"  write units per item (1 KB each)  before {tally.before_units / tally.records:.2f}   "
        f"after {tally.after_units / tally.records:.2f}"
    )
    shares = sorted(tally.field_bytes.items(), key=lambda kv: -kv[1])
    print("  before, share of item bytes: " + ", ".join(f"{n} {b / total:.0%}" for n, b in shares[:8]))
    base = tally.documents[None]
    print(
        "  payload+result bytes per item by zlib threshold: "
        + ", ".join(
            f"{'never' if t is None else t}: {b / tally.records:.0f} ({b / base - 1:+.0%})"
            for t, b in tally.documents.items()
        )
    )
    print(f"  after, raw_ref but no compression: mean item {statistics.fmean(tally.ref_only):.0f} B")
    if tally.compressed_documents:
        print(
            f"  {tally.compressed_documents / tally.records:.0%} of items have a compressed document; zlib per "
            f"document: compress {tally.zlib_seconds / tally.compressed_documents * 1e6:.1f} us, decompress "
            f"{tally.unzlib_seconds / tally.compressed_documents * 1e6:.1f} us"
        )
    gzipped, pointed, listed = tally.page_gzip_before, tally.page_gzip_after, tally.page_gzip_with_items
    print(
        f"  raw archive gzip bytes per page: {gzipped / tally.pages:.0f} -> {pointed / tally.pages:.0f} with items_at "
        f"({pointed / gzipped - 1:+.2%}); with the items list beside the body {listed / tally.pages:.0f} "
        f"({listed / gzipped - 1:+.0%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=6.0, help="how much of each source's traffic (default 6)")
    parser.add_argument("--vendors", nargs="+", choices=VENDORS, default=list(VENDORS))
    arguments = parser.parse_args()
    print(f"Item size per vendor, the last {arguments.hours:g} hours of each simulator's local fleet")
    for vendor in arguments.vendors:
        report(vendor, measure(vendor, arguments.hours))


if __name__ == "__main__":
    main()
