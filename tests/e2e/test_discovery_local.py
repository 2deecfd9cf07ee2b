"""`chargelog local` exactly as `make run` starts it: the first scheduled pass discovers the four simulators' fleets,
registers them and collects them, so the API shows real-looking data within a minute without any manual step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
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


# ---------------------------------------------------------------------------------- no secret in any line it prints
# Last in this module: it stops the stack, to check everything it printed up to its exit.

BANNER_FIRST, BANNER_LAST = "chargelog local stack is running.", "Ctrl-C stops everything."
CREDENTIAL_KEYS = ("token", "api_key", "api_secret", "client_secret")  # in each vendor's secret
PRINTED = (
    "chargelog_local.api INFO GET /chargers/",  # the API gateway's request lines
    "chargelog_local.api INFO POST /diagnostics/requests",
    "chargelog_local.uploads INFO PUT s3://",  # the upload API's, allowed and denied
    "chargelog_local.uploads INFO PUT /u/{charger_id}/{token}/{filename} -> denied",
    "httpx INFO HTTP Request: POST http://127.0.0.1:",  # the vendor calls (ev.energy's token request among them)
    '"message":"Upload allowed"',  # the functions' JSON lines
    '"message":"Export done"',
    '"message":"Job finished"',
)


def _secrets_of_the_run(stack: RunningStack) -> dict[str, str]:
    """What must never be printed: the API key, each vendor's credentials and the cursor and upload token keys, as
    the stack holds them in its (moto) Secrets Manager. Read before the stack stops, from the banner's exports."""
    exports = stack.exports()
    client = boto3.client(
        "secretsmanager",
        endpoint_url=exports["AWS_ENDPOINT_URL"],
        region_name=exports["AWS_DEFAULT_REGION"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def secret(secret_id: str) -> str:
        return str(client.get_secret_value(SecretId=secret_id)["SecretString"])

    found = {"API key": stack.api_key}
    for vendor in VENDORS:
        credentials = json.loads(secret(exports["CHARGELOG_VENDOR_SECRET_PREFIX"] + vendor))
        found |= {f"{vendor} {key}": credentials[key] for key in CREDENTIAL_KEYS if credentials.get(key)}
    found["cursor key"] = secret(exports["CHARGELOG_CURSOR_SECRET"])
    found["upload token key"] = secret(exports["CHARGELOG_UPLOAD_TOKEN_SECRET"])
    # The simulators' credentials: plugchoice's and ocpplab's tokens, chargepilot's key and secret, ev.energy's.
    assert {"plugchoice token", "ocpplab token", "chargepilot api_secret", "evenergy client_secret"} <= found.keys()
    return found


def _wait_until_every_source_collected(stack: RunningStack) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 2 * DATA_WITHIN_SECONDS
    while True:
        rows = _get(stack, "/collectors")["collectors"]
        if {row["vendor"] for row in rows} >= set(VENDORS) and all(
            row["last_success_at"] for row in rows if row["enabled"]
        ):
            return list(rows)
        assert time.monotonic() < deadline, [(r["vendor"], r["source_id"], r["status"], r["last_error"]) for r in rows]
        time.sleep(1)


def _upload(stack: RunningStack) -> str:
    """A diagnostics request and a file uploaded to its address (and one to a wrong token); the upload secret."""
    created = httpx.post(
        f"{stack.url}/diagnostics/requests",
        json={"charger_id": "CP-RIV-01", "log_type": "DiagnosticsLog"},
        headers=HEADERS,
        timeout=30,
    )
    assert created.status_code in (200, 201), created.text
    location = created.json()["remote_location"]
    uploaded = httpx.put(f"{location}diagnostics.log", content=b"INFO ok\n" * 100, timeout=30)
    assert uploaded.status_code == 200, uploaded.text
    token = location.rstrip("/").rsplit("/", 1)[1]  # {request id}.{secret}
    wrong = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    assert httpx.put(f"{location.replace(token, wrong)}x.log", content=b"x", timeout=30).status_code == 403
    request_id = created.json()["request_id"]
    deadline = time.monotonic() + 60
    while not _get(stack, f"/diagnostics/{request_id}")["files"]:
        assert time.monotonic() < deadline, "the upload was never indexed"
        time.sleep(0.5)
    return str(token.split(".", 1)[1])


def _query_and_export(stack: RunningStack) -> None:
    """Pages of a charger's logs (cursors signed with the cursor key), the fleet, and an export to its end."""
    chargers = _get(stack, "/chargers")["chargers"]
    charger_id = next(c["charger_id"] for c in chargers if c["vendor"] == "ocpplab")
    page = _get(stack, f"/chargers/{charger_id}/logs", limit=5)
    assert page["next_cursor"], page
    _get(stack, f"/chargers/{charger_id}/logs", limit=5, cursor=page["next_cursor"])
    _get(stack, "/logs", action="BootNotification")
    _get(stack, "/sources")
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(days=1)).isoformat(), "to": now.isoformat()}
    created = httpx.post(f"{stack.url}/exports", json={"charger_id": charger_id, **window}, headers=HEADERS, timeout=30)
    assert created.status_code == 202, created.text
    deadline = time.monotonic() + 60
    while (export := _get(stack, f"/exports/{created.json()['id']}"))["state"] != "done":
        assert export["state"] in ("queued", "running"), export
        assert time.monotonic() < deadline, export
        time.sleep(0.5)
    assert httpx.get(f"{stack.url}/chargers", headers={"x-api-key": "not-the-key"}).status_code == 403


def test_no_line_of_a_full_run_holds_a_key_credential_or_upload_token(default_stack: RunningStack) -> None:
    rows = _wait_until_every_source_collected(default_stack)
    upload_secret = _upload(default_stack)
    _query_and_export(default_stack)
    env = {**os.environ, "CHARGELOG_API_URL": default_stack.url, "CHARGELOG_API_KEY": API_KEY}
    health = subprocess.run(
        [*chargelog_command(), "collectors"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert health.returncode in (0, 3), health.stderr
    said = [line for line in health.stdout.splitlines() if line.partition(" ")[0] in VENDORS]
    assert len(said) == len(rows)
    assert all(" behind" in line for line in said), health.stdout
    forbidden = _secrets_of_the_run(default_stack) | {"upload secret": upload_secret}

    default_stack.process.send_signal(signal.SIGINT)  # Ctrl-C, and everything it prints while stopping
    assert default_stack.process.wait(30) == 0
    time.sleep(0.5)  # the reader thread takes the last lines

    lines = list(default_stack.lines)
    assert "chargelog local: stopped." in lines
    first, last = lines.index(BANNER_FIRST), lines.index(BANNER_LAST)
    checked = lines[:first] + lines[last + 1 :]
    # The lines where a secret would show are there: the gateways' request lines, the vendor calls, the functions'.
    for expected in PRINTED:
        assert any(expected in line for line in checked), f"no line with {expected!r}:\n" + "\n".join(checked[-50:])
    leaks = [
        f"{what} in line {number}: {line[:300]}"
        for number, line in enumerate(checked)
        for what, value in forbidden.items()
        if value in line
    ]
    assert not leaks, f"{len(leaks)} lines give away a secret:\n" + "\n".join(leaks[:20])
    # The banner shows the operator the API key on purpose, and nothing else of these.
    banner = "\n".join(lines[first : last + 1])
    assert [what for what, value in forbidden.items() if value in banner] == ["API key"]
