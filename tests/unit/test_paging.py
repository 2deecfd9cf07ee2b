"""The paginators of chargelog.collectors.paging: what each sends, when each stops, and resuming at a cursor."""

from __future__ import annotations

import httpx
import pytest

from chargelog.collectors.paging import HeaderLinkPaginator, NextUrlPaginator, OffsetPaginator, PageNumberPaginator
from chargelog.collectors.vendor_http import VendorResponseError

API = "https://api.example/v2/"


def offset_pages(total: int, limit: int) -> list[dict[str, int]]:
    """The params of every page an OffsetPaginator asks for, against a vendor holding ``total`` records."""
    pages, sent = OffsetPaginator(limit), []
    while pages.has_next:
        sent.append(pages.params())
        pages.advance(max(0, min(limit, total - pages.offset)), total)
    return sent


# ------------------------------------------------------------------------------------------------- offset
@pytest.mark.parametrize(
    ("total", "offsets"),
    [(0, [0]), (1, [0]), (10, [0]), (11, [0, 10]), (20, [0, 10]), (25, [0, 10, 20])],
    ids=["empty", "one", "exactly-one-full-page", "one-over", "two-full", "last-page-short"],
)
def test_offset_pages_until_the_total_is_reached(total: int, offsets: list[int]) -> None:
    assert offset_pages(total, 10) == [{"limit": 10, "offset": offset} for offset in offsets]


def test_offset_names_its_params_the_vendors_way() -> None:
    assert OffsetPaginator(50, offset_param="skip", limit_param="take").params() == {"take": 50, "skip": 0}


def test_offset_cursor_is_the_next_offset_and_none_after_the_last_page() -> None:
    pages = OffsetPaginator(10)
    pages.advance(10, 25)
    assert pages.cursor == "10"
    pages.advance(10, 25)
    assert pages.cursor == "20"
    pages.advance(5, 25)
    assert (pages.has_next, pages.cursor) == (False, None)


def test_offset_an_empty_page_ends_the_paging_even_below_the_total() -> None:
    pages = OffsetPaginator(10).resume("10")
    pages.advance(0, 1000)
    assert pages.cursor is None


def test_offset_a_last_page_of_one() -> None:
    pages = OffsetPaginator(10).resume("20")
    pages.advance(1, 21)
    assert pages.cursor is None


def test_offset_without_a_total_a_short_page_is_the_last() -> None:
    pages = OffsetPaginator(10)
    pages.advance(10, None)
    assert pages.cursor == "10"
    pages.advance(9, None)
    assert pages.cursor is None


def test_offset_resumes_at_a_stored_cursor() -> None:
    pages = OffsetPaginator(10).resume("30")
    assert pages.params() == {"limit": 10, "offset": 30}
    pages.advance(10, 100)
    assert pages.cursor == "40"
    assert OffsetPaginator(10).resume(None).params()["offset"] == 0


@pytest.mark.parametrize("cursor", ["-1", "abc", "1.5", " 3"])
def test_offset_refuses_a_cursor_that_is_not_an_offset(cursor: str) -> None:
    with pytest.raises(ValueError, match="not an offset cursor"):
        OffsetPaginator(10).resume(cursor)


# -------------------------------------------------------------------------------------------- page number
def page_numbers(records: int, size: int, total: int | None = None, last_page: int | None = None) -> list[int]:
    """The page numbers a PageNumberPaginator asks for, against a vendor holding ``records`` (and saying so with
    ``total`` or ``last_page``, if given)."""
    pages, sent = PageNumberPaginator(size), []
    while pages.has_next:
        sent.append(pages.params()["page"])
        start = (pages.page - 1) * size
        pages.advance(max(0, min(size, records - start)), total=total, last_page=last_page)
    return sent


@pytest.mark.parametrize(
    ("total", "numbers"),
    [(0, [1]), (1, [1]), (100, [1, 2]), (101, [1, 2]), (250, [1, 2, 3])],
    ids=["empty", "one", "exactly-one-full-page", "last-page-of-one", "last-page-short"],
)
def test_page_number_stops_on_a_short_or_empty_page(total: int, numbers: list[int]) -> None:
    assert page_numbers(total, 100) == numbers


@pytest.mark.parametrize(("total", "numbers"), [(100, [1]), (200, [1, 2]), (201, [1, 2, 3])])
def test_page_number_stops_when_the_pages_hold_the_total(total: int, numbers: list[int]) -> None:
    assert page_numbers(total, 100, total=total) == numbers


def test_page_number_stops_on_the_last_page() -> None:
    assert page_numbers(1000, 100, last_page=3) == [1, 2, 3]


def test_page_number_sends_the_size_unless_the_vendor_fixes_it() -> None:
    assert PageNumberPaginator(100).params() == {"page": 1, "limit": 100}
    assert PageNumberPaginator(25, size_param=None).params() == {"page": 1}
    assert PageNumberPaginator(10, page_param="p", size_param="per_page", first_page=0).params() == {
        "p": 0,
        "per_page": 10,
    }


def test_page_number_resumes_at_a_stored_cursor_and_counts_the_pages_before_it() -> None:
    pages = PageNumberPaginator(100).resume("3")
    assert pages.params()["page"] == 3
    pages.advance(100, total=400)
    assert pages.cursor == "4"
    pages.advance(100, total=400)  # pages 1 to 4 hold the total
    assert pages.cursor is None
    with pytest.raises(ValueError, match="not a page cursor"):
        PageNumberPaginator(100).resume("0")


# --------------------------------------------------------------------------------------------- next URL
def test_next_url_takes_the_page_number_from_the_link_until_it_is_null() -> None:
    pages = NextUrlPaginator("vendor", "/logs")
    assert pages.params() == {"page": 1}
    pages.advance(25, "https://elsewhere.example/logs?sort=x&page=2")
    assert (pages.params(), pages.cursor) == ({"page": 2}, "2")
    pages.advance(25, None)
    assert (pages.has_next, pages.cursor) == (False, None)


def test_next_url_an_empty_page_is_the_last_whatever_it_links_to() -> None:
    pages = NextUrlPaginator("vendor", "/logs")
    pages.advance(0, "https://api.example/logs?page=2")
    assert pages.cursor is None


def test_next_url_resumes_at_a_stored_page() -> None:
    pages = NextUrlPaginator("vendor", "/logs").resume("7")
    assert pages.params() == {"page": 7}
    pages.advance(1, "/logs?page=8")
    assert pages.cursor == "8"


@pytest.mark.parametrize(
    ("link", "complaint"),
    [
        ("https://api.example/logs?cursor=abc", "vendor answered with a next link without a page number"),
        ("https://api.example/logs?page=0", "without a page number"),
        ("https://api.example/logs?page=2&page=3", "without a page number"),
        ("https://api.example/logs?page=4", "vendor GET /logs page 4 links back to page 4"),
        ("https://api.example/logs?page=1", "links back to page 1"),
    ],
)
def test_next_url_refuses_a_link_without_a_page_or_one_that_does_not_go_forward(link: str, complaint: str) -> None:
    pages = NextUrlPaginator("vendor", "/logs").resume("4")
    with pytest.raises(VendorResponseError) as raised:
        pages.advance(1, link)
    assert complaint in str(raised.value)


# ------------------------------------------------------------------------------------------- Link header
def answer(link: str | None = None, url: str = f"{API}evses?page_size=2") -> httpx.Response:
    response = httpx.Response(200, json=[], headers={"Link": link} if link else {})
    response.request = httpx.Request("GET", url)
    return response


def test_link_follows_rel_next_until_about_blank() -> None:
    pages = HeaderLinkPaginator("vendor")
    assert pages.request("evses", {"page_size": 2}) == ("evses", {"page_size": 2})
    following = f"{API}evses?page_size=2&page_after=abc"
    pages.advance(answer(f'<about:blank>; rel="previous", <{following}>; rel="next"'), 2)
    assert pages.cursor == following
    assert pages.request("evses", {"page_size": 2}) == (following, None)  # the link as it is, its own query
    pages.advance(answer(f'<{API}evses?page_before=x>; rel="previous", <about:blank>; rel="next"'), 2)
    assert (pages.has_next, pages.cursor) == (False, None)


def test_link_a_page_without_a_link_header_or_next_is_the_last() -> None:
    for link in (None, f'<{API}evses?page_before=x>; rel="previous"'):
        pages = HeaderLinkPaginator("vendor")
        pages.advance(answer(link), 2)
        assert pages.cursor is None


def test_link_a_relative_link_resolves_against_the_response() -> None:
    pages = HeaderLinkPaginator("vendor")
    pages.advance(answer('</v2/evses?page_after=abc>; rel="next"'), 1)
    assert pages.cursor == f"{API}evses?page_after=abc"


def test_link_an_empty_page_is_the_last_unless_told_it_may_link_on() -> None:
    link = f'<{API}evses?page_after=abc>; rel="next"'
    stopping = HeaderLinkPaginator("vendor")
    stopping.advance(answer(link), 0)
    assert stopping.cursor is None
    following = HeaderLinkPaginator("vendor", stop_on_empty=False)
    following.advance(answer(link), 0)
    assert following.cursor == f"{API}evses?page_after=abc"


def test_link_off_the_origin_is_refused() -> None:
    pages = HeaderLinkPaginator("vendor", origin=httpx.URL(API))
    pages.advance(answer(f'<{API}evses?page_after=a>; rel="next"'), 1)  # same origin, another path is fine
    for elsewhere in ("https://elsewhere.example/steal", "http://api.example/v2/evses", "https://api.example:8443/"):
        with pytest.raises(VendorResponseError, match="vendor answered with a next link off its origin"):
            pages.advance(answer(f'<{elsewhere}>; rel="next"'), 1)


def test_link_resumes_at_a_stored_url() -> None:
    stored = f"{API}evses/e1/status_logs?page_after=abc&page_size=50"
    pages = HeaderLinkPaginator("vendor").resume(stored)
    assert pages.request("evses/e1/status_logs", {"page_size": 50}) == (stored, None)
    pages.advance(answer('<about:blank>; rel="next"', url=stored), 3)
    assert pages.cursor is None
    assert HeaderLinkPaginator("vendor").resume(None).request("x", {}) == ("x", {})
