"""Reading log records back: Queries on the table and its indexes, merged in sort-key order, resumable.

Every read is a DynamoDB Query on one partition (see docs/storage.md): a charger's records, a charger's
records of one action, a site's records, or every charger's records of one action on one day. A page of
results may merge several such partitions (several actions, several days); `merged_page` merges them lazily,
so it reads about as many items as it returns, and stops after a read budget so a selective filter cannot run
into the API's timeout. A page ends at a sort key: the next page starts strictly after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, Literal

from boto3.dynamodb.conditions import Attr, ConditionBase, Key

from chargelog.dal import TableStore, query_all
from chargelog.models.keys import CHARGERS_PARTITION, charger_partition

Order = Literal["asc", "desc"]

# Items a stream asks DynamoDB for at a time: small enough that merging several partitions reads little more
# than it returns, large enough to keep round trips few.
MIN_CHUNK = 25
# Items one page may read before it ends early (see merged_page).
READ_BUDGET = 5_000


@dataclass(frozen=True)
class Partition:
    """One partition to read: on the table (``index=None``) or an index, with its key attribute names."""

    value: str
    index: str | None = None

    @property
    def partition_attribute(self) -> str:
        return f"{self.index}pk" if self.index else "pk"

    @property
    def sort_attribute(self) -> str:
        return f"{self.index}sk" if self.index else "sk"


@dataclass(frozen=True)
class Equals:
    """A FilterExpression: the attribute has this value."""

    attribute: str
    value: Any


@dataclass(frozen=True)
class OneOf:
    attribute: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Exists:
    attribute: str


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Filter, ...]


# What a read keeps of the items its key condition finds, as plain data (the store turns it into DynamoDB's).
type Filter = Equals | OneOf | Exists | AllOf | AnyOf


def condition_of(filter: Filter) -> ConditionBase:
    """A filter as a boto3 condition (a FilterExpression)."""
    match filter:
        case Equals(attribute, value):
            return Attr(attribute).eq(value)
        case OneOf(attribute, values):
            return Attr(attribute).is_in(list(values))
        case Exists(attribute):
            return Attr(attribute).exists()
        case AllOf(parts):
            return reduce(lambda left, right: left & right, (condition_of(part) for part in parts))
        case AnyOf(parts):
            return reduce(lambda left, right: left | right, (condition_of(part) for part in parts))
    raise TypeError(f"Not a filter: {filter!r}")


@dataclass
class _Stream:
    """The items of a sequence of partitions in sort-key order (ascending or descending), read on demand."""

    table: Any
    partitions: Sequence[Partition]
    low: str
    high: str
    order: Order
    after: str | None
    filter: ConditionBase | None
    chunk: int
    buffer: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0  # index into partitions
    start_key: dict[str, Any] | None = None
    read_through: str | None = None  # every item of this stream up to this sort key has been read
    exhausted: bool = False
    items_read: int = 0

    def fetch(self) -> None:
        """Read the next chunk (which may hold no matching item, when a filter discards them)."""
        partition = self.partitions[self.position]
        low, high = self.low, self.high
        if self.after is not None:
            # Inclusive of the previous page's last key, which is skipped below: BETWEEN cannot be exclusive.
            low, high = (self.after, high) if self.order == "asc" else (low, self.after)
        query: dict[str, Any] = {
            "KeyConditionExpression": Key(partition.partition_attribute).eq(partition.value)
            & Key(partition.sort_attribute).between(low, high),
            "ScanIndexForward": self.order == "asc",
            "Limit": self.chunk,
        }
        if partition.index:
            query["IndexName"] = partition.index
        if self.filter is not None:
            query["FilterExpression"] = self.filter
        if self.start_key:
            query["ExclusiveStartKey"] = self.start_key
        response = self.table.query(**query)
        self.items_read += int(response.get("ScannedCount", 0))
        sort_attribute = partition.sort_attribute
        items = response.get("Items", [])
        self.buffer.extend(item for item in items if item[sort_attribute] != self.after)
        self.start_key = response.get("LastEvaluatedKey")
        if self.start_key:
            self.read_through = self.start_key[sort_attribute]
            return
        if items:
            self.read_through = items[-1][sort_attribute]
        if self.position + 1 < len(self.partitions):
            self.position += 1  # on to the next partition (the next day): everything before it is read
        else:
            self.exhausted = True


@dataclass(frozen=True)
class MergedPage:
    items: list[dict[str, Any]]
    last_key: str | None  # the sort key to resume after; None when nothing is left
    items_read: int  # items DynamoDB read (ScannedCount), to compare with len(items)


def sort_key_of(item: dict[str, Any]) -> str:
    """Every record item's table sort key; the indexes' sort keys are copies of it."""
    return str(item["sk"])


def merged_page(
    table: Any,
    sources: Sequence[Sequence[Partition]],
    low: str,
    high: str,
    order: Order,
    limit: int,
    after: str | None = None,
    filter: ConditionBase | None = None,
    read_budget: int | None = None,
) -> MergedPage:
    """Up to ``limit`` items with sort keys in ``[low, high]`` from several streams of partitions, in order.

    Each element of ``sources`` is a stream: partitions read one after another (days in order). The streams
    are merged by sort key. ``after`` resumes strictly after a previous page's ``last_key``. When more than
    ``read_budget`` items have been read the page ends early - possibly short, even empty - with a
    ``last_key`` to resume from, so a filter that discards most items cannot make one request run long.
    """
    read_budget = READ_BUDGET if read_budget is None else read_budget
    chunk = max(MIN_CHUNK, -(-(limit + 1) // max(1, len(sources))))
    streams = [
        _Stream(table, partitions, low, high, order, after, filter, chunk) for partitions in sources if partitions
    ]
    descending = order == "desc"
    taken: list[dict[str, Any]] = []

    def read() -> int:
        return sum(stream.items_read for stream in streams)

    while len(taken) < limit:
        for stream in streams:
            # A stream that has read nothing yet reads on regardless, so every stream can say where it stands.
            while not stream.buffer and not stream.exhausted and (read() < read_budget or stream.read_through is None):
                stream.fetch()
        if any(not stream.buffer and not stream.exhausted for stream in streams):
            return _cut_short(streams, taken, limit, descending, after)
        heads = [stream for stream in streams if stream.buffer]
        if not heads:
            return MergedPage(taken, None, read())
        pick = (max if descending else min)(heads, key=lambda stream: sort_key_of(stream.buffer[0]))
        taken.append(pick.buffer.pop(0))
    more = any(stream.buffer or not stream.exhausted for stream in streams)
    return MergedPage(taken, sort_key_of(taken[-1]) if more else None, read())


def _cut_short(
    streams: list[_Stream], taken: list[dict[str, Any]], limit: int, descending: bool, after: str | None
) -> MergedPage:
    """The read budget ran out. Every item up to the point all streams have read through is known: return those
    (in order, up to ``limit``) and resume after them."""
    items_read = sum(stream.items_read for stream in streams)
    open_streams = [stream for stream in streams if not stream.exhausted]
    marks = [stream.read_through for stream in open_streams]
    if any(mark is None for mark in marks):
        # A stream has read nothing yet: only what was taken is certain.
        return MergedPage(taken, sort_key_of(taken[-1]) if taken else after, items_read)
    known = [mark for mark in marks if mark is not None]
    boundary = max(known) if descending else min(known)
    buffered = sorted(
        (item for stream in streams for item in stream.buffer if _not_beyond(sort_key_of(item), boundary, descending)),
        key=sort_key_of,
        reverse=descending,
    )
    room = limit - len(taken)
    if len(buffered) > room:
        taken = taken + buffered[:room]
        return MergedPage(taken, sort_key_of(taken[-1]), items_read)
    return MergedPage(taken + buffered, boundary, items_read)


def _not_beyond(key: str, boundary: str, descending: bool) -> bool:
    return key >= boundary if descending else key <= boundary


class RecordStore(TableStore):
    """Reading records back from the table: pages of merged partitions, one record, the charger index."""

    def page(
        self,
        sources: Sequence[Sequence[Partition]],
        low: str,
        high: str,
        order: Order,
        limit: int,
        after: str | None = None,
        filter: Filter | None = None,
        read_budget: int | None = None,
    ) -> MergedPage:
        """One page of `merged_page` over the table."""
        return merged_page(
            self._table,
            sources,
            low=low,
            high=high,
            order=order,
            limit=limit,
            after=after,
            filter=condition_of(filter) if filter is not None else None,
            read_budget=read_budget,
        )

    def in_range(
        self, partition: Partition, low: str, high: str, filter: Filter | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """Every item of one partition with a sort key in ``[low, high]`` (ascending), and how many items were
        read (ScannedCount)."""
        query: dict[str, Any] = {
            "KeyConditionExpression": Key(partition.partition_attribute).eq(partition.value)
            & Key(partition.sort_attribute).between(low, high),
        }
        if partition.index:
            query["IndexName"] = partition.index
        if filter is not None:
            query["FilterExpression"] = condition_of(filter)
        found: list[dict[str, Any]] = []
        read = 0
        while True:
            response = self._table.query(**query)
            read += int(response.get("ScannedCount", 0))
            found.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return found, read
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def get(self, charger_id: str, sort_key: str) -> dict[str, Any] | None:
        """A charger's record item at one sort key, or None."""
        item = self._table.get_item(Key={"pk": charger_partition(charger_id), "sk": sort_key}).get("Item")
        return dict(item) if item is not None else None

    def chargers(self) -> list[dict[str, Any]]:
        """Every item of the charger index: a charger per vendor and source, with its first and last record time."""
        return list(query_all(self._table, KeyConditionExpression=Key("pk").eq(CHARGERS_PARTITION)))
