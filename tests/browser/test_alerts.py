"""Charger health alerts in the viewer (ui/alerts.js, fleet.js, timeline.js) in a real Chromium against the local
stack, whose harness wrote alerts on records that exist (`seed_alerts`): the fleet's panel lists the open alerts
as the API does, with the fleet's vendor and site filters, counts them and marks the chargers' rows; its evidence
link opens the charger's timeline around the evidence, highlighted, the first record selected and in view, also
from a deep link; the charger's health strip shows connectors, open and resolved alerts; recently resolved alerts
show on request; a failing or refusing API call leaves one line in its panel while the page renders."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from browser.harness import (
    SeededAlerts,
    ViewerStack,
    assert_no_console_errors,
    open_viewer,
    screenshot,
    wait_for,
    wait_until,
)

KIND_LABELS = {
    "connector_faulted": "Connector faulted",
    "error_burst": "Error burst",
    "authorization_failures": "Authorization failures",
    "offline": "Offline",
}
ALERT_ROWS = "#alerts-table tbody tr"
EVIDENCE_ROWS = "#timeline-rows tr.evidence"


def seeded(stack: ViewerStack) -> SeededAlerts:
    assert stack.alerts is not None, "the harness wrote no alerts"
    return stack.alerts


def hash_params(driver: WebDriver) -> dict[str, list[str]]:
    return parse_qs(urlsplit(driver.current_url).fragment.partition("?")[2])


def open_alerts(stack: ViewerStack, **filters: str) -> list[dict[str, Any]]:
    return list(stack.get("/alerts", state="open", limit=200, **filters)["alerts"])


def listed_alerts(driver: WebDriver, table: str = "#alerts-table") -> list[str]:
    """The alert ids a table lists, read at once (the panel redraws its table when more alerts come)."""
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll(arguments[0] + ' tbody tr')].map((row) => row.dataset.alertId)", table
        )
    )


def wait_for_alerts(driver: WebDriver, expected: list[str], table: str = "#alerts-table") -> None:
    wait_until(
        driver,
        lambda d: listed_alerts(d, table) == expected,
        f"the panel did not list {expected}",
    )


def fleet_rows(driver: WebDriver) -> list[dict[str, Any]]:
    return list(
        driver.execute_script(
            """
            return [...document.querySelectorAll('#fleet-table tbody tr')].filter((row) => !row.hidden)
              .map((row) => ({id: row.dataset.chargerId, cells: [...row.cells].map((c) => c.textContent.trim())}));
            """
        )
    )


def in_view(driver: WebDriver, selector: str) -> bool:
    return bool(
        driver.execute_script(
            "const box = document.querySelector(arguments[0])?.getBoundingClientRect();"
            "return Boolean(box) && box.top >= 0 && box.bottom <= window.innerHeight;",
            selector,
        )
    )


def evidence_rows(driver: WebDriver) -> list[str]:
    return [row.get_attribute("data-record-id") for row in driver.find_elements(By.CSS_SELECTOR, EVIDENCE_ROWS)]


# ------------------------------------------------------------------------------------------------- fleet panel
def test_the_fleet_panel_lists_the_open_alerts_with_the_fleets_filters_and_counts_them(
    viewer_stack: ViewerStack, open_chrome: Callable[..., WebDriver]
) -> None:
    alerts = seeded(viewer_stack)
    expected = open_alerts(viewer_stack)
    assert {a.alert_id for a in [*alerts.open, alerts.other]} <= {a["alert_id"] for a in expected}
    chrome = open_chrome()
    open_viewer(chrome, viewer_stack, "#/fleet")
    wait_for_alerts(chrome, [a["alert_id"] for a in expected])  # newest opened first, as the API lists them
    assert chrome.find_element(By.ID, "alerts-count").text == str(len(expected))
    assert chrome.find_element(By.ID, "alerts-summary").text == f"{len(expected)} open alerts, newest first."
    # Each row: kind (its name and the API's), charger (to its timeline), connector, opened (relative and UTC),
    # summary, and the link to its evidence.
    faulted = next(a for a in alerts.open if a.kind == "connector_faulted")
    row = chrome.find_element(By.CSS_SELECTOR, f'#alerts-table tr[data-alert-id="{faulted.alert_id}"]')
    header = row.find_element(By.CSS_SELECTOR, "th[scope=row]").text
    assert header.splitlines() == ["Connector faulted", "connector_faulted"]
    cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
    assert cells[0].splitlines()[0] == alerts.charger_id
    assert cells[1] == "1"
    assert "ago" in cells[2]
    assert faulted.opened_at.strftime("%Y-%m-%d %H:%M:%S UTC") in cells[2]
    assert cells[3] == faulted.summary
    links = row.find_elements(By.TAG_NAME, "a")
    assert links[0].get_attribute("href").endswith(f"#/chargers/{alerts.charger_id}")
    assert links[-1].get_attribute("href").endswith(f"#/chargers/{alerts.charger_id}?alert={faulted.alert_id}")
    assert [th.get_attribute("scope") for th in chrome.find_elements(By.CSS_SELECTOR, "#alerts-table thead th")] == [
        "col"
    ] * 6

    # The fleet table marks the chargers with open alerts; quiet chargers still come first, then those with alerts.
    rows = wait_until(
        chrome,
        lambda d: (found := fleet_rows(d)) and all("…" not in row["cells"][5] for row in found) and found,
        "the rows' alert counts did not arrive",
    )
    per_charger: dict[str, int] = {}
    for alert in expected:
        per_charger[alert["charger_id"]] = per_charger.get(alert["charger_id"], 0) + 1
    for row in rows:
        assert row["cells"][5] == (f"{per_charger[row['id']]} open" if row["id"] in per_charger else "—"), row
    quiet = [row for row in rows if "quiet" in row["cells"][3]]
    assert rows[: len(quiet)] == quiet
    talking = rows[len(quiet) :]
    with_alerts = [row for row in talking if row["id"] in per_charger]
    assert talking[: len(with_alerts)] == with_alerts
    summary = chrome.find_element(By.ID, "fleet-summary").text
    assert summary.endswith(f"{sum(1 for row in rows if row['id'] in per_charger)} with open alerts.")

    # The vendor filter applies to the panel too (and the URL keeps it) ...
    Select(chrome.find_element(By.ID, "fleet-vendor")).select_by_value(alerts.other.vendor)
    by_vendor = open_alerts(viewer_stack, vendor=alerts.other.vendor)
    assert alerts.other.alert_id in [a["alert_id"] for a in by_vendor]
    wait_for_alerts(chrome, [a["alert_id"] for a in by_vendor])
    assert chrome.find_element(By.ID, "alerts-count").text == str(len(by_vendor))
    assert f"for vendor {alerts.other.vendor}" in chrome.find_element(By.ID, "alerts-summary").text
    assert hash_params(chrome)["vendor"] == [alerts.other.vendor]
    # ... and the site filter.
    Select(chrome.find_element(By.ID, "fleet-vendor")).select_by_value("")
    Select(chrome.find_element(By.ID, "fleet-site")).select_by_value(alerts.site_id)
    by_site = open_alerts(viewer_stack, site_id=alerts.site_id)
    assert [a["alert_id"] for a in by_site] == [a.alert_id for a in alerts.open]
    wait_for_alerts(chrome, [a.alert_id for a in alerts.open])
    assert chrome.find_element(By.ID, "alerts-count").text == "2"
    assert [row["id"] for row in fleet_rows(chrome)] == [alerts.charger_id]
    assert_no_console_errors(chrome)

    # "alerts" in the state filter keeps the chargers with open alerts; a new page at the URL shows the same.
    Select(chrome.find_element(By.ID, "fleet-site")).select_by_value("")
    chrome.execute_script(
        "const box = document.getElementById('fleet-state'); box.value = 'alerts';box.dispatchEvent(new Event('input'))"
    )
    wait_until(
        chrome,
        lambda d: sorted(row["id"] for row in fleet_rows(d)) == sorted(per_charger),
        "the state filter 'alerts' did not keep the chargers with open alerts",
    )
    again = open_chrome()
    open_viewer(again, viewer_stack, "#/fleet?site=" + alerts.site_id)
    wait_for_alerts(again, [a.alert_id for a in alerts.open])
    assert_no_console_errors(again)


def test_recently_resolved_alerts_show_on_request_and_the_url_keeps_them(
    viewer_stack: ViewerStack, open_chrome: Callable[..., WebDriver]
) -> None:
    alerts = seeded(viewer_stack)
    chrome = open_chrome()
    open_viewer(chrome, viewer_stack, "#/fleet")
    toggle = wait_for(chrome, "#alerts-resolved-toggle")
    wait_for(chrome, ALERT_ROWS)
    assert toggle.get_attribute("aria-expanded") == "false"
    assert chrome.find_element(By.ID, "alerts-resolved").get_attribute("hidden") is not None
    toggle.send_keys(Keys.ENTER)  # by keyboard
    resolved = alerts.resolved[0]
    wait_until(
        chrome,
        lambda d: resolved.alert_id in listed_alerts(d, "#alerts-resolved-table"),
        "the resolved alert was not listed",
    )
    assert toggle.get_attribute("aria-expanded") == "true"
    assert toggle.text == "Hide recently resolved"
    assert hash_params(chrome)["resolved"] == ["1"]
    row = chrome.find_element(By.CSS_SELECTOR, f'#alerts-resolved-table tr[data-alert-id="{resolved.alert_id}"]')
    text = row.text
    assert "Authorization failures" in text
    assert resolved.resolution in text
    assert resolved.resolved_at is not None
    assert resolved.resolved_at.strftime("%Y-%m-%d %H:%M:%S UTC") in text
    assert "opened in the last 24 h" in chrome.find_element(By.ID, "alerts-resolved-summary").text
    chrome.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    screenshot(chrome, "alerts")
    assert_no_console_errors(chrome)

    again = open_chrome()
    open_viewer(again, viewer_stack, "#/fleet?resolved=1")
    wait_until(
        again,
        lambda d: resolved.alert_id in listed_alerts(d, "#alerts-resolved-table"),
        "resolved=1 in the URL did not show the resolved alerts",
    )
    assert again.find_element(By.ID, "alerts-resolved-toggle").get_attribute("aria-expanded") == "true"
    assert_no_console_errors(again)


# --------------------------------------------------------------------------------------------- evidence, strip
def test_the_evidence_link_opens_the_timeline_with_the_evidence_highlighted_and_in_view(
    viewer_stack: ViewerStack, open_chrome: Callable[..., WebDriver]
) -> None:
    alerts = seeded(viewer_stack)
    faulted = next(a for a in alerts.open if a.kind == "connector_faulted")
    chrome = open_chrome()
    open_viewer(chrome, viewer_stack, "#/fleet")
    wait_for(chrome, f'#alerts-table tr[data-alert-id="{faulted.alert_id}"] a.evidence-link').click()
    wait_until(
        chrome, lambda d: sorted(evidence_rows(d)) == sorted(faulted.evidence), "the evidence was not highlighted"
    )
    selected = wait_for(chrome, "#timeline-rows tr.selected")
    assert selected.get_attribute("data-record-id") == faulted.evidence[0]
    assert "evidence" in selected.get_attribute("class").split()
    wait_until(chrome, lambda d: in_view(d, "#timeline-rows tr.selected"), "the first evidence record is not in view")
    for record_id in faulted.evidence:
        flags = chrome.find_element(By.CSS_SELECTOR, f'#timeline-rows tr[data-record-id="{record_id}"] td.flags')
        assert "evidence" in flags.text
    # The URL holds the alert, the range around its evidence (oldest first) and the selected record.
    params = hash_params(chrome)
    assert params["alert"] == [faulted.alert_id]
    assert params["record"] == [faulted.evidence[0]]
    assert params["order"] == ["asc"]
    assert params["from"][0] < faulted.evidence[0]  # a few minutes before the first evidence record
    assert "to" not in params  # an open alert: up to now
    bar = wait_for(chrome, "#timeline-evidence").text
    assert "Evidence: Connector faulted connector_faulted (connector 1, open)" in bar
    assert chrome.find_element(By.ID, "timeline-evidence-count").text.startswith("2 of 2 evidence records loaded")
    pressed = chrome.find_element(By.CSS_SELECTOR, f'#health-open-table button[data-alert-id="{faulted.alert_id}"]')
    assert pressed.get_attribute("aria-pressed") == "true"
    assert_no_console_errors(chrome)

    # Clear: no highlight, no alert in the URL; the range stays.
    chrome.find_element(By.ID, "timeline-evidence-clear").send_keys(Keys.ENTER)
    wait_until(chrome, lambda d: not evidence_rows(d), "Clear left the highlight")
    assert chrome.find_element(By.ID, "timeline-evidence").get_attribute("hidden") is not None
    assert "alert" not in hash_params(chrome)
    assert pressed.get_attribute("aria-pressed") == "false"

    # A deep link in a new tab: another alert's evidence, the range computed in the page.
    burst = next(a for a in alerts.open if a.kind == "error_burst")
    again = open_chrome()
    open_viewer(again, viewer_stack, f"#/chargers/{alerts.charger_id}?alert={burst.alert_id}")
    wait_until(again, lambda d: sorted(evidence_rows(d)) == sorted(burst.evidence), "the deep link's evidence")
    assert wait_for(again, "#timeline-rows tr.selected").get_attribute("data-record-id") == burst.evidence[0]
    wait_until(again, lambda d: in_view(d, "#timeline-rows tr.selected"), "the deep link's first record is not in view")
    assert_no_console_errors(again)


def test_the_charger_health_strip_shows_connectors_and_alerts_and_opens_resolved_evidence(
    viewer_stack: ViewerStack, chrome: WebDriver
) -> None:
    alerts = seeded(viewer_stack)
    health = viewer_stack.get(f"/chargers/{alerts.charger_id}/health")
    open_viewer(chrome, viewer_stack, f"#/chargers/{alerts.charger_id}")
    wait_for(chrome, "#health-connectors-table tbody tr")
    connectors = [
        [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
        for row in chrome.find_elements(By.CSS_SELECTOR, "#health-connectors-table tbody tr")
    ]
    assert [row[:2] for row in connectors] == [["1", "Faulted (GroundFailure)"], ["2", "Available"]]
    assert "ago" in connectors[0][2]
    assert "record" in connectors[0][2]  # a link to the record that reported it
    facts = chrome.find_element(By.ID, "health-facts").text
    assert re.match(r"Last record [\w ]+ ago \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\) · ", facts), facts
    assert "heartbeat every 5 min" in facts
    assert f"site {alerts.site_id}" in facts
    assert listed_alerts(chrome, "#health-open-table") == [a["alert_id"] for a in health["open_alerts"]]
    assert [a["alert_id"] for a in health["open_alerts"]] == [a.alert_id for a in alerts.open]
    assert chrome.find_element(By.ID, "health-count").text == "2 open alerts"
    # The timeline renders below it.
    wait_for(chrome, "#timeline-rows tr[data-record-id]")

    # Recently resolved: the charger's last ones, each with its evidence and the records that resolved it.
    resolved = alerts.resolved[0]
    summary = wait_for(chrome, "#health-resolved > summary")
    wait_until(chrome, lambda d: "(1)" in summary.text, "the resolved alerts were not counted")
    summary.click()
    button = wait_for(chrome, f'#health-resolved-table button[data-alert-id="{resolved.alert_id}"]')
    assert button.get_attribute("aria-pressed") == "false"
    button.send_keys(Keys.ENTER)
    every = [*resolved.evidence, *resolved.resolution_evidence]
    wait_until(chrome, lambda d: sorted(evidence_rows(d)) == sorted(every), "the resolved alert's evidence")
    assert button.get_attribute("aria-pressed") == "true"
    ended = chrome.find_element(By.CSS_SELECTOR, f'tr[data-record-id="{resolved.resolution_evidence[0]}"] td.flags')
    assert "resolved it" in ended.text
    params = hash_params(chrome)
    assert params["alert"] == [resolved.alert_id]
    assert "to" in params  # resolved: the range ends a little after it did
    assert wait_for(chrome, "#timeline-rows tr.selected").get_attribute("data-record-id") == resolved.evidence[0]
    wait_until(chrome, lambda d: in_view(d, "#timeline-rows tr.selected"), "the first evidence record is not in view")
    chrome.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    screenshot(chrome, "charger-health")  # the strip, the resolved alert's button pressed, the evidence bar
    chrome.execute_script(
        "const row = document.querySelector('#timeline-rows tr.selected');"
        "window.scrollTo(0, row.getBoundingClientRect().top + window.scrollY - 160)"
    )
    screenshot(chrome, "alert-evidence")  # its records highlighted, the first selected
    # Pressing it again clears the evidence.
    button.click()
    wait_until(chrome, lambda d: not evidence_rows(d), "pressing again did not clear the evidence")
    assert "alert" not in hash_params(chrome)
    assert_no_console_errors(chrome)

    # A charger without alerts says so: a good sign.
    quiet_one = next(
        c["charger_id"]
        for c in viewer_stack.get("/chargers")["chargers"]
        if c["vendor"] == "ocpplab" and not c["charger_id"].startswith("CP-")
    )
    open_viewer(chrome, viewer_stack, f"#/chargers/{quiet_one}")
    assert wait_for(chrome, "#health-open p.good").text.startswith("No open alerts: a good sign")
    assert_no_console_errors(chrome)


# ------------------------------------------------------------------------------------------------------ errors
FAIL_ALERTS = """
const real = window.fetch;
window.fetch = (input, init) => {
  const url = new URL(String(input), location.href);
  if (url.pathname.endsWith('/alerts') || url.pathname.endsWith('/health') && url.pathname.includes('/chargers/')) {
    const body = JSON.stringify({type: 'about:blank', title: 'Internal Server Error', status: 500,
                                 detail: 'The alerts table did not answer.'});
    return Promise.resolve(new Response(body, {status: 500, headers: {'content-type': 'application/problem+json'}}));
  }
  return real(input, init);
};
"""


def test_a_failing_alerts_api_leaves_one_line_and_the_pages_still_render(
    viewer_stack: ViewerStack, chrome: WebDriver
) -> None:
    alerts = seeded(viewer_stack)
    open_viewer(chrome, viewer_stack, "#/no-such-view")
    chrome.execute_script(FAIL_ALERTS)  # the page stays loaded: the shell routes the hashes below
    chrome.execute_script("location.hash = '#/fleet'")
    error = wait_for(chrome, "#fleet-alerts .panel-error")
    assert error.text == "Could not load the open alerts (500): The alerts table did not answer."
    assert error.get_attribute("role") == "alert"
    assert chrome.find_element(By.ID, "alerts-count").text == "?"
    rows = fleet_rows(chrome)
    assert alerts.charger_id in [row["id"] for row in rows]  # the fleet table renders all the same
    assert all(row["cells"][5] == "?" for row in rows)
    chrome.find_element(By.ID, "alerts-resolved-toggle").click()
    resolved_error = wait_for(chrome, "#alerts-resolved .panel-error")
    assert resolved_error.text == "Could not load the resolved alerts (500): The alerts table did not answer."

    chrome.execute_script("location.hash = arguments[0]", f"#/chargers/{alerts.charger_id}")
    health_error = wait_for(chrome, "#charger-health .panel-error")
    assert health_error.text == "Could not load the charger's health (500): The alerts table did not answer."
    wait_for(chrome, "#timeline-rows tr[data-record-id]")  # the timeline renders all the same
    assert_no_console_errors(chrome)

    # A real refusal (404: a charger chargelog has no record of): one line in the strip, the page goes on.
    chrome.get("about:blank")  # a fresh page: no stand-in fetch
    open_viewer(chrome, viewer_stack, "#/chargers/NO-SUCH-CHARGER")
    health_error = wait_for(chrome, "#charger-health .panel-error")
    assert health_error.text.startswith("Could not load the charger's health (404): ")
    assert "\n" not in health_error.text
    wait_until(chrome, lambda d: "0 records loaded" in d.find_element(By.ID, "timeline-status").text, "no timeline")
    assert_no_console_errors(chrome, expected=[r"/chargers/NO-SUCH-CHARGER/health - Failed to load resource: .* 404"])


def test_the_alert_panels_fit_a_phone(viewer_stack: ViewerStack, phone_chrome: WebDriver) -> None:
    alerts = seeded(viewer_stack)
    faulted = next(a for a in alerts.open if a.kind == "connector_faulted")
    for route, ready in (
        ("#/fleet?resolved=1", "#alerts-resolved-table tbody tr"),
        (f"#/chargers/{alerts.charger_id}?alert={faulted.alert_id}", EVIDENCE_ROWS),
    ):
        open_viewer(phone_chrome, viewer_stack, route)
        wait_for(phone_chrome, ready)
        wait_for(phone_chrome, "#health-open-table" if "chargers" in route else ALERT_ROWS)
        assert phone_chrome.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), (
            f"{route} is wider than the phone"
        )
    assert_no_console_errors(phone_chrome)


# Open alerts as a fleet with more than the panel reads at once: 200 on the first read, with a cursor, and one more
# after it (the API's own answers, each copied with another id).
MANY_ALERTS = """
const real = window.fetch;
window.fetch = async (input, init) => {
  const url = new URL(String(input), location.href);
  if (!url.pathname.endsWith('/alerts') || url.searchParams.get('state') !== 'open') return real(input, init);
  const plain = new URL(url);
  plain.searchParams.delete('cursor');  // the API's own first page (it would refuse the stand-in cursor)
  const base = (await (await real(plain, init)).json()).alerts[0];
  const copy = (n) => ({...base, alert_id: 'alert_' + n.toString(16).padStart(24, '0')});
  const body = url.searchParams.get('cursor') === 'more'
    ? {alerts: [copy(1000)], next_cursor: null}
    : {alerts: Array.from({length: Number(url.searchParams.get('limit'))}, (_, n) => copy(n)), next_cursor: 'more'};
  return new Response(JSON.stringify(body), {status: 200, headers: {'content-type': 'application/json'}});
};
"""


def test_more_open_alerts_than_the_panel_reads_at_once_are_read_on_request(
    viewer_stack: ViewerStack, chrome: WebDriver
) -> None:
    open_viewer(chrome, viewer_stack, "#/no-such-view")
    chrome.execute_script(MANY_ALERTS)
    chrome.execute_script("location.hash = '#/fleet'")
    wait_until(chrome, lambda d: len(listed_alerts(d)) == 200, "the panel did not list 200 alerts")
    assert chrome.find_element(By.ID, "alerts-count").text == "200+"
    assert chrome.find_element(By.ID, "alerts-summary").text.startswith("The newest 200 open alerts; more are open")
    more = wait_for(chrome, "#alerts-more")
    more.send_keys(Keys.ENTER)
    wait_until(chrome, lambda d: len(listed_alerts(d)) == 201, "More… did not read the next alerts")
    assert chrome.find_element(By.ID, "alerts-count").text == "201"
    assert not more.is_displayed()
    # The panel's table scrolls inside its box: the fleet table stays within reach below it.
    box = chrome.execute_script(
        "const w = document.querySelector('#alerts-open .table-wrap'); return [w.clientHeight, w.scrollHeight]"
    )
    assert box[0] < box[1]
    assert_no_console_errors(chrome)


def test_evidence_named_by_bare_record_ids_is_found_too(viewer_stack: ViewerStack, chrome: WebDriver) -> None:
    """Evidence ids without the time ("<vendor>:h:..." as LogRecord.record_id has them, not the API's
    "<time>~<record id>"): matched by their record id part, in a range from the alert's own times."""
    from datetime import datetime

    from chargelog.dal.alerts import AlertStore
    from chargelog.models.alerts import Alert, alert_id_for

    other = seeded(viewer_stack).other
    records = viewer_stack.get(f"/chargers/{other.charger_id}/logs", order="desc", limit=20)["records"]
    assert len(records) >= 6, "the other vendor's charger has too few records"
    picked = sorted(records[2:5], key=lambda r: r["id"])  # oldest first
    bare = [record["id"].partition("~")[2] for record in picked]
    alert = Alert(
        alert_id=alert_id_for(other.vendor, other.source_id, other.charger_id, "error_burst", None, bare[0]),
        kind="error_burst",
        state="open",
        charger_id=other.charger_id,
        vendor=other.vendor,
        source_id=other.source_id,
        site_id=other.site_id,
        opened_at=datetime.fromisoformat(picked[-1]["timestamp"]),
        summary="3 errors within 10 min (bare record ids)",
        evidence=bare,
    )
    store = AlertStore(viewer_stack.refs["Table"], alert_retention_days=400)
    assert store.open(alert)
    try:
        open_viewer(chrome, viewer_stack, f"#/chargers/{other.charger_id}?alert={alert.alert_id}")
        wait_until(
            chrome,
            lambda d: sorted(evidence_rows(d)) == sorted(record["id"] for record in picked),
            "the bare ids' records were not highlighted",
        )
        assert wait_for(chrome, "#timeline-rows tr.selected").get_attribute("data-record-id") == picked[0]["id"]
        assert chrome.find_element(By.ID, "timeline-evidence-count").text.startswith("3 of 3 evidence records")
        assert hash_params(chrome)["from"][0] < picked[0]["id"]
        assert_no_console_errors(chrome)
    finally:
        store.resolve(alert.alert_id, alert.opened_at, "test over")
