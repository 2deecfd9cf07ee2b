"""Query API latency and read cost: the main log queries over HTTP against the local stack.

What runs where, as `chargelog local` runs it:
- moto's server in its own process, with the template's table, buckets and queues (provisioned from
  template.yaml);
- in this process, the template's API function behind the local API Gateway on 127.0.0.1 (werkzeug,
  threaded), and the HTTP client that times the requests (httpx, keep-alive).
So every figure includes the gateway, the handler (Powertools routing and validation, the query logic,
boto3) and moto's DynamoDB.

Seeded data: N records of one busy charger (realistic OCPP 1.6 traffic from chargelog_simulators.traffic:
MeterValues, Heartbeats, sessions, CSMS operations and their answers, a few CALLERRORs), spread over a
few days; and a smaller fleet of chargers on two sites, starting at random times in the same span.
Written with RecordWriter (batches of 1,000), as the collector writes them.

Each query runs --runs times, round-robin over the queries in a shuffled order (so machine noise hits them
alike), after two untimed warm-up requests each. Time windows and record ids are drawn at random (seeded)
per run. Reported per query: latency p50/p95/p99/max; the part spent outside AWS calls (the gateway, the
handler and the HTTP client: the request's time less the time inside botocore's Endpoint.make_request);
records returned per request; and the items DynamoDB read per record returned (the API's X-Items-Read
header: ScannedCount summed over the page's Queries). The first row, the floor, is one bare boto3 Query for
the same page as the 6 h range rows, without the API.

Reading the figures: moto's Query walks every item of the table, sorts the partition and steps through it
to the range's start, so its cost grows with the table and dominates the latencies here (see the floor and
the "outside AWS calls" column); on DynamoDB a Query costs about the same whatever the table's size. The
read/returned ratio does not depend on moto. The same cost makes big runs slow: each request takes about
a second at N = 20,000 on a small machine.

    .venv/bin/python bench/query.py                                  # N = 50,000, 200 runs per query (long)
    .venv/bin/python bench/query.py --records 20000 --runs 30        # as `make bench` runs it
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the records the tests seed: tests/simulated_records.py

from simulated_records import ocpp_records  # noqa: E402

API_KEY = "bench-query-key-0123456789"
REGION = "us-east-1"
CHARGER = "CP-BENCH-0001"
SITES = ("SITE-NORTH", "SITE-HARBOUR")
START = datetime(2026, 11, 1, tzinfo=UTC)
WRITE_BATCH = 1000


# --------------------------------------------------------------------------------------------- the stack
@dataclass
class Api:
    url: str
    stop: Callable[[], None]
    refs: dict[str, str]


def _start_api(moto_url: str) -> Api:
    """The template's resources in moto, and its API function behind the local gateway on 127.0.0.1."""
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
    from werkzeug.serving import WSGIRequestHandler, make_server

    from chargelog import aws
    from chargelog.settings import get_settings
    from chargelog_local import template as tpl
    from chargelog_local.gateway import LocalApiGateway
    from chargelog_local.lambdas import LocalFunction
    from chargelog_local.provision import function_environment, provision

    aws.reset()
    template = tpl.load_template()
    stack = provision(template, "bench-query", REGION, {"Stage": "local"})
    os.environ.update(function_environment(template, stack))
    get_settings.cache_clear()
    spec = next(s for s in tpl.functions(template) if s.logical_id == "ApiFunction")
    function = LocalFunction(spec, REGION)
    gateway = LocalApiGateway(
        functions={spec.logical_id: function},
        routes=spec.routes,
        api_key=API_KEY,
        gateway_responses=tpl.gateway_responses(template),
        binary_media_types=tpl.binary_media_types(template),
        stage="local",
        region=REGION,
    )

    class QuietRequestHandler(WSGIRequestHandler):
        def log_request(self, *_: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, gateway, threaded=True, request_handler=QuietRequestHandler)
    threading.Thread(target=server.serve_forever, name="api", daemon=True).start()

    def stop() -> None:
        server.shutdown()
        function.shutdown()

    return Api(f"http://127.0.0.1:{server.server_port}", stop, dict(stack.refs))


# --------------------------------------------------------------------------------------------- the data
@dataclass
class Seeded:
    charger_records: int
    fleet_chargers: int
    fleet_records: int
    span_end: datetime
    seconds: float


def seed(refs: dict[str, str], records: int, fleet_chargers: int, fleet_records: int, rng: random.Random) -> Seeded:
    from chargelog.dal.archive import RawArchive
    from chargelog.dal.records import RecordWriter
    from chargelog_simulators.traffic import Density, iter_traffic

    writer = RecordWriter(refs["Table"], RawArchive(refs["RawBucket"]), hot_retention_days=3650)
    began = time.perf_counter()
    # A busy two-connector DC charger: about 15,000 frames a day.
    density = Density(session_gap_seconds=1800, meter_interval_seconds=15)
    frames = itertools.islice(iter_traffic(CHARGER, START, START + timedelta(days=365), rng, 2, density), records)
    batch: list[Any] = []
    span_end = START
    for record in ocpp_records(CHARGER, frames, None):
        batch.append(record)
        span_end = record.timestamp
        if len(batch) == WRITE_BATCH:
            writer.write(batch)
            batch = []
    writer.write(batch)
    per_charger = fleet_records // max(1, fleet_chargers)
    span = span_end - START
    for n in range(fleet_chargers):
        charger = f"CP-FLEET-{n:03d}"
        begin = START + span * rng.uniform(0, 0.5)
        traffic = iter_traffic(charger, begin, span_end, rng, connectors=2)
        writer.write(list(ocpp_records(charger, itertools.islice(traffic, per_charger), SITES[n % len(SITES)])))
    return Seeded(records, fleet_chargers, per_charger * fleet_chargers, span_end, time.perf_counter() - began)


# --------------------------------------------------------------------------------------------- the queries
class AwsCallTimer:
    """Time spent inside botocore's Endpoint.make_request (signing, HTTP to moto, moto, parsing), in this
    process: the handler's DynamoDB calls. Requests run one at a time, so a running total is enough."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def install(self) -> None:
        from botocore.endpoint import Endpoint

        original = Endpoint.make_request
        timer = self

        def timed(endpoint: Any, *args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(endpoint, *args, **kwargs)
            finally:
                timer.seconds += time.perf_counter() - began

        Endpoint.make_request = timed  # type: ignore[method-assign]


AWS_CALLS = AwsCallTimer()


@dataclass
class Query:
    name: str
    request: Callable[[], tuple[str, dict[str, Any]]]  # (path, params) of the next run
    direct: bool = False  # a boto3 Query on the table (path: the partition key), not an HTTP request
    latencies_ms: list[float] = field(default_factory=list)
    outside_aws_ms: list[float] = field(default_factory=list)  # the gateway's and the handler's own time
    returned: list[int] = field(default_factory=list)
    items_read: list[int] = field(default_factory=list)


def queries(seeded: Seeded, record_ids: list[str], limit: int, rng: random.Random) -> list[Query]:
    from chargelog.models.keys import charger_partition

    span = seeded.span_end - START

    def window(hours: float) -> tuple[str, str]:
        start = START + (span - timedelta(hours=hours)) * rng.random()
        return start.isoformat(), (start + timedelta(hours=hours)).isoformat()

    charger_path = f"/chargers/{CHARGER}/logs"
    whole = {"from": START.isoformat(), "to": seeded.span_end.isoformat()}

    def ranged(order: str) -> tuple[str, dict[str, Any]]:
        start, end = window(6)
        return charger_path, {"from": start, "to": end, "order": order, "limit": limit}

    def one_action() -> tuple[str, dict[str, Any]]:
        start, end = window(24)
        return charger_path, {"action": "StatusNotification", "from": start, "to": end, "limit": limit}

    def merged() -> tuple[str, dict[str, Any]]:
        start, _ = window(0)
        actions = ["Authorize", "StartTransaction", "StopTransaction", "BootNotification"]
        return charger_path, {"action": actions, "from": start, "limit": limit}

    def filtered() -> tuple[str, dict[str, Any]]:
        start, end = window(1)
        return charger_path, {"message_type": "CALLERROR", "from": start, "to": end, "limit": limit}

    def fleet_day() -> tuple[str, dict[str, Any]]:
        start, end = window(24)
        return "/logs", {"action": "StatusNotification", "from": start, "to": end, "limit": limit}

    def one_record() -> tuple[str, dict[str, Any]]:
        return f"{charger_path}/{quote(rng.choice(record_ids), safe='')}", {}

    def floor() -> tuple[str, dict[str, Any]]:
        start, end = window(6)
        return charger_partition(CHARGER), {"from": start, "to": end, "limit": limit}

    return [
        Query("floor: one boto3 Query, 6 h range", floor, direct=True),
        Query("charger, 6 h range, asc", lambda: ranged("asc")),
        Query("charger, 6 h range, desc", lambda: ranged("desc")),
        Query("charger, 1 action, 24 h range", one_action),
        Query("charger, 4 actions merged", merged),
        Query("charger, 1 h, filter CALLERROR (rare)", filtered),
        Query("site", lambda: (f"/sites/{SITES[0]}/logs", {"from": window(24)[0], "limit": limit})),
        Query(
            "fleet, BootNotification, all days",
            lambda: ("/logs", {"action": "BootNotification", **whole, "limit": limit}),
        ),
        Query("fleet, StatusNotification, 24 h", fleet_day),
        Query("one record by id", one_record),
        Query("GET /chargers", lambda: ("/chargers", {})),
    ]


def _sample_ids(client: Any, count: int, rng: random.Random, seeded: Seeded) -> list[str]:
    span = seeded.span_end - START
    ids: list[str] = []
    while len(ids) < count:
        start = START + span * rng.random()
        body = _get(client, f"/chargers/{CHARGER}/logs", {"from": start.isoformat(), "limit": 50}).json()
        ids.extend(record["id"] for record in body["records"][::5])
    return ids[:count]


def _get(client: Any, path: str, params: dict[str, Any]) -> Any:
    response = client.get(path, params=params)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} {params}: {response.status_code} {response.text[:300]}")
    return response


def _direct_query(table: Any, partition: str, params: dict[str, Any]) -> tuple[int, int]:
    """The floor: one DynamoDB Query for a page of a charger's records, boto3 straight to moto."""
    from boto3.dynamodb.conditions import Key

    from chargelog.models.keys import timestamp_key

    low = timestamp_key(datetime.fromisoformat(params["from"]))
    high = timestamp_key(datetime.fromisoformat(params["to"])) + "#\U0010ffff"
    response = table.query(
        KeyConditionExpression=Key("pk").eq(partition) & Key("sk").between(low, high), Limit=params["limit"]
    )
    return len(response["Items"]), int(response["ScannedCount"])


def run_query(client: Any, table: Any, query: Query, timed: bool) -> None:
    path, params = query.request()
    in_aws = AWS_CALLS.seconds
    began = time.perf_counter()
    if query.direct:
        returned, items_read = _direct_query(table, path, params)
        elapsed_ms = (time.perf_counter() - began) * 1000.0
    else:
        response = _get(client, path, params)
        elapsed_ms = (time.perf_counter() - began) * 1000.0
        body = response.json()
        returned = len(body["records"]) if "records" in body else len(body.get("chargers", [body]))
        header = response.headers.get("x-items-read")
        items_read = int(header) if header is not None else None
    if timed:
        query.latencies_ms.append(elapsed_ms)
        query.outside_aws_ms.append(elapsed_ms - (AWS_CALLS.seconds - in_aws) * 1000.0)
        query.returned.append(returned)
        if items_read is not None:
            query.items_read.append(items_read)


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def summarise(query: Query) -> dict[str, Any]:
    returned = sum(query.returned)
    return {
        "query": query.name,
        "runs": len(query.latencies_ms),
        "p50_ms": percentile(query.latencies_ms, 50),
        "p95_ms": percentile(query.latencies_ms, 95),
        "p99_ms": percentile(query.latencies_ms, 99),
        "max_ms": max(query.latencies_ms),
        "outside_aws_p50_ms": percentile(query.outside_aws_ms, 50),
        "outside_aws_p95_ms": percentile(query.outside_aws_ms, 95),
        "returned_per_request": returned / len(query.returned),
        "read_per_returned": sum(query.items_read) / returned if query.items_read and returned else None,
        "read_per_request": sum(query.items_read) / len(query.items_read) if query.items_read else None,
    }


def render(rows: list[dict[str, Any]]) -> str:
    headers = [
        "query",
        "runs",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "p50 / p95 ms outside AWS calls",
        "returned/req",
        "read/req",
        "read/returned",
    ]
    table = [
        [
            row["query"],
            str(row["runs"]),
            f"{row['p50_ms']:.1f}",
            f"{row['p95_ms']:.1f}",
            f"{row['p99_ms']:.1f}",
            f"{row['max_ms']:.1f}",
            f"{row['outside_aws_p50_ms']:.1f} / {row['outside_aws_p95_ms']:.1f}",
            f"{row['returned_per_request']:.1f}",
            "-" if row["read_per_request"] is None else f"{row['read_per_request']:.1f}",
            "-" if row["read_per_returned"] is None else f"{row['read_per_returned']:.2f}",
        ]
        for row in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([cells[0].ljust(widths[0]), *rest])

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in table)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000, help="records of the one busy charger")
    parser.add_argument("--fleet-chargers", type=int, default=20, help="other chargers, on two sites")
    parser.add_argument("--fleet-records", type=int, default=10_000, help="records of the other chargers together")
    parser.add_argument("--runs", type=int, default=200, help="timed requests per query")
    parser.add_argument("--limit", type=int, default=100, help="page size asked for (the API's default: 100)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", "No application metrics to publish")
    import httpx

    rng = random.Random(args.seed)
    AWS_CALLS.install()
    from processes import start_moto, stop_child

    moto, moto_url = start_moto()
    api: Api | None = None
    try:
        api = _start_api(moto_url)
        seeded = seed(api.refs, args.records, args.fleet_chargers, args.fleet_records, rng)
        days = (seeded.span_end - START) / timedelta(days=1)
        print(
            f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
            f"seeded {seeded.charger_records:,} records of {CHARGER} over {days:.1f} days "
            f"and {seeded.fleet_records:,} of {seeded.fleet_chargers} other chargers in {seeded.seconds:.0f} s; "
            f"page size {args.limit}; {args.runs} runs per query",
            flush=True,
        )
        from chargelog import aws

        table = aws.table(api.refs["Table"])
        with httpx.Client(base_url=api.url, headers={"x-api-key": API_KEY}, timeout=60) as client:
            all_queries = queries(seeded, _sample_ids(client, 200, rng, seeded), args.limit, rng)
            for query in all_queries:
                for _ in range(2):
                    run_query(client, table, query, timed=False)
            began = time.perf_counter()
            for _ in range(args.runs):
                for query in rng.sample(all_queries, len(all_queries)):
                    run_query(client, table, query, timed=True)
            seconds = time.perf_counter() - began
    finally:
        if api:
            api.stop()
        stop_child(moto)
    rows = [summarise(query) for query in all_queries]
    print(render(rows))
    print(f"{args.runs * len(all_queries):,} requests in {seconds:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        results = {"seeded": vars(seeded) | {"span_end": seeded.span_end.isoformat()}, "args": vars(args), "rows": rows}
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
