"""Reading ahead (chargelog.collectors.read_ahead): the next page is fetched and normalized while the caller stores
the current one, and the caller sees the same pages, records and errors, with no vendor request more."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chargelog.collectors.base import Page, VendorCalls, VendorConnection, VendorProfile, Window
from chargelog.collectors.read_ahead import ReadAhead
from chargelog.models.records import LogRecord, record_id_for

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(hours=1), NOW)
PAGE_SIZE = 3


class Vendor:
    """Offset pages of ``count`` records; logs what was fetched and normalized, and in which thread."""

    def __init__(self, count: int) -> None:
        self.records = [{"id": n, "at": (NOW - timedelta(minutes=n)).isoformat()} for n in range(1, count + 1)]
        self.fetched: list[tuple[Window, str | None]] = []
        self.fetch_threads: list[str] = []
        self.normalized: list[int] = []
        self.closed = False
        self.connection = VendorConnection(
            vendor="plugchoice",
            base_url="http://vendor",
            credentials={},
            profile=VendorProfile(timedelta(minutes=30), timedelta(seconds=30), 100.0, 100, PAGE_SIZE),
        )
        self.calls = VendorCalls()

    def fetch_page(self, source_id: str, window: Window, cursor: str | None, action: str | None = None) -> Page:
        self.fetched.append((window, cursor))
        self.fetch_threads.append(threading.current_thread().name)
        self.calls.requests += 1
        offset = int(cursor or 0)
        items = self.records[offset : offset + PAGE_SIZE]
        end = offset + len(items)
        return Page(
            items=items,
            body={"data": items},
            request={"offset": offset},
            next_cursor=str(end) if end < len(self.records) else None,
            total=len(self.records),
            items_at="/data",
        )

    def normalize(self, source_id: str, item: Any) -> LogRecord:
        self.normalized.append(item["id"])
        if item.get("broken"):
            raise ValueError(f"cannot read record {item['id']}")
        return LogRecord(
            vendor="plugchoice",
            source_id=source_id,
            charger_id=source_id,
            timestamp=item["at"],
            kind="ocpp",
            action="Heartbeat",
            record_id=record_id_for("plugchoice", source_id, item["id"]),
            raw=item,
        )

    def discover(self) -> Any:
        return iter(())

    def close(self) -> None:
        self.closed = True


def read_all(adapter: Any) -> list[int]:
    """Page to the end as a job does: fetch a page, normalize (store) its items, fetch the next."""
    ids: list[int] = []
    cursor: str | None = None
    while True:
        page = adapter.fetch_page("cp-1", WINDOW, cursor)
        ids += [int(adapter.normalize("cp-1", item).record_id.rsplit(":", 1)[-1]) for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids


def test_the_caller_gets_the_same_records_with_no_request_more() -> None:
    plain, vendor = Vendor(10), Vendor(10)
    ahead = ReadAhead(vendor)
    assert read_all(ahead) == read_all(plain) == list(range(1, 11))
    assert vendor.fetched == plain.fetched  # the same requests, in the same order: 4 pages of 3
    assert vendor.calls.requests == ahead.calls.requests == 4
    # Every page after the first was fetched (and normalized) in the background, while the one before was stored.
    assert vendor.fetch_threads[0] == threading.current_thread().name
    assert all(name.startswith("read-ahead") for name in vendor.fetch_threads[1:])
    ahead.close()
    assert vendor.closed


def test_the_next_page_is_read_while_the_current_one_is_stored() -> None:
    vendor = Vendor(6)
    ahead = ReadAhead(vendor)
    first = ahead.fetch_page("cp-1", WINDOW, None)
    assert vendor.fetched == [(WINDOW, None)]  # nothing read ahead before the caller stores the page
    ahead.normalize("cp-1", first.items[0])  # storing it
    ahead._ahead[1].result()  # type: ignore[index]
    assert vendor.fetched == [(WINDOW, None), (WINDOW, "3")]
    second = ahead.fetch_page("cp-1", WINDOW, "3")
    assert [item["id"] for item in second.items] == [4, 5, 6]
    assert len(vendor.fetched) == 2  # the page read ahead, not fetched again
    ahead.close()


def test_a_page_the_caller_does_not_store_starts_no_read_ahead() -> None:
    """A chunk narrowed on its first page's total: that page is fetched again with a narrower window, and the wider
    window's second page is never requested."""
    vendor = Vendor(9)
    ahead = ReadAhead(vendor)
    ahead.fetch_page("cp-1", WINDOW, None)
    narrower = Window(WINDOW.start, WINDOW.start + timedelta(minutes=30))
    page = ahead.fetch_page("cp-1", narrower, None)
    for item in page.items:
        ahead.normalize("cp-1", item)
    ahead.fetch_page("cp-1", narrower, page.next_cursor)
    assert vendor.fetched == [(WINDOW, None), (narrower, None), (narrower, "3")]
    ahead.close()


def test_a_page_read_ahead_but_not_asked_for_is_waited_for_and_dropped() -> None:
    vendor = Vendor(9)
    ahead = ReadAhead(vendor)
    page = ahead.fetch_page("cp-1", WINDOW, None)
    ahead.normalize("cp-1", page.items[0])  # reads (WINDOW, "3") ahead
    other = Window(WINDOW.start, WINDOW.end - timedelta(minutes=1))
    assert [item["id"] for item in ahead.fetch_page("cp-1", other, "3").items] == [4, 5, 6]
    assert vendor.fetched == [(WINDOW, None), (WINDOW, "3"), (other, "3")]
    ahead.close()


def test_an_item_that_cannot_be_read_raises_when_the_caller_normalizes_it() -> None:
    vendor = Vendor(6)
    vendor.records[4]["broken"] = True  # on the second page, normalized in the background
    ahead = ReadAhead(vendor)
    first = ahead.fetch_page("cp-1", WINDOW, None)
    for item in first.items:
        ahead.normalize("cp-1", item)
    second = ahead.fetch_page("cp-1", WINDOW, first.next_cursor)
    assert ahead.normalize("cp-1", second.items[0]).record_id == record_id_for("plugchoice", "cp-1", 4)
    with pytest.raises(ValueError, match="cannot read record 5"):
        ahead.normalize("cp-1", second.items[1])
    assert vendor.normalized.count(5) == 1  # normalized once, in the background
    ahead.close()


def test_a_vendor_failure_reading_ahead_is_raised_when_the_page_is_asked_for() -> None:
    vendor = Vendor(6)
    fetch = vendor.fetch_page

    def failing(source_id: str, window: Window, cursor: str | None, action: str | None = None) -> Page:
        if cursor == "3":
            raise RuntimeError("vendor down")
        return fetch(source_id, window, cursor, action)

    vendor.fetch_page = failing  # type: ignore[method-assign]
    ahead = ReadAhead(vendor)
    first = ahead.fetch_page("cp-1", WINDOW, None)
    for item in first.items:
        ahead.normalize("cp-1", item)  # the failing read ahead raises nothing here
    with pytest.raises(RuntimeError, match="vendor down"):
        ahead.fetch_page("cp-1", WINDOW, first.next_cursor)
    ahead.close()


def test_a_caller_with_no_time_for_another_page_reads_nothing_ahead() -> None:
    vendor = Vendor(count=7)
    adapter = ReadAhead(vendor, worth_reading_ahead=lambda: False)
    page = adapter.fetch_page("cp-1", WINDOW, None)
    assert [adapter.normalize("cp-1", item).raw["id"] for item in page.items] == [1, 2, 3]
    adapter.close()  # the job hands over here
    assert vendor.fetched == [(WINDOW, None)]
    assert vendor.calls.requests == 1
