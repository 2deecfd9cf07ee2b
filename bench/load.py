"""Load: concurrent diagnostics uploads and queries against `chargelog local`, then no upload may be lost.

What runs where: `chargelog local` as `make run` starts it (moto's server, the vendor simulators, the schedules
every 60 s discovering and collecting the simulators' fleets, the API and the upload API, the indexer) in a child
process; the clients in this process (httpx, one keep-alive client per thread):
- --uploaders clients (50) each loop: ask for an upload address (POST /diagnostics/requests), then upload one file
  of 0.2-2 MB of random bytes to it, as a raw PUT (`curl -T`) or a multipart POST (`curl -F file=@...`), half each;
- --queriers clients (20) each loop over the query routes: GET /chargers, a charger's logs (/chargers/{id}/logs),
  one of its records (/chargers/{id}/logs/{record_id}), the fleet's (/logs), and an upload's request
  (/diagnostics/{id}).
After --seconds (60), every upload answered 200 must show up, indexed with its SHA-256 and size, in
GET /diagnostics/{request_id} within --index-timeout seconds; one that does not is lost. Prints requests, errors by
status and p50/p99 latency per kind; writes the result JSON; exits 1 on any error or lost upload.

Where the time goes (the child, unless --plain): the stack runs as `chargelog local` does, with timers added in
the child only: around every boto3 call (botocore's BaseClient._make_api_call, wall time, so moto's work plus
botocore and loopback HTTP), around moto's server application (its handling of each request, per operation),
around each local function's invocation (the wait for a free local container - the API function has one, a
queue's function one per concurrent invocation its event sources allow, as Lambda execution environments - and the
handler), and around each gateway request. Per kind, the mean latency splits into AWS calls
(moto), the wait for a function's container, and the rest (chargelog's code: the gateway, Powertools, pydantic,
the logic). Everything shares the child's one interpreter (the GIL), so each part includes waiting for it.

    .venv/bin/python bench/load.py                                  # 50 uploaders, 20 queriers, 60 s
    .venv/bin/python bench/load.py --plain                          # `chargelog local` itself, no timers
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from text_table import aligned

REPO = Path(__file__).resolve().parents[1]
API_KEY = "bench-load-key-0123456789abcdef"
FILENAME = "diagnostics.tar.gz"
MIN_FILE_BYTES = 200 * 1024
MAX_FILE_BYTES = 2 * 1024 * 1024
STARTUP_SECONDS = 120
CLIENT_TIMEOUT_SECONDS = 120
KINDS = ("upload PUT", "upload multipart", "create request", "query")


# --------------------------------------------------------------------------------------------- the stack's child
class _Timers:
    """Wall time inside boto3 calls, moto's server, the local functions and the gateways, in the stack's process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.local = threading.local()
        self.moto: dict[str, list[float]] = defaultdict(list)  # "Service.Operation" -> seconds in moto's app
        self.functions: dict[str, dict[str, float]] = defaultdict(Counter)  # type: ignore[arg-type]
        self.requests: dict[str, dict[str, float]] = defaultdict(Counter)  # type: ignore[arg-type]

    def span(self) -> Counter[str] | None:
        return getattr(self.local, "span", None)

    def install(self) -> None:
        from botocore.client import BaseClient
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        from chargelog_local.gateway import LocalApiGateway
        from chargelog_local.lambdas import LocalFunction
        from chargelog_local.uploads import LocalUploadGateway

        timers = self
        make_api_call = BaseClient._make_api_call

        def timed_api_call(client: Any, operation: str, params: Any) -> Any:
            began = time.perf_counter()
            try:
                return make_api_call(client, operation, params)
            finally:
                span = timers.span()
                if span is not None:
                    span["aws"] += time.perf_counter() - began
                    span["aws_calls"] += 1

        BaseClient._make_api_call = timed_api_call  # type: ignore[method-assign]

        moto_app = DomainDispatcherApplication.__call__

        def timed_moto(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
            began = time.perf_counter()
            try:
                return moto_app(app, environ, start_response)
            finally:
                # JSON protocols name the operation in X-Amz-Target ("DynamoDB_20120810.Query"); S3 is REST.
                target = environ.get("HTTP_X_AMZ_TARGET", "")
                name = target or f"S3 {environ.get('REQUEST_METHOD')}"
                with timers.lock:
                    timers.moto[name].append(time.perf_counter() - began)

        DomainDispatcherApplication.__call__ = timed_moto  # type: ignore[method-assign]

        def timed_submit(function: LocalFunction, event: dict[str, Any]) -> Any:
            submitted = time.perf_counter()
            caller = timers.span()  # the gateway request waiting for this invocation, if any

            def run() -> Any:
                timers.local.span = inner = Counter[str]()
                began = time.perf_counter()
                try:
                    return function._invoke(event)
                finally:
                    timers.local.span = None
                    ended = time.perf_counter()
                    with timers.lock:
                        stats = timers.functions[function.name]
                        stats["invocations"] += 1
                        stats["container_wait"] += began - submitted
                        stats["handler"] += ended - began
                        stats["aws"] += inner["aws"]
                        stats["aws_calls"] += inner["aws_calls"]
                        if caller is not None:
                            caller["container_wait"] += began - submitted
                            caller["aws"] += inner["aws"]
                            caller["aws_calls"] += inner["aws_calls"]

            return function._containers.submit(run)

        LocalFunction.submit = timed_submit  # type: ignore[method-assign]

        def timed_gateway(
            handle: Callable[[Any, Any], Any], kind_of: Callable[[Any], str]
        ) -> Callable[[Any, Any], Any]:
            def run(gateway: Any, request: Any) -> Any:
                timers.local.span = span = Counter[str]()
                began = time.perf_counter()
                try:
                    return handle(gateway, request)
                finally:
                    timers.local.span = None
                    span["total"] = time.perf_counter() - began
                    span["requests"] = 1
                    with timers.lock:
                        timers.requests[kind_of(request)].update(span)

            return run

        def upload_kind(request: Any) -> str:
            return "upload multipart" if request.method == "POST" else "upload PUT"

        def api_kind(request: Any) -> str:
            return "create request" if request.method == "POST" else "query"

        LocalUploadGateway.handle = timed_gateway(LocalUploadGateway.handle, upload_kind)  # type: ignore[method-assign]
        LocalApiGateway.handle = timed_gateway(LocalApiGateway.handle, api_kind)  # type: ignore[method-assign]

    def report(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": {kind: dict(stats) for kind, stats in self.requests.items()},
                "functions": {name: dict(stats) for name, stats in self.functions.items()},
                "moto": {
                    name: {"calls": len(times), "seconds": sum(times), "max_seconds": max(times)}
                    for name, times in sorted(self.moto.items(), key=lambda item: -sum(item[1]))
                },
            }


def _stack_child(port: int, report_path: Path) -> int:
    """`chargelog local --port <port>` with the timers; writes their report when it stops."""
    from chargelog_local.runner import LocalOptions, run

    timers = _Timers()
    timers.install()
    try:
        return run(LocalOptions(port=port))
    finally:
        report_path.write_text(json.dumps(timers.report(), indent=2))


@dataclass
class Stack:
    process: subprocess.Popen[str]
    api_url: str
    lines: list[str]
    report_path: Path | None

    def stop(self) -> dict[str, Any] | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.report_path and self.report_path.exists():
            return dict(json.loads(self.report_path.read_text()))
        return None


def start_stack(plain: bool, report_path: Path) -> Stack:
    from chargelog_local.runner import free_port

    port = free_port()
    if plain:
        command = [sys.executable, "-m", "chargelog_cli.main", "local", "--port", str(port)]
    else:
        command = [sys.executable, __file__, "--stack-child", str(port), str(report_path)]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CHARGELOG_"))}
    env["CHARGELOG_API_KEY"] = API_KEY
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    threading.Thread(
        target=lambda: lines.extend(line.rstrip("\n") for line in process.stdout or []), daemon=True
    ).start()
    stack = Stack(process, f"http://127.0.0.1:{port}", lines, None if plain else report_path)
    deadline = time.monotonic() + STARTUP_SECONDS
    while not any("Ctrl-C stops everything." in line for line in list(lines)):
        if process.poll() is not None or time.monotonic() > deadline:
            stack.stop()
            raise RuntimeError("chargelog local did not start:\n" + "\n".join(lines[-50:]))
        time.sleep(0.2)
    return stack


# --------------------------------------------------------------------------------------------- the clients
@dataclass
class Outcome:
    kind: str
    status: int | str  # the HTTP status, or the transport error's class
    seconds: float


@dataclass
class Upload:
    request_id: str
    sha256: str
    size: int
    method: str


@dataclass
class Results:
    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: list[Outcome] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)  # answered 200

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


def _timed(results: Results, kind: str, send: Callable[[], httpx.Response]) -> httpx.Response | None:
    began = time.perf_counter()
    try:
        response = send()
    except httpx.HTTPError as error:
        results.add(Outcome(kind, type(error).__name__, time.perf_counter() - began))
        return None
    results.add(Outcome(kind, response.status_code, time.perf_counter() - began))
    return response


def uploader(number: int, api_url: str, until: float, results: Results, seed: int) -> None:
    rng = random.Random(seed * 1000 + number)
    charger = f"CP-LOAD-{number:02d}"
    headers = {"x-api-key": API_KEY}
    with httpx.Client(timeout=CLIENT_TIMEOUT_SECONDS) as client:
        while time.monotonic() < until:
            created = _timed(
                results,
                "create request",
                lambda: client.post(
                    f"{api_url}/diagnostics/requests",
                    headers=headers,
                    json={"charger_id": charger, "log_type": "DiagnosticsLog"},
                ),
            )
            if created is None or created.status_code != 201:
                time.sleep(0.5)
                continue
            request = created.json()
            data = b"\x1f\x8b\x08\x00" + rng.randbytes(rng.randint(MIN_FILE_BYTES, MAX_FILE_BYTES) - 4)
            location = request["remote_location"]
            method = rng.choice(("PUT", "POST"))
            if method == "PUT":  # curl -T file <location>: curl appends the file's name to an address ending in "/"
                response = _timed(results, "upload PUT", partial(client.put, location + FILENAME, content=data))
            else:  # curl -F file=@diagnostics.tar.gz <location>
                response = _timed(
                    results,
                    "upload multipart",
                    partial(client.post, location, files={"file": (FILENAME, data, "application/octet-stream")}),
                )
            if response is not None and response.status_code == 200:
                with results.lock:
                    results.uploads.append(
                        Upload(request["request_id"], hashlib.sha256(data).hexdigest(), len(data), method)
                    )


def _query_paths(client: httpx.Client, api_url: str, results: Results, rng: random.Random) -> Iterator[str]:
    """The next query to send: the fleet's chargers, a charger's logs and one of its records, the fleet's logs,
    an upload's request."""
    chargers: list[str] = []
    records: list[tuple[str, str]] = []
    while True:
        yield "/chargers"
        with results.lock:
            uploads = list(results.uploads[-20:])
        if uploads:
            yield f"/diagnostics/{rng.choice(uploads).request_id}"
        yield "/logs?action=StatusNotification&limit=50"
        if chargers:
            charger = rng.choice(chargers)
            yield f"/chargers/{charger}/logs?limit=50"
        if records:
            charger, record_id = rng.choice(records)
            yield f"/chargers/{charger}/logs/{record_id}"
        # Refresh what there is to ask for (not timed: the timed requests above ask the same things).
        try:
            listed = client.get(f"{api_url}/chargers", headers={"x-api-key": API_KEY}).json().get("chargers", [])
            chargers = [str(item["charger_id"]) for item in listed][:50]
            if chargers:
                charger = rng.choice(chargers)
                page = client.get(
                    f"{api_url}/chargers/{charger}/logs?limit=20",
                    headers={"x-api-key": API_KEY, "accept": "application/json"},
                ).json()
                records = [(charger, str(item["id"])) for item in page.get("records", []) if "id" in item] or records
        except (httpx.HTTPError, ValueError, KeyError):
            pass


def querier(number: int, api_url: str, until: float, results: Results, seed: int) -> None:
    rng = random.Random(seed * 1000 + 500 + number)
    with httpx.Client(timeout=CLIENT_TIMEOUT_SECONDS) as client:
        paths = _query_paths(client, api_url, results, rng)
        while time.monotonic() < until:
            path = next(paths)
            _timed(results, "query", partial(client.get, f"{api_url}{path}", headers={"x-api-key": API_KEY}))


def check_indexed(api_url: str, uploads: list[Upload], timeout: float) -> tuple[list[Upload], float]:
    """The uploads not indexed with their SHA-256 and size within ``timeout`` seconds; and how long it took."""
    began = time.monotonic()
    pending = list(uploads)
    with httpx.Client(timeout=CLIENT_TIMEOUT_SECONDS) as client:
        while pending and time.monotonic() - began < timeout:
            still: list[Upload] = []
            for upload in pending:
                if time.monotonic() - began > timeout:
                    still.append(upload)
                    continue
                response = client.get(f"{api_url}/diagnostics/{upload.request_id}", headers={"x-api-key": API_KEY})
                files = response.json().get("files", []) if response.status_code == 200 else []
                if not any(f.get("sha256") == upload.sha256 and f.get("size") == upload.size for f in files):
                    still.append(upload)
            pending = still
            if pending:
                time.sleep(5.0)
    return pending, time.monotonic() - began


# --------------------------------------------------------------------------------------------- figures
def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def summarize(results: Results) -> dict[str, Any]:
    by_kind: dict[str, Any] = {}
    for kind in KINDS:
        outcomes = [o for o in results.outcomes if o.kind == kind]
        if not outcomes:
            continue
        seconds = [o.seconds for o in outcomes]
        errors = Counter(str(o.status) for o in outcomes if not (isinstance(o.status, int) and o.status < 400))
        by_kind[kind] = {
            "requests": len(outcomes),
            "errors": sum(errors.values()),
            "errors_by_status": dict(errors),
            "p50_ms": percentile(seconds, 50) * 1000,
            "p99_ms": percentile(seconds, 99) * 1000,
            "max_ms": max(seconds) * 1000,
        }
    return by_kind


def render(by_kind: dict[str, Any], breakdown: dict[str, Any] | None) -> str:
    rows = [["kind", "requests", "errors", "p50 ms", "p99 ms", "max ms"]]
    for kind, row in by_kind.items():
        errors = ", ".join(f"{status}: {n}" for status, n in row["errors_by_status"].items()) or "0"
        rows.append([kind, str(row["requests"]), errors, *(f"{row[k]:,.0f}" for k in ("p50_ms", "p99_ms", "max_ms"))])
    if breakdown:
        rows[0] += ["AWS calls (moto)", "container wait", "chargelog"]
        for row in rows[1:]:
            share = breakdown.get(row[0])
            row += [f"{share[k]:.0%}" for k in ("aws", "container_wait", "rest")] if share else ["", "", ""]
    return aligned(rows)


def shares(report: dict[str, Any]) -> dict[str, Any]:
    """Per kind, the share of the gateway's time in AWS calls, waiting for a function's container, and the rest."""
    out = {}
    for kind, stats in report["requests"].items():
        total = stats.get("total", 0.0)
        if not total:
            continue
        aws, wait = stats.get("aws", 0.0), stats.get("container_wait", 0.0)
        out[kind] = {
            "mean_ms": total / stats["requests"] * 1000,
            "aws": aws / total,
            "container_wait": wait / total,
            "rest": max(0.0, total - aws - wait) / total,
            "aws_calls_per_request": stats.get("aws_calls", 0) / stats["requests"],
        }
    return out


# --------------------------------------------------------------------------------------------- main
def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--stack-child":
        return _stack_child(int(sys.argv[2]), Path(sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the clients send (default 60)")
    parser.add_argument("--uploaders", type=int, default=50, help="concurrent upload clients (default 50)")
    parser.add_argument("--queriers", type=int, default=20, help="concurrent query clients (default 20)")
    parser.add_argument(
        "--index-timeout",
        type=float,
        default=900.0,
        help="seconds the indexer has, after the load, to index every upload answered 200 (default 900: the local "
        "stack indexes about one upload a second, while the load sends about five)",
    )
    parser.add_argument("--plain", action="store_true", help="run `chargelog local` itself (no timers)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "load.json", help="results file")
    args = parser.parse_args()
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; {args.uploaders} "
        f"uploaders, {args.queriers} queriers, {args.seconds:g} s",
        flush=True,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report_path = args.json.with_suffix(".stack.json")
    report_path.unlink(missing_ok=True)
    stack = start_stack(args.plain, report_path)
    results = Results()
    try:
        until = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=uploader, args=(n, stack.api_url, until, results, args.seed), daemon=True)
            for n in range(args.uploaders)
        ] + [
            threading.Thread(target=querier, args=(n, stack.api_url, until, results, args.seed), daemon=True)
            for n in range(args.queriers)
        ]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sent_for = time.monotonic() - began
        print(f"clients done after {sent_for:.0f} s; checking {len(results.uploads)} uploads are indexed", flush=True)
        lost, waited = check_indexed(stack.api_url, results.uploads, args.index_timeout)
    finally:
        report = stack.stop()
        args.json.with_suffix(".stack.log").write_text("\n".join(stack.lines) + "\n")
    by_kind = summarize(results)
    breakdown = shares(report) if report else None
    total = len(results.outcomes)
    errors = sum(row["errors"] for row in by_kind.values())
    print(render(by_kind, breakdown))
    print(
        f"{total} requests, {errors} errors; {len(results.uploads)} uploads answered 200, {len(lost)} lost "
        f"(all others indexed within {waited:.0f} s of the end)"
    )
    for upload in lost[:10]:
        print(f"  lost: {upload.method} {upload.size} B, request {upload.request_id}")
    stack_errors = [line for line in stack.lines if "Traceback" in line or " ERROR " in line or '"ERROR"' in line]
    if stack_errors:
        print(f"the stack logged {len(stack_errors)} errors; the first:")
        print("\n".join(stack_errors[:5]))
    if report:
        slowest = list(report["moto"].items())[:6]
        print(
            "moto's own handling, the most time: "
            + "; ".join(
                f"{name} {value['calls']} calls {value['seconds']:.1f} s (max {value['max_seconds'] * 1000:.0f} ms)"
                for name, value in slowest
            )
        )
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "args": vars(args),
        "requests": total,
        "errors": errors,
        "uploads_answered_200": len(results.uploads),
        "uploads_lost": [upload.__dict__ for upload in lost],
        "by_kind": by_kind,
        "time_shares": breakdown,
        "stack": report,
        "stack_error_lines": stack_errors[:50],
    }
    args.json.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {args.json}")
    return 1 if errors or lost else 0


if __name__ == "__main__":
    sys.exit(main())
