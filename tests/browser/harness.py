"""The browser tests' harness: the local stack in this process with collected data, a real Chromium driven by
Selenium, and the helpers every view's tests use.

- `ViewerStack`: `chargelog local` (`LocalRunner`) on 127.0.0.1 after one collection pass over the four vendor
  simulators (chargers, records, connector status and transactions exist), with `seed_charger_records` to write
  many records for one charger fast (through the worker's `RecordWriter`, into moto), and charger health alerts
  (`seed_alerts`, `ViewerStack.alerts`): a charger of seeded records with two open alerts, one resolved alert and a
  health state, and an open alert on a simulator charger of another vendor, each alert's evidence records that exist.
- `chrome`: Debian's chromium through its chromium-driver (never Selenium Manager, which would download one),
  headless, 1280x800, with the browser console kept for `assert_no_console_errors`.
- `open_viewer` gives the API key through the page's own key form (never in a URL); `wait_for` waits for a
  selector; `screenshot` writes docs/screenshots/<name>.png when CHARGELOG_SCREENSHOTS=1.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from chargelog import aws
from chargelog.models.alerts import Alert, alert_id_for
from chargelog.settings import get_settings
from chargelog_local.runner import LocalOptions, LocalRunner
from simulated_records import ocpp_records

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS_DIR = REPO_ROOT / "docs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
API_KEY = "browser-test-key-0123456789"
VENDORS = ("plugchoice", "ocpplab", "chargepilot", "evenergy")
DATA_WITHIN_SECONDS = 300  # each source's first job: 1 to 2 minutes in all on a busy 2-core machine
WAIT_SECONDS = 15
WINDOW = (1280, 800)
PHONE_WINDOW = (390, 844)  # a phone's CSS pixels (iPhone 12 to 15)
SEED_BATCH = 1000
SECONDS_PER_SEEDED_RECORD = 10  # the seeded traffic has a frame every 8 s or so: a span that surely holds them all
# The key form app.js shows (askForKey).
KEY_INPUT = "#api-key"
KEY_FORM = "form.key-form"
# Chromium asks every origin for /favicon.ico unless the page names an icon; the API has no such route (Swagger UI's
# page at /docs, from Powertools, and a JSON answer opened in a tab name none), so that one 404 is not an error of
# the page's. Anything else that fails to load is.
FAVICON_NOT_FOUND = re.compile(r"/favicon\.ico - Failed to load resource: the server responded with a status of 404")


# --------------------------------------------------------------------------------------------- the local stack
@dataclass
class SeededCharger:
    charger_id: str
    count: int
    first: datetime
    last: datetime


@dataclass
class SeededAlerts:
    """The alerts `seed_alerts` wrote: ``charger_id`` (at ``site_id``) has ``open`` (connector_faulted on connector 1,
    error_burst) and ``resolved`` (authorization_failures, opened and resolved within the last day) and a health state;
    ``other`` is an open alert on a simulator charger of another vendor."""

    charger_id: str
    site_id: str
    open: list[Alert]
    resolved: list[Alert]
    other: Alert
    health_state: dict[str, Any]


@dataclass
class ViewerStack:
    """The local stack the browser talks to: the API (and the viewer at /ui/) and the upload API on 127.0.0.1."""

    runner: LocalRunner
    api_key: str
    refs: dict[str, str] = field(default_factory=dict)  # the template's resources in moto, by logical id
    alerts: SeededAlerts | None = None  # what seed_alerts wrote (start_viewer_stack seeds them)

    @property
    def api_url(self) -> str:
        return self.runner.api_url

    @property
    def upload_url(self) -> str:
        return self.runner.upload_url

    @property
    def viewer_url(self) -> str:
        return f"{self.api_url}/ui/"

    def get(self, path: str, **params: Any) -> Any:
        """GET an API route with the key (for tests that compare the page with what the API says)."""
        response = httpx.get(f"{self.api_url}{path}", params=params, headers={"x-api-key": self.api_key}, timeout=60)
        response.raise_for_status()
        return response.json()

    def seed_charger_records(
        self,
        charger_id: str,
        count: int,
        *,
        start: datetime | None = None,
        site_id: str | None = None,
        seed: int = 15,
    ) -> SeededCharger:
        """Write ``count`` records of realistic OCPP 1.6 traffic (sessions, meter values, status notifications, CSMS
        calls, some CALLERRORs; every CALL answered) for one ocpplab charger, through the worker's RecordWriter, in
        batches: 20,000 take well under a minute. Without ``start`` the records end before now, the newest of them
        within hours; with it, they follow each other from then on (into the future if there are many)."""
        from chargelog.dal.archive import RawArchive
        from chargelog.dal.records import RecordWriter
        from chargelog_simulators.traffic import Density, iter_traffic

        density = Density(session_gap_seconds=1800, meter_interval_seconds=15)  # a busy DC charger: ~8 s a frame
        end = datetime.now(UTC) if start is None else start + timedelta(days=365)
        begin = start or end - timedelta(seconds=SECONDS_PER_SEEDED_RECORD * count)
        frames = itertools.islice(iter_traffic(charger_id, begin, end, random.Random(seed), 2, density), count)  # noqa: S311 (test data)
        writer = RecordWriter(self.refs["Table"], RawArchive(self.refs["RawBucket"]), hot_retention_days=3650)
        written = 0
        first: datetime | None = None
        last = begin
        for batch in itertools.batched(ocpp_records(charger_id, frames, site_id), SEED_BATCH, strict=False):
            writer.write(list(batch))
            written += len(batch)
            first = first or batch[0].timestamp
            last = batch[-1].timestamp
        return SeededCharger(charger_id, written, first or begin, last)

    def charger_records(self, charger_id: str) -> list[dict[str, Any]]:
        """Every record of a charger as the API lists them, oldest first."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"order": "asc", "limit": 500, **({"cursor": cursor} if cursor else {})}
            page = self.get(f"/chargers/{charger_id}/logs", **params)
            found.extend(page["records"])
            cursor = page.get("next_cursor")
            if not cursor:
                return found


ALERTS_CHARGER = "CP-ALERTS-01"
ALERTS_SITE = "SITE-ALERTS"
ALERTS_RECORDS = 600  # about 80 minutes of seeded traffic, ending now


def _at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["timestamp"])


def _alert(
    record: dict[str, Any], kind: str, connector_id: int | None, evidence: list[dict[str, Any]], summary: str
) -> Alert:
    """An open alert whose evidence is these records (API ids: "<time>~<record id>"), opened at the last one."""
    return Alert(
        alert_id=alert_id_for(
            record["vendor"], record["source_id"], record["charger_id"], kind, connector_id, evidence[0]["id"]
        ),
        kind=kind,
        state="open",
        charger_id=record["charger_id"],
        vendor=record["vendor"],
        source_id=record["source_id"],
        site_id=record.get("site_id"),
        connector_id=connector_id,
        opened_at=_at(evidence[-1]),
        summary=summary,
        evidence=[one["id"] for one in evidence],
    )


def seed_alerts(stack: ViewerStack) -> SeededAlerts:
    """Alerts and a health state as the detectors would write them (`AlertStore.open` / `resolve`,
    `HealthStore.put`), on records that exist: ``ALERTS_CHARGER``'s seeded records and a simulator charger's."""
    from chargelog.dal.alerts import AlertStore, HealthStore

    stack.seed_charger_records(ALERTS_CHARGER, ALERTS_RECORDS, site_id=ALERTS_SITE, seed=407)
    records = stack.charger_records(ALERTS_CHARGER)
    statuses = [r for r in records if r.get("action") == "StatusNotification" and r.get("message_type") == "CALL"]
    on_one = [r for r in statuses if r.get("connector_id") == 1]
    on_two = [r for r in statuses if r.get("connector_id") == 2]
    errors = [r for r in records if r.get("message_type") == "CALLERROR"]
    calls = [r for r in records if r.get("message_type") == "CALL"]
    assert len(on_one) >= 4, "the seeded traffic has too few status notifications on connector 1"
    assert on_two, "the seeded traffic has no status notification on connector 2"
    assert len(calls) > 40, "the seeded traffic has too few CALLs"
    middle = len(on_one) // 2
    faulted = on_one[middle : middle + 2]
    # The burst: CALLERRORs where the traffic has them, otherwise CALLs late in the span.
    burst = (errors if len(errors) >= 2 else calls[-12:-7])[-5:]
    refused = calls[len(calls) // 4 : len(calls) // 4 + 3]
    accepted = calls[len(calls) // 4 + 6]

    connector_faulted = _alert(
        faulted[0],
        "connector_faulted",
        1,
        faulted,
        f"Connector 1 Faulted (GroundFailure) since {_at(faulted[0]):%H:%M} UTC",
    )
    error_burst = _alert(burst[0], "error_burst", None, burst, f"{len(burst)} CALLERRORs within 10 min")
    authorization = _alert(refused[0], "authorization_failures", None, refused, "3 id tags refused within 15 min")
    other_charger = next(
        charger
        for charger in sorted(stack.get("/chargers")["chargers"], key=lambda c: (not c.get("site_id"), c["charger_id"]))
        if charger["vendor"] != "ocpplab" and stack.get(f"/chargers/{charger['charger_id']}/logs", limit=1)["records"]
    )
    latest = stack.get(f"/chargers/{other_charger['charger_id']}/logs", order="desc", limit=1)["records"]
    offline = _alert(
        latest[0], "offline", None, latest, f"No record since {_at(latest[0]):%H:%M} UTC (3 heartbeats missed)"
    )

    alerts = AlertStore(stack.refs["Table"], alert_retention_days=400)
    for alert in (authorization, connector_faulted, error_burst, offline):
        assert alerts.open(alert), f"{alert.alert_id} was open already"
    resolved = alerts.resolve(
        authorization.alert_id, _at(accepted), f"An id tag was accepted at {_at(accepted):%H:%M} UTC", [accepted["id"]]
    )
    assert resolved is not None
    state = {
        "connectors": {
            "1": {
                "status": "Faulted",
                "error_code": "GroundFailure",
                "at": faulted[0]["timestamp"],
                "record_id": faulted[0]["id"],
            },
            "2": {"status": "Available", "at": on_two[-1]["timestamp"], "record_id": on_two[-1]["id"]},
        },
        "heartbeat_interval_seconds": 300,
        "open_alerts": {"connector_faulted#1": connector_faulted.alert_id, "error_burst": error_burst.alert_id},
    }
    written = HealthStore(stack.refs["Table"]).put(
        "ocpplab", ALERTS_CHARGER, ALERTS_CHARGER, ALERTS_SITE, json.dumps(state), expected_version=None
    )
    assert written == 1
    return SeededAlerts(
        charger_id=ALERTS_CHARGER,
        site_id=ALERTS_SITE,
        open=sorted([connector_faulted, error_burst], key=lambda a: a.opened_at, reverse=True),
        resolved=[resolved],
        other=offline,
        health_state=state,
    )


@dataclass
class _Restore:
    environ: dict[str, str]


def start_viewer_stack() -> tuple[ViewerStack, _Restore]:
    """`chargelog local` in this process, on free 127.0.0.1 ports, its schedules fired once (at the start: the
    first pass discovers the simulators' fleets, registers and collects them) and then not for an hour, so the
    data stays as the tests left it. Returns once every vendor's chargers are listed and every source's first
    job has finished."""
    restore = _Restore(dict(os.environ))
    # As `chargelog local` does: no line per HTTP request of moto's and the API's servers.
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CHARGELOG_"))}
    options = LocalOptions(
        port=0,
        schedule_seconds=3600,
        discover_sources=True,
        stack_name="chargelog-browser",
        api_key=API_KEY,
        environ=environ,
    )
    runner = LocalRunner(options)
    try:
        runner.start()
        assert runner.api_url.startswith("http://127.0.0.1:"), runner.api_url
        assert runner.stack is not None
        stack = ViewerStack(runner, runner.api_key, dict(runner.stack.refs))
        _wait_for_first_pass(stack)
        stack.alerts = seed_alerts(stack)
    except BaseException:
        stop_viewer_stack(runner, restore)
        raise
    return stack, restore


def _wait_for_first_pass(stack: ViewerStack) -> None:
    deadline = time.monotonic() + DATA_WITHIN_SECONDS
    state = "nothing yet"
    while time.monotonic() < deadline:
        vendors = {charger["vendor"] for charger in stack.get("/chargers")["chargers"]}
        collectors = stack.get("/collectors")["collectors"]
        finished = [c for c in collectors if c.get("last_run_at") and not c.get("running")]
        state = f"vendors {sorted(vendors)}, {len(finished)} of {len(collectors)} sources collected"
        if vendors >= set(VENDORS) and collectors and len(finished) == len(collectors):
            return
        time.sleep(1)
    raise AssertionError(f"the local stack's first collection pass did not finish in {DATA_WITHIN_SECONDS} s: {state}")


def stop_viewer_stack(runner: LocalRunner, restore: _Restore) -> None:
    """Stop the stack and put the process's environment back (the runner points AWS_* at its moto server)."""
    runner.stop()
    os.environ.clear()
    os.environ.update(restore.environ)
    aws.reset()
    get_settings.cache_clear()


# --------------------------------------------------------------------------------------------- the browser
def chrome_options(window: tuple[int, int] = WINDOW) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={window[0]},{window[1]}",
    ):
        options.add_argument(flag)
    # The console (`assert_no_console_errors`) and the network requests (`visited_urls`).
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return options


def start_chrome(window: tuple[int, int] = WINDOW) -> tuple[WebDriver, Path]:
    """Chromium with a fresh profile (no storage carried over); the caller quits it and removes the profile."""
    if not CHROMEDRIVER.exists():
        raise RuntimeError(f"{CHROMEDRIVER} is missing: `make browser-deps` installs chromium and chromium-driver")
    profile = Path(tempfile.mkdtemp(prefix="chargelog-chromium-"))
    options = chrome_options(window)
    options.add_argument(f"--user-data-dir={profile}")
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    # --window-size sets the outer window in headless mode too; make the viewport itself the size asked for.
    driver.set_window_size(*window)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(2 * window[0] - inner[0], 2 * window[1] - inner[1])
    return driver, profile


def stop_chrome(driver: WebDriver, profile: Path) -> None:
    _REQUESTED.pop(driver.session_id or "", None)
    try:
        driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def console_entries(driver: WebDriver) -> list[dict[str, Any]]:
    """The console lines logged since the last call (chromedriver hands each line out once)."""
    return list(driver.get_log("browser"))


def assert_no_console_errors(driver: WebDriver, expected: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Fail on any SEVERE console line since the last call: an uncaught error, a failed load (a 404 module, a
    refused CSP load) or a console.error. ``expected``: regular expressions of lines a test provokes on purpose
    (e.g. the 403 of a wrong key), each of which must then have been logged. Returns the lines read."""
    entries = console_entries(driver)
    patterns = [re.compile(pattern) for pattern in expected]
    severe = [
        entry
        for entry in entries
        if entry.get("level") == "SEVERE" and not FAVICON_NOT_FOUND.search(entry.get("message", ""))
    ]
    unexpected = [entry for entry in severe if not any(p.search(entry.get("message", "")) for p in patterns)]
    assert not unexpected, "console errors:\n" + "\n".join(entry["message"] for entry in unexpected)
    missing = [p.pattern for p in patterns if not any(p.search(entry.get("message", "")) for entry in severe)]
    assert not missing, f"expected console errors not logged: {missing}"
    return entries


def wait_for(driver: WebDriver, selector: str, timeout: float = WAIT_SECONDS, visible: bool = True) -> WebElement:
    """The first element matching the CSS selector, once it is there (and shown, unless ``visible`` is False)."""
    condition = (
        expected_conditions.visibility_of_element_located
        if visible
        else expected_conditions.presence_of_element_located
    )
    return WebDriverWait(driver, timeout).until(condition((By.CSS_SELECTOR, selector)), f"no {selector!r}")


def wait_until(driver: WebDriver, predicate: Any, message: str, timeout: float = WAIT_SECONDS) -> Any:
    """Wait for predicate(driver) to be truthy; returns its value."""
    return WebDriverWait(driver, timeout).until(predicate, message)


def give_key(driver: WebDriver, key: str) -> None:
    """Type the key into the page's key form and submit it, as a person does."""
    field = wait_for(driver, KEY_INPUT)
    field.clear()
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, f"{KEY_FORM} button[type=submit]").click()


def open_viewer(driver: WebDriver, stack: ViewerStack, hash_route: str = "", key: str | None = None) -> None:
    """Open the viewer at a route (``"#/fleet"``, ``"#/chargers/CP-1?action=Heartbeat"``, or "" for its start) and
    give the key through the page's form when it asks (a new tab always does: sessionStorage is per tab). The key
    never goes into the URL. Returns once the key form is gone."""
    driver.get(stack.viewer_url + hash_route)
    wait_until(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, KEY_INPUT) or not _main_loading(d),
        "the viewer did not start",
    )
    if driver.find_elements(By.CSS_SELECTOR, KEY_INPUT):
        give_key(driver, key or stack.api_key)
        wait_for_key_accepted(driver)


def wait_for_key_accepted(driver: WebDriver, timeout: float = WAIT_SECONDS) -> None:
    """Wait until the key form is gone (the page checked the key and went on); failing, say what the page shows."""
    try:
        WebDriverWait(driver, timeout).until(lambda d: not d.find_elements(By.CSS_SELECTOR, KEY_INPUT))
    except TimeoutException:
        shown = driver.find_element(By.CSS_SELECTOR, "#main").text
        raise AssertionError(f"the key form stayed; the page shows: {shown!r}") from None


def _main_loading(driver: WebDriver) -> bool:
    return bool(driver.execute_script("return document.querySelector('#main')?.textContent.trim() === 'Loading…'"))


def screenshot(driver: WebDriver, name: str) -> Path | None:
    """docs/screenshots/<name>.png of the page as it is, when CHARGELOG_SCREENSHOTS=1 (the README's pictures are
    these; `CHARGELOG_SCREENSHOTS=1 make test ARGS="-m browser"` takes them again). Otherwise nothing."""
    if os.environ.get("CHARGELOG_SCREENSHOTS") != "1":
        return None
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS_DIR / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"could not write {path}"
    return path


_REQUESTED: dict[str, list[str]] = {}  # driver session -> every URL its requests went to, in order


def visited_urls(driver: WebDriver) -> list[str]:
    """Every URL the browser has requested since it started, in any tab (chromedriver's performance log: each
    request's Network.requestWillBeSent; not capped like the page's resource timing buffer), and the page's own
    address and history: for checks that a secret never went into one."""
    requested = _REQUESTED.setdefault(driver.session_id or "", [])
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    # Only what went over the network (http:, https:); chrome:// pages of the browser's own are not the page's.
    return [driver.current_url, *(url for url in requested if url.startswith(("http:", "https:")))]
