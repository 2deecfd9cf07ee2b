"""The harness itself: the local stack has the simulators' data, seeding writes what it says, Chromium starts with
its console kept, and a console error fails `assert_no_console_errors`."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from browser.harness import VENDORS, ViewerStack, assert_no_console_errors, wait_for


def test_the_stack_has_every_vendors_chargers_and_records(viewer_stack: ViewerStack) -> None:
    assert viewer_stack.api_url.startswith("http://127.0.0.1:")
    assert viewer_stack.upload_url.startswith("http://127.0.0.1:")
    chargers = viewer_stack.get("/chargers")["chargers"]
    assert {charger["vendor"] for charger in chargers} >= set(VENDORS)
    with_records = [c for c in chargers if viewer_stack.get(f"/chargers/{c['charger_id']}/logs", limit=1)["records"]]
    assert len({charger["vendor"] for charger in with_records}) >= 3


def test_seeding_writes_that_many_records_for_the_charger(viewer_stack: ViewerStack) -> None:
    seeded = viewer_stack.seed_charger_records("CP-HARNESS-SEED", 1200)
    assert seeded.count == 1200
    assert seeded.first <= seeded.last <= datetime.now(UTC)
    listed = next(c for c in viewer_stack.get("/chargers")["chargers"] if c["charger_id"] == "CP-HARNESS-SEED")
    assert listed["vendor"] == "ocpplab"
    found = 0
    cursor = None
    while True:
        page = viewer_stack.get("/chargers/CP-HARNESS-SEED/logs", limit=500, **({"cursor": cursor} if cursor else {}))
        found += len(page["records"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert found == 1200


def test_a_console_error_fails_the_check_and_an_expected_one_does_not(
    viewer_stack: ViewerStack, chrome: WebDriver
) -> None:
    chrome.get(f"{viewer_stack.api_url}/health")
    wait_for(chrome, "body")
    assert_no_console_errors(chrome)
    chrome.execute_script("console.error('harness probe: something broke')")
    with pytest.raises(AssertionError, match="harness probe"):
        assert_no_console_errors(chrome)
    chrome.execute_script("console.error('harness probe: on purpose')")
    assert_no_console_errors(chrome, expected=["on purpose"])
    with pytest.raises(AssertionError, match="not logged"):
        assert_no_console_errors(chrome, expected=["never logged"])


def test_the_banner_prints_the_viewers_and_the_api_docs_addresses(viewer_stack: ViewerStack) -> None:
    banner = viewer_stack.runner.banner()
    assert f"  Viewer:   {viewer_stack.viewer_url}  " in banner
    assert f"  API docs: {viewer_stack.api_url}/docs  " in banner
    assert httpx.get(viewer_stack.viewer_url, follow_redirects=True, timeout=30).status_code == 200
