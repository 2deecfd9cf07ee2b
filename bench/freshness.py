"""Freshness at fleet size: a discrete-event simulation of scheduled collection, on a simulated clock.

It drives the dispatcher's own decision function (chargelog.logic.scheduling.plan) and the workers' own pacing
(chargelog.collectors.base.VendorProfile.pacing, from each vendor's documented rate limit and profile: page size,
lookback, settle delay), with no HTTP and no AWS, for:
- 2,500 and 10,000 Plugchoice chargers (500 requests a minute per user, 25 records a page, 30 minutes of lookback);
- 1,000 ev.energy EVSEs (1,000 requests a rolling hour, 100 a page, 6 hours of lookback), with the default starvation
  bound and with a bound of its own (``VendorProfile.max_poll_interval`` 240 minutes).

The fleet (seeded, the same for every policy): a fifth of the sources busy (frequent sessions: a record a minute
while charging, bursts when one starts and stops), about two thirds quiet (a heartbeat or two an hour, a session now
and then, an error burst every few days), the rest offline for days, half of which wake during the run with a
boot burst (half of those wakes announced by another signal a minute later: a poke). The busy fifth make about four
fifths of the records.

Mechanics, as deployed: a pass every ScheduleMinutes (5); each pass plans from the sources' state (the activity
estimate the worker would have left: `chargelog.logic.activity.observe`), marks and queues the chosen jobs in the
plan's order; VendorWorkerConcurrency (2) workers take jobs in order, one at a time, each pacing its requests with its
own token bucket (rate and burst from `VendorProfile.pacing`), a request taking ``--latency`` seconds and a job
``--overhead`` more (its state writes, its pages' S3 PUTs, the SQS round trip). A job reads its window (the lookback
before the source's read point to the pass's time less the settle delay; a new source 24 hours back), so it makes
ceil(records in the window / page size) requests, at least one. Its new records are stored when it ends: a record's
freshness is that moment less its creation. A source whose job is still queued or running gets no other (the pending
mark) and its expected requests count against the next pass's budget.

Three policies on the same fleet:
- ``adaptive``: `scheduling.plan` with SchedulingPolicy adaptive (the default);
- ``every-pass``: every source every pass (SchedulingPolicy every-pass: the policy before the scheduler);
- ``bound``: what the rate limit allows the active sources alone: an oracle that knows which busy sources have
  unread records and polls exactly those every pass (most records first), nothing else, with the same workers and
  pace. No policy that must poll to learn can do better for the busy sources' records.
And two figures from the limit alone: how long one round of every source takes at the workers' pace (N requests at
R a minute: N / R minutes; what every-pass can do at best), and the same for the busy fifth.

    .venv/bin/python bench/freshness.py                    # all fleets, ~1 minute; JSON in bench/results/
    .venv/bin/python bench/freshness.py --fleet plugchoice-2500 --hours 24
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import platform
import random
import sys
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "layers" / "common"))

from chargelog import collectors  # noqa: E402
from chargelog.dal.state import Activity  # noqa: E402
from chargelog.logic import scheduling  # noqa: E402
from chargelog.logic.activity import NO_ACTIVITY, observe  # noqa: E402
from chargelog.logic.scheduling import Budget, Policy, SourceView  # noqa: E402

RESULTS = REPO / "bench" / "results"
EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
HOUR = 3600.0
INITIAL_HISTORY = 24 * HOUR  # InitialHistoryHours


# ---------------------------------------------------------------------------------------------- the fleet
@dataclass(frozen=True)
class Kind:
    """How one class of source makes records (an hour's rates; sessions alternate with gaps, exponentially)."""

    name: str
    share: float
    heartbeat_seconds: float | None  # None: offline
    session_gap_hours: float = math.inf
    session_hours: float = 0.75
    session_rate: float = 60.0  # records an hour while in a session
    session_burst: int = 0  # records within seconds as a session starts and as it ends
    error_burst_every_hours: float = math.inf
    error_burst: int = 15


@dataclass(frozen=True)
class Fleet:
    name: str
    vendor: str
    sources: int
    kinds: tuple[Kind, ...]
    wake_share: float = 0.5  # of the offline: they wake during the run, with a boot burst
    wake_burst: int = 10
    poke_share: float = 0.5  # of the wakes: another signal pokes the source a minute after
    max_poll_minutes: float = 45.0  # MaxPollIntervalMinutes (or the vendor's own, from its secret)


PLUGCHOICE_KINDS = (
    Kind("busy", 0.20, heartbeat_seconds=600, session_gap_hours=40 / 60, session_rate=60, session_burst=5),
    Kind(
        "quiet",
        0.65,
        heartbeat_seconds=3600,
        session_gap_hours=16,
        session_rate=30,
        session_burst=5,
        error_burst_every_hours=72,
    ),
    Kind("offline", 0.15, heartbeat_seconds=None),
)
EVENERGY_KINDS = (
    Kind("busy", 0.20, heartbeat_seconds=1800, session_gap_hours=2, session_hours=3, session_rate=12),
    Kind("quiet", 0.65, heartbeat_seconds=4 * 3600, session_gap_hours=48, session_hours=2, session_rate=12),
    Kind("offline", 0.15, heartbeat_seconds=None),
)
FLEETS = {
    "plugchoice-2500": Fleet("plugchoice-2500", "plugchoice", 2_500, PLUGCHOICE_KINDS),
    "plugchoice-10000": Fleet("plugchoice-10000", "plugchoice", 10_000, PLUGCHOICE_KINDS),
    "evenergy-1000": Fleet("evenergy-1000", "evenergy", 1_000, EVENERGY_KINDS),
    "evenergy-1000-poll-240": Fleet("evenergy-1000-poll-240", "evenergy", 1_000, EVENERGY_KINDS, max_poll_minutes=240),
}


@dataclass
class Source:
    source_id: str
    kind: str
    records: list[float]  # creation times, ascending (seconds since the run's start)
    poke_at: float | None = None
    woke_at: float | None = None


def _poisson(rng: random.Random, rate_per_second: float, start: float, end: float) -> Iterable[float]:
    t = start
    while True:
        t += rng.expovariate(rate_per_second)
        if t >= end:
            return
        yield t


def make_fleet(fleet: Fleet, seconds: float, seed: int) -> list[Source]:
    """Every source's records over [-INITIAL_HISTORY, seconds): what a first job finds, then the run."""
    rng = random.Random(f"{fleet.name}:{seed}")
    counts = [round(fleet.sources * kind.share) for kind in fleet.kinds]
    counts[0] += fleet.sources - sum(counts)
    sources: list[Source] = []
    start = -INITIAL_HISTORY
    for kind, count in zip(fleet.kinds, counts, strict=True):
        for _ in range(count):
            records: list[float] = []
            source = Source(f"{fleet.vendor}-{len(sources):05d}", kind.name, records)
            if kind.heartbeat_seconds is None:
                if rng.random() < fleet.wake_share:
                    woke = source.woke_at = rng.uniform(0, seconds)
                    records.extend(woke + rng.uniform(0, 60) for _ in range(fleet.wake_burst))
                    quiet = fleet.kinds[1]
                    records.extend(_activity(rng, quiet, woke + 60, seconds))
                    if rng.random() < fleet.poke_share:
                        source.poke_at = woke + 60
            else:
                records.extend(_activity(rng, kind, start, seconds))
            records.sort()
            sources.append(source)
    return sources


def _activity(rng: random.Random, kind: Kind, start: float, end: float) -> list[float]:
    assert kind.heartbeat_seconds is not None
    beat = kind.heartbeat_seconds
    records = [t for t in _heartbeats(rng, beat, start, end)]
    t = start + rng.expovariate(1 / (kind.session_gap_hours * HOUR)) if kind.session_gap_hours < math.inf else end
    while t < end:
        length = max(300.0, rng.expovariate(1 / (kind.session_hours * HOUR)))
        stop = min(end, t + length)
        records.extend(t + rng.uniform(0, 10) for _ in range(kind.session_burst))
        records.extend(_poisson(rng, kind.session_rate / HOUR, t, stop))
        records.extend(stop + rng.uniform(0, 10) for _ in range(kind.session_burst) if stop < end)
        t = stop + rng.expovariate(1 / (kind.session_gap_hours * HOUR))
    if kind.error_burst_every_hours < math.inf:
        for at in _poisson(rng, 1 / (kind.error_burst_every_hours * HOUR), start, end):
            records.extend(at + rng.uniform(0, 120) for _ in range(kind.error_burst))
    return [r for r in records if r < end]


def _heartbeats(rng: random.Random, every: float, start: float, end: float) -> Iterable[float]:
    t = start + rng.uniform(0, every)
    while t < end:
        yield t
        t += every * rng.uniform(0.95, 1.05)


# ---------------------------------------------------------------------------------------------- the workers
@dataclass
class Worker:
    """One Lambda worker: jobs one at a time, requests paced by its own token bucket."""

    rate: float
    burst: int
    latency: float
    overhead: float
    free_at: float = 0.0
    tokens: float = 0.0
    updated: float = 0.0
    requests: list[float] = field(default_factory=list)  # when each request was sent

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def run(self, start: float, requests: int) -> float:
        """Run a job of ``requests`` requests from ``start``; returns when it ends."""
        t = start + self.overhead
        for _ in range(requests):
            self.tokens = min(self.burst, self.tokens + (t - self.updated) * self.rate)
            self.updated = t
            if self.tokens < 1:
                t += (1 - self.tokens) / self.rate
                self.tokens, self.updated = 1.0, t
            self.tokens -= 1
            self.requests.append(t)
            t += self.latency
        self.free_at = t
        return t


# ---------------------------------------------------------------------------------------------- one run
@dataclass
class Job:
    source: int
    scheduled: float
    reason: str


@dataclass
class State:
    source_id: str
    read_through: float | None = None
    activity: Activity = NO_ACTIVITY
    poked_at: float | None = None
    in_flight: bool = False
    stored: int = 0  # index of the first record not stored yet
    polls: list[float] = field(default_factory=list)  # when each of its jobs ended
    view: SourceView = field(init=False)  # what the dispatcher would read of it: made again when it changes

    def __post_init__(self) -> None:
        self.changed()

    def changed(self) -> None:
        self.view = SourceView(
            self.source_id,
            read_through=None if self.read_through is None else EPOCH + timedelta(seconds=self.read_through),
            rate_per_hour=self.activity.rate_per_hour,
            last_job_records=self.activity.records,
            poked_at=None if self.poked_at is None else EPOCH + timedelta(seconds=self.poked_at),
            in_flight=self.in_flight,
        )


@dataclass
class Outcome:
    fleet: str
    policy: str
    hours: float
    sources: int
    sources_by_kind: dict[str, int]
    records: int
    busy_share_of_records: float
    freshness_minutes: dict[str, dict[str, float]]  # kind -> p50, p99, max
    requests_per_minute: float
    max_requests_in_window: int
    limit: dict[str, float]
    jobs: int
    jobs_per_record: float
    longest_between_polls_minutes: dict[str, float]  # kind -> the longest a source of it went between two polls
    over_budget_passes: int = 0
    woken_poked_minutes: dict[str, float] = field(default_factory=dict)
    woken_unpoked_minutes: dict[str, float] = field(default_factory=dict)


def simulate(
    fleet: Fleet,
    sources: list[Source],
    policy_name: str,
    *,
    hours: float,
    warmup_hours: float,
    workers: int,
    latency: float,
    overhead: float,
    schedule_minutes: float,
    min_expected_records: float | None = None,
) -> Outcome:
    profile = collectors.profile_for(fleet.vendor)
    rate, burst = profile.pacing(workers)
    pass_seconds = schedule_minutes * 60
    policy = Policy.for_vendor(
        profile,
        "every-pass" if policy_name == "every-pass" else "adaptive",
        timedelta(seconds=pass_seconds),
        timedelta(minutes=fleet.max_poll_minutes),
    )
    if min_expected_records is not None:
        policy = replace(policy, min_expected_records=min_expected_records)
    budget = Budget.of(profile, policy.pass_interval, workers)
    lookback = profile.lookback.total_seconds()
    settle = profile.settle_delay.total_seconds()
    page = profile.page_size
    end = hours * HOUR
    measured_from = warmup_hours * HOUR
    crew = [Worker(rate, burst, latency, overhead) for _ in range(workers)]
    states = [State(s.source_id) for s in sources]
    queue: deque[Job] = deque()
    running: list[tuple[float, int, Job, int]] = []  # (ends, tiebreak, job, records it stores) heap
    fresh: dict[str, list[float]] = {"busy": [], "quiet": [], "offline": []}
    woken: dict[bool, list[float]] = {True: [], False: []}
    pokes = sorted((s.poke_at, i) for i, s in enumerate(sources) if s.poke_at is not None)
    poke_next = 0
    jobs = over_budget_passes = 0
    tiebreak = 0
    ids = {s.source_id: i for i, s in enumerate(sources)}
    busy_ids = [i for i, s in enumerate(sources) if s.kind == "busy"]

    def finish(ends: float, job: Job, upto: int) -> None:
        state = states[job.source]
        source = sources[job.source]
        records = source.records
        new = records[state.stored : upto]
        if new:
            kind_fresh = fresh[source.kind]
            kind_fresh.extend(ends - created for created in new if created >= measured_from)
            if source.woke_at is not None:  # its wake burst: the records of its first minute awake
                woken[source.poke_at is not None].extend(
                    ends - created
                    for created in new
                    if source.woke_at <= created <= source.woke_at + 60 and created >= measured_from
                )
        state.stored = max(state.stored, upto)
        read_to = job.scheduled - settle
        read_from = state.read_through if state.read_through is not None else job.scheduled - INITIAL_HISTORY
        state.activity = observe(
            state.activity,
            read_from=EPOCH + timedelta(seconds=read_from),
            read_to=EPOCH + timedelta(seconds=read_to),
            records=len(new),
            newest_record_at=None,
        )
        state.read_through = read_to if state.read_through is None else max(state.read_through, read_to)
        state.in_flight = False
        state.polls.append(ends)
        state.changed()

    def start_jobs(until: float) -> None:
        nonlocal tiebreak
        while queue:
            worker = min(crew, key=lambda w: w.free_at)
            job = queue[0]
            begins = max(worker.free_at, job.scheduled)
            if begins >= until:
                return
            queue.popleft()
            state = states[job.source]
            records = sources[job.source].records
            window_start = (
                state.read_through - lookback if state.read_through is not None else job.scheduled - INITIAL_HISTORY
            )
            window_end = job.scheduled - settle
            first, upto = bisect_left(records, window_start), bisect_right(records, window_end)
            requests = max(1, math.ceil((upto - first) / page))
            ends = worker.run(begins, requests)
            tiebreak += 1
            heapq.heappush(running, (ends, tiebreak, job, upto))

    t = 0.0
    while t < end:
        while running and running[0][0] <= t:
            ends, _, job, upto = heapq.heappop(running)
            finish(ends, job, upto)
        while poke_next < len(pokes) and pokes[poke_next][0] <= t:
            poked = states[pokes[poke_next][1]]
            poked.poked_at = pokes[poke_next][0]
            poked.changed()
            poke_next += 1
        now = EPOCH + timedelta(seconds=t)
        if policy_name == "bound":  # the busy fifth alone, every pass
            chosen = [i for i in busy_ids if not states[i].in_flight]
            reasons = ["bound"] * len(chosen)
        elif policy_name == "ideal":  # the busy sources holding unread records, most first
            unread = [
                (-(bisect_right(sources[i].records, t - settle) - states[i].stored), i)
                for i in busy_ids
                if not states[i].in_flight and bisect_right(sources[i].records, t - settle) > states[i].stored
            ]
            chosen = [i for _, i in sorted(unread)]
            reasons = ["ideal"] * len(chosen)
        else:
            decision = scheduling.plan(now, [state.view for state in states], budget, policy)
            over_budget_passes += bool(decision.deferred)
            chosen = [ids[poll.source_id] for poll in decision.polls]
            reasons = [poll.reason for poll in decision.polls]
        for i, reason in zip(chosen, reasons, strict=True):
            states[i].in_flight = True
            states[i].changed()
            queue.append(Job(i, t, reason))
            jobs += int(t >= measured_from)
        start_jobs(t + pass_seconds)
        t += pass_seconds
    while running and running[0][0] <= end:
        ends, _, job, upto = heapq.heappop(running)
        finish(ends, job, upto)
    # Records made in the measured span and not stored by the end count as waiting until then (a lower bound).
    for source, state in zip(sources, states, strict=True):
        cut = bisect_right(source.records, end)
        first = max(state.stored, bisect_left(source.records, measured_from))
        fresh[source.kind].extend(end - created for created in source.records[first:cut])

    sent = sorted(r for worker in crew for r in worker.requests if r >= measured_from)
    assert profile.rate_limit is not None
    window = profile.rate_limit.window.total_seconds()
    measured_records = sum(len(v) for v in fresh.values())
    busy_records = len(fresh["busy"])
    kinds = {kind.name for kind in fleet.kinds}
    return Outcome(
        fleet=fleet.name,
        policy=policy_name,
        hours=hours - warmup_hours,
        sources=len(sources),
        sources_by_kind={k: sum(s.kind == k for s in sources) for k in sorted(kinds)},
        records=measured_records,
        busy_share_of_records=round(busy_records / max(1, measured_records), 3),
        freshness_minutes={k: _percentiles(v) for k, v in fresh.items()},
        requests_per_minute=round(len(sent) / ((end - measured_from) / 60), 1),
        max_requests_in_window=_max_in_window(sent, window),
        limit={
            "requests": profile.rate_limit.requests,
            "window_seconds": window,
            "paced_per_minute": round(rate * workers * 60, 1),
            "round_of_every_source_minutes": round(len(sources) / (rate * workers * 60), 1),
            "round_of_the_busy_minutes": round(len(busy_ids) / (rate * workers * 60), 1),
        },
        jobs=jobs,
        jobs_per_record=round(jobs / max(1, measured_records), 3),
        longest_between_polls_minutes={k: _longest_gap(sources, states, k, measured_from) for k in sorted(kinds)},
        over_budget_passes=over_budget_passes,
        woken_poked_minutes=_percentiles(woken[True]),
        woken_unpoked_minutes=_percentiles(woken[False]),
    )


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values.sort()
    at: Callable[[float], float] = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"p50": round(at(0.5) / 60, 2), "p99": round(at(0.99) / 60, 2), "max": round(values[-1] / 60, 2)}


def _max_in_window(sent: list[float], window: float) -> int:
    most, first = 0, 0
    for last, at in enumerate(sent):
        while sent[first] <= at - window:
            first += 1
        most = max(most, last - first + 1)
    return most


def _longest_gap(sources: list[Source], states: list[State], kind: str, since: float) -> float:
    longest = 0.0
    for source, state in zip(sources, states, strict=True):
        if source.kind != kind:
            continue
        polls = [p for p in state.polls if p >= since]
        longest = max([longest, *(b - a for a, b in pairwise(polls))])
    return round(longest / 60, 1)


# ---------------------------------------------------------------------------------------------- report
def table(outcomes: list[Outcome]) -> str:
    rows = [
        "| fleet | policy | busy p50 / p99 / max (min) | quiet p99 / max | woken, poked / not: p99 | requests/min "
        "(max in window / limit) | longest unpolled, quiet / offline (min) | jobs per record |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        busy, quiet = o.freshness_minutes["busy"], o.freshness_minutes["quiet"]
        poked, unpoked = o.woken_poked_minutes.get("p99", math.nan), o.woken_unpoked_minutes.get("p99", math.nan)
        gaps = o.longest_between_polls_minutes
        rows.append(
            f"| {o.fleet} | {o.policy} | {busy['p50']:.1f} / {busy['p99']:.1f} / {busy['max']:.1f} "
            f"| {quiet['p99']:.1f} / {quiet['max']:.1f} | {poked:.1f} / {unpoked:.1f} "
            f"| {o.requests_per_minute:.0f} ({o.max_requests_in_window} / {o.limit['requests']:.0f}) "
            f"| {gaps.get('quiet', 0):.0f} / {gaps.get('offline', 0):.0f} | {o.jobs_per_record:.3f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fleet", choices=sorted(FLEETS), action="append", help="default: all")
    parser.add_argument(
        "--policy",
        choices=["adaptive", "every-pass", "bound", "ideal"],
        action="append",
        help="default: adaptive, every-pass, bound",
    )
    parser.add_argument("--sources", type=int, help="the fleets' size instead of their own")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    parser.add_argument("--warmup", type=float, default=4.0, help="hours before measuring (default 4)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="VendorWorkerConcurrency (default 2)")
    parser.add_argument("--schedule-minutes", type=float, default=5.0, help="ScheduleMinutes (default 5)")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds a vendor request takes (default 0.2)")
    parser.add_argument("--overhead", type=float, default=0.1, help="seconds a job takes besides (default 0.1)")
    parser.add_argument("--min-expected-records", type=float, help="the policy's, instead of its default")
    parser.add_argument("--json", type=Path, default=RESULTS / "freshness.json", help="where to write the results")
    args = parser.parse_args()
    outcomes: list[Outcome] = []
    began = time.monotonic()
    for name in args.fleet or list(FLEETS):
        fleet = FLEETS[name]
        if args.sources:
            fleet = replace(fleet, name=f"{fleet.vendor}-{args.sources}", sources=args.sources)
        sources = make_fleet(fleet, args.hours * HOUR, args.seed)
        for policy in args.policy or ["adaptive", "every-pass", "bound"]:
            clock = time.monotonic()
            outcome = simulate(
                fleet,
                sources,
                policy,
                hours=args.hours,
                warmup_hours=args.warmup,
                workers=args.workers,
                latency=args.latency,
                overhead=args.overhead,
                schedule_minutes=args.schedule_minutes,
                min_expected_records=args.min_expected_records,
            )
            outcomes.append(outcome)
            print(f"{name} {policy}: {time.monotonic() - clock:.1f} s", file=sys.stderr)
    print(table(outcomes))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "command": " ".join(["bench/freshness.py", *sys.argv[1:]]),
                "python": platform.python_version(),
                "seconds": round(time.monotonic() - began, 1),
                "assumptions": {k: v for k, v in vars(args).items() if k not in ("json", "fleet", "policy")},
                "outcomes": [asdict(o) for o in outcomes],
            },
            indent=2,
        )
    )
    print(f"\n{len(outcomes)} runs in {time.monotonic() - began:.0f} s; results in {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
