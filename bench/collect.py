"""Collection throughput and memory: a backfill of N records from the OCPPLAB simulator into the local stack.

For each N it runs, in this process:
- chargelog's engine (JobRunner, the worker's code path: paging, checkpoints, raw archive, normalization,
  idempotent batch upserts, collector state), as `chargelog backfill` does;
- the floor: the same pages fetched with plain httpx and the same items (those the engine stored) written
  with boto3's bare `batch_writer` into an empty table with the same keys and indexes, nothing else.
moto's server and the simulator run in their own processes, so the memory figures are the collector's.

Reports records per second for both, the engine's share of the floor, vendor requests against the
minimum ceil(N / page size), and how much the engine raised the process's peak resident memory
(``ru_maxrss`` before and after it ran) - which must stay flat as N grows. Each N runs in a fresh child
process, so one size's peak does not hide the next one's. Nothing traces allocations while the engine is
timed: tracemalloc slows allocation-heavy Python two- to threefold, and an earlier version of this bench,
which timed the engine under it, reported 0.30-0.36 of the floor for what runs at 0.86 untraced.

    .venv/bin/python bench/collect.py                     # N = 50,000 and 200,000
    .venv/bin/python bench/collect.py --records 20000     # a quick run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PAGE_SIZE = 1000
CHARGER = "dep-bench"
TOKEN = "bench-token"


def _serve_simulator(records: int) -> None:
    """Child process: a seeded OCPPLAB simulator; prints its URL, the record count and the window, then serves."""
    from chargelog_simulators.base import SimulatorServer
    from chargelog_simulators.ocpplab import OcpplabSimulator
    from chargelog_simulators.traffic import Density

    simulator = OcpplabSimulator(seed=2026)
    simulator.add_token(TOKEN)
    simulator.add_charger(CHARGER)
    end = datetime(2026, 11, 20, tzinfo=UTC)
    # This density gives about 73,000 records a day.
    start = end - timedelta(days=records / 73_000)
    count = simulator.seed(CHARGER, start, end, density=Density(session_gap_seconds=600, meter_interval_seconds=4))
    server = SimulatorServer(simulator.wsgi_app)
    print(
        json.dumps({"url": server.start(), "records": count, "start": start.isoformat(), "end": end.isoformat()}),
        flush=True,
    )
    sys.stdin.read()  # until the parent closes our stdin
    server.stop()


def _start_child(args: list[str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    child = subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, json.loads(child.stdout.readline())


def _provision(stack_name: str, simulator_url: str) -> Any:
    from chargelog import aws
    from chargelog.settings import get_settings
    from chargelog_local.provision import function_environment, provision
    from chargelog_local.template import load_template

    template = load_template()
    stack = provision(template, stack_name, "us-east-1")
    os.environ.update(function_environment(template, stack))
    get_settings.cache_clear()
    secret = {
        "base_url": simulator_url,
        "token": TOKEN,
        "page_size": PAGE_SIZE,
        "requests_per_second": 10_000,
        "burst": 10_000,
    }
    aws.client("secretsmanager").put_secret_value(SecretId=stack.refs["OcpplabSecret"], SecretString=json.dumps(secret))
    return stack


def _run_engine(start: datetime, end: datetime) -> dict[str, Any]:
    from chargelog import stores
    from chargelog.logic.collection import JobRunner
    from chargelog.models.jobs import CollectionJob

    job = CollectionJob(
        vendor="ocpplab",
        source_id=CHARGER,
        window_start=start,
        window_end=end,
        mode="backfill",
        scheduled_at=datetime.now(UTC),
    )
    rss_before = _peak_rss_mb()
    began = time.perf_counter()
    outcome = JobRunner(job, remaining_seconds=lambda: float("inf"), stores=stores.collection()).run()
    seconds = time.perf_counter() - began
    rss_after = _peak_rss_mb()
    return {
        "seconds": seconds,
        "records": outcome.records_stored,
        "requests": outcome.vendor_requests,
        "pages": outcome.pages_fetched,
        "quarantined": outcome.records_quarantined,
        "peak_rss_mb": rss_after,
        "peak_rss_growth_mb": rss_after - rss_before,
        "complete": outcome.complete,
    }


def _peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _empty_twin(table_name: str) -> str:
    """A new, empty table with the table's keys and indexes: the floor writes its items into what the engine wrote
    into. Rewriting them into the engine's table instead, over items already there, spared moto's server the growth
    the engine's writes had to pay for (a heap growing by 200,000 items, and the garbage collector's passes over it)."""
    import boto3

    client = boto3.client("dynamodb")
    described = client.describe_table(TableName=table_name)["Table"]
    twin = f"{table_name}-floor"
    request: dict[str, Any] = {
        "TableName": twin,
        "KeySchema": described["KeySchema"],
        "AttributeDefinitions": described["AttributeDefinitions"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    indexes = [
        {"IndexName": index["IndexName"], "KeySchema": index["KeySchema"], "Projection": index["Projection"]}
        for index in described.get("GlobalSecondaryIndexes", [])
    ]
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    client.create_table(**request)
    return twin


def _run_floor(simulator_url: str, table_name: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The same pages fetched with plain httpx, the same items (those the engine stored, read back untimed)
    written with boto3's bare batch_writer into an empty table like the engine's: nothing else."""
    import boto3
    import httpx

    from chargelog.dal.records import charger_items

    items = list(charger_items(table_name, CHARGER))
    table = boto3.resource("dynamodb").Table(_empty_twin(table_name))
    params = {"start_date": start.isoformat(), "end_date": end.isoformat(), "limit": PAGE_SIZE}
    began = time.perf_counter()
    requests = fetched = 0
    with httpx.Client(base_url=simulator_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
        while True:
            body = http.get(f"/ocpp/chargers/{CHARGER}/logs", params=params | {"offset": fetched}).json()
            requests += 1
            fetched += len(body["data"])
            if not body["data"] or fetched >= body["total"]:
                break
    with table.batch_writer() as writer:
        for item in items:
            writer.put_item(Item=item)
    return {"seconds": time.perf_counter() - began, "records": len(items), "fetched": fetched, "requests": requests}


def measure(records: int) -> dict[str, Any]:
    from processes import start_moto, stop_child

    moto, moto_url = start_moto()
    simulator, info = _start_child([__file__, "--serve-simulator", str(records)])
    try:
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": moto_url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
            }
        )
        from chargelog import aws

        aws.reset()
        stack = _provision(f"bench-{records}", info["url"])
        start, end = datetime.fromisoformat(info["start"]), datetime.fromisoformat(info["end"])
        engine = _run_engine(start, end)
        floor = _run_floor(info["url"], stack.refs["Table"], start, end)
    finally:
        for child in (simulator, moto):
            stop_child(child)
    minimum = math.ceil(info["records"] / PAGE_SIZE)
    return {"n": info["records"], "engine": engine, "floor": floor, "minimum_requests": minimum}


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-simulator":
        _serve_simulator(int(sys.argv[2]))
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        print(json.dumps(measure(int(sys.argv[2]))), flush=True)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[50_000, 200_000], help="backfill sizes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; page size {PAGE_SIZE}")
    results = []
    for records in args.records:
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(records)], stdout=subprocess.PIPE, text=True, check=True
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        results.append(result)
        engine, floor = result["engine"], result["floor"]
        engine_rate, floor_rate = engine["records"] / engine["seconds"], floor["records"] / floor["seconds"]
        print(
            f"N={result['n']:>7,}  engine {engine_rate:7,.0f} rec/s ({engine['seconds']:.1f} s)  "
            f"floor {floor_rate:7,.0f} rec/s ({floor['seconds']:.1f} s)  engine/floor {engine_rate / floor_rate:.2f}  "
            f"requests {engine['requests']} (minimum {result['minimum_requests']})  "
            f"peak RSS +{engine['peak_rss_growth_mb']:.1f} MB (to {engine['peak_rss_mb']:.0f} MB)  "
            f"stored {engine['records']:,}  complete {engine['complete']}",
            flush=True,
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
