"""Chaos: every vendor failing at once, on the local stack; every record must be stored, none twice, within 15 minutes.

The scenario of issue 17, in this process: `chargelog local` (``LocalRunner``: moto's server, every function, the
schedules firing every --schedule-seconds, one poller per concurrent invocation each work queue allows) against the
four vendor simulators, each with --sources sources (4) holding about --history records (1,500) of history ending
now. At the faults' start every simulator answers 30 % of requests with a 5xx, 20 % with a 429 (Retry-After: 1) and
10 % after 2 s (``Faults``), the sources are registered (``POST /sources``), and for --live-seconds (60) the sources
keep talking (live records). From then on, every --check-seconds, one Scan of the table's record keys is compared with
the records the simulators have (``visible_records``, each named by the vendor's own normalizer, as the worker names
it): per vendor, the time from the faults' start until every record is stored, and how many are missing, stored twice
or stored but unknown to the vendor. Once all are stored (or after --timeout), the stored records' raw forms (read
back from the raw archive, as the API serves them) are compared with the simulators' records, as the convergence
tests do. Jobs are counted by how they ended (``JobRunner`` in this process: done, handed over for time, handed over
after a vendor error, failed, failures that counted towards backoff), vendor errors a job paused and went on after,
and each simulator's requests and faults.

    .venv/bin/python bench/chaos.py                                   # the issue's scenario (up to ~15 min)
    .venv/bin/python bench/chaos.py --sources 1 --history 200 --live-seconds 20 --schedule-seconds 10 --target 240

Prints a line per check and a table per vendor; writes bench/results/chaos.json (and the functions' log lines next to
it); exits 1 unless every vendor's records were all stored, none twice, within --target seconds (900).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "layers" / "common"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import httpx  # noqa: E402
from text_table import aligned  # noqa: E402

from chargelog_simulators.base import Faults, SimulatorServer  # noqa: E402
from chargelog_simulators.traffic import Density  # noqa: E402

VENDORS = ("ocpplab", "plugchoice", "chargepilot", "evenergy")
# Busy chargers: sessions most of the time, a meter reading every 10 s while charging, a heartbeat a minute.
BUSY = Density(
    session_gap_seconds=240,
    session_seconds=1800,
    meter_interval_seconds=10,
    heartbeat_interval_seconds=60,
    csms_call_gap_seconds=1800,
)
# Records a minute one source gives at BUSY (measured over 100 minutes, 4 sources): OCPPLAB logs each frame, Plugchoice
# and ChargePilot each exchange; an ev.energy EVSE is sampled every EVENERGY_SAMPLE_SECONDS.
RECORDS_PER_MINUTE = {"ocpplab": 19.5, "plugchoice": 10.3, "chargepilot": 9.7, "evenergy": 15.0}
EVENERGY_SAMPLE_SECONDS = 4.0
LOGGED_WITHIN_SECONDS = 10  # an ev.energy sample is visible a few seconds after its time


@dataclass(frozen=True)
class Scenario:
    sources: int = 4  # per vendor
    history: int = 1500  # records per source, about
    live_seconds: float = 60.0
    schedule_seconds: float = 30.0
    check_seconds: float = 15.0
    target_seconds: float = 900.0
    timeout_seconds: float = 1800.0
    error_rate: float = 0.3
    throttle_rate: float = 0.2
    slow_rate: float = 0.1
    slow_seconds: float = 2.0
    retry_after_seconds: int = 1
    seed: int = 17
    vendors: tuple[str, ...] = VENDORS

    def faults(self) -> Faults:
        return Faults(
            error_rate=self.error_rate,
            throttle_rate=self.throttle_rate,
            retry_after_seconds=self.retry_after_seconds,
            slow_rate=self.slow_rate,
            slow_seconds=self.slow_seconds,
        )


# --------------------------------------------------------------------------------------------- the vendors
@dataclass
class Fleet:
    """One vendor's simulator, served on 127.0.0.1, with its sources and the credentials its secret gets."""

    vendor: str
    simulator: Any  # a VendorSimulator with the vendor's visible_records
    sources: list[str]
    path: str  # the API's base path under the server's URL
    credentials: dict[str, str]
    history: int = 0  # records the sources had when the faults started
    server: SimulatorServer | None = None

    def start(self) -> tuple[str, dict[str, str], Callable[[], None]]:
        """What chargelog_local.runner.SIMULATORS starters return: base URL, credentials, stop."""
        self.server = SimulatorServer(self.simulator.wsgi_app)
        return self.server.start() + self.path, dict(self.credentials), self.server.stop


def build_fleet(vendor: str, scenario: Scenario, now: datetime, number: int) -> Fleet:
    """The vendor's simulator: ``scenario.sources`` sources streaming from about ``scenario.history`` records ago."""
    from chargelog_simulators.chargepilot import PREFIX, ChargepilotSimulator
    from chargelog_simulators.evenergy import EvEnergySimulator
    from chargelog_simulators.ocpplab import OcpplabSimulator
    from chargelog_simulators.plugchoice import PlugchoiceSimulator

    seed = scenario.seed * 10 + number
    start = now - timedelta(minutes=scenario.history / RECORDS_PER_MINUTE[vendor])
    fleet: Fleet
    if vendor == "ocpplab":
        ocpplab = OcpplabSimulator(seed=seed)
        ocpplab.add_token("chaos-ocpplab-token")
        fleet = Fleet(vendor, ocpplab, [f"dep-chaos{n:02d}" for n in range(scenario.sources)], "", {})
        fleet.credentials = {"token": "chaos-ocpplab-token"}
        for source in fleet.sources:
            ocpplab.add_charger(source, identity=f"OCPPLAB-{source.upper()}")
            fleet.history += ocpplab.stream(source, start, density=BUSY)
    elif vendor == "plugchoice":
        plugchoice = PlugchoiceSimulator(seed=seed)
        plugchoice.add_token("chaos-plugchoice-token")
        uuids = [f"c4a05000-0000-4000-8000-{n:012d}" for n in range(scenario.sources)]
        fleet = Fleet(vendor, plugchoice, uuids, "/api", {"token": "chaos-plugchoice-token"})
        for source in fleet.sources:
            plugchoice.add_charger(source, identity=f"PC-CHAOS-{source[-2:]}")
            fleet.history += plugchoice.stream(source, start, density=BUSY)
    elif vendor == "chargepilot":
        chargepilot = ChargepilotSimulator(seed=seed)
        chargepilot.add_api_key("chaos-key", "chaos-secret")
        sites = [f"site-chaos{n:02d}" for n in range(scenario.sources)]
        fleet = Fleet(vendor, chargepilot, sites, PREFIX, {"api_key": "chaos-key", "api_secret": "chaos-secret"})
        for site in fleet.sources:
            chargepilot.add_site(site, "chaos-key", f"Chaos site {site[-2:]}")
            chargepilot.add_charger(site, f"CP-{site[-2:]}-1", 2)
            fleet.history += chargepilot.stream(site, start, density=BUSY)
    elif vendor == "evenergy":
        evenergy = EvEnergySimulator(seed=seed)
        evenergy.add_client("chaos-client", "chaos-client-secret")
        evses = [f"evse01CHAOS{n:02d}" for n in range(scenario.sources)]
        fleet = Fleet(
            vendor, evenergy, evses, "/v2", {"client_id": "chaos-client", "client_secret": "chaos-client-secret"}
        )
        for evse in fleet.sources:
            evenergy.add_evse(evse, "chaos-client")
            fleet.history += evenergy.stream(evse, start, interval_seconds=EVENERGY_SAMPLE_SECONDS)
    else:
        raise ValueError(f"no simulator for {vendor}")
    return fleet


# --------------------------------------------------------------------------------------------- the jobs
class JobTally:
    """How the collection jobs run in this process ended, per vendor (``JobRunner`` patched to count)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_vendor: dict[str, Counter[str]] = defaultdict(Counter)

    def add(self, vendor: str, *what: str) -> None:
        with self.lock:
            self.by_vendor[vendor].update(what)

    @contextmanager
    def counting(self) -> Iterator[None]:
        from chargelog.logic import collection

        tally = self
        run, record_failure = collection.JobRunner.run, collection.JobRunner._record_failure
        go_on = collection.JobRunner._go_on_after

        def counted_run(runner: Any) -> Any:
            try:
                outcome = run(runner)
            except BaseException:
                tally.add(runner.job.vendor, "invocations", "failed")
                raise
            status: str = outcome.status
            if status == "continued" and outcome.detail.startswith("vendor error"):
                status = "continued after a vendor error"
            tally.add(runner.job.vendor, "invocations", status)
            return outcome

        def counted_failure(runner: Any, error: Exception) -> None:
            # A failure counts towards backoff only when the job stored no page (chargelog.logic.collection).
            tally.add(runner.job.vendor, "backoffs" if runner._pages == 0 else "failures after progress")
            record_failure(runner, error)

        def counted_go_on(runner: Any, adapter: Any, error: Exception) -> bool:
            went_on = bool(go_on(runner, adapter, error))
            if went_on:
                tally.add(runner.job.vendor, "went on after a vendor error")
            return went_on

        with (
            mock.patch.object(collection.JobRunner, "run", counted_run),
            mock.patch.object(collection.JobRunner, "_record_failure", counted_failure),
            mock.patch.object(collection.JobRunner, "_go_on_after", counted_go_on),
        ):
            yield


# --------------------------------------------------------------------------------------------- the check
@dataclass
class Check:
    """One vendor at one moment: the records the vendor has, and what the table holds of them."""

    expected: int
    stored: int
    missing: int
    duplicates: int  # a record stored under more than one key
    unknown: int  # stored, and not a record the vendor has

    @property
    def complete(self) -> bool:
        return self.missing == self.duplicates == self.unknown == 0


def expected_ids(fleet: Fleet) -> set[str]:
    """The record ids of every record the vendor has: each record named by the vendor's normalizer, as the worker
    names it when it stores it."""
    from chargelog import collectors

    normalize = collectors.normalizer_for(fleet.vendor)
    return {
        normalize(source, item).record_id
        for source in fleet.sources
        for item in fleet.simulator.visible_records(source)
    }


def stored_ids(table: str) -> dict[str, Counter[str]]:
    """Per vendor, how often each record id is stored: one Scan of the record items' keys (a record's id is its sort
    key's second half, the vendor its prefix)."""
    from chargelog import aws

    stored: dict[str, Counter[str]] = defaultdict(Counter)
    pages = aws.client("dynamodb").get_paginator("scan")
    for page in pages.paginate(
        TableName=table,
        ProjectionExpression="pk, sk",
        FilterExpression="begins_with(pk, :charger)",
        ExpressionAttributeValues={":charger": {"S": "CHARGER#"}},
    ):
        for item in page["Items"]:
            _, hash_mark, record_id = item["sk"]["S"].partition("#")
            vendor = record_id.partition(":")[0]
            if hash_mark and vendor in VENDORS:
                stored[vendor][record_id] += 1
    return stored


def compare(expected: set[str], stored: Counter[str]) -> Check:
    return Check(
        expected=len(expected),
        stored=sum(stored.values()),
        missing=len(expected - stored.keys()),
        duplicates=sum(count - 1 for count in stored.values() if count > 1),
        unknown=len(stored.keys() - expected),
    )


def raw_differences(table: str, fleet: Fleet) -> dict[str, int]:
    """The stored records' raw forms (from the raw archive where the item points there) against the simulator's
    records, as multisets: how many the vendor has that are not stored as they are, and the other way round."""
    from boto3.dynamodb.conditions import Key

    from chargelog import aws, stores
    from chargelog.dal import query_all
    from chargelog.dal.records import record_from_item, with_raw
    from chargelog.models.keys import charger_partition

    def canonical(item: Any) -> str:
        return json.dumps(item, sort_keys=True)

    visible = [item for source in fleet.sources for item in fleet.simulator.visible_records(source)]
    expected = Counter(canonical(item) for item in visible)
    # A ChargePilot source is a site: its records are filed under their chargers. Other sources are one charger.
    chargers = {str(item["charger_id"]) for item in visible} if fleet.vendor == "chargepilot" else set(fleet.sources)
    records = [
        record_from_item(item)
        for charger in sorted(chargers)
        for item in query_all(aws.table(table), KeyConditionExpression=Key("pk").eq(charger_partition(charger)))
        if "#" in str(item["sk"]) and str(item["sk"]).partition("#")[2].startswith(f"{fleet.vendor}:")
    ]
    got = Counter(canonical(record["raw"]) for record in with_raw(records, stores.raw_archive()))
    return {
        "not_stored_as_is": sum((expected - got).values()),
        "stored_not_as_the_vendor_has": sum((got - expected).values()),
    }


# --------------------------------------------------------------------------------------------- the run
@dataclass
class VendorResult:
    vendor: str
    sources: int
    history_records: int
    records: int = 0  # the vendor's records once the live ones stopped
    stored_after_seconds: float | None = None  # from the faults' start until every record was stored, none twice
    final: dict[str, int] = field(default_factory=dict)  # the last check
    raw: dict[str, int] = field(default_factory=dict)  # the raw forms compared at the end
    jobs: dict[str, int] = field(default_factory=dict)
    vendor_requests: dict[str, int] = field(default_factory=dict)  # the simulator's counters


@dataclass
class Result:
    scenario: dict[str, Any]
    vendors: list[VendorResult]
    all_stored_after_seconds: float | None
    checks: list[dict[str, Any]]
    ok: bool = False


def feed_live(fleets: list[Fleet], seconds: float, stop: threading.Event) -> None:
    """The sources keep talking for ``seconds``: the simulators add what is due every 5 s, then once at the end."""
    until = time.monotonic() + seconds
    while not stop.wait(min(5.0, max(0.0, until - time.monotonic()))):
        for fleet in fleets:
            fleet.simulator.catch_up()
        if time.monotonic() >= until:
            return


def run_chaos(
    scenario: Scenario, state_dir: Path, say: Callable[[str], None] = print, restore_output: bool = True
) -> Result:
    """The scenario on the local stack in this process; the functions' log lines go to ``state_dir``/functions.log.
    Jobs still running when the stack stops go on in their threads until their vendor calls fail; without
    ``restore_output`` what they print goes nowhere (stdout and the functions' Logger stay on a sink)."""
    from chargelog import aws
    from chargelog.settings import get_settings
    from chargelog_local import runner as local_runner

    for noisy in ("werkzeug", "botocore", "boto3", "urllib3"):  # moto's and the simulators' request lines
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from chargelog_local.runner import LocalOptions, LocalRunner

    now = datetime.now(UTC)
    fleets = [build_fleet(vendor, scenario, now, number) for number, vendor in enumerate(scenario.vendors)]
    for fleet in fleets:
        say(f"{fleet.vendor}: {len(fleet.sources)} sources, {fleet.history} records of history")
    state_dir.mkdir(parents=True, exist_ok=True)
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CHARGELOG_"))}
    options = LocalOptions(
        port=0,
        schedule_seconds=scenario.schedule_seconds,
        discover_sources=False,
        stack_name="chargelog-chaos",
        state_dir=state_dir,
        environ=environ,
    )
    tally = JobTally()
    checks: list[dict[str, Any]] = []
    done_at: dict[str, float] = {}
    stop_live = threading.Event()
    log_file: TextIO
    with (
        (state_dir / "functions.log").open("w", encoding="utf-8") as log_file,
        mock.patch.dict(os.environ),
        mock.patch.dict(local_runner.SIMULATORS, {fleet.vendor: fleet.start for fleet in fleets}),
        tally.counting(),
    ):
        # The functions' lines go to the log file: their Logger's stream, and stdout while the stack runs (the stack
        # keeps the EMF blobs printed there in its metrics log and passes the rest on).
        from chargelog.observability import logger

        handler = logger.registered_handler
        stream = handler.setStream(log_file) if isinstance(handler, logging.StreamHandler) else None
        real_stdout = sys.stdout
        sys.stdout = log_file
        stack = LocalRunner(options)
        try:
            stack.start()
            assert stack.stack is not None
            table = stack.stack.refs["Table"]
            # The faults' start: every vendor flaky, the sources registered, their live records flowing.
            for fleet in fleets:
                fleet.simulator.faults = scenario.faults()
            began = time.monotonic()
            with httpx.Client(headers={"x-api-key": stack.api_key}, timeout=60) as api:
                for fleet in fleets:
                    for source in fleet.sources:
                        created = api.post(
                            f"{stack.api_url}/sources", json={"vendor": fleet.vendor, "source_id": source}
                        )
                        if created.status_code != 201:
                            raise RuntimeError(
                                f"POST /sources {fleet.vendor} {source}: {created.status_code} {created.text}"
                            )
            live = threading.Thread(target=feed_live, args=(fleets, scenario.live_seconds, stop_live), daemon=True)
            live.start()
            live.join()
            say(f"faults on at t=0; sources registered; live records for {scenario.live_seconds:g} s done")
            time.sleep(LOGGED_WITHIN_SECONDS)
            expected = {fleet.vendor: expected_ids(fleet) for fleet in fleets}
            while True:
                elapsed = time.monotonic() - began
                stored = stored_ids(table)
                row: dict[str, Any] = {"t": round(elapsed, 1)}
                for fleet in fleets:
                    check = compare(expected[fleet.vendor], stored.get(fleet.vendor, Counter()))
                    row[fleet.vendor] = asdict(check)
                    if check.complete and fleet.vendor not in done_at:
                        done_at[fleet.vendor] = elapsed
                checks.append(row)
                say(
                    f"t={elapsed:6.0f} s  "
                    + "  ".join(
                        f"{fleet.vendor} {row[fleet.vendor]['stored']}/{row[fleet.vendor]['expected']}"
                        + (f" (-{row[fleet.vendor]['missing']})" if row[fleet.vendor]["missing"] else "")
                        + (f" ({row[fleet.vendor]['duplicates']} twice)" if row[fleet.vendor]["duplicates"] else "")
                        for fleet in fleets
                    )
                )
                if len(done_at) == len(fleets) or elapsed > scenario.timeout_seconds:
                    break
                time.sleep(max(0.0, scenario.check_seconds - (time.monotonic() - began - elapsed)))
            results = []
            for fleet in fleets:
                counters = fleet.simulator.counters
                results.append(
                    VendorResult(
                        vendor=fleet.vendor,
                        sources=len(fleet.sources),
                        history_records=fleet.history,
                        records=len(expected[fleet.vendor]),
                        stored_after_seconds=round(done_at[fleet.vendor], 1) if fleet.vendor in done_at else None,
                        final={k: v for k, v in checks[-1][fleet.vendor].items()},
                        raw=raw_differences(table, fleet),
                        jobs=dict(tally.by_vendor.get(fleet.vendor, Counter())),
                        vendor_requests={
                            "requests": counters.requests,
                            "5xx": counters.errors,
                            "429": counters.throttled,
                            "slow": counters.slowed,
                        },
                    )
                )
        finally:
            stop_live.set()
            stack.stop()
            sink = real_stdout if restore_output else open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
            sys.stdout = sink
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(stream if restore_output and stream is not None else sink)
            aws.reset()
            get_settings.cache_clear()
    everything = max(done_at.values()) if len(done_at) == len(fleets) else None
    ok = (
        everything is not None
        and everything <= scenario.target_seconds
        and all(not any(r.raw.values()) for r in results)
    )
    return Result(asdict(scenario), results, round(everything, 1) if everything else None, checks, ok)


# --------------------------------------------------------------------------------------------- report
def render(result: Result) -> str:
    rows = [
        [
            "vendor",
            "records",
            "all stored after",
            "missing",
            "twice",
            "job runs",
            "done",
            "went on / handed over after an error",
            "failed (backoff)",
            "requests (5xx, 429, slow)",
        ]
    ]
    for vendor in result.vendors:
        jobs, calls = vendor.jobs, vendor.vendor_requests
        after = f"{vendor.stored_after_seconds / 60:.1f} min" if vendor.stored_after_seconds is not None else "never"
        rows.append(
            [
                vendor.vendor,
                f"{vendor.records:,}",
                after,
                str(vendor.final.get("missing", "?")),
                str(vendor.final.get("duplicates", 0) + vendor.final.get("unknown", 0)),
                str(jobs.get("invocations", 0)),
                str(jobs.get("done", 0)),
                f"{jobs.get('went on after a vendor error', 0)} / {jobs.get('continued after a vendor error', 0)}",
                f"{jobs.get('failed', 0)} ({jobs.get('backoffs', 0)})",
                f"{calls['requests']:,} ({calls['5xx']}, {calls['429']}, {calls['slow']})",
            ]
        )
    return aligned(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Scenario()
    parser.add_argument("--sources", type=int, default=defaults.sources, help="sources per vendor (4)")
    parser.add_argument("--history", type=int, default=defaults.history, help="records of history per source (1500)")
    parser.add_argument("--live-seconds", type=float, default=defaults.live_seconds, help="live records for (60 s)")
    parser.add_argument("--schedule-seconds", type=float, default=defaults.schedule_seconds, help="schedule (30 s)")
    parser.add_argument("--check-seconds", type=float, default=defaults.check_seconds, help="check every (15 s)")
    parser.add_argument("--target", type=float, default=defaults.target_seconds, help="seconds allowed (900)")
    parser.add_argument("--timeout", type=float, default=defaults.timeout_seconds, help="give up after (1800 s)")
    parser.add_argument("--vendors", default=",".join(VENDORS), help="comma-separated (all four)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "chaos.json", help="results file")
    args = parser.parse_args()
    scenario = Scenario(
        sources=args.sources,
        history=args.history,
        live_seconds=args.live_seconds,
        schedule_seconds=args.schedule_seconds,
        check_seconds=args.check_seconds,
        target_seconds=args.target,
        timeout_seconds=max(args.timeout, args.target),
        seed=args.seed,
        vendors=tuple(v for v in args.vendors.split(",") if v),
    )
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; {scenario.sources} "
        f"sources per vendor, ~{scenario.history} records each, {scenario.live_seconds:g} s live; faults: "
        f"{scenario.error_rate:.0%} 5xx, {scenario.throttle_rate:.0%} 429, {scenario.slow_rate:.0%} slow; "
        f"schedule every {scenario.schedule_seconds:g} s",
        flush=True,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    state_dir = Path(tempfile.mkdtemp(prefix="chargelog-chaos-"))
    terminal = sys.stdout  # while the stack runs, sys.stdout is its functions' log

    def say(line: str) -> None:
        terminal.write(line + "\n")
        terminal.flush()

    result = run_chaos(scenario, state_dir, say=say, restore_output=False)
    # Jobs the stack left running may still print: stdout stays on a sink, the report goes to the terminal.
    say(render(result))
    if result.all_stored_after_seconds is not None:
        say(
            f"every record stored after {result.all_stored_after_seconds / 60:.1f} min "
            f"(target {scenario.target_seconds / 60:g} min)"
        )
    else:
        say(f"not every record stored after {scenario.timeout_seconds / 60:g} min")
    for vendor in result.vendors:
        if any(vendor.raw.values()):
            say(f"{vendor.vendor}: raw forms differ: {vendor.raw}")
    args.json.write_text(json.dumps(asdict(result), indent=2, default=str))
    log = args.json.with_suffix(".functions.log")
    log.write_text((state_dir / "functions.log").read_text(encoding="utf-8"), encoding="utf-8")
    say(f"wrote {args.json} and {log}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
