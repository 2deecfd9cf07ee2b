"""The fleet and the charger timeline (ui/fleet.js, ui/timeline.js) in a real Chromium against the local stack:
they load without console errors, filters change the rows and the URL and a new page opened at that URL shows the
same, the jump from a CALL reaches its reply, a 20,000-record charger is read page by page as it scrolls, the
controls are labelled and reachable by keyboard, and nothing overflows at 1280x800 or at a phone's width."""

from __future__ import annotations

import math
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from browser.harness import (
    ViewerStack,
    assert_no_console_errors,
    open_viewer,
    screenshot,
    visited_urls,
    wait_for,
    wait_until,
)

PAGE_SIZE = 200  # timeline.js PAGE_SIZE
BIG_CHARGER = "CP-TIMELINE-20K"
BIG_COUNT = 20_000
SCROLL_TO = 5_000
LOADED_ROWS = "#timeline-rows tr[data-record-id]"


def hash_params(driver: WebDriver) -> dict[str, list[str]]:
    fragment = urlsplit(driver.current_url).fragment
    return parse_qs(fragment.partition("?")[2])


def visible_rows(driver: WebDriver, table: str) -> list[dict[str, str]]:
    """The shown rows of a table: their data attributes and cell texts."""
    return list(
        driver.execute_script(
            """
            return [...document.querySelectorAll(arguments[0] + ' tbody tr')]
              .filter((row) => !row.hidden && !row.classList.contains('detail'))
              .map((row) => ({...row.dataset, cells: [...row.cells].map((cell) => cell.textContent.trim())}));
            """,
            table,
        )
    )


def timeline_rows(driver: WebDriver) -> list[dict[str, str]]:
    return [row for row in visible_rows(driver, "#timeline-table") if "recordId" in row]


def wait_for_timeline(driver: WebDriver) -> list[dict[str, str]]:
    return wait_until(
        driver,
        lambda d: timeline_rows(d) if "record" in d.find_element(By.ID, "timeline-status").text else None,
        "the timeline's first page did not render",
        timeout=60,
    )


def ocpplab_charger(stack: ViewerStack) -> str:
    """A simulator charger whose CALLs and answers are separate records with message ids (ocpplab's)."""
    chargers = [c["charger_id"] for c in stack.get("/chargers")["chargers"] if c["vendor"] == "ocpplab"]
    chargers = [c for c in chargers if not c.startswith("CP-")]  # not one a test seeded
    assert chargers, "the local stack collected no ocpplab charger"
    return sorted(chargers)[0]


def no_horizontal_overflow(driver: WebDriver) -> bool:
    return bool(driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"))


# ------------------------------------------------------------------------------------------------------ fleet
def test_fleet_lists_every_charger_and_its_filters_live_in_the_url(
    viewer_stack: ViewerStack, open_chrome: Callable[..., WebDriver]
) -> None:
    chargers = viewer_stack.get("/chargers")["chargers"]
    chrome = open_chrome()
    open_viewer(chrome, viewer_stack, "#/fleet")
    wait_for(chrome, "#fleet-table tbody tr")
    rows = visible_rows(chrome, "#fleet-table")
    assert sorted(row["chargerId"] for row in rows) == sorted(c["charger_id"] for c in chargers)
    # Every row links to the charger's timeline, status chart and sessions.
    links = chrome.execute_script(
        "return [...document.querySelectorAll('#fleet-table tbody tr td.links a')].map((a) => a.getAttribute('href'))"
    )
    for charger in chargers:
        encoded = charger["charger_id"]
        assert any(link.startswith(f"#/chargers/{encoded}") and link.endswith("/status") for link in links)
        assert any(link.startswith(f"#/chargers/{encoded}") and link.endswith("/sessions") for link in links)
    # Connector states arrive for the rows on screen, from the status timeline.
    wait_until(
        chrome,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#fleet-table td.states .badge"),
        "no connector state was shown",
    )

    Select(chrome.find_element(By.ID, "fleet-vendor")).select_by_value("ocpplab")
    filtered = visible_rows(chrome, "#fleet-table")
    expected = sorted(c["charger_id"] for c in chargers if c["vendor"] == "ocpplab")
    assert sorted(row["chargerId"] for row in filtered) == expected
    assert len(filtered) < len(rows)
    assert hash_params(chrome)["vendor"] == ["ocpplab"]
    wait_until(
        chrome,
        lambda d: all("…" not in row["cells"][4] for row in visible_rows(d, "#fleet-table")),
        "the shown chargers' connector states did not arrive",
        timeout=60,
    )
    screenshot(chrome, "fleet")
    assert_no_console_errors(chrome)

    again = open_chrome()  # a new page: no key stored, the filter from the URL
    open_viewer(again, viewer_stack, "#" + urlsplit(chrome.current_url).fragment)
    wait_for(again, "#fleet-table tbody tr:not([hidden])")
    assert Select(again.find_element(By.ID, "fleet-vendor")).first_selected_option.get_attribute("value") == "ocpplab"
    assert sorted(row["chargerId"] for row in visible_rows(again, "#fleet-table")) == expected
    assert_no_console_errors(again)


def test_a_quiet_charger_stands_out_and_comes_first(viewer_stack: ViewerStack, chrome: WebDriver) -> None:
    from datetime import UTC, datetime, timedelta

    viewer_stack.seed_charger_records("CP-QUIET-15", 40, start=datetime.now(UTC) - timedelta(days=2))
    open_viewer(chrome, viewer_stack, "#/fleet")
    wait_for(chrome, "#fleet-table tbody tr")
    rows = visible_rows(chrome, "#fleet-table")
    quiet = [row for row in rows if any("quiet" in cell for cell in row["cells"])]
    assert "CP-QUIET-15" in [row["chargerId"] for row in quiet]
    assert rows[: len(quiet)] == quiet  # quiet chargers sort first
    # The badge says so in text; the page says what quiet means.
    assert "more than 1 h old" in chrome.find_element(By.ID, "main").text
    assert_no_console_errors(chrome)


# --------------------------------------------------------------------------------------------------- timeline
def test_timeline_filter_changes_rows_and_url_and_the_url_restores_it(
    viewer_stack: ViewerStack, open_chrome: Callable[..., WebDriver]
) -> None:
    charger = ocpplab_charger(viewer_stack)
    chrome = open_chrome()
    open_viewer(chrome, viewer_stack, f"#/chargers/{charger}")
    before = wait_for_timeline(chrome)
    actions = sorted({row["cells"][3] for row in before if row["cells"][3]})
    assert len(actions) > 1, f"the charger's first page holds one action only: {actions}"
    wanted = actions[0]

    # The searchable action picker: open it, search, tick.
    chrome.find_element(By.CSS_SELECTOR, "#timeline-actions > summary").click()
    chrome.find_element(By.ID, "timeline-action-search").send_keys(wanted[:5])
    boxes = chrome.find_elements(By.CSS_SELECTOR, "#timeline-actions .picker-list input[type=checkbox]")
    assert all(wanted[:5].lower() in box.get_attribute("value").lower() for box in boxes)
    next(box for box in boxes if box.get_attribute("value") == wanted).click()
    after = wait_until(
        chrome,
        lambda d: (rows := timeline_rows(d)) and all(row["cells"][3] == wanted for row in rows) and rows,
        f"the rows did not narrow to {wanted}",
        timeout=60,
    )
    assert [row["recordId"] for row in after] != [row["recordId"] for row in before]
    api_page = viewer_stack.get(f"/chargers/{charger}/logs", action=wanted, order="desc", limit=PAGE_SIZE)
    assert [row["recordId"] for row in after] == [record["id"] for record in api_page["records"]]
    assert hash_params(chrome)["action"] == [wanted]
    # "Export this view" carries the filter to the exports page, which starts from it.
    export_href = chrome.find_element(By.ID, "timeline-export").get_attribute("href")
    assert parse_qs(urlsplit(export_href).fragment.split("?", 1)[1]) == {"charger": [charger], "action": [wanted]}

    # Free text narrows the loaded rows in the page and goes into the URL too.
    probe = after[0]["cells"][0][-6:]  # the end of the first row's time
    chrome.find_element(By.ID, "timeline-q").send_keys(probe)
    texted = wait_until(
        chrome, lambda d: len(timeline_rows(d)) < len(after) and timeline_rows(d), "free text did nothing"
    )
    assert hash_params(chrome)["q"] == [probe]
    # Open one record: its id goes into the URL as well.
    chrome.find_element(By.CSS_SELECTOR, "#timeline-table tbody tr:not([hidden]) button.open-record").click()
    wait_for(chrome, "#timeline-table tr.detail details.json")
    opened = hash_params(chrome)["record"][0]
    assert opened == texted[0]["recordId"]
    assert_no_console_errors(chrome)

    again = open_chrome()
    open_viewer(again, viewer_stack, "#" + urlsplit(chrome.current_url).fragment)
    restored = wait_for_timeline(again)
    assert [row["recordId"] for row in restored] == [row["recordId"] for row in texted]
    assert again.find_element(By.ID, "timeline-q").get_attribute("value") == probe
    assert again.find_element(By.ID, "timeline-actions-summary").text == f"Actions: {wanted}"
    selected = wait_for(again, "#timeline-table tr.selected")
    assert selected.get_attribute("data-record-id") == opened
    wait_for(again, "#timeline-table tr.detail details.json")
    screenshot(again, "timeline-filtered")
    assert_no_console_errors(again)


def test_the_jump_from_a_call_reaches_its_reply(viewer_stack: ViewerStack, chrome: WebDriver) -> None:
    charger = ocpplab_charger(viewer_stack)
    open_viewer(chrome, viewer_stack, f"#/chargers/{charger}?order=asc")
    rows = wait_for_timeline(chrome)
    call = next(row for row in rows if row["cells"][2] == "CALL" and "reply" in row["cells"][6])
    button = chrome.find_element(By.CSS_SELECTOR, f'tr[data-record-id="{call["recordId"]}"] button.jump')
    assert "ms" in call["cells"][6] or " s" in call["cells"][6]  # the response time is shown
    button.send_keys(Keys.ENTER)  # by keyboard
    reply = wait_for(chrome, "#timeline-table tr.selected")
    assert reply.get_attribute("data-record-id") != call["recordId"]
    assert reply.get_attribute("data-message-id") == call["messageId"]
    reply_row = next(row for row in timeline_rows(chrome) if row["recordId"] == reply.get_attribute("data-record-id"))
    assert reply_row["cells"][2] in ("CALLRESULT", "CALLERROR")
    assert hash_params(chrome)["record"] == [reply_row["recordId"]]
    chrome.execute_script("window.scrollTo(0, 0)")
    screenshot(chrome, "timeline")  # the README's picture: pairs, response times, a reply selected
    # ...and back.
    reply.find_element(By.CSS_SELECTOR, "button.jump").click()
    wait_until(
        chrome,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, "#timeline-table tr.selected").get_attribute("data-record-id")
            == call["recordId"]
        ),
        "the jump back did not reach the CALL",
    )

    # With the answers filtered out, the reply is found through the API and shown beside the list.
    open_viewer(chrome, viewer_stack, f"#/chargers/{charger}?order=asc&message_type=CALL")
    rows = wait_for_timeline(chrome)
    call = next(row for row in rows if row["messageId"])
    chrome.find_element(By.CSS_SELECTOR, f'tr[data-record-id="{call["recordId"]}"] button.jump').click()
    pinned = wait_for(chrome, "#timeline-pinned .pinned")
    assert "CALLRESULT" in pinned.text or "CALLERROR" in pinned.text
    assert call["messageId"] in pinned.text
    assert_no_console_errors(chrome)


def test_a_20000_record_charger_is_read_page_by_page_as_it_scrolls(
    viewer_stack: ViewerStack, chrome: WebDriver
) -> None:
    seeded = viewer_stack.seed_charger_records(BIG_CHARGER, BIG_COUNT)
    assert seeded.count == BIG_COUNT
    open_viewer(chrome, viewer_stack, f"#/chargers/{BIG_CHARGER}")
    first = wait_for_timeline(chrome)
    assert len(first) == PAGE_SIZE
    first_render_ms = float(chrome.find_element(By.ID, "timeline-table").get_attribute("data-first-render-ms"))
    assert first_render_ms > 0  # measured in the page (bench/viewer.py reports it)

    def scrolled(driver: WebDriver) -> int | None:
        driver.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
        count = int(
            driver.execute_script("return document.querySelectorAll('#timeline-rows tr[data-record-id]').length")
        )
        return count if count >= SCROLL_TO else None

    try:
        wait_until(chrome, scrolled, f"scrolling did not reach record {SCROLL_TO}", timeout=600)
    except TimeoutException:
        state = chrome.execute_script(
            "return [document.querySelectorAll('#timeline-rows tr[data-record-id]').length,"
            " document.querySelector('#timeline-status')?.textContent,"
            " performance.getEntriesByType('resource').filter((e) => e.name.includes('/logs?')).length]"
        )
        pytest.fail(f"scrolling stopped at {state[0]} rows after {state[2]} /logs requests; the page says {state[1]!r}")
    loaded, requests = chrome.execute_script(
        f"return [document.querySelectorAll('{LOADED_ROWS}').length,"
        " performance.getEntriesByType('resource').map((e) => e.name)"
        f".filter((n) => n.includes('/chargers/{BIG_CHARGER}/logs?'))]"
    )
    # One request per page shown (and at most one more whose rows are being drawn).
    assert math.ceil(loaded / PAGE_SIZE) <= len(requests) <= math.ceil(loaded / PAGE_SIZE) + 1
    assert all(f"limit={PAGE_SIZE}" in url for url in requests)
    assert loaded <= SCROLL_TO + PAGE_SIZE  # pages as needed, far fewer than 20,000
    assert sum(1 for url in requests if "cursor=" not in url) == 1  # one first page, then cursors
    # Newest first, in order.
    times = chrome.execute_script(
        f"return [...document.querySelectorAll('{LOADED_ROWS}')].map((r) => r.dataset.recordId.split('~')[0])"
    )
    assert times == sorted(times, reverse=True)
    assert_no_console_errors(chrome)


def test_controls_are_labelled_and_reachable_by_keyboard(viewer_stack: ViewerStack, chrome: WebDriver) -> None:
    charger = ocpplab_charger(viewer_stack)
    for route, table in (("#/fleet", "#fleet-table"), (f"#/chargers/{charger}", "#timeline-table")):
        open_viewer(chrome, viewer_stack, route)
        wait_for(chrome, f"{table} tbody tr")
        unnamed = chrome.execute_script(
            """
            return [...document.querySelectorAll('#main input, #main select, #main button, #main summary, #main a')]
              .filter((el) => {
                const name = el.getAttribute('aria-label') || el.closest('label')?.textContent.trim()
                  || (el.labels && [...el.labels].map((l) => l.textContent).join('').trim()) || el.textContent.trim();
                return !name || el.tabIndex < 0;
              })
              .map((el) => el.outerHTML.slice(0, 120));
            """
        )
        assert unnamed == [], f"{route}: controls without a name or out of the tab order: {unnamed}"
        # Tab from the page's start reaches the first filter.
        chrome.execute_script("window.scrollTo(0, 0); document.querySelector('a.skip').focus()")
        first_filter = chrome.find_element(By.CSS_SELECTOR, "#main form.filters select, #main form.filters input")
        for _ in range(20):
            chrome.switch_to.active_element.send_keys(Keys.TAB)
            if chrome.switch_to.active_element == first_filter:
                break
        assert chrome.switch_to.active_element == first_filter, f"{route}: Tab did not reach the filters"
    assert_no_console_errors(chrome)


@pytest.mark.parametrize("window", [(1280, 800), (375, 812)], ids=["desktop", "phone"])
def test_readable_without_horizontal_page_overflow(
    viewer_stack: ViewerStack, open_chrome: Callable[..., WebDriver], window: tuple[int, int]
) -> None:
    driver = open_chrome(window)
    charger = ocpplab_charger(viewer_stack)
    for route, table in (("#/fleet", "#fleet-table"), (f"#/chargers/{charger}", "#timeline-table")):
        open_viewer(driver, viewer_stack, route)
        wait_for(driver, f"{table} tbody tr")
        assert no_horizontal_overflow(driver), f"{route} is wider than the {window[0]} px window"
        # The table scrolls inside its wrapper instead.
        assert (
            driver.execute_script(f"return getComputedStyle(document.querySelector('{table}').parentElement).overflowX")
            == "auto"
        )
    if window[0] < 500:
        screenshot(driver, "timeline-phone")
    assert not any(viewer_stack.api_key in url for url in visited_urls(driver))
    assert_no_console_errors(driver)
