"""The arithmetic of bench/cost.py: DynamoDB item sizes and capacity units, index projections, and list prices.

Pure functions only (no AWS, no I/O), so tests/unit/test_cost_model.py can check them. Items are in DynamoDB's
wire form (``{"name": {"S": "..."}}``), as they travel in requests and responses.

Sizes follow DynamoDB's documented rules (Developer Guide, "Item sizes and formats"): an item's size is the sum of
its attribute names' and values' sizes; strings and binaries count their UTF-8 / raw bytes; a number about one byte
per two significant digits plus one; booleans and nulls one byte; a list or map 3 bytes plus one byte per element
plus the elements (a map's element names count too); a set the sum of its elements.

Capacity (Developer Guide, "Read/write capacity mode"; on-demand pricing page): a write consumes one write unit per
started KB of the item (a put or update sized by the larger of the item before and after), and one more per
started KB of the projected copy in each global secondary index it touches; a read one unit per started 4 KB,
half for an eventually consistent read; a Query sums the sizes of the items it reads, then rounds.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

KB = 1024
WRITE_UNIT_BYTES = KB
READ_UNIT_BYTES = 4 * KB
# Storage: DynamoDB bills each item's size plus 100 bytes of indexing overhead, in the table and in each index.
STORAGE_OVERHEAD_BYTES = 100
GB = 1024**3
HOURS_PER_MONTH = 730

Item = Mapping[str, Any]  # wire form: {"name": {"S": "..."}}


# ---------------------------------------------------------------------------------------------- item sizes


def number_size(text: str) -> int:
    """A number's size: one byte per two significant digits (leading and trailing zeros trimmed), plus one."""
    digits = re.sub(r"[^0-9]", "", str(Decimal(text).normalize()).split("E")[0])
    significant = digits.lstrip("0").rstrip("0") or "0"
    return math.ceil(len(significant) / 2) + 1


def value_size(value: Mapping[str, Any]) -> int:
    """The size of one attribute value in wire form (without its name)."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return number_size(data)
    if kind == "B":
        return len(data) if isinstance(data, bytes) else len(base64.b64decode(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(number_size(n) for n in data)
    if kind == "BS":
        return sum(len(b) if isinstance(b, bytes) else len(base64.b64decode(b)) for b in data)
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in data)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + value_size(element) for name, element in data.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: Item) -> int:
    """An item's size in bytes: its attribute names plus their values."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


# ---------------------------------------------------------------------------------------------- indexes


@dataclass(frozen=True)
class Index:
    """A global secondary index as the template declares it."""

    name: str
    keys: tuple[str, ...]  # hash, then range if any
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    non_key_attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableLayout:
    """The table's key attributes and its global secondary indexes, read from template.yaml."""

    keys: tuple[str, ...]
    indexes: tuple[Index, ...] = ()

    @classmethod
    def from_template(cls, properties: Mapping[str, Any]) -> TableLayout:
        """From an ``AWS::DynamoDB::Table``'s Properties."""

        def key_names(schema: Sequence[Mapping[str, str]]) -> tuple[str, ...]:
            ordered = sorted(schema, key=lambda k: 0 if k["KeyType"] == "HASH" else 1)
            return tuple(k["AttributeName"] for k in ordered)

        indexes = tuple(
            Index(
                name=gsi["IndexName"],
                keys=key_names(gsi["KeySchema"]),
                projection=gsi.get("Projection", {}).get("ProjectionType", "ALL"),
                non_key_attributes=tuple(gsi.get("Projection", {}).get("NonKeyAttributes", ())),
            )
            for gsi in properties.get("GlobalSecondaryIndexes", ())
        )
        return cls(keys=key_names(properties["KeySchema"]), indexes=indexes)

    def key_of(self, item: Item) -> tuple[str, ...]:
        """The item's primary key, as a hashable tuple of its wire values."""
        return tuple(repr(item.get(name)) for name in self.keys)

    def projected(self, index: Index, item: Item) -> dict[str, Any] | None:
        """The item's copy in ``index`` (what the index stores and reads), or None when the item is not in it."""
        if any(name not in item for name in index.keys):
            return None  # sparse: an item without the index's key attributes is not in the index
        if index.projection == "ALL":
            return dict(item)
        kept = {*self.keys, *index.keys, *(index.non_key_attributes if index.projection == "INCLUDE" else ())}
        return {name: value for name, value in item.items() if name in kept}


# ---------------------------------------------------------------------------------------------- capacity


def write_units(size: int) -> int:
    """Write units of one standard write of an item of ``size`` bytes (at least one)."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(total_size: int, consistent: bool) -> float:
    """Read units of one read (GetItem) or one Query page that read ``total_size`` bytes in all (at least one unit
    of 4 KB, halved when eventually consistent)."""
    units = max(1, math.ceil(total_size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


@dataclass
class WriteCost:
    """The write units one item write consumed: the table's and each index's."""

    table: int = 0
    indexes: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.table + sum(self.indexes.values())


def item_write_cost(
    layout: TableLayout, before: Item | None, after: Item | None, *, succeeded: bool = True, transactional: bool = False
) -> WriteCost:
    """What writing one item costs: ``before`` is the stored item (None: none), ``after`` what it becomes (None:
    deleted). A failed conditional write costs its table write only, sized by the larger of the two.

    Index writes: an item entering an index is one write of its projected copy, leaving it one delete, changing
    its index key a delete and a put; an item whose projected copy did not change writes nothing to the index.
    Transactions double the table's units only.
    """
    sizes = [item_size(i) for i in (before, after) if i is not None]
    cost = WriteCost(table=write_units(max(sizes, default=0)) * (2 if transactional else 1))
    if not succeeded:
        return cost
    for index in layout.indexes:
        old = layout.projected(index, before) if before is not None else None
        new = layout.projected(index, after) if after is not None else None
        units = 0
        if old is not None and new is not None:
            if any(old.get(k) != new.get(k) for k in index.keys):
                units = write_units(item_size(old)) + write_units(item_size(new))
            elif old != new:
                units = write_units(max(item_size(old), item_size(new)))
        elif new is not None:
            units = write_units(item_size(new))
        elif old is not None:
            units = write_units(item_size(old))
        if units:
            cost.indexes[index.name] = units
    return cost


def stored_bytes(layout: TableLayout, item: Item) -> dict[str, int]:
    """The bytes one item is billed for in storage: in the table and in each index it is in (100 bytes of overhead
    per copy)."""
    stored = {"table": item_size(item) + STORAGE_OVERHEAD_BYTES}
    for index in layout.indexes:
        copy = layout.projected(index, item)
        if copy is not None:
            stored[index.name] = item_size(copy) + STORAGE_OVERHEAD_BYTES
    return stored


def sqs_billed_requests(payload_bytes: int) -> int:
    """SQS bills every 64 KB chunk of a request's payload as one request."""
    return max(1, math.ceil(payload_bytes / (64 * KB)))


# ---------------------------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class Prices:
    """On-demand list prices, us-east-1, in USD (sources and date: docs/cost.md)."""

    dynamodb_write_unit: float = 0.625 / 1e6  # per write request unit
    dynamodb_read_unit: float = 0.125 / 1e6  # per read request unit
    dynamodb_gb_month: float = 0.25  # Standard table class storage
    dynamodb_wcu_hour: float = 0.00065  # provisioned, for the break-even
    dynamodb_rcu_hour: float = 0.00013
    s3_put: float = 0.005 / 1000  # PUT, COPY, POST, LIST
    s3_get: float = 0.0004 / 1000  # GET, SELECT and all other requests
    s3_gb_month: float = 0.023  # S3 Standard, first 50 TB
    sqs_request: float = 0.40 / 1e6  # standard queue, per 64 KB chunk
    secrets_api_call: float = 0.05 / 10_000
    secret_month: float = 0.40
    lambda_arm_gb_second: float = 0.0000133334
    lambda_request: float = 0.20 / 1e6


S3_PUT_CLASS = frozenset(
    {
        "PutObject",
        "CopyObject",
        "PostObject",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
    }
)
S3_FREE = frozenset({"DeleteObject", "DeleteObjects", "AbortMultipartUpload"})


def s3_request_class(operation: str) -> str:
    """S3's price class of an operation: PUT (PUT, COPY, POST, LIST), GET (GET and all other), or free."""
    if operation in S3_PUT_CLASS:
        return "PUT"
    if operation in S3_FREE:
        return "free"
    return "GET"


@dataclass
class Usage:
    """Billable usage of one run (or one part of it)."""

    write_units: float = 0.0
    read_units: float = 0.0
    s3_put: int = 0
    s3_get: int = 0
    sqs_requests: int = 0
    secrets_calls: int = 0
    lambda_gb_seconds: float = 0.0
    lambda_requests: int = 0

    def add(self, other: Usage) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def request_dollars(usage: Usage, prices: Prices) -> dict[str, float]:
    """The bill of ``usage``'s requests and compute, per service."""
    return {
        "dynamodb": usage.write_units * prices.dynamodb_write_unit + usage.read_units * prices.dynamodb_read_unit,
        "s3": usage.s3_put * prices.s3_put + usage.s3_get * prices.s3_get,
        "sqs": usage.sqs_requests * prices.sqs_request,
        "secrets_manager": usage.secrets_calls * prices.secrets_api_call,
        "lambda": usage.lambda_gb_seconds * prices.lambda_arm_gb_second + usage.lambda_requests * prices.lambda_request,
    }


def per_million(dollars: Mapping[str, float], records: int) -> dict[str, float]:
    """Dollars per million records, per service and in total."""
    if records <= 0:
        return {name: 0.0 for name in (*dollars, "total")}
    scaled = {name: value * 1e6 / records for name, value in dollars.items()}
    scaled["total"] = sum(scaled.values())
    return scaled


def storage_dollars_per_month(dynamodb_bytes: float, s3_bytes: float, prices: Prices) -> dict[str, float]:
    """A month of storing ``dynamodb_bytes`` (table and index copies, overhead included) and ``s3_bytes``."""
    return {"dynamodb": dynamodb_bytes / GB * prices.dynamodb_gb_month, "s3": s3_bytes / GB * prices.s3_gb_month}


def provisioned_break_even(prices: Prices) -> dict[str, float]:
    """The average utilisation of provisioned capacity above which it costs less than on-demand: a provisioned unit
    costs its hourly price whether used or not; used fully it serves 3,600 requests an hour."""
    return {
        "write": prices.dynamodb_wcu_hour / (3600 * prices.dynamodb_write_unit),
        "read": prices.dynamodb_rcu_hour / (3600 * prices.dynamodb_read_unit),
    }
