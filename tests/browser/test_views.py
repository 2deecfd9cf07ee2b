"""The viewer's status chart, sessions, diagnostics and exports views in a real Chromium against the local stack.

One charger of seeded OCPP 1.6 traffic (two connectors, sessions, status notifications) gives the status and
sessions views known data; the diagnostics test uploads a file with curl, as a charger would, and downloads it
back through the page's link; the export test exports a filter made in the page and reads the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from browser.harness import (
    PHONE_WINDOW,
    ViewerStack,
    assert_no_console_errors,
    open_viewer,
    screenshot,
    wait_for,
    wait_until,
)

CHARGER = "CP-VIEWS-01"
SEEDED_RECORDS = 3000
UPLOAD_SECONDS = 90  # the indexer runs off the upload queue, which the local stack polls
EXPORT_SECONDS = 120  # the export function runs off the export queue


@pytest.fixture(scope="module")
def charger(viewer_stack: ViewerStack) -> str:
    viewer_stack.seed_charger_records(CHARGER, SEEDED_RECORDS, seed=1515)
    return CHARGER


def text_of(driver: WebDriver, selector: str) -> str:
    return str(wait_for(driver, selector).text)


def hash_params(driver: WebDriver) -> dict[str, list[str]]:
    fragment = urlsplit(driver.current_url).fragment
    return parse_qs(fragment.partition("?")[2])


def view_range(stack: ViewerStack, charger_id: str) -> tuple[str, str]:
    """The last day of the charger's records (from its first when it has less), as the views default to it."""
    found = [c for c in stack.get("/chargers")["chargers"] if c["charger_id"] == charger_id]
    first = datetime.fromisoformat(min(c["first_record_at"] for c in found)).replace(microsecond=0)
    end = datetime.fromisoformat(max(c["last_record_at"] for c in found)).replace(microsecond=0) + timedelta(seconds=1)
    start = max(end - timedelta(days=1), first)
    return start.isoformat().replace("+00:00", "Z"), end.isoformat().replace("+00:00", "Z")


def every_status_entry(stack: ViewerStack, charger_id: str, start: str, end: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"from": start, "to": end, "limit": 500, **({"cursor": cursor} if cursor else {})}
        page = stack.get(f"/chargers/{charger_id}/status", **params)
        entries += page["entries"]
        cursor = page["next_cursor"]
        if not cursor:
            return entries


def test_the_status_chart_has_one_lane_per_connector(
    viewer_stack: ViewerStack, charger: str, chrome: WebDriver
) -> None:
    start, end = view_range(viewer_stack, charger)
    entries = [e for e in every_status_entry(viewer_stack, charger, start, end) if e.get("connector_status")]
    connectors = {entry["connector_id"] or 0 for entry in entries}
    assert connectors >= {0, 1, 2}  # the seeded charger's own status and its two connectors
    open_viewer(chrome, viewer_stack, f"#/chargers/{charger}/status?from={start}&to={end}")
    wait_for(chrome, "svg.status-chart")
    lanes = [
        lane.get_attribute("data-lane") for lane in chrome.find_elements(By.CSS_SELECTOR, "svg.status-chart g.lane")
    ]
    expected = ["Charger (0)" if connector == 0 else f"Connector {connector}" for connector in sorted(connectors)]
    assert lanes == expected
    # Each state has a colour and a name: the legend names every state the chart draws.
    drawn = {rect.get_attribute("data-state") for rect in chrome.find_elements(By.CSS_SELECTOR, "rect.segment")}
    legend = {item.text for item in chrome.find_elements(By.CSS_SELECTOR, ".legend li")}
    assert drawn == legend == {entry["connector_status"] for entry in entries}
    # A segment takes keyboard focus and says lane, state and time.
    first = chrome.find_element(By.CSS_SELECTOR, "rect.segment")
    chrome.execute_script("arguments[0].focus()", first)
    label = chrome.switch_to.active_element.get_attribute("aria-label")
    assert label.startswith(("Charger (0): ", "Connector "))
    assert "UTC" in label
    assert hash_params(chrome) == {"from": [start], "to": [end]}
    assert_no_console_errors(chrome)
    screenshot(chrome, "status")


def test_the_sessions_view_lists_the_sessions_and_links_their_records(
    viewer_stack: ViewerStack, charger: str, chrome: WebDriver
) -> None:
    start, end = view_range(viewer_stack, charger)
    expected = viewer_stack.get(f"/chargers/{charger}/sessions", **{"from": start, "to": end})["sessions"]
    ended = [session for session in expected if session["state"] == "ended"]
    assert ended, "the seeded traffic has whole sessions"
    open_viewer(chrome, viewer_stack, f"#/chargers/{charger}/sessions")
    wait_for(chrome, "table.sessions tbody tr")
    rows = chrome.find_elements(By.CSS_SELECTOR, "table.sessions tbody tr")
    assert [row.get_attribute("data-transaction") for row in rows] == [s["transaction_id"] or "" for s in expected]
    row = next(r for r in rows if r.get_attribute("data-transaction") == ended[0]["transaction_id"])
    cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == ended[0]["transaction_id"]
    assert cells[2] == "ended"
    assert cells[6] == f"{ended[0]['energy_wh'] / 1000:.2f} kWh"
    assert cells[7] == ended[0]["id_tag"]
    assert cells[8] == ended[0]["stop_reason"]
    assert_no_console_errors(chrome)
    screenshot(chrome, "sessions")
    row.find_element(By.CSS_SELECTOR, "a.records-link").click()
    wait_until(chrome, lambda d: "/sessions" not in d.current_url, "the link did not open the timeline")
    assert urlsplit(chrome.current_url).fragment.startswith(f"/chargers/{charger}?")
    params = hash_params(chrome)
    assert params["transaction_id"] == [ended[0]["transaction_id"]]
    assert {"from", "to"} <= params.keys()


def test_a_diagnostics_request_made_in_the_page_is_uploaded_to_and_its_file_downloads(
    viewer_stack: ViewerStack, charger: str, chrome: WebDriver, tmp_path: Path
) -> None:
    open_viewer(chrome, viewer_stack, f"#/diagnostics?charger={charger}")
    wait_for(chrome, "form[aria-label='Ask a charger for its log file'] button.primary").click()
    wait_for(chrome, ".diag-detail")
    location = text_of(chrome, "pre[data-copy=remote_location]")
    assert location.startswith(f"{viewer_stack.upload_url}/u/{charger}/")
    assert f'"remoteLocation": "{location}"' in text_of(chrome, "pre[data-copy=getlog]")
    assert f'"location": "{location}"' in text_of(chrome, "pre[data-copy=getdiagnostics]")
    copy = chrome.find_element(By.XPATH, "//button[starts-with(., 'Copy GetLog')]")
    copy.click()
    said = copy.find_element(By.XPATH, "following-sibling::*[@role='status']")
    wait_until(chrome, lambda _: said.text in ("Copied.", "Selected: press Ctrl+C to copy."), "Copy said nothing")
    wait_for(chrome, "table.diag-requests tr.selected")
    assert_no_console_errors(chrome)
    screenshot(chrome, "diagnostics")

    log = tmp_path / "charger-log.txt"
    log.write_bytes(b"2026-11-20T08:00:00Z boot\n" * 2000)
    uploaded = subprocess.run(
        ["curl", "-sS", "-w", "%{http_code}", "-o", "/dev/null", "-T", str(log), location],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert uploaded.stdout == "200", uploaded.stderr
    wait_until(
        chrome,
        lambda d: d.find_elements(By.CSS_SELECTOR, ".diag-detail [data-state=uploaded]"),
        "the request never showed uploaded",
        timeout=UPLOAD_SECONDS,
    )
    link = wait_for(chrome, ".diag-detail a.download")
    assert link.text == "charger-log.txt"
    downloaded = httpx.get(link.get_attribute("href"), timeout=30)
    assert downloaded.status_code == 200
    expected_sha = hashlib.sha256(log.read_bytes()).hexdigest()
    assert hashlib.sha256(downloaded.content).hexdigest() == expected_sha
    assert chrome.find_element(By.CSS_SELECTOR, ".diag-detail td.sha").text == expected_sha
    row = chrome.find_element(By.CSS_SELECTOR, "table.diag-requests tr.selected")
    assert row.find_element(By.CSS_SELECTOR, "[data-state]").text == "uploaded"
    assert_no_console_errors(chrome)


def test_an_export_made_in_the_page_completes_and_downloads(
    viewer_stack: ViewerStack, charger: str, chrome: WebDriver
) -> None:
    start, end = view_range(viewer_stack, charger)
    route = f"#/exports?charger={charger}&from={start}&to={end}&action=StartTransaction&action=StopTransaction"
    open_viewer(chrome, viewer_stack, route)
    assert wait_for(chrome, "input[name=action]").get_attribute("value") == "StartTransaction, StopTransaction"
    wait_for(chrome, "form[aria-label='Export records'] button.primary").click()
    done = wait_until(
        chrome,
        lambda d: d.find_elements(By.CSS_SELECTOR, "table.exports tr[data-state=done] a.download"),
        "the export never finished",
        timeout=EXPORT_SECONDS,
    )
    downloaded = httpx.get(done[0].get_attribute("href"), timeout=30)
    assert downloaded.status_code == 200
    rows = list(csv.DictReader(io.StringIO(downloaded.text)))
    assert rows, "the range holds transactions"
    assert {row["action"] for row in rows} <= {"StartTransaction", "StopTransaction"}
    assert {row["charger_id"] for row in rows} == {charger}
    assert all(start <= row["timestamp"].replace("+00:00", "Z") <= end for row in rows)
    listed = viewer_stack.get(
        f"/chargers/{charger}/logs",
        **{"from": start, "to": end, "limit": 500},
        action=["StartTransaction", "StopTransaction"],
    )
    assert len(rows) == len(listed["records"])
    # The tab remembers it made the export: ids only.
    stored = chrome.execute_script("return sessionStorage.getItem('chargelog.exports')")
    assert done[0].find_element(By.XPATH, "ancestor::tr").get_attribute("data-export") in stored
    assert_no_console_errors(chrome)
    screenshot(chrome, "exports")


VIEWS = {
    "status": f"#/chargers/{CHARGER}/status",
    "sessions": f"#/chargers/{CHARGER}/sessions",
    "diagnostics": f"#/diagnostics?charger={CHARGER}",
    "exports": f"#/exports?charger={CHARGER}",
}
READY = {"status": "svg.status-chart", "sessions": "table.sessions", "diagnostics": "form", "exports": "form"}


def unlabelled_controls(driver: WebDriver) -> list[str]:
    return list(
        driver.execute_script(
            """return [...document.querySelectorAll('#main input, #main select, #main button')]
              .filter((c) => !(c.closest('label') || c.getAttribute('aria-label')
                || (c.tagName === 'BUTTON' && c.textContent.trim())))
              .map((c) => c.outerHTML)"""
        )
    )


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_each_view_is_keyboard_reachable_labelled_and_fits_a_phone(
    viewer_stack: ViewerStack, charger: str, open_chrome: Callable[..., WebDriver], view: str
) -> None:
    for window in ((1280, 800), PHONE_WINDOW):
        driver = open_chrome(window)
        open_viewer(driver, viewer_stack, VIEWS[view])
        wait_for(driver, f"#main {READY[view]}")
        assert unlabelled_controls(driver) == []
        # Tab from the top of the page reaches the view's main button.
        target = driver.find_element(By.CSS_SELECTOR, "#main button.primary")
        driver.find_element(By.TAG_NAME, "body").click()
        for _ in range(40):
            driver.switch_to.active_element.send_keys(Keys.TAB)
            if driver.switch_to.active_element == target:
                break
        else:
            pytest.fail(f"Tab never reached {target.text!r} on {view}")
        # Nothing wider than the window: wide tables and the chart scroll in their own boxes.
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{view} is {overflow}px wider than a {window[0]}px window"
        assert_no_console_errors(driver)
        if window == PHONE_WINDOW:
            screenshot(driver, f"{view}-phone")
