"""What charger health detection adds per record: bench/cost.py's measurement with the detectors on and off.

For each vendor it runs bench/cost.py's scheduled collection (`cost.run_vendor`: dispatcher and worker handlers in
this process, moto's server and the vendor's simulator each in its own) twice, into stacks of their own on one moto
server: with the charger health detectors as deployed (the worker's environment names the AlertQueue, and the health
monitor's handler runs every ScheduleMinutes) and without them (no CHARGELOG_ALERT_QUEUE_URL: chargelog.stores gives
the worker no detectors; no health monitor). The order alternates from vendor to vendor and round to round (on
first, then off first), so a drift in the machine's load does not favour one side; ``--rounds`` pairs per vendor
(default 2), and the time figures (CPU, wall, and $, whose Lambda GB-s come from wall time) are the least of the
rounds, since noise only adds to them; the counts are the first round's (the same traffic every round). The API's
queries are not run.

Per vendor and overall, from the steady passes (cost.py's figures):
- the worker's CPU (process time around its handler's invocations: the handlers run in this process, moto and the
  simulators in theirs) and wall time per 1,000 records stored, both without the bench's own accounting in its
  botocore hooks (measured apart, cost.py's ``worker``; the bench's heap is frozen out of the garbage collector
  before each invocation, see cost.Recorder.invocation); and of it, the time inside JobRunner._observe_health in the
  on run (``in detection``: the state reads and writes, the detectors, the notices), which is attributable where
  the on-off difference of two whole runs is noisy;
- write units per record, all and the detectors' (``health/*``: each charger's state item, ``alerts/*``: alert
  items), their read units (a state read per charger per job), state writes per job, alerts opened (the simulators'
  traffic is healthy by default, chargelog_simulators.traffic.Behaviour: about none), $ per million records;
- the detectors alone, on the very pages the worker fed them in the on run (captured at
  JobRunner._observe_health, re-read records included), without DynamoDB or moto: CPU of
  `chargelog.logic.charger_health.detectors.observe` per charger and page (as ChargerHealthMonitor.observe calls it),
  then with the state's JSON as the worker handles it (parsed once per job and charger, serialised and packed when it
  changed); and each stored record once, per charger in 5-minute pages. Best of ``--repeats``;
- the health monitor's pass (the on run's, per pass), and what a pass costs at 1,000 chargers, estimated from the
  measured item sizes (its three Queries read every charger's state, index entry and collector state; eventually
  consistent) and the measured CPU of `detectors.evaluate` per charger.

    .venv/bin/python bench/health.py                            # 500 records per vendor, 2 rounds
    .venv/bin/python bench/health.py --records-per-vendor 200 --vendors ocpplab evenergy --rounds 1

Writes bench/results/health-<time>.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cost
from cost_model import Prices, item_size, read_units

REPO = Path(__file__).resolve().parents[1]
PAGE = timedelta(minutes=5)
FLEET = 1000  # chargers, for the health monitor's estimate


# ---------------------------------------------------------------------------------------------- the pages fed


@dataclass
class Page:
    """One page the worker handed the detectors: which job (JobRunner) fed it, in which phase, its records."""

    job: int
    phase: str
    records: list[Any]  # LogRecord (frozen)


class PageCapture:
    """Keeps the pages JobRunner._observe_health is given (while ``recording``), then lets it run as it would."""

    def __init__(self) -> None:
        self.pages: dict[str, list[Page]] = defaultdict(list)  # vendor -> pages, in order
        # (vendor, round) -> [CPU, wall] seconds inside JobRunner._observe_health in the steady passes (the
        # detectors' share of the worker: state reads and writes, the detectors, notices), without the accounting.
        self.inside: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
        self.recording: tuple[str, int, cost.Recorder] | None = None  # vendor, round (pages kept in round 0)
        self._jobs = itertools.count()

    def install(self) -> None:
        from chargelog.logic.collection import JobRunner

        original = JobRunner._observe_health
        capture = self

        def observe_health(runner: Any, records: list[Any]) -> None:
            if capture.recording is None or not records:
                original(runner, records)
                return
            vendor, round_, recorder = capture.recording
            if not hasattr(runner, "_bench_job"):
                runner._bench_job = next(capture._jobs)
            if round_ == 0:
                capture.pages[vendor].append(Page(runner._bench_job, recorder.phase, list(records)))
            accounted = tuple(recorder._accounting)
            began, began_cpu = time.perf_counter(), time.process_time()
            original(runner, records)
            cpu, wall = time.process_time() - began_cpu, time.perf_counter() - began
            if recorder.phase.endswith("/steady"):
                inside = capture.inside[(vendor, round_)]
                inside[0] += cpu - (recorder._accounting[1] - accounted[1])
                inside[1] += wall - (recorder._accounting[0] - accounted[0])

        JobRunner._observe_health = observe_health  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------- detectors alone


def _best(repeats: int, run: Callable[[], tuple[float, float]]) -> dict[str, float]:
    """The least CPU and wall seconds of ``repeats`` runs of ``run`` (which times its own timed part)."""
    cpu, wall = min(run() for _ in range(repeats))
    return {"cpu_seconds": cpu, "wall_seconds": wall}


def _by_charger(records: list[Any]) -> dict[tuple[str, str, str], list[Any]]:
    groups: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for record in records:
        groups[(record.vendor, record.source_id, record.charger_id)].append(record)
    return groups


def detectors_alone(pages: list[Page], stored: int, repeats: int) -> dict[str, Any]:
    """The detectors' CPU on ``pages`` (first pass untimed: it builds the states the steady passes start from)."""
    from chargelog.dal.alerts import _packed, _unpacked
    from chargelog.logic.charger_health import detectors
    from chargelog.models.health_state import ChargerHealthState
    from chargelog.settings import get_health_thresholds

    thresholds = get_health_thresholds()
    steady = [page.phase.endswith("/steady") for page in pages]
    fed = sum(len(page.records) for page, timed in zip(pages, steady, strict=True) if timed)

    def as_fed() -> tuple[float, float]:
        states: dict[tuple[str, str, str], Any] = {}
        cpu = wall = 0.0
        for page, timed in zip(pages, steady, strict=True):
            began, began_cpu = time.perf_counter(), time.process_time()
            for key, group in _by_charger(page.records).items():
                states[key] = detectors.observe(
                    states.get(key) or ChargerHealthState(), group, thresholds=thresholds
                ).state
            if timed:
                wall += time.perf_counter() - began
                cpu += time.process_time() - began_cpu
        return cpu, wall

    def with_state_json() -> tuple[float, float]:
        # As ChargerHealthMonitor does it: a charger's state read (parsed) once per job, written when it changed.
        stored_json: dict[tuple[str, str, str], Any] = {}
        held: dict[tuple[int, tuple[str, str, str]], Any] = {}
        cpu = wall = 0.0
        for page, timed in zip(pages, steady, strict=True):
            began, began_cpu = time.perf_counter(), time.process_time()
            for key, group in _by_charger(page.records).items():
                state = held.get((page.job, key))
                if state is None:
                    packed = stored_json.get(key)
                    state = (
                        ChargerHealthState.model_validate_json(_unpacked(packed)) if packed else ChargerHealthState()
                    )
                observation = detectors.observe(state, group, thresholds=thresholds)
                if observation.changed:
                    stored_json[key] = _packed(observation.state.model_dump_json(exclude_defaults=True))
                held[(page.job, key)] = observation.state
            if timed:
                wall += time.perf_counter() - began
                cpu += time.process_time() - began_cpu
        return cpu, wall

    # Each record once (the last copy fed), per charger in 5-minute pages by record time; timed: the pages after
    # the first pass's last record.
    unique: dict[str, Any] = {}
    first_pass_until = None
    for page, timed in zip(pages, steady, strict=True):
        for record in page.records:
            unique[record.record_id] = record
            if not timed and (first_pass_until is None or record.timestamp > first_pass_until):
                first_pass_until = record.timestamp
    buckets: dict[tuple[tuple[str, str, str], int], list[Any]] = defaultdict(list)
    for record in unique.values():
        key = (record.vendor, record.source_id, record.charger_id)
        buckets[(key, int(record.timestamp.timestamp() // PAGE.total_seconds()))].append(record)
    ordered = sorted(buckets.items(), key=lambda entry: (entry[0][1], entry[0][0]))
    timed_once = [
        first_pass_until is None or min(r.timestamp for r in group) > first_pass_until for _, group in ordered
    ]
    once_records = sum(len(group) for (_, group), timed in zip(ordered, timed_once, strict=True) if timed)

    def once() -> tuple[float, float]:
        states: dict[tuple[str, str, str], Any] = {}
        cpu = wall = 0.0
        for ((key, _), group), timed in zip(ordered, timed_once, strict=True):
            began, began_cpu = time.perf_counter(), time.process_time()
            states[key] = detectors.observe(states.get(key) or ChargerHealthState(), group, thresholds=thresholds).state
            if timed:
                wall += time.perf_counter() - began
                cpu += time.process_time() - began_cpu
        return cpu, wall

    results = {
        "records_stored": stored,
        "records_fed": fed,
        "pages_fed": sum(steady),
        "fed_per_stored": fed / stored if stored else None,
        "as_fed": _best(repeats, as_fed),
        "as_fed_with_state_json": _best(repeats, with_state_json),
        "once_in_5_minute_pages": _best(repeats, once) | {"records": once_records},
    }
    for name in ("as_fed", "as_fed_with_state_json"):
        results[name]["cpu_ms_per_1000_records"] = 1e6 * results[name]["cpu_seconds"] / stored if stored else None
    per = results["once_in_5_minute_pages"]
    per["cpu_ms_per_1000_records"] = 1e6 * per["cpu_seconds"] / once_records if once_records else None
    return results


def evaluate_per_charger(pages: list[Page], repeats: int) -> dict[str, Any]:
    """CPU of the health monitor's work per charger without I/O: parse the stored state, `detectors.evaluate` it at a
    data time 5 minutes after its latest record (states as the pages left them)."""
    from chargelog.dal.alerts import _packed, _unpacked
    from chargelog.logic.charger_health import detectors
    from chargelog.models.health_state import ChargerHealthState
    from chargelog.settings import get_health_thresholds

    thresholds = get_health_thresholds()
    states: dict[tuple[str, str, str], Any] = {}
    for page in pages:
        for key, group in _by_charger(page.records).items():
            states[key] = detectors.observe(states.get(key) or ChargerHealthState(), group, thresholds=thresholds).state
    packed = {key: _packed(state.model_dump_json(exclude_defaults=True)) for key, state in states.items()}

    def run() -> tuple[float, float]:
        began, began_cpu = time.perf_counter(), time.process_time()
        for (vendor, source_id, charger_id), value in packed.items():
            state = ChargerHealthState.model_validate_json(_unpacked(value))
            latest = state.latest_at or datetime.now(UTC)
            detectors.evaluate(
                state,
                vendor=vendor,
                source_id=source_id,
                charger_id=charger_id,
                site_id=None,
                data_time=latest + PAGE,
                last_record_at=latest,
                collector_healthy=True,
                thresholds=thresholds,
            )
        return time.process_time() - began_cpu, time.perf_counter() - began

    best = _best(repeats, run)
    return {"chargers": len(packed), **best, "cpu_ms_per_charger": 1000 * best["cpu_seconds"] / len(packed)}


# ---------------------------------------------------------------------------------------------- health monitor


def _partition_sizes(recorder: cost.Recorder) -> dict[str, float]:
    """Average item size of each partition the health monitor's pass reads, from the items as written."""
    sizes: dict[str, list[int]] = defaultdict(list)
    for item in recorder.shadow.values():
        pk = item.get("pk", {}).get("S") if isinstance(item.get("pk"), dict) else None
        if pk in ("HEALTH", "CHARGERS", "COLLECTOR"):
            sizes[pk].append(item_size(item))
    return {pk: sum(values) / len(values) for pk, values in sizes.items()}


def monitor_at_fleet(
    sizes: dict[str, float], evaluate_ms: float, pass_seconds: float, memory_mb: int, prices: Prices, interval: int
) -> dict[str, Any]:
    """A health monitor pass over FLEET chargers (one source each: the collector states' upper bound), estimated:
    its three Queries read every item of their partition (eventually consistent, 4 KB a half unit), plus the
    unnotified-alerts Queries (0.5 each, two: open and resolved); its time is the measured pass (few chargers) plus
    the measured CPU of parsing and evaluating each charger."""
    units = sum(read_units(math.ceil(FLEET * sizes.get(pk, 0.0)), False) for pk in ("HEALTH", "CHARGERS", "COLLECTOR"))
    units += 2 * read_units(0, False)  # the unnotified alerts: open and resolved, nothing to read
    seconds = pass_seconds + FLEET * evaluate_ms / 1000
    passes = 30.4 * 86400 / interval
    per_pass = {
        "dynamodb": units * prices.dynamodb_read_unit,
        "lambda": seconds * memory_mb / 1024 * prices.lambda_arm_gb_second + prices.lambda_request,
    }
    return {
        "chargers": FLEET,
        "item_bytes": sizes,
        "read_units_per_pass": units,
        "seconds_per_pass": seconds,
        "passes_per_month": passes,
        "dollars_per_month": {k: v * passes for k, v in per_pass.items()} | {"total": sum(per_pass.values()) * passes},
    }


# ---------------------------------------------------------------------------------------------- the table


def _row(result: dict[str, Any], inside: list[float]) -> dict[str, Any]:
    """A vendor's figures in one mode; ``inside``: CPU and wall seconds in JobRunner._observe_health."""
    health, worker = result["health"], result["worker"]
    health_units = health["write_units_per_record"] or 0.0
    records = result["records"]["steady"]
    return {
        "records": records,
        "jobs": worker["jobs"],
        "worker_cpu_s_per_1000": worker["net_cpu_seconds_per_1000_records"],
        "worker_wall_s_per_1000": worker["net_wall_seconds_per_1000_records"],
        "detection_cpu_s_per_1000": 1000 * inside[0] / records if records else 0.0,
        "detection_wall_s_per_1000": 1000 * inside[1] / records if records else 0.0,
        "wru_per_record": result["write_units_per_record"],
        "health_wru_per_record": health_units,
        "rru_per_record": result["read_units_per_record"],
        "health_rru_per_record": health["read_units_per_record"] or 0.0,
        "state_writes_per_job": health["state_writes_per_job"] or 0.0,
        "state_writes_per_charger_day": health["state_writes_per_charger_day"] or 0.0,
        "alerts_opened": health["alerts_opened"],
        "dollars_per_million": result["dollars_per_million_records"]["total"],
        "health_dollars_per_million": health["dollars_per_million_records"]["total"],
    }


TIMED = (
    "worker_cpu_s_per_1000",
    "worker_wall_s_per_1000",
    "detection_cpu_s_per_1000",
    "detection_wall_s_per_1000",
    "dollars_per_million",  # holds Lambda GB-s, from wall time
)


def _least(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The first round's row, its time (and $) figures the least of every round's: noise only adds to them. The
    counts are the same traffic's each round."""
    return rows[0] | {name: min(row[name] for row in rows) for name in TIMED}


def _difference(on: dict[str, Any], off: dict[str, Any]) -> dict[str, Any]:
    """On minus off; the CPU, wall and $ figures also as a share of off."""
    diff = {name: on[name] - off[name] for name in on}
    for name in ("worker_cpu_s_per_1000", "worker_wall_s_per_1000", "dollars_per_million", "wru_per_record"):
        diff[f"{name}_share"] = (on[name] - off[name]) / off[name] if off[name] else None
    return diff


HEADER = (
    "| vendor | detectors | records | jobs | worker CPU s / 1,000 records (in detection) | worker wall s / 1,000 "
    "records (in detection) | "
    "WRU / record (health) | RRU / record (health) | state writes / job | alerts opened | $ / million records "
    "(health items) |"
)


def _markdown(vendor: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    on, off, diff = rows["on"], rows["off"], rows["difference"]

    def line(label: str, r: dict[str, Any]) -> str:
        return (
            f"| {vendor} | {label} | {r['records']:,} | {r['jobs']} | {r['worker_cpu_s_per_1000']:.2f} "
            f"({r['detection_cpu_s_per_1000']:.2f}) | {r['worker_wall_s_per_1000']:.2f} "
            f"({r['detection_wall_s_per_1000']:.2f}) | {r['wru_per_record']:.2f} ({r['health_wru_per_record']:.3f}) | "
            f"{r['rru_per_record']:.2f} ({r['health_rru_per_record']:.3f}) | {r['state_writes_per_job']:.2f} | "
            f"{r['alerts_opened']} | ${r['dollars_per_million']:.2f} (${r['health_dollars_per_million']:.3f}) |"
        )

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.0%}"

    return [
        line("on", on),
        line("off", off),
        f"| {vendor} | on - off | {diff['records']:+,} | {diff['jobs']:+} | {diff['worker_cpu_s_per_1000']:+.2f} "
        f"({pct(diff['worker_cpu_s_per_1000_share'])}) | {diff['worker_wall_s_per_1000']:+.2f} "
        f"({pct(diff['worker_wall_s_per_1000_share'])}) | {diff['wru_per_record']:+.3f} "
        f"({pct(diff['wru_per_record_share'])}) | {diff['rru_per_record']:+.3f} | "
        f"{diff['state_writes_per_job']:+.2f} | "
        f"{diff['alerts_opened']:+} | {diff['dollars_per_million']:+.2f} ({pct(diff['dollars_per_million_share'])}) |",
    ]


ALONE_HEADER = (
    "| vendor | records stored | fed to the detectors (re-reads included) | observe, CPU ms / 1,000 records stored | "
    "with the state's JSON | each record once, 5-minute pages: CPU ms / 1,000 records | monitor's evaluate, "
    "CPU ms / charger |"
)


def _alone_markdown(vendor: str, alone: dict[str, Any], evaluate: dict[str, Any]) -> str:
    return (
        f"| {vendor} | {alone['records_stored']:,} | {alone['records_fed']:,} ({alone['fed_per_stored'] or 0:.2f} x) | "
        f"{alone['as_fed']['cpu_ms_per_1000_records'] or 0:.1f} | "
        f"{alone['as_fed_with_state_json']['cpu_ms_per_1000_records'] or 0:.1f} | "
        f"{alone['once_in_5_minute_pages']['cpu_ms_per_1000_records'] or 0:.1f} | "
        f"{evaluate['cpu_ms_per_charger']:.3f} |"
    )


# ---------------------------------------------------------------------------------------------- main


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records-per-vendor", type=int, default=500, help="records in each vendor's steady passes")
    parser.add_argument("--vendors", nargs="+", default=list(cost.VENDORS), choices=cost.VENDORS)
    parser.add_argument(
        "--rounds", type=int, default=2, help="on/off pairs per vendor (time and $ figures: the least of the rounds)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs of the detectors-alone timings (best kept)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()

    cost.function_paths()
    from processes import start_moto, stop_child

    load_before = os.getloadavg()
    began = time.perf_counter()
    moto, moto_url = start_moto()
    os.environ.update(cost.aws_environment(moto_url))
    template = cost._template()
    layout = cost._table_layout(template)
    prices = Prices()
    interval = cost._schedule_seconds(template)
    retention = cost._retention_days(template)
    capture = PageCapture()
    rounds = range(max(1, args.rounds))
    recorders: dict[tuple[bool, int], cost.Recorder] = {}
    runs: dict[tuple[bool, int], list[cost.VendorRun]] = defaultdict(list)
    try:
        import boto3

        inspect = boto3.session.Session().client("dynamodb", region_name=cost.REGION)  # made before the hooks
        recorders = {(on, r): cost.Recorder(layout, inspect, dict) for on in (True, False) for r in rounds}
        capture.install()
        from chargelog import aws

        for r in rounds:
            for n, vendor in enumerate(args.vendors):
                for on in (True, False) if (n + r) % 2 == 0 else (False, True):
                    recorder = recorders[(on, r)]
                    recorder.install()
                    aws.reset()
                    capture.recording = (vendor, r, recorder) if on else None
                    started = time.perf_counter()
                    runs[(on, r)].append(
                        cost.run_vendor(
                            vendor,
                            args.records_per_vendor,
                            recorder,
                            template,
                            moto_url,
                            detectors=on,
                            queries=False,
                            stack_name=f"health-{vendor}-{'on' if on else 'off'}-{r}",
                        )
                    )
                    capture.recording = None
                    if not args.json:
                        print(
                            f"[round {r + 1}, {vendor}, detectors {'on' if on else 'off'}: "
                            f"{time.perf_counter() - started:.0f} s]",
                            file=sys.stderr,
                            flush=True,
                        )
    finally:
        stop_child(moto)
    load_after = os.getloadavg()

    def results(on: bool, r: int) -> dict[str, dict[str, Any]]:
        recorder, measured = recorders[(on, r)], runs[(on, r)]
        out = {
            run.vendor: cost.figures(run.vendor, recorder, [run], layout, prices, retention, interval)
            for run in measured
        }
        out["overall"] = cost.figures("overall", recorder, measured, layout, prices, retention, interval)
        return out

    every = {(on, r): results(on, r) for on in (True, False) for r in rounds}
    on_results = every[(True, 0)]  # the counts of the first round (the same traffic in every round)
    table: dict[str, dict[str, Any]] = {}
    by_round: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in [*args.vendors, "overall"]:
        rows: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
        for r in rounds:
            inside = (
                capture.inside[(name, r)]
                if name != "overall"
                else [sum(capture.inside[(v, r)][i] for v in args.vendors) for i in (0, 1)]
            )
            rows["on"].append(_row(every[(True, r)][name], inside))
            rows["off"].append(_row(every[(False, r)][name], [0.0, 0.0]))
        by_round[name] = rows
        on, off = _least(rows["on"]), _least(rows["off"])
        table[name] = {"on": on, "off": off, "difference": _difference(on, off)}

    alone: dict[str, Any] = {}
    evaluate: dict[str, Any] = {}
    for run in runs[(True, 0)]:
        pages = capture.pages[run.vendor]
        stored = on_results[run.vendor]["records"]["steady"]
        alone[run.vendor] = detectors_alone(pages, stored, args.repeats)
        evaluate[run.vendor] = evaluate_per_charger(pages, args.repeats)
    every_page = [page for vendor in args.vendors for page in capture.pages[vendor]]
    stored_all = on_results["overall"]["records"]["steady"]
    alone["overall"] = detectors_alone(every_page, stored_all, args.repeats)
    evaluate["overall"] = evaluate_per_charger(every_page, args.repeats)

    monitor = on_results["overall"]["health"]["monitor"]
    fleet = monitor_at_fleet(
        _partition_sizes(recorders[(True, 0)]),
        evaluate["overall"]["cpu_ms_per_charger"],
        monitor["lambda_seconds_per_pass"] or 0.0,
        cost._memory_mb(template, "HealthMonitorFunction"),
        prices,
        interval,
    )

    report = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_before": load_before,
        "load_average_after": load_after,
        "seconds": time.perf_counter() - began,
        "records_per_vendor": args.records_per_vendor,
        "rounds": len(rounds),
        "vendors": args.vendors,
        "schedule_seconds": interval,
        "steady_passes": cost.PASSES,
        "worker_memory_mb": cost._memory_mb(template, "WorkerFunction"),
        "prices": asdict(prices),
        "table": table,
        "table_by_round": by_round,
        "detectors_alone": alone,
        "monitor_evaluate": evaluate,
        "health_monitor": {"measured": monitor, f"at_{FLEET}_chargers": fleet},
        "health": {name: on_results[name]["health"] for name in on_results},
        "results": {f"{'on' if on else 'off'}-{r + 1}": every[(on, r)] for on in (True, False) for r in rounds},
    }
    cost.RESULTS.mkdir(parents=True, exist_ok=True)
    out = cost.RESULTS / f"health-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(
        f"Python {report['python']} on {report['machine']}, load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after; commit {report['commit']}; {args.records_per_vendor} records asked per vendor, "
        f"{cost.PASSES} steady passes every {interval} s; {report['seconds']:.0f} s"
    )
    print()
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    for name in [*args.vendors, "overall"]:
        print("\n".join(_markdown(name, table[name])))
    print()
    print(
        "Worker CPU and wall time without the bench's own accounting; (in detection): of it, inside "
        "JobRunner._observe_health (state reads and writes, the detectors, notices); (health): the detectors' state "
        "and alert items. "
        "The simulators' traffic is healthy by default (chargelog_simulators.traffic.Behaviour): alerts opened "
        f"{table['overall']['on']['alerts_opened']} (expected ~0)."
    )
    print()
    print("The detectors alone (no DynamoDB, no moto; best of", args.repeats, "runs):")
    print()
    print(ALONE_HEADER)
    print("|" + "---|" * ALONE_HEADER.count(" | ") + "---|")
    for name in [*args.vendors, "overall"]:
        print(_alone_markdown(name, alone[name], evaluate[name]))
    print()
    health = on_results["overall"]["health"]
    print(
        f"State writes: {health['state_writes']} in {table['overall']['on']['jobs']} jobs, "
        f"{health['state_writes_per_charger_day']:.0f} per charger-day ({health['chargers']} chargers, "
        f"{cost.PASSES * interval / 3600:.0f} h of steady passes); state reads {health['state_reads']}."
    )
    print(
        f"Health monitor, measured: {monitor['passes']} passes, {monitor['read_units_per_pass']:.2f} RRU, "
        f"{monitor['write_units_per_pass']:.2f} WRU, {monitor['lambda_seconds_per_pass']:.3f} s per pass "
        f"(a vendor's stack: 1-{max(run.chargers for run in runs[(True, 0)])} chargers). At {FLEET:,} chargers, "
        "estimated: "
        f"{fleet['read_units_per_pass']:.0f} RRU and {fleet['seconds_per_pass']:.2f} s per pass, "
        + ", ".join(f"{k} ${v:.2f}" for k, v in fleet["dollars_per_month"].items())
        + " per month."
    )
    print(f"results: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
