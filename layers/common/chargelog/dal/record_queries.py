"""Reading log records back: Queries on the table and its indexes, merged in sort-key order, resumable.

Every read is a DynamoDB Query on one partition (see docs/storage.md): a charger's records, a charger's
records of one action, a site's records, or every charger's records of one action on one day. A page of
results may merge several such partitions (several actions, several days); `merged_page` merges them lazily,
so it reads about as many items as it returns, and stops after a read budget so a selective filter cannot run
into the API's timeout. A page ends at a sort key: the next page starts strictly after it.

The indexes hold keys only (KEYS_ONLY): a chunk read from an index is followed by one BatchGetItem of its items
from the table, and filters on other attributes are applied to those items here (an index cannot evaluate them).
On the table itself filters are FilterExpressions. Either way a filter is plain data (`Filter`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from typing import Any, Literal, NamedTuple

from boto3.dynamodb.conditions import Attr, ConditionBase, Key

from chargelog.dal import TableStore, batch_get, query_all
from chargelog.models.keys import (
    CHARGER_KINDS_FIELD,
    CHARGER_UNINDEXED_ACTIONS,
    CHARGERS_PARTITION,
    action_partition,
    charger_partition,
    parse_timestamp_key,
    site_chargers_partition,
    split_sort_key,
)

Order = Literal["asc", "desc"]

# The fewest items a stream asks DynamoDB for at a time. Each read asks for its share of the page's remaining room
# among the streams still open (`_chunk`), so merging many partitions (a site's chargers) reads little more than it
# returns.
MIN_CHUNK = 1
# Items one page may read before it ends early (see merged_page).
READ_BUDGET = 5_000


@dataclass(frozen=True)
class Partition:
    """One partition to read: on the table (``index=None``) or an index (every index sorts on the table's ``sk``),
    and what of it belongs to the read (``only``: the table's partition read for an action it has no index for)."""

    value: str
    index: str | None = None
    only: Filter | None = None

    @property
    def partition_attribute(self) -> str:
        return f"{self.index}pk" if self.index else "pk"

    @property
    def sort_attribute(self) -> str:
        return "sk"


def charger_action_partition(charger_id: str, action: str) -> Partition:
    """Where a charger's records of one action are: their gsi1 partition, or for the dense actions gsi1 leaves out
    (`CHARGER_UNINDEXED_ACTIONS`), the charger's own partition, filtered."""
    if action in CHARGER_UNINDEXED_ACTIONS:
        return Partition(charger_partition(charger_id), only=Equals("action", action))
    return Partition(action_partition(charger_id, action), "gsi1")


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

SITE_CHARGERS_INDEX = "gsi2"

# Record fields an item does not hold because its sort key says them (chargelog.dal.records.FROM_KEYS).
VENDOR = "vendor"


def condition_of(filter: Filter) -> ConditionBase:
    """A filter as a boto3 condition (a FilterExpression)."""
    match filter:
        case Equals(attribute, value) if attribute == VENDOR:
            return Attr("sk").contains(f"#{value}:")  # the record id, after the time, starts with "<vendor>:"
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


def _value(item: dict[str, Any], attribute: str) -> Any:
    if attribute == VENDOR and VENDOR not in item:
        return split_sort_key(str(item["sk"]))[1].partition(":")[0]
    return item.get(attribute)


def matches(filter: Filter, item: dict[str, Any]) -> bool:
    """Whether a table item passes a filter, as a FilterExpression would decide."""
    match filter:
        case Equals(attribute, value):
            return bool(_value(item, attribute) == value)
        case OneOf(attribute, values):
            return _value(item, attribute) in values
        case Exists(attribute):
            return _value(item, attribute) is not None
        case AllOf(parts):
            return all(matches(part, item) for part in parts)
        case AnyOf(parts):
            return any(matches(part, item) for part in parts)
    raise TypeError(f"Not a filter: {filter!r}")


def _key_entry(entry: dict[str, Any]) -> bool:
    """An index's entry (keys only), not yet the item: an item always holds more than its keys."""
    return all(name in ("pk", "sk") or name.endswith(("pk", "sk")) for name in entry)


def hydrated(table: Any, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items of index entries (keys only) from the table, in the same order; items already whole pass through.
    One BatchGetItem per 100 entries; an item gone since the index was read (expired) is left out."""
    keys = [{"pk": entry["pk"], "sk": entry["sk"]} for entry in entries if _key_entry(entry)]
    found = batch_get(table, keys) if keys else {}
    return [
        item
        for entry in entries
        if (item := (found.get((entry["pk"], entry["sk"])) if _key_entry(entry) else entry)) is not None
    ]


def _both(first: Filter | None, second: Filter | None) -> Filter | None:
    if first is None or second is None:
        return first or second
    return AllOf((first, second))


def read_chunk(
    table: Any, partition: Partition, query: dict[str, Any], filter: Filter | None, hydrate: bool = True
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str | None, int]:
    """One Query of a partition (``query`` holds the key condition, order, limit and start key): the items that pass
    ``filter`` (and the partition's own), whole; the LastEvaluatedKey; the sort key of the last item read; and how
    many items were read (the Query's ScannedCount, plus the items fetched from the table for an index's keys).

    ``hydrate=False``: an unfiltered index read returns its key entries as they are (`hydrated` fetches them later,
    only those a page keeps)."""
    wanted = _both(filter, partition.only)
    query = dict(
        query,
        KeyConditionExpression=Key(partition.partition_attribute).eq(partition.value) & query["KeyConditionExpression"],
    )
    if partition.index is None:
        if wanted is not None:
            query["FilterExpression"] = condition_of(wanted)
        response = table.query(**query)
        items = response.get("Items", [])
        read = int(response.get("ScannedCount", 0))
    else:
        response = table.query(IndexName=partition.index, **query)
        items = response.get("Items", [])
        read = int(response.get("ScannedCount", 0))
        if hydrate or wanted is not None:
            read += len(items)
            items = hydrated(table, items)
        if wanted is not None:
            items = [item for item in items if matches(wanted, item)]
    scanned = response.get("Items", [])
    last_read = str(scanned[-1]["sk"]) if scanned else None
    return items, response.get("LastEvaluatedKey"), last_read, read


@dataclass
class _Stream:
    """The items of a sequence of partitions in sort-key order (ascending or descending), read on demand."""

    table: Any
    partitions: Sequence[Partition]
    low: str
    high: str
    order: Order
    after: str | None
    filter: Filter | None
    chunk: int
    buffer: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0  # index into partitions
    start_key: dict[str, Any] | None = None
    read_through: str | None = None  # every item of this stream up to this sort key has been read
    exhausted: bool = False
    items_read: int = 0
    # Reads in a row whose every item the filter discarded: each doubles the next read's chunk (`grown_chunk`).
    misses: int = 0

    def fetch(self) -> None:
        """Read the next chunk (which may hold no matching item, when a filter discards them)."""
        partition = self.partitions[self.position]
        low, high = self.low, self.high
        if self.after is not None:
            # Inclusive of the previous page's last key, which is skipped below: BETWEEN cannot be exclusive.
            low, high = (self.after, high) if self.order == "asc" else (low, self.after)
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("sk").between(low, high),
            "ScanIndexForward": self.order == "asc",
            "Limit": self.chunk,
        }
        if self.start_key:
            query["ExclusiveStartKey"] = self.start_key
        items, self.start_key, last_read, read = read_chunk(self.table, partition, query, self.filter, hydrate=False)
        self.items_read += read
        self.buffer.extend(item for item in items if item["sk"] != self.after)
        # Read items and the filter passed none (an empty day's partition read nothing; the previous page's last item,
        # read again, passed it: no miss).
        self.misses = 0 if items or not read else self.misses + 1
        if self.start_key:
            self.read_through = str(self.start_key["sk"])
            return
        if last_read is not None:
            self.read_through = last_read
        if self.position + 1 < len(self.partitions):
            self.position += 1  # on to the next partition (the next day): everything before it is read
        else:
            self.exhausted = True


class MergedPage(NamedTuple):
    items: list[dict[str, Any]]
    last_key: str | None  # the sort key to resume after; None when nothing is left
    items_read: int  # items DynamoDB read (ScannedCount), to compare with len(items)


def sort_key_of(item: dict[str, Any]) -> str:
    """Every record item's table sort key; the indexes' sort keys are copies of it."""
    return str(item["sk"])


def _chunk(room: int, streams: int, rank: int = 0) -> int:
    """How many items the ``rank``-th of ``streams`` open streams asks for: its share of the room left on the page
    (one more than the page holds, to know whether another page follows), the shares summing to the room; at least
    `MIN_CHUNK`."""
    streams = max(1, streams)
    return max(MIN_CHUNK, room // streams + (1 if rank < room % streams else 0))


def grown_chunk(share: int, misses: int, budget_left: int) -> int:
    """What a stream asks for: its ``share`` of the page's room, doubled for each read in a row whose items a filter
    all discarded (a selective filter reaches its matches in a few reads, not one per share), but never more than
    the page's read budget has left (nor less than the share)."""
    return max(share, min(share << misses, budget_left))


def _behind(streams: list[_Stream], descending: bool) -> _Stream:
    """The stream that has read the least far (a stream that has read nothing yet first): reading it next moves the
    point every stream has read through, where a page cut short by its budget ends (`_cut_short`)."""
    fresh = [stream for stream in streams if stream.read_through is None]
    if fresh:
        return fresh[0]
    return (max if descending else min)(streams, key=lambda stream: str(stream.read_through))


def merged_page(
    table: Any,
    sources: Sequence[Sequence[Partition]],
    low: str,
    high: str,
    order: Order,
    limit: int,
    after: str | None = None,
    filter: Filter | None = None,
    read_budget: int | None = None,
) -> MergedPage:
    """Up to ``limit`` items with sort keys in ``[low, high]`` from several streams of partitions, in order.

    Each element of ``sources`` is a stream: partitions read one after another (days in order). The streams
    are merged by sort key. ``after`` resumes strictly after a previous page's ``last_key``. When more than
    ``read_budget`` items have been read the page ends early - possibly short, even empty - with a
    ``last_key`` to resume from, so a filter that discards most items cannot make one request run long.
    """
    read_budget = READ_BUDGET if read_budget is None else read_budget
    streams = [
        _Stream(table, partitions, low, high, order, after, filter, _chunk(limit + 1, len(sources), rank))
        for rank, partitions in enumerate(part for part in sources if part)
    ]
    descending = order == "desc"
    taken: list[dict[str, Any]] = []

    def read() -> int:
        return sum(stream.items_read for stream in streams)

    while len(taken) < limit:
        open_streams = [stream for stream in streams if not stream.exhausted]
        # Fill every open stream's buffer, the stream furthest behind first, so that a budget running out leaves the
        # streams read through about the same point. A stream that has read nothing yet reads on regardless, so every
        # stream can say where it stands.
        while needy := [stream for stream in streams if not stream.buffer and not stream.exhausted]:
            stream = _behind(needy, descending)
            if stream.read_through is not None and read() >= read_budget:
                break
            rank = next((n for n, open_stream in enumerate(open_streams) if open_stream is stream), 0)
            share = _chunk(limit + 1 - len(taken), len(open_streams), rank)
            stream.chunk = grown_chunk(share, stream.misses, read_budget - read())
            stream.fetch()
        if any(not stream.buffer and not stream.exhausted for stream in streams):
            return _whole(table, _cut_short(streams, taken, limit, descending, after))
        heads = [stream for stream in streams if stream.buffer]
        if not heads:
            return _whole(table, MergedPage(taken, None, read()))
        pick = (max if descending else min)(heads, key=lambda stream: sort_key_of(stream.buffer[0]))
        taken.append(pick.buffer.pop(0))
    more = any(stream.buffer or not stream.exhausted for stream in streams)
    return _whole(table, MergedPage(taken, sort_key_of(taken[-1]) if more else None, read()))


def _whole(table: Any, page: MergedPage) -> MergedPage:
    """The page with its index entries replaced by their items (read now: only those the page keeps)."""
    fetched = sum(map(_key_entry, page.items))
    if not fetched:
        return page
    return MergedPage(hydrated(table, page.items), page.last_key, page.items_read + fetched)


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


class ChargerIndexEntry(NamedTuple):
    """One entry of the charger index: a charger's records from one vendor and source, and their time span."""

    charger_id: str
    vendor: str
    source_id: str
    site_id: str | None
    first_record_at: datetime
    last_record_at: datetime


def index_entry(item: dict[str, Any]) -> ChargerIndexEntry:
    """A charger index item as its entry (its times are `timestamp_key` text)."""
    site = item.get("site_id")
    return ChargerIndexEntry(
        charger_id=str(item["charger_id"]),
        vendor=str(item["vendor"]),
        source_id=str(item["source_id"]),
        site_id=str(site) if site else None,
        first_record_at=parse_timestamp_key(str(item["first_record_at"])),
        last_record_at=parse_timestamp_key(str(item["last_record_at"])),
    )


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
            filter=filter,
            read_budget=read_budget,
        )

    def in_range(
        self, partition: Partition, low: str, high: str, filter: Filter | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """Every item of one partition with a sort key in ``[low, high]`` (ascending), and how many items were
        read (ScannedCount)."""
        query: dict[str, Any] = {"KeyConditionExpression": Key("sk").between(low, high)}
        found: list[dict[str, Any]] = []
        read = 0
        while True:
            items, start_key, _, chunk_read = read_chunk(self._table, partition, query, filter)
            read += chunk_read
            found.extend(items)
            if start_key is None:
                return found, read
            query["ExclusiveStartKey"] = start_key

    def get(self, charger_id: str, sort_key: str) -> dict[str, Any] | None:
        """A charger's record item at one sort key, or None."""
        item = self._table.get_item(Key={"pk": charger_partition(charger_id), "sk": sort_key}).get("Item")
        return dict(item) if item is not None else None

    def site_chargers(self, site_id: str) -> list[str]:
        """The chargers whose records name this site (from the charger index), sorted."""
        entries = query_all(
            self._table,
            IndexName=SITE_CHARGERS_INDEX,
            KeyConditionExpression=Key("gsi2pk").eq(site_chargers_partition(site_id)),
        )
        return sorted({str(entry["charger_id"]) for entry in entries})

    def charger_kinds(self, charger_id: str) -> set[str] | None:
        """The kinds of record a charger has, from its charger-index entries (one small Query); None when an entry
        written before the index kept them does not say."""
        entries = query_all(
            self._table,
            KeyConditionExpression=Key("pk").eq(CHARGERS_PARTITION) & Key("sk").begins_with(f"{charger_id}#"),
        )
        kinds: set[str] = set()
        for entry in entries:
            if entry.get("charger_id") != charger_id:
                continue  # another charger whose id starts with this one's and "#"
            if CHARGER_KINDS_FIELD not in entry:
                return None
            kinds.update(str(kind) for kind in entry[CHARGER_KINDS_FIELD])
        return kinds

    def chargers(self) -> list[dict[str, Any]]:
        """Every item of the charger index: a charger per vendor and source, with its first and last record time."""
        return list(query_all(self._table, KeyConditionExpression=Key("pk").eq(CHARGERS_PARTITION)))

    def charger_entries(self, charger_id: str) -> list[ChargerIndexEntry]:
        """One charger's entries of the charger index (one per vendor and source that has its records; one small
        Query)."""
        items = query_all(
            self._table,
            KeyConditionExpression=Key("pk").eq(CHARGERS_PARTITION) & Key("sk").begins_with(f"{charger_id}#"),
        )
        # Another charger whose id starts with this one's and "#" is left out.
        return [index_entry(item) for item in items if item.get("charger_id") == charger_id]

    def charger_index(self) -> Iterator[ChargerIndexEntry]:
        """Every entry of the charger index, every page of its partition, read as they are used."""
        return (
            index_entry(item)
            for item in query_all(self._table, KeyConditionExpression=Key("pk").eq(CHARGERS_PARTITION))
        )
