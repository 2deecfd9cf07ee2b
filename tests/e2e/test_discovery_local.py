"""`chargelog local` exactly as `make run` starts it: the first scheduled pass discovers the four simulators' fleets,
registers them and collects them, so the API shows real-looking data within a minute without any manual step."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import API_KEY, RunningStack, chargelog_command, running_local_stack

pytestmark = pytest.mark.e2e

DATA_WITHIN_SECONDS = 60
VENDORS = ("plugchoice", "ocpplab", "chargepilot", "evenergy")
HEADERS = {"x-api-key": API_KEY}


@pytest.fixture(scope="module")
def default_stack() -> Iterator[RunningStack]:
    """`chargelog local` with its defaults (the schedule every 60 s, the first pass at start, discovery on)."""
    with running_local_stack(None) as stack:
        yield stack


def _get(stack: RunningStack, path: str, **params: Any) -> Any:
    response = httpx.get(f"{stack.url}{path}", params=params, headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_simulated_fleet_shows_within_a_minute_without_any_manual_step(default_stack: RunningStack) -> None:
    started = time.monotonic()
    deadline = started + DATA_WITHIN_SECONDS
    vendors_listed: set[str] = set()
    with_logs: dict[str, str] = {}
    while time.monotonic() < deadline and not (vendors_listed >= set(VENDORS) and len(with_logs) == 3):
        chargers = _get(default_stack, "/chargers")["chargers"]
        vendors_listed = {charger["vendor"] for charger in chargers}
        for charger in chargers:
            vendor = charger["vendor"]
            if vendor in ("plugchoice", "chargepilot", "evenergy") and vendor not in with_logs:
                records = _get(default_stack, f"/chargers/{charger['charger_id']}/logs", limit=5)
                if records["records"]:
                    with_logs[vendor] = charger["charger_id"]
        time.sleep(1)
    assert vendors_listed >= set(VENDORS), f"after {time.monotonic() - started:.0f} s: {sorted(vendors_listed)}"
    assert set(with_logs) == {"plugchoice", "chargepilot", "evenergy"}, with_logs
    sources = _get(default_stack, "/sources")["sources"]
    kinds = {(source["vendor"], source["kind"]) for source in sources}
    assert kinds == {("plugchoice", "charger"), ("ocpplab", "charger"), ("chargepilot", "site"), ("evenergy", "evse")}
    assert all(source["enabled"] for source in sources)
    assert len(sources) == 3 + 4 + 2 + 3  # the simulators' fleets: chargers, sites, EVSEs


def test_discovery_over_the_api_and_cli_keeps_what_a_user_set(default_stack: RunningStack) -> None:
    url = f"{default_stack.url}/sources"
    httpx.post(url, json={"vendor": "ocpplab", "source_id": "dep-8b14e5d0"}, headers=HEADERS)  # 409 when discovered
    disabled = httpx.patch(f"{url}/ocpplab/dep-8b14e5d0", json={"enabled": False, "name": "Mine"}, headers=HEADERS)
    assert disabled.status_code == 200, disabled.text
    response = httpx.post(f"{url}/discover", json={"vendor": "ocpplab"}, headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["registered"] == 0
    mine = next(s for s in result["sources"] if s["source_id"] == "dep-8b14e5d0")
    assert (mine["registered"], mine["known"], mine["enabled"]) == (False, True, False)
    assert mine["details"] == {"identity": "OCPPLAB-NORTH-02"}
    stored = next(s for s in _get(default_stack, "/sources", vendor="ocpplab")["sources"] if s["name"] == "Mine")
    assert stored["enabled"] is False
    env = {**os.environ, "CHARGELOG_API_URL": default_stack.url, "CHARGELOG_API_KEY": API_KEY}
    table = subprocess.run(
        [*chargelog_command(), "sources", "discover", "chargepilot", "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["SOURCE_ID", "KIND", "NAME", "DETAILS", "STATUS"]
    assert "site-2f7a91" in table.stdout
    assert "known, enabled" in table.stdout
    assert table.stdout.rstrip().endswith("2 found; dry run, nothing registered.")
    refused = httpx.post(f"{url}/discover", json={"vendor": "nope"}, headers=HEADERS)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    unauthorised = httpx.post(f"{url}/discover", json={"vendor": "ocpplab"})
    assert unauthorised.status_code == 403
