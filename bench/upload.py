"""Diagnostics uploads: latency through the local upload API, the indexer's memory, the authorizer's decisions.

What runs where, as `chargelog local` runs it:
- moto's server in its own process, with the template's table, diagnostics bucket and upload queue (provisioned
  from template.yaml; moto's S3 announces each new incoming/ object on the queue itself);
- in this process, the template's UploadApi served by chargelog_local.uploads on 127.0.0.1 (werkzeug, threaded:
  the REQUEST authorizer function, the S3 integration into moto), the indexer function fed by the template's SQS
  event source (one poller thread, long polls of 1 s, as the local stack runs it), and the HTTP client (httpx,
  keep-alive) that uploads the way chargers do: raw PUT (`curl -T`) and multipart POST (`curl -F file=@...`).

Three measurements:
1. End to end, per file size and method, --runs uploads each (round-robin in a shuffled order, after one untimed
   warm-up each): the time until the upload's 200 (gateway, authorizer, PutObject into moto), and until the file is
   indexed (the indexer's put_file has written the file item: S3 notification, SQS, the indexer's read, unwrap,
   hash, conditional put and item). p50/p95/max.
2. The indexer alone, per size and body (raw, multipart): this process puts --runs + 1 incoming objects into moto
   (as the S3 integration stores them), then a fresh child process, warmed up on a 1 KB file, runs `index_upload`
   on each directly. Wall time (median of --runs); the child's peak RSS growth during each call (Linux: VmHWM reset
   through /proc/self/clear_refs, less VmRSS before; the first call, in a process that never held a large file, and
   the largest); and, for the last object, the peak Python heap under tracemalloc. The indexer streams (256 KB
   chunks, a spool of at most 1 MB in memory, then /tmp), so heap and RSS must stay far below the file's size
   however large the file is.
3. The authorizer's decision, --decisions times each: `authorize_upload` allowed (one GetItem + one UpdateItem) and
   denied (a wrong secret: one GetItem), the whole handler (Powertools decorators, the policy) on the same event,
   and a floor: the same GetItem + UpdateItem with bare boto3.

Reading the figures: every S3, SQS and DynamoDB call goes to moto over loopback HTTP, and moto (one Python process)
takes most of the time; on AWS, API Gateway streams the body to S3 and SQS delivers to Lambda with its own latency.
What carries over: the gap between each row and its floor, and the indexer's memory against the file size.

    .venv/bin/python bench/upload.py                                    # 100 KB, 1 MB, 9 MB; 10 runs each
    .venv/bin/python bench/upload.py --runs 5 --decisions 100            # as `make bench` runs it
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
CHARGER = "CP-BENCH-UPLOAD"
FILENAME = "diagnostics.tar.gz"
DEFAULT_SIZES = (100 * 1024, 1024 * 1024, 9 * 1024 * 1024)
METHODS = ("PUT", "POST")  # raw body (curl -T), multipart/form-data (curl -F)
INDEXED_TIMEOUT_SECONDS = 60.0
WARM_UP_BYTES = 1024


# --------------------------------------------------------------------------------------------- the stack
def _aws_environment(moto_url: str) -> None:
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("AWS_PROFILE", None)


@dataclass
class UploadStack:
    url: str
    refs: dict[str, str]
    authorizer: Any  # LocalFunction
    stop: Callable[[], None]


def _start_stack(moto_url: str) -> UploadStack:
    """The template's resources in moto; its UploadApi on 127.0.0.1; its indexer polling the upload queue."""
    _aws_environment(moto_url)
    from werkzeug.serving import WSGIRequestHandler, make_server

    from chargelog import aws
    from chargelog.settings import get_settings
    from chargelog_local import template as tpl
    from chargelog_local.lambdas import LocalFunction
    from chargelog_local.provision import function_environment, provision
    from chargelog_local.triggers import SqsTrigger
    from chargelog_local.uploads import upload_gateways

    aws.reset()
    template = tpl.load_template()
    stack = provision(template, "bench-upload", REGION, {"Stage": "local"})
    os.environ.update(function_environment(template, stack))
    # The template's LogLevel is INFO (a line per upload) and its functions publish metrics (EMF on stdout).
    os.environ.update({"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"})
    get_settings.cache_clear()
    specs = {spec.logical_id: spec for spec in tpl.functions(template)}
    local = {
        name: LocalFunction(specs[name], REGION) for name in ("UploadAuthorizerFunction", "DiagnosticsIndexerFunction")
    }
    (gateway,) = upload_gateways(template, stack, local, stage="local")

    class QuietRequestHandler(WSGIRequestHandler):
        def log_request(self, *_: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, gateway, threaded=True, request_handler=QuietRequestHandler)
    threading.Thread(target=server.serve_forever, name="upload-api", daemon=True).start()
    ((queue_arn, batch_size, reports),) = specs["DiagnosticsIndexerFunction"].queues
    arn = str(stack.resolver().resolve(queue_arn))
    stop_polling = threading.Event()
    indexer = SqsTrigger(
        local["DiagnosticsIndexerFunction"],
        stack.refs[stack.logical_id_of_arn(arn)],
        arn,
        batch_size,
        reports,
        REGION,
        stop_polling,
    )
    indexer.start()

    def stop() -> None:
        stop_polling.set()
        indexer.join(10)
        server.shutdown()
        for function in local.values():
            function.shutdown()

    return UploadStack(
        f"http://127.0.0.1:{server.server_port}", dict(stack.refs), local["UploadAuthorizerFunction"], stop
    )


def _new_request(upload_url: str) -> tuple[Any, str, str]:
    """A stored diagnostics request (as POST /diagnostics/requests stores it), its upload address and its secret."""
    from chargelog import stores
    from chargelog.models.diagnostics import (
        DiagnosticsRequest,
        format_token,
        new_request_id,
        new_secret,
        remote_location,
        secret_sha256,
    )

    request_id, secret = new_request_id(), new_secret()
    now = datetime.now(UTC)
    request = DiagnosticsRequest(
        request_id=request_id,
        charger_id=CHARGER,
        ocpp_request_id=stores.diagnostics().next_ocpp_request_id(CHARGER),
        requested_at=now,
        upload_expires_at=now + timedelta(hours=2),
        secret_sha256=secret_sha256(secret),
        remote_location=remote_location(upload_url, CHARGER, format_token(request_id, secret)),
    )
    stores.diagnostics().put_request(request)
    return request, request.remote_location, secret


def _file_bytes(size: int, rng: random.Random) -> bytes:
    """A gzip-looking file of incompressible bytes (what a charger's diagnostics archive is)."""
    return b"\x1f\x8b\x08\x00" + rng.randbytes(size - 4)


# --------------------------------------------------------------------------------------------- statistics
def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def _size_label(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / 2**20:.3g} MB"
    return f"{size / 1024:.3g} KB"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([cells[0].ljust(widths[0]), *rest])

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


# --------------------------------------------------------------------------------------------- 1. end to end
class IndexedWatch:
    """When each request's file item was written: wraps the dal's put_file, which the indexer calls before its
    final put and the incoming object's delete, so the time is when GET /diagnostics/{id} would show the file."""

    def __init__(self) -> None:
        self._done: dict[str, tuple[threading.Event, list[float]]] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        from chargelog.dal.diagnostics import DiagnosticsStore

        original = DiagnosticsStore.put_file
        watch = self

        def put_file(store: DiagnosticsStore, file: Any, limits: Any) -> Any:
            recorded = original(store, file, limits)
            watch._entry(file.request_id)[1].append(time.perf_counter())
            watch._entry(file.request_id)[0].set()
            return recorded

        DiagnosticsStore.put_file = put_file  # type: ignore[method-assign]

    def _entry(self, request_id: str) -> tuple[threading.Event, list[float]]:
        with self._lock:
            return self._done.setdefault(request_id, (threading.Event(), []))

    def wait(self, request_id: str) -> float:
        event, times = self._entry(request_id)
        if not event.wait(INDEXED_TIMEOUT_SECONDS):
            raise RuntimeError(f"request {request_id}: not indexed within {INDEXED_TIMEOUT_SECONDS:.0f} s")
        return times[0]


@dataclass
class Case:
    size: int
    method: str
    data: bytes
    to_200_ms: list[float] = field(default_factory=list)
    to_indexed_ms: list[float] = field(default_factory=list)


def _upload(client: Any, stack: UploadStack, watch: IndexedWatch, case: Case, timed: bool) -> None:
    from chargelog import stores

    request, location, _ = _new_request(stack.url)
    began = time.perf_counter()
    if case.method == "PUT":  # curl -T file <location>: curl appends the file's name to an address ending in "/"
        response = client.put(location + FILENAME, content=case.data)
    else:  # curl -F file=@diagnostics.tar.gz <location>
        response = client.post(location, files={"file": (FILENAME, case.data, "application/octet-stream")})
    answered = time.perf_counter()
    if (response.status_code, response.text) != (200, "OK"):
        raise RuntimeError(f"{case.method} {_size_label(case.size)}: {response.status_code} {response.text[:300]}")
    indexed = watch.wait(request.request_id)
    if timed:
        case.to_200_ms.append((answered - began) * 1000.0)
        case.to_indexed_ms.append((indexed - began) * 1000.0)
        (file,) = stores.diagnostics().files_of(request.request_id)
        if file.size != case.size:
            raise RuntimeError(f"indexed {file.size} bytes, uploaded {case.size}")


def end_to_end(stack: UploadStack, sizes: list[int], runs: int, rng: random.Random) -> list[dict[str, Any]]:
    import httpx

    watch = IndexedWatch()
    watch.install()
    cases = [Case(size, method, _file_bytes(size, rng)) for size in sizes for method in METHODS]
    with httpx.Client(timeout=120) as client:
        for case in cases:
            _upload(client, stack, watch, case, timed=False)
        for _ in range(runs):
            for case in rng.sample(cases, len(cases)):
                _upload(client, stack, watch, case, timed=True)
    return [
        {
            "size": case.size,
            "method": case.method,
            "runs": len(case.to_200_ms),
            "to_200_p50_ms": percentile(case.to_200_ms, 50),
            "to_200_p95_ms": percentile(case.to_200_ms, 95),
            "to_200_max_ms": max(case.to_200_ms),
            "to_indexed_p50_ms": percentile(case.to_indexed_ms, 50),
            "to_indexed_p95_ms": percentile(case.to_indexed_ms, 95),
            "to_indexed_max_ms": max(case.to_indexed_ms),
        }
        for case in cases
    ]


def render_end_to_end(rows: list[dict[str, Any]]) -> str:
    headers = ["upload", "runs", "200 p50 ms", "200 p95 ms", "indexed p50 ms", "indexed p95 ms", "indexed max ms"]
    return _table(
        headers,
        [
            [
                f"{_size_label(row['size'])} {'PUT raw' if row['method'] == 'PUT' else 'POST multipart'}",
                str(row["runs"]),
                f"{row['to_200_p50_ms']:,.0f}",
                f"{row['to_200_p95_ms']:,.0f}",
                f"{row['to_indexed_p50_ms']:,.0f}",
                f"{row['to_indexed_p95_ms']:,.0f}",
                f"{row['to_indexed_max_ms']:,.0f}",
            ]
            for row in rows
        ],
    )


# --------------------------------------------------------------------------------------------- 2. the indexer
def _rss_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _put_incoming(bucket: str, body_kind: str, data: bytes) -> str:
    """A new request's incoming object as the upload API's S3 integration stores it (key, metadata, content type)."""
    import httpx

    from chargelog.logic.uploads import incoming_key
    from chargelog_local.uploads import LocalUploadGateway

    request, _, _ = _new_request("https://uploads.example.com")
    key = incoming_key(request.request_id, datetime.now(UTC))
    put: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if body_kind == "multipart":
        form = httpx.Request("POST", "http://x/", files={"file": (FILENAME, data, "application/octet-stream")})
        put |= {"Body": form.read(), "ContentType": form.headers["content-type"], "Metadata": {"method": "POST"}}
    else:
        put |= {"Body": data, "Metadata": {"method": "PUT", "filename": FILENAME}}
    LocalUploadGateway._store(put)  # as the local gateway stores it: moto's server would parse a form PUT
    return key


def _indexer_child(size: int) -> None:
    """Child process: index the incoming objects whose keys come on stdin (the first is a small warm-up); print one
    JSON line of results. The environment (moto's URL, the functions' settings) comes from the parent, which put
    the objects, so this process holds nothing but what indexing needs."""
    from chargelog import stores
    from chargelog.logic.upload_indexer import index_upload
    from chargelog.observability import logger

    logger.setLevel("WARNING")
    warm_up, *keys, traced = json.loads(sys.stdin.read())

    def index(key: str, expected_size: int) -> None:
        outcome = index_upload(key, store=stores.diagnostics(), files=stores.diagnostics_files())
        if outcome.file is None or outcome.file.size != expected_size:
            raise RuntimeError(f"not indexed as uploaded: {outcome}")

    index(warm_up, WARM_UP_BYTES)  # imports, clients, connections
    seconds: list[float] = []
    rss_growth_kib: list[int] = []
    can_reset = _reset_peak_rss()
    for key in keys:
        gc.collect()
        if can_reset:
            _reset_peak_rss()
        before_kib = _rss_kib("VmRSS") if can_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        began = time.perf_counter()
        index(key, size)
        seconds.append(time.perf_counter() - began)
        after_kib = _rss_kib("VmHWM") if can_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_growth_kib.append(after_kib - before_kib)
    gc.collect()
    tracemalloc.start()
    index(traced, size)
    _, peak_heap = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = {
        "seconds": seconds,
        "peak_heap_bytes": peak_heap,
        "rss_growth_bytes": [kib * 1024 for kib in rss_growth_kib],
        "rss_method": "VmHWM after clear_refs, less VmRSS" if can_reset else "ru_maxrss growth",
    }
    print(json.dumps(result), flush=True)


def indexer(sizes: list[int], runs: int, rng: random.Random) -> list[dict[str, Any]]:
    from chargelog.settings import get_settings

    bucket = get_settings().diagnostics_bucket
    rows = []
    for size in sizes:
        data = _file_bytes(size, rng)
        for body_kind in ("raw", "multipart"):
            warm_up = _put_incoming(bucket, body_kind, _file_bytes(WARM_UP_BYTES, rng))
            keys = [_put_incoming(bucket, body_kind, data) for _ in range(runs + 1)]
            child = subprocess.run(
                [sys.executable, __file__, "--indexer-child", str(size)],
                input=json.dumps([warm_up, *keys]),
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            if child.returncode != 0:
                raise RuntimeError(f"indexer child ({size}, {body_kind}) failed:\n{child.stderr[-3000:]}")
            result = json.loads(child.stdout.strip().splitlines()[-1])
            rows.append(
                {
                    "size": size,
                    "body": body_kind,
                    "runs": len(result["seconds"]),
                    "wall_p50_ms": percentile(result["seconds"], 50) * 1000.0,
                    "wall_max_ms": max(result["seconds"]) * 1000.0,
                    "peak_heap_bytes": result["peak_heap_bytes"],
                    "peak_heap_per_file_byte": result["peak_heap_bytes"] / size,
                    "rss_growth_first_bytes": result["rss_growth_bytes"][0],
                    "rss_growth_max_bytes": max(result["rss_growth_bytes"]),
                    "rss_growth_bytes": result["rss_growth_bytes"],
                    "rss_method": result["rss_method"],
                }
            )
            print(f"  indexer {_size_label(size)} {body_kind}: done", flush=True)
    return rows


def render_indexer(rows: list[dict[str, Any]]) -> str:
    headers = ["indexed body", "runs", "wall p50 ms", "wall max ms", "peak heap", "heap / file", "RSS growth 1st / max"]
    return _table(
        headers,
        [
            [
                f"{_size_label(row['size'])} {row['body']}",
                str(row["runs"]),
                f"{row['wall_p50_ms']:,.0f}",
                f"{row['wall_max_ms']:,.0f}",
                f"{row['peak_heap_bytes'] / 2**20:.2f} MB",
                f"{row['peak_heap_per_file_byte']:.2f}",
                f"{row['rss_growth_first_bytes'] / 2**20:.1f} / {row['rss_growth_max_bytes'] / 2**20:.1f} MB",
            ]
            for row in rows
        ],
    )


# --------------------------------------------------------------------------------------------- 3. the authorizer
def _authorizer_event(location: str, request_id: str, secret: str) -> dict[str, Any]:
    """The sample REQUEST authorizer event (events/), for this request's address."""
    event: dict[str, Any] = json.loads((REPO / "events" / "upload_authorizer_request.json").read_text())
    token = f"{request_id}.{secret}"
    path = f"/u/{CHARGER}/{token}/{FILENAME}"
    event["methodArn"] = event["methodArn"].split("/PUT/", 1)[0] + "/PUT" + path
    event["path"] = path
    event["pathParameters"] = {"charger_id": CHARGER, "token": token, "filename": FILENAME}
    event["requestContext"]["path"] = "/prod" + path
    event["requestContext"]["requestTimeEpoch"] = int(time.time() * 1000)
    if not location.endswith(f"/{token}/"):
        raise RuntimeError("the upload address does not carry the token")
    return event


def authorizer(stack: UploadStack, decisions: int, rng: random.Random) -> list[dict[str, Any]]:
    from chargelog import aws, stores
    from chargelog.dal import diagnostics as diagnostics_dal
    from chargelog.logic.uploads import authorize_upload
    from chargelog.models.diagnostics import new_secret

    request, location, secret = _new_request(stack.url)
    event = _authorizer_event(location, request.request_id, secret)
    headers = {"Content-Length": "1834"}
    parameters = event["pathParameters"]
    resource_path = event["resource"]
    wrong = dict(parameters, token=f"{request.request_id}.{new_secret()}")
    table = aws.table(stack.refs["Table"])
    key = {"pk": diagnostics_dal.request_partition(request.request_id), "sk": diagnostics_dal.REQUEST_SORT_KEY}

    def floor() -> None:
        table.get_item(Key=key, ConsistentRead=True)
        table.update_item(
            Key=key,
            UpdateExpression="ADD upload_attempts :one SET last_attempt_at = :at",
            ExpressionAttributeValues={":one": 1, ":at": datetime.now(UTC).isoformat()},
        )

    def decide(path_parameters: dict[str, str], allowed: bool) -> Callable[[], None]:
        def run() -> None:
            decision = authorize_upload(
                method="PUT",
                resource=resource_path,
                path_parameters=path_parameters,
                headers=headers,
                received_at=datetime.now(UTC),
                store=stores.diagnostics(),
            )
            if decision.allowed != allowed:
                raise RuntimeError(f"unexpected decision: {decision}")

        return run

    def handler() -> None:
        policy = stack.authorizer.invoke(event)
        if policy["policyDocument"]["Statement"][0]["Effect"] != "Allow":
            raise RuntimeError(f"unexpected policy: {policy}")

    measured: dict[str, tuple[Callable[[], None], list[float]]] = {
        "floor: boto3 GetItem + UpdateItem": (floor, []),
        "authorize_upload, allowed (GetItem + UpdateItem)": (decide(parameters, True), []),
        "authorize_upload, denied: wrong secret (GetItem)": (decide(wrong, False), []),
        "authorizer handler, allowed (Powertools, policy)": (handler, []),
    }
    for run, _ in measured.values():
        for _ in range(3):
            run()
    for _ in range(decisions):
        for name in rng.sample(list(measured), len(measured)):
            run, times = measured[name]
            began = time.perf_counter()
            run()
            times.append((time.perf_counter() - began) * 1000.0)
    return [
        {
            "decision": name,
            "runs": len(times),
            "p50_ms": percentile(times, 50),
            "p95_ms": percentile(times, 95),
            "p99_ms": percentile(times, 99),
            "mean_ms": statistics.fmean(times),
        }
        for name, (_, times) in measured.items()
    ]


def render_authorizer(rows: list[dict[str, Any]]) -> str:
    return _table(
        ["decision", "runs", "p50 ms", "p95 ms", "p99 ms"],
        [
            [row["decision"], str(row["runs"]), f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}", f"{row['p99_ms']:.1f}"]
            for row in rows
        ],
    )


# --------------------------------------------------------------------------------------------- main
def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--indexer-child":
        warnings.filterwarnings("ignore", "No application metrics to publish")
        _indexer_child(int(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="file sizes in bytes")
    parser.add_argument("--runs", type=int, default=10, help="timed uploads per size and method; indexer runs")
    parser.add_argument("--decisions", type=int, default=200, help="timed authorizer decisions per row")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "upload.json", help="results file")
    args = parser.parse_args()
    if any(size < 16 or size > 10 * 1024 * 1024 - 1024 for size in args.sizes):
        parser.error("sizes are 16 bytes to 10 MB less 1 KB (the multipart envelope must fit in API Gateway's 10 MB)")
    warnings.filterwarnings("ignore", "No application metrics to publish")
    rng = random.Random(args.seed)
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"sizes {', '.join(_size_label(s) for s in args.sizes)}; {args.runs} runs; {args.decisions} decisions",
        flush=True,
    )
    from processes import start_moto, stop_child

    moto, moto_url = start_moto()
    stack: UploadStack | None = None
    began = time.perf_counter()
    try:
        stack = _start_stack(moto_url)
        uploads = end_to_end(stack, args.sizes, args.runs, rng)
        print(render_end_to_end(uploads), flush=True)
        decisions = authorizer(stack, args.decisions, rng)
        stack.stop()
        stack = None
        indexed = indexer(args.sizes, args.runs, rng)
    finally:
        if stack:
            stack.stop()
        stop_child(moto)
    print()
    print(render_indexer(indexed))
    print()
    print(render_authorizer(decisions))
    print(f"done in {time.perf_counter() - began:.0f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "args": vars(args),
        "end_to_end": uploads,
        "indexer": indexed,
        "authorizer": decisions,
    }
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
