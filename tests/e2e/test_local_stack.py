"""Starts `chargelog local` as a subprocess and talks HTTP to it, as a newcomer would with curl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from conftest import API_KEY, RunningStack, chargelog_command

pytestmark = pytest.mark.e2e


def test_health_answers_without_a_key(local_stack: RunningStack) -> None:
    response = httpx.get(f"{local_stack.url}/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_add_list_remove_a_source_over_http(local_stack: RunningStack) -> None:
    headers = {"x-api-key": API_KEY}
    created = httpx.post(
        f"{local_stack.url}/sources",
        json={"vendor": "ocpplab", "source_id": "dep-e2e", "name": "E2E charger"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    listed = httpx.get(f"{local_stack.url}/sources", headers=headers).json()["sources"]
    assert ("ocpplab", "dep-e2e", "E2E charger") in [(s["vendor"], s["source_id"], s["name"]) for s in listed]
    assert httpx.delete(f"{local_stack.url}/sources/ocpplab/dep-e2e", headers=headers).status_code == 204
    listed = httpx.get(f"{local_stack.url}/sources", headers=headers).json()["sources"]
    assert "dep-e2e" not in [s["source_id"] for s in listed]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/sources"), ("POST", "/sources"), ("PATCH", "/sources/ocpplab/x"), ("DELETE", "/sources/ocpplab/x")],
)
@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_every_source_route_refuses_a_missing_or_wrong_key(
    local_stack: RunningStack, method: str, path: str, key: str | None
) -> None:
    headers = {"x-api-key": key} if key else {}
    response = httpx.request(method, f"{local_stack.url}{path}", json={"vendor": "ocpplab"}, headers=headers)
    assert response.status_code == 403
    assert response.json()["title"] == "Forbidden"


def test_bad_input_is_a_4xx_problem_over_http(local_stack: RunningStack) -> None:
    response = httpx.post(
        f"{local_stack.url}/sources",
        content=b'{"vendor": "nope"',
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    too_big = httpx.post(
        f"{local_stack.url}/sources",
        content=b"x" * (10 * 1024 * 1024 + 1),
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
    )
    assert too_big.status_code == 413


def test_the_cli_manages_sources_against_the_stack(local_stack: RunningStack) -> None:
    env = {**os.environ, "CHARGELOG_API_URL": local_stack.url, "CHARGELOG_API_KEY": API_KEY}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*chargelog_command(), "sources", *args], capture_output=True, text=True, env=env, timeout=30
        )

    added = cli("add", "chargepilot", "site-7", "--name", "Site seven")
    assert added.returncode == 0, added.stderr
    assert "Added chargepilot/site-7 (site, Site seven)" in added.stdout
    duplicate = cli("add", "chargepilot", "site-7")
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip().count("\n") == 0
    assert "409" in duplicate.stderr
    assert "already exists" in duplicate.stderr
    assert "site-7" in cli("list", "--vendor", "chargepilot").stdout
    assert cli("disable", "chargepilot", "site-7").stdout.strip() == "chargepilot/site-7 is disabled."
    assert cli("remove", "chargepilot", "site-7").returncode == 0
    missing = cli("remove", "chargepilot", "site-7")
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
    unreachable = subprocess.run(
        [*chargelog_command(), "sources", "list", "--api-url", "http://127.0.0.1:9", "--api-key", "k"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert unreachable.returncode == 1
    assert "cannot reach" in unreachable.stderr


def test_the_schedule_collects_a_simulated_charger_through_queue_and_worker(local_stack: RunningStack) -> None:
    headers = {"x-api-key": API_KEY}
    assert "ocpplab      http://127.0.0.1:" in local_stack.output()  # the built-in simulator
    created = httpx.post(
        f"{local_stack.url}/sources", json={"vendor": "ocpplab", "source_id": "dep-3f9c2a71"}, headers=headers
    )
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 60
    row: dict[str, object] = {}
    while time.monotonic() < deadline:
        report = httpx.get(f"{local_stack.url}/collectors", headers=headers).json()
        row = next((r for r in report["collectors"] if r["source_id"] == "dep-3f9c2a71"), {})
        if row.get("last_success_at") and int(str(row.get("records_stored") or 0)) > 0:
            break
        time.sleep(0.5)
    assert row.get("status") == "ok", row
    assert int(str(row["records_stored"])) > 100
    assert row["high_water_mark"]
    assert {q["queue"] for q in report["queues"]} >= {"ocpplab", "dead-letter"}


def test_the_cli_prints_a_collected_chargers_logs(local_stack: RunningStack) -> None:
    env = {**os.environ, "CHARGELOG_API_URL": local_stack.url, "CHARGELOG_API_KEY": API_KEY}
    httpx.post(  # already there when the schedule test ran first: then a 409, which is fine
        f"{local_stack.url}/sources",
        json={"vendor": "ocpplab", "source_id": "dep-3f9c2a71"},
        headers={"x-api-key": API_KEY},
    )

    def logs(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*chargelog_command(), "logs", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)

    deadline = time.monotonic() + 60
    newest = logs("dep-3f9c2a71", "--order", "desc", "--limit", "5", "--format", "ndjson")
    while newest.returncode == 0 and len(newest.stdout.splitlines()) < 5 and time.monotonic() < deadline:
        time.sleep(0.5)
        newest = logs("dep-3f9c2a71", "--order", "desc", "--limit", "5", "--format", "ndjson")
    assert newest.returncode == 0, newest.stderr
    records = [json.loads(line) for line in newest.stdout.splitlines()]
    assert len(records) == 5
    assert {r["charger_id"] for r in records} == {"dep-3f9c2a71"}
    assert [r["timestamp"] for r in records] == sorted((r["timestamp"] for r in records), reverse=True)
    table = logs("dep-3f9c2a71", "--limit", "3")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.startswith("TIME (UTC)")
    assert len(rows) == 3
    assert all("CSMS" in row for row in rows)
    naive = logs("dep-3f9c2a71", "--from", "2026-11-20T08:00")
    assert naive.returncode == 2
    assert "has no UTC offset" in naive.stderr


def test_collect_and_backfill_from_a_second_shell(local_stack: RunningStack) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **local_stack.exports()}
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    httpx.post(
        f"{local_stack.url}/sources",
        json={"vendor": "ocpplab", "source_id": "dep-c2a7904e"},
        headers={"x-api-key": API_KEY},
    )
    collect = subprocess.run(
        [*chargelog_command(), "collect", "--vendor", "ocpplab", "--source", "dep-c2a7904e"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert collect.returncode == 0, collect.stderr
    assert "ocpplab/dep-c2a7904e: " in collect.stdout
    assert "100%|" in collect.stderr  # the progress bar
    now = datetime.now(UTC)
    backfill = subprocess.run(
        [
            *chargelog_command(),
            "backfill",
            "ocpplab",
            "dep-51d6fb38",
            "--from",
            (now - timedelta(hours=6)).isoformat(),
            "--to",
            now.isoformat(),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert backfill.returncode == 0, backfill.stderr
    stored = int(backfill.stdout.split("done, ")[1].split(" records")[0])
    assert stored > 50, backfill.stdout
    bad = subprocess.run(
        [*chargelog_command(), "backfill", "ocpplab", "dep-51d6fb38", "--from", "yesterday", "--to", now.isoformat()],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1].startswith("chargelog: error: 'yesterday' is not an ISO date")


def test_the_built_in_fleet_shows_charger_alerts_out_of_the_box(local_stack: RunningStack) -> None:
    """The simulated OCPPLAB fleet has a charger that boot-looped three hours ago and one with a connector faulted
    for two hours (chargelog_simulators.ocpplab.local_behaviours): once collected, one alert resolved, one open,
    through the worker, the health monitor's schedule, the API and the CLI."""
    headers = {"x-api-key": API_KEY}
    for source_id in ("dep-8b14e5d0", "dep-51d6fb38"):
        created = httpx.post(
            f"{local_stack.url}/sources", json={"vendor": "ocpplab", "source_id": source_id}, headers=headers
        )
        assert created.status_code in (201, 409), created.text
    deadline = time.monotonic() + 90
    alerts: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        alerts = httpx.get(f"{local_stack.url}/alerts", headers=headers, timeout=30).json()["alerts"]
        kinds = {(a["charger_id"], a["kind"], a["state"]) for a in alerts}
        if {("dep-8b14e5d0", "boot_loop", "resolved"), ("dep-51d6fb38", "connector_faulted", "open")} <= kinds:
            break
        time.sleep(1)
    kinds = {(a["charger_id"], a["kind"], a["state"]) for a in alerts}
    assert ("dep-8b14e5d0", "boot_loop", "resolved") in kinds, alerts
    assert ("dep-51d6fb38", "connector_faulted", "open") in kinds, alerts

    env = {**os.environ, "CHARGELOG_API_URL": local_stack.url, "CHARGELOG_API_KEY": API_KEY}
    listed = subprocess.run(
        [*chargelog_command(), "alerts"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert "connector_faulted" in listed.stdout
    assert "dep-51d6fb38" in listed.stdout
    health = subprocess.run(
        [*chargelog_command(), "health", "dep-51d6fb38"], capture_output=True, text=True, env=env, timeout=60
    )
    assert health.returncode == 3, health.stdout + health.stderr  # open alerts
    assert "Faulted" in health.stdout


def test_schedules_fire_and_ctrl_c_stops_cleanly(local_stack: RunningStack) -> None:
    local_stack.process.send_signal(signal.SIGINT)
    assert local_stack.process.wait(timeout=20) == 0
    time.sleep(0.5)  # let the reader thread take the last lines
    output = local_stack.output()
    assert "Dispatched collection jobs" in output
    assert f"export CHARGELOG_API_KEY={API_KEY}" in output
    assert output.rstrip().endswith("chargelog local: stopped.")
    at = output.find("Traceback")
    assert at < 0, output[max(0, at - 400) : at + 3000]
