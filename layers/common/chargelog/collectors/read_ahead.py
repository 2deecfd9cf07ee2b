"""Reading ahead: the next page of a source's log fetched and normalized while the caller stores the current one.

A collection job's pages are otherwise strictly in turn: fetch, normalize, write, checkpoint, fetch... The vendor's
response and the normalizing (CPU) of page n+1 need nothing of page n's writes, which mostly wait on DynamoDB and
S3, so `ReadAhead` overlaps them, in one background thread. It only reads: what is stored, in which order, and when a
checkpoint moves are the caller's, unchanged. Memory stays flat: at most one page is read ahead.

It reads ahead only the page the caller will ask for next: the successor (``next_cursor``, same window and action)
of the page the caller is storing - known to be storing once it normalizes the page's first item, so a page the
caller discards (its chunk narrowed on a first page's total) starts nothing. A page read ahead that the caller then
does not ask for (it failed, or handed over to a continuation) is one vendor request more; ``worth_reading_ahead``
(the job: "is there time for another page?") keeps a job about to hand over for lack of time from asking for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from chargelog.collectors.base import DiscoveredSource, Page, VendorAdapter, VendorCalls, VendorConnection, Window
from chargelog.models.records import LogRecord

type _PageKey = tuple[str, Window, str | None, str | None]  # what fetch_page was asked: source, window, cursor, action


@dataclass
class _Fetched:
    page: Page
    # By id of the page's items: the item and what normalizing it gave (a record, or the exception it raised).
    normalized: dict[int, tuple[Any, LogRecord | Exception]] = field(default_factory=dict)
    successor_asked: bool = False  # its successor is being read ahead (or there was none to read)


class ReadAhead:
    """A `VendorAdapter` over another that reads the next page ahead (module doc). Not thread-safe: one caller."""

    def __init__(self, adapter: VendorAdapter, worth_reading_ahead: Callable[[], bool] = lambda: True) -> None:
        self._adapter = adapter
        self._worth_reading_ahead = worth_reading_ahead
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: tuple[_PageKey, Future[_Fetched]] | None = None
        self._current: tuple[_PageKey, _Fetched] | None = None  # the page last returned to the caller

    @property
    def connection(self) -> VendorConnection:
        return self._adapter.connection

    @connection.setter
    def connection(self, connection: VendorConnection) -> None:
        self._adapter.connection = connection

    @property
    def calls(self) -> VendorCalls:
        return self._adapter.calls

    def fetch_page(self, source_id: str, window: Window, cursor: str | None, action: str | None = None) -> Page:
        key: _PageKey = (source_id, window, cursor, action)
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == key:
            fetched = ahead[1].result()  # what the vendor or the normalizing raised, raised here as it would have been
        else:
            if ahead is not None:
                wait([ahead[1]])  # not the page asked for: one request at a time, whatever it came to
            fetched = _Fetched(self._adapter.fetch_page(source_id, window, cursor, action))
        self._current = (key, fetched)
        return fetched.page

    def normalize(self, source_id: str, item: Any) -> LogRecord:
        current = self._current
        if current is not None and current[0][0] == source_id:
            self._read_next(current)
            known = current[1].normalized.pop(id(item), None)
            if known is not None and known[0] is item:
                if isinstance(known[1], Exception):
                    raise known[1]
                return known[1]
        return self._adapter.normalize(source_id, item)

    def discover(self) -> Iterator[DiscoveredSource]:
        return self._adapter.discover()

    def close(self) -> None:
        """Waits for a page being read ahead (discarded), then closes the adapter."""
        ahead, self._ahead, self._current = self._ahead, None, None
        if ahead is not None:
            wait([ahead[1]])
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._adapter.close()

    def _read_next(self, current: tuple[_PageKey, _Fetched]) -> None:
        """Start reading the successor of the page being stored, unless it is read already or there is none."""
        (source_id, window, _, action), fetched = current
        if fetched.successor_asked:
            return
        fetched.successor_asked = True
        cursor = fetched.page.next_cursor
        if cursor is None or self._ahead is not None or not self._worth_reading_ahead():
            return
        key: _PageKey = (source_id, window, cursor, action)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        self._ahead = (key, self._pool.submit(self._fetch, key))

    def _fetch(self, key: _PageKey) -> _Fetched:
        source_id, window, cursor, action = key
        page = self._adapter.fetch_page(source_id, window, cursor, action)
        fetched = _Fetched(page)
        for item in page.items:
            try:
                fetched.normalized[id(item)] = (item, self._adapter.normalize(source_id, item))
            except Exception as error:  # raised to the caller when it normalizes the item, as it would have been
                fetched.normalized[id(item)] = (item, error)
        return fetched
