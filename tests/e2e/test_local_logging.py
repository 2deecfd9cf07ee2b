"""The local stack runs every function in one process, each in its own thread: the structured log lines they print
while all of them work at once must each name the function (and invocation) that wrote them, and carry no key
from another invocation (an export's id, the API's correlation id, a job's keys)."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from chargelog_local.template import functions, load_template
from conftest import RunningStack

pytestmark = pytest.mark.e2e

LINES = 200
CLIENTS = 3
SIMULATED_CHARGERS = ["dep-3f9c2a71", "dep-c2a7904e"]  # ocpplab's simulator
FUNCTIONS = {spec.logical_id for spec in functions(load_template())}  # every function of the template
# Invoked only when a charger alert opens or resolves, which this test does not make happen: its lines are checked when
# there are some, but none is waited for.
NOT_DRIVEN = {"AlertNotifierFunction"}
# What the functions this test drives log, and which function logs it.
WRITER = {
    "Source created": "ApiFunction",
    "Source deleted": "ApiFunction",
    "Export queued": "ApiFunction",
    "Diagnostics requested": "ApiFunction",
    "Dispatched collection jobs": "DispatcherFunction",
    "Job finished": "WorkerFunction",
    "Collection job failed": "WorkerFunction",
    "Export done": "ExportFunction",
    "Upload allowed": "UploadAuthorizerFunction",
    "Upload denied": "UploadAuthorizerFunction",
    "Diagnostics file stored": "DiagnosticsIndexerFunction",
    "Health sweep finished": "HealthMonitorFunction",
    "Alert notification": "AlertNotifierFunction",
    "Alert notification failed": "AlertNotifierFunction",
}
# Keys an invocation appends (or a line adds), and the functions whose lines may carry them.
OWNERS = {
    "correlation_id": {"ApiFunction", "WorkerFunction"},  # a request's; a job's (carried to its continuations)
    "export_id": {"ApiFunction", "ExportFunction"},
    "job_id": {"WorkerFunction"},
    "source_id": {"ApiFunction", "WorkerFunction"},
    "vendor": {"ApiFunction", "WorkerFunction", "DispatcherFunction"},
    "alert_id": {"AlertNotifierFunction"},
    "alert_state": {"AlertNotifierFunction"},
}


def _structured(lines: list[str]) -> list[dict[str, Any]]:
    """The Powertools lines: JSON with a level, a message and the service."""
    found = []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and {"level", "message", "service"} <= entry.keys():
            found.append(entry)
    return found


def _writer(entry: dict[str, Any]) -> str | None:
    message = entry["message"]
    return WRITER.get(message) if isinstance(message, str) else None


def _drive(stack: RunningStack, round_number: int, tag: str) -> None:
    """One round of work for every function: the API, the schedule's worker, an export, an upload."""
    headers = {"x-api-key": stack.api_key}
    source_id = f"dep-log{tag}{round_number:02d}"  # registered and removed again: more of the API's lines
    created = httpx.post(
        f"{stack.url}/sources", json={"vendor": "ocpplab", "source_id": source_id}, headers=headers, timeout=30
    )
    assert created.status_code == 201, created.text
    httpx.delete(f"{stack.url}/sources/ocpplab/{source_id}", headers=headers, timeout=30)
    now = datetime.now(UTC)
    export = httpx.post(
        f"{stack.url}/exports",
        json={
            "charger_id": SIMULATED_CHARGERS[0],
            "from": (now - timedelta(days=1)).isoformat(),
            "to": now.isoformat(),
        },
        headers=headers,
        timeout=30,
    )
    assert export.status_code == 202, export.text
    request = httpx.post(
        f"{stack.url}/diagnostics/requests",
        json={"charger_id": f"CP-LOG-{round_number:02d}", "log_type": "DiagnosticsLog"},
        headers=headers,
        timeout=30,
    )
    assert request.status_code in (200, 201), request.text
    location = request.json()["remote_location"]
    uploaded = httpx.put(f"{location}diagnostics-{round_number}.log", content=b"INFO ok\n" * 50, timeout=30)
    assert uploaded.status_code == 200, uploaded.text
    httpx.put(f"{location}../wrong-token/x.log", content=b"x", timeout=30)  # denied by the authorizer


def test_every_line_names_its_function_and_carries_no_other_invocations_keys(local_stack: RunningStack) -> None:
    start = len(local_stack.lines)
    tag = uuid.uuid4().hex[:6]
    for charger in SIMULATED_CHARGERS:  # the schedule keeps the worker collecting them meanwhile
        registered = httpx.post(
            f"{local_stack.url}/sources",
            json={"vendor": "ocpplab", "source_id": charger},
            headers={"x-api-key": local_stack.api_key},
            timeout=30,
        )
        assert registered.status_code in (201, 409), registered.text
    deadline = time.monotonic() + 120
    rounds = 0
    with ThreadPoolExecutor(max_workers=CLIENTS) as clients:  # some invocations overlap, as on a busy stack
        while True:
            list(clients.map(lambda n: _drive(local_stack, n, tag), range(rounds, rounds + CLIENTS)))
            rounds += CLIENTS
            window = _structured(local_stack.lines[start:])
            writers = {_writer(entry) for entry in window} - {None}
            if len(window) >= LINES and writers >= FUNCTIONS - NOT_DRIVEN:
                break
            assert time.monotonic() < deadline, f"{len(window)} structured lines; known lines from {sorted(writers)}"

    problems: list[str] = []
    functions_of_request: dict[str, set[str]] = defaultdict(set)
    requests_of_correlation: dict[str, set[str]] = defaultdict(set)
    for entry in window:
        name = entry.get("function_name")
        request_id = entry.get("function_request_id")
        if name not in FUNCTIONS or not request_id:
            problems.append(f"no function or invocation: {entry}")
            continue
        functions_of_request[request_id].add(name)
        if "correlation_id" in entry and name == "ApiFunction":  # one per API request (a job's spans continuations)
            requests_of_correlation[entry["correlation_id"]].add(request_id)
        writer = _writer(entry)
        if writer is not None and writer != name:
            problems.append(f"{entry['message']!r} is {writer}'s line, but names {name}: {entry}")
        for key, owners in OWNERS.items():
            if key in entry and name not in owners:
                problems.append(f"{key} on a {name} line: {entry}")
    problems += [f"request {r} names {sorted(n)}" for r, n in functions_of_request.items() if len(n) > 1]
    problems += [
        f"correlation id {c} on invocations {sorted(r)}" for c, r in requests_of_correlation.items() if len(r) > 1
    ]
    assert not problems, f"{len(problems)} problems in {len(window)} lines:\n" + "\n".join(problems[:20])
