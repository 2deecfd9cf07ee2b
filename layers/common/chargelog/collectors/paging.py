"""Paging through vendor lists, one paginator per style: offset, page number, ``Link`` header, next URL.

A paginator holds the position of the next page and decides when there is none. An adapter asks it what to send
(`params`), makes the request its vendor's way, reads its vendor's body, and tells it what came back
(``advance``); after that ``cursor`` is where the next page starts, or None when the page just read was the last.
The engine checkpoints that cursor, and ``resume`` continues from it in another invocation:

- `OffsetPaginator`: ``"<offset>"``, the offset of the next page (``"0"`` is the first).
- `PageNumberPaginator` and `NextUrlPaginator`: ``"<page>"``, the next page's number.
- `HeaderLinkPaginator`: the next page's absolute URL, as the vendor linked it.

Paths, auth, query parameters of the vendor's own and parsing stay in the adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self
from urllib.parse import parse_qs, urlsplit

import httpx

from chargelog.collectors.vendor_http import VendorResponseError


def _whole_number(cursor: str, minimum: int, what: str) -> int:
    if not cursor.isdigit() or int(cursor) < minimum:
        raise ValueError(f"not {what} cursor: {cursor[:40]!r}")
    return int(cursor)


@dataclass
class OffsetPaginator:
    """``limit``/``offset`` paging (``take``/``skip`` and the like). The last page: an empty one, or the one that
    reaches the total the vendor gives (``offset + len(page) >= total``), or - when it gives none - a short one."""

    limit: int
    offset_param: str = "offset"
    limit_param: str = "limit"
    offset: int = field(default=0, init=False)  # of the next page to ask for
    has_next: bool = field(default=True, init=False)

    def resume(self, cursor: str | None) -> Self:
        """Continue at a stored cursor (None: the first page)."""
        self.offset = _whole_number(cursor, 0, "an offset") if cursor else 0
        self.has_next = True
        return self

    def params(self) -> dict[str, int]:
        return {self.limit_param: self.limit, self.offset_param: self.offset}

    def advance(self, count: int, total: int | None) -> None:
        """The page asked for (`params`) held ``count`` items, of ``total`` matching the query."""
        end = self.offset + count
        if count == 0 or (end >= total if total is not None else count < self.limit):
            self.has_next = False
        else:
            self.offset = end

    @property
    def cursor(self) -> str | None:
        return str(self.offset) if self.has_next else None


@dataclass
class PageNumberPaginator:
    """``page`` (from ``first_page``) and a page size. The last page: an empty or short one (fewer than
    ``page_size`` items), the one whose pages hold the ``total`` the vendor gives, or its ``last_page``."""

    page_size: int
    page_param: str = "page"
    size_param: str | None = "limit"  # None: the vendor fixes the size, it is not sent
    first_page: int = 1
    page: int = field(init=False)  # of the next page to ask for
    has_next: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        self.page = self.first_page

    def resume(self, cursor: str | None) -> Self:
        self.page = _whole_number(cursor, self.first_page, "a page") if cursor else self.first_page
        self.has_next = True
        return self

    def params(self) -> dict[str, int]:
        sent = {self.page_param: self.page}
        if self.size_param is not None:
            sent[self.size_param] = self.page_size
        return sent

    def advance(self, count: int, total: int | None = None, last_page: int | None = None) -> None:
        """The page asked for held ``count`` items; ``total`` and ``last_page`` when the vendor gives them. The pages
        before this one were full (a short one would have been the last), so they held ``page_size`` each."""
        held = (self.page - self.first_page) * self.page_size + count
        if (
            count == 0
            or count < self.page_size
            or (total is not None and held >= total)
            or (last_page is not None and self.page >= last_page)
        ):
            self.has_next = False
        else:
            self.page += 1

    @property
    def cursor(self) -> str | None:
        return str(self.page) if self.has_next else None


@dataclass
class NextUrlPaginator:
    """The body names the next page's URL (``links.next``, ``next_page_url``...); null on the last page, and an
    empty page is the last whatever it links to. The link is not followed: the next request is the adapter's
    own path and query with ``page_param`` taken from the link, so credentials only ever go to the configured
    base URL. Raises VendorResponseError for a link without a page number or one that does not go forward."""

    vendor: str
    path: str
    page_param: str = "page"
    first_page: int = 1
    page: int = field(init=False)  # of the next page to ask for
    has_next: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        self.page = self.first_page

    def resume(self, cursor: str | None) -> Self:
        self.page = _whole_number(cursor, self.first_page, "a page") if cursor else self.first_page
        self.has_next = True
        return self

    def params(self) -> dict[str, int]:
        return {self.page_param: self.page}

    def advance(self, count: int, next_url: str | None) -> None:
        """The page asked for held ``count`` items and linked to ``next_url``."""
        if count == 0 or not next_url:
            self.has_next = False
            return
        pages = parse_qs(urlsplit(next_url).query).get(self.page_param, [])
        if len(pages) != 1 or not pages[0].isdigit() or int(pages[0]) < self.first_page:
            raise VendorResponseError(
                f"{self.vendor} answered with a next link without a page number: {next_url[:160]}"
            )
        following = int(pages[0])
        if following <= self.page:
            raise VendorResponseError(f"{self.vendor} GET {self.path} page {self.page} links back to page {following}")
        self.page = following

    @property
    def cursor(self) -> str | None:
        return str(self.page) if self.has_next else None


@dataclass
class HeaderLinkPaginator:
    """RFC 8288 ``Link`` header paging: the next page is the ``rel`` (``next``) link, resolved against the
    response's URL; none, or ``about:blank``, on the last page. The link is followed as it is: it carries the
    query and the position. With ``origin``, a link elsewhere raises VendorResponseError (the credentials go
    wherever it points). ``stop_on_empty``: an empty page is the last even if it links on."""

    vendor: str
    origin: httpx.URL | None = None
    rel: str = "next"
    stop_on_empty: bool = True
    next_url: str | None = None  # None: the first page, the adapter's own path and query
    has_next: bool = field(default=True, init=False)

    def resume(self, cursor: str | None) -> Self:
        self.next_url = cursor or None
        self.has_next = True
        return self

    def request(self, path: str, params: dict[str, object]) -> tuple[str, dict[str, object] | None]:
        """What to GET: the first page's ``path`` and ``params``, then the link as it is (its own query)."""
        return (path, params) if self.next_url is None else (self.next_url, None)

    def advance(self, response: httpx.Response, count: int) -> None:
        """The page asked for came back as ``response`` with ``count`` items."""
        if count == 0 and self.stop_on_empty:
            self.has_next = False
            return
        link = response.links.get(self.rel, {}).get("url")
        if not link or link == "about:blank":
            self.has_next = False
            return
        url = response.url.join(link)
        if self.origin is not None and _origin(url) != _origin(self.origin):
            raise VendorResponseError(
                f"{self.vendor} answered with a next link off its origin: {url.scheme}://{url.host}"
            )
        self.next_url = str(url)

    @property
    def cursor(self) -> str | None:
        return self.next_url if self.has_next else None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port
