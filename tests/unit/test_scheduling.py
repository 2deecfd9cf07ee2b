"""The collection scheduler (chargelog.logic.scheduling): a pure function of the sources' state, the time and the
policy. What it polls, in which order, that it never plans past the vendor's budget, that no source waits past the
starvation bound when the budget allows it, that pokes go first, and how a job's activity moves the estimate. Also
the vendors' rate limits as profile data and each worker's pace (chargelog.collectors.base)."""

from __future__ import annotations

import math
import random
from copy import replace
from datetime import UTC, datetime, timedelta

import pytest

from chargelog import collectors
from chargelog.collectors.base import RATE_LIMIT_SHARE, RateLimit, VendorProfile
from chargelog.dal.state import CollectorState
from chargelog.logic import scheduling
from chargelog.logic.activity import NO_ACTIVITY, observe
from chargelog.logic.scheduling import Budget, Policy, SourceView, plan

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PASS = timedelta(minutes=5)
POLICY = Policy(
    pass_interval=PASS,
    max_poll_interval=timedelta(minutes=60),
    page_size=25,
    lookback=timedelta(minutes=30),
    settle_delay=timedelta(seconds=30),
)
PLENTY = Budget(per_pass=10_000)
NO_SPARE = Budget(per_pass=10_000, in_flight=5_000)  # plenty, but half of it taken: no spare polls


def source(
    source_id: str,
    *,
    read_ago: timedelta | None = PASS,
    rate: float = 0.0,
    records: int = 0,
    poked_ago: timedelta | None = None,
    in_flight: bool = False,
) -> SourceView:
    return SourceView(
        source_id,
        read_through=None if read_ago is None else NOW - read_ago,
        rate_per_hour=rate,
        last_job_records=records,
        poked_at=None if poked_ago is None else NOW - poked_ago,
        in_flight=in_flight,
    )


def chosen(decision: scheduling.Decision) -> dict[str, str]:
    return {poll.source_id: poll.reason for poll in decision.polls}


# ---------------------------------------------------------------------------------------------- what is due


def test_new_poked_starving_producing_and_expected_sources_are_due_and_a_quiet_one_waits() -> None:
    decision = plan(
        NOW,
        [
            source("new", read_ago=None),
            source("poked", rate=0.1, poked_ago=timedelta(minutes=1)),
            source("starving", read_ago=timedelta(minutes=56), rate=0.1),
            source("producing", rate=0.1, records=3),
            source("busy", rate=40),  # 40 an hour: 3 expected in 5 minutes
            source("quiet", read_ago=timedelta(minutes=10), rate=2),  # 0.3 expected
            source("idle", read_ago=timedelta(minutes=50), rate=0.0),
            SourceView("unmeasured", read_through=NOW - PASS),  # collected before the scheduler: measured first
        ],
        NO_SPARE,
        POLICY,
    )
    assert chosen(decision) == {
        "new": "new",
        "poked": "poked",
        "starving": "starving",
        "producing": "producing",
        "busy": "expected",
        "unmeasured": "new",
    }
    assert decision.waiting == 2
    assert decision.deferred == ()


def test_a_poke_older_than_the_read_point_is_spent() -> None:
    decision = plan(
        NOW, [source("old-poke", read_ago=timedelta(minutes=5), poked_ago=timedelta(minutes=6))], PLENTY, POLICY
    )
    assert decision.polls == ()
    assert decision.waiting == 1


def test_a_quiet_source_is_polled_once_its_expected_records_reach_the_threshold() -> None:
    # 12 records an hour: three (the policy's min_expected_records) expected after 15 minutes unread (from the read
    # point to now less the settle delay).
    assert POLICY.min_expected_records == 3
    polled_at = [
        minutes
        for minutes in range(5, 61, 5)
        if plan(NOW, [source("q", read_ago=timedelta(minutes=minutes), rate=12)], NO_SPARE, POLICY).polls
    ]
    assert polled_at[0] == 20  # 19.5 minutes unread: 3.9 records expected; 14.5 minutes: 2.9
    assert polled_at == list(range(20, 61, 5))


def test_a_pass_with_budget_to_spare_polls_the_sources_making_records_busiest_first_up_to_half_of_it() -> None:
    sources = [
        source("busy", rate=40),  # due: 3 expected
        *(source(f"q{rate}", rate=rate) for rate in (2, 6, 4)),  # making records, not due
        source("silent", rate=0.0),
    ]
    decision = plan(NOW, sources, Budget(per_pass=6), POLICY)
    assert [(p.source_id, p.reason) for p in decision.polls] == [("busy", "expected"), ("q6", "spare"), ("q4", "spare")]
    assert decision.waiting == 2  # q2 (half the pass's budget used) and the silent one
    assert decision.planned_requests == 3
    # Already half used by the jobs still in flight: no spare polls.
    assert [p.source_id for p in plan(NOW, sources, Budget(per_pass=6, in_flight=3), POLICY).polls] == ["busy"]


def test_in_flight_sources_are_never_polled_and_their_requests_count_against_the_budget() -> None:
    busy = [source(f"s{i}", rate=600) for i in range(4)]  # 600 an hour over 35 minutes: 350 records, 14 pages
    decision = plan(NOW, [*busy[:2], source("queued", rate=600, in_flight=True)], Budget(per_pass=30), POLICY)
    assert decision.budget.in_flight == 14
    assert [poll.source_id for poll in decision.polls] == ["s0"]
    assert decision.deferred == ("s1",)


def test_every_pass_polls_every_free_source_in_order_without_a_budget() -> None:
    sources = [source(f"s{i}", read_ago=timedelta(minutes=5), rate=0.0) for i in range(50)]
    sources.append(source("queued", in_flight=True))
    decision = plan(NOW, sources, Budget(per_pass=3), Policy(name="every-pass", page_size=25))
    assert [poll.source_id for poll in decision.polls] == [f"s{i}" for i in range(50)]
    assert {poll.reason for poll in decision.polls} == {"every-pass"}
    assert (decision.deferred, decision.waiting) == ((), 0)


# ---------------------------------------------------------------------------------------------- the budget


def test_requests_a_job_is_expected_to_make_count_its_lookback_in_pages() -> None:
    assert scheduling.expected_requests(source("idle", rate=0), NOW, POLICY) == 1
    # 50 an hour over 30 minutes of lookback and 4.5 minutes unread: 28.75 records, 2 pages of 25.
    assert scheduling.expected_requests(source("busy", rate=50), NOW, POLICY) == 2
    assert scheduling.expected_requests(source("huge", rate=100_000), NOW, POLICY, cap=40) == 40
    assert scheduling.expected_requests(source("huge", rate=100_000), NOW, POLICY, cap=0.3) == 1


def test_when_the_budget_is_short_poked_and_new_come_first_then_the_longest_starving_then_the_most_waiting() -> None:
    sources = [
        source("busy-a", rate=100),  # 57.5 records over its lookback and unread time: 3 pages
        source("busy-b", rate=300),  # 172.5: 7 pages, and more waiting
        source("starving-old", read_ago=timedelta(minutes=80)),
        source("starving", read_ago=timedelta(minutes=58)),
        source("new", read_ago=None),
        source("poked", poked_ago=timedelta(minutes=2)),
    ]
    decision = plan(NOW, sources, Budget(per_pass=12), POLICY)
    # poked, new, starving-old, starving: 4 requests; busy-b (the most expected wait saved per request): its 7 pages
    # count as 6, half the pass (it spans passes); busy-a's 3 more would pass the 12.
    assert set(chosen(decision)) == {"poked", "new", "starving-old", "starving", "busy-b"}
    assert decision.deferred == ("busy-a",)
    assert decision.planned_requests == 10


def test_a_starving_source_that_does_not_fit_holds_back_everything_after_it() -> None:
    sources = [source("big-starving", read_ago=timedelta(minutes=90), rate=1000), source("busy", rate=40)]
    decision = plan(NOW, sources, Budget(per_pass=40, in_flight=30), POLICY)
    assert decision.polls == ()
    assert decision.deferred == ("big-starving", "busy")
    # Next pass, with the queue drained, it goes first: a job bigger than half a pass counts as half (it spans passes).
    polls = plan(NOW, sources, Budget(per_pass=40), POLICY).polls
    assert [(p.source_id, p.expected_requests) for p in polls] == [("big-starving", 20), ("busy", 1)]


def test_jobs_are_sent_poked_first_then_the_busiest_new_last() -> None:
    sources = [
        source("new", read_ago=None),
        source("starving-quiet", read_ago=timedelta(minutes=59), rate=0.5),
        source("busy", rate=40),
        source("busier", rate=200),
        source("poked", poked_ago=timedelta(minutes=1)),
    ]
    order = [poll.source_id for poll in plan(NOW, sources, PLENTY, POLICY).polls]
    assert order == ["poked", "busier", "busy", "starving-quiet", "new"]


@pytest.mark.parametrize("seed", range(20))
def test_the_plan_never_exceeds_the_budget(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible fleets, not security
    sources = [
        source(
            f"s{i}",
            read_ago=None if rng.random() < 0.05 else timedelta(minutes=rng.uniform(0, 180)),
            rate=rng.choice([0.0, 0.5, 3.0, 40.0, 400.0, 5000.0]),
            records=rng.choice([0, 0, 0, 5]),
            poked_ago=timedelta(minutes=1) if rng.random() < 0.05 else None,
            in_flight=rng.random() < 0.1,
        )
        for i in range(300)
    ]
    budget = Budget(per_pass=rng.uniform(10, 500), in_flight=rng.uniform(0, 50))
    decision = plan(NOW, sources, budget, POLICY)
    assert decision.planned_requests <= decision.budget.available + 1e-9
    polled = [poll.source_id for poll in decision.polls]
    assert len(polled) == len(set(polled))
    in_flight = {s.source_id for s in sources if s.in_flight}
    assert not in_flight & set(polled)
    # Everything not in flight is polled, deferred or waiting.
    assert len(polled) + len(decision.deferred) + decision.waiting == len(sources) - len(in_flight)


def test_no_source_waits_past_the_starvation_bound_when_the_budget_allows_it() -> None:
    """A simulated day on a clock of passes: 400 sources, most silent, some busy, one enormous. Each chosen source is
    read up to the pass's time less the settle delay. No read point falls more than the bound behind, while every
    pass stays within its budget."""
    rng = random.Random(7)  # noqa: S311 - reproducible fleets, not security
    rates = [0.0] * 300 + [rng.uniform(0.1, 3) for _ in range(80)] + [rng.uniform(30, 300) for _ in range(19)] + [9000]
    now = NOW
    read = {f"s{i}": now - timedelta(minutes=rng.uniform(0, 60)) for i in range(len(rates))}
    worst = timedelta(0)
    budget = Budget(per_pass=150)  # 300 silent sources need 300 / 12 = 25 a pass for the bound
    for _ in range(288):
        views = [SourceView(s, read_through=read[s], rate_per_hour=rate) for s, rate in zip(read, rates, strict=True)]
        decision = plan(now, views, budget, POLICY)
        assert decision.planned_requests <= budget.per_pass
        for poll in decision.polls:
            worst = max(worst, now - POLICY.settle_delay - read[poll.source_id])
            read[poll.source_id] = now - POLICY.settle_delay
        now += PASS
    stale = max(now - r for r in read.values())
    assert worst <= POLICY.max_poll_interval
    assert stale <= POLICY.max_poll_interval + PASS


# ---------------------------------------------------------------------------------------------- the activity estimate


def test_the_rate_rises_fast_and_falls_slowly() -> None:
    first = observe(NO_ACTIVITY, read_from=NOW - timedelta(hours=24), read_to=NOW, records=48, newest_record_at=None)
    assert first.rate_per_hour == pytest.approx(2.0)
    # A session starts: 30 records in 5 minutes (360 an hour) lifts the rate by 1 - e^-0.5 of the way.
    busy = observe(first, read_from=NOW, read_to=NOW + PASS, records=30, newest_record_at=NOW + PASS)
    assert busy.rate_per_hour == pytest.approx(2 + (1 - math.exp(-0.5)) * 358)
    assert (busy.records, busy.last_record_at) == (30, NOW + PASS)
    # Then nothing for 5 minutes: it falls by 1 - e^(-5/360) only, and the last record stays.
    lull = observe(busy, read_from=NOW + PASS, read_to=NOW + 2 * PASS, records=0, newest_record_at=None)
    assert busy.rate_per_hour is not None
    assert lull.rate_per_hour == pytest.approx(busy.rate_per_hour * math.exp(-5 / 360))
    assert (lull.records, lull.last_record_at) == (0, NOW + PASS)
    # A job that could not move the read point leaves the rate alone.
    stuck = observe(lull, read_from=NOW, read_to=NOW, records=7, newest_record_at=None)
    assert stuck.rate_per_hour == lull.rate_per_hour


def test_a_view_of_collector_state() -> None:
    assert scheduling.view(None, "new") == SourceView("new")
    state = CollectorState(
        vendor="plugchoice",
        source_id="cp-1",
        high_water_mark=NOW,
        activity_rate=12.5,
        activity_records=3,
        poked_at=NOW - PASS,
    )
    assert scheduling.view(state, "cp-1", in_flight=True) == SourceView(
        "cp-1", read_through=NOW, rate_per_hour=12.5, last_job_records=3, poked_at=NOW - PASS, in_flight=True
    )


def test_a_policy_takes_the_vendors_paging_and_its_own_starvation_bound() -> None:
    profile = collectors.profile_for("evenergy")
    policy = Policy.for_vendor(profile, "adaptive", PASS, timedelta(minutes=60))
    assert (policy.page_size, policy.lookback, policy.max_poll_interval) == (
        100,
        timedelta(hours=6),
        timedelta(hours=1),
    )
    tuned = replace(profile, max_poll_interval=timedelta(hours=4))
    assert Policy.for_vendor(tuned, "adaptive", PASS, timedelta(minutes=60)).max_poll_interval == timedelta(hours=4)
    with pytest.raises(ValueError, match="unknown scheduling policy"):
        Policy(name="sometimes")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- rate limits and pace


def test_the_documented_limits_are_in_the_profiles() -> None:
    assert collectors.profile_for("plugchoice").rate_limit == RateLimit(500, timedelta(minutes=1))
    assert collectors.profile_for("evenergy").rate_limit == RateLimit(1000, timedelta(hours=1))
    # Their docs name none: a pace per worker instead.
    assert collectors.profile_for("ocpplab").rate_limit is None
    assert collectors.profile_for("chargepilot").rate_limit is None


@pytest.mark.parametrize("vendor", ["plugchoice", "evenergy"])
@pytest.mark.parametrize("workers", [1, 2, 3, 4, 10])
def test_the_workers_together_never_pass_the_limit_in_any_window(vendor: str, workers: int) -> None:
    """A token bucket makes at most burst + rate x window requests in any window: summed over the workers, at most the
    limit's share."""
    profile = collectors.profile_for(vendor)
    assert profile.rate_limit is not None
    rate, burst = profile.pacing(workers)
    window = profile.rate_limit.window.total_seconds()
    assert workers * (burst + rate * window) <= profile.rate_limit.requests * RATE_LIMIT_SHARE + 1e-6
    assert rate > 0
    assert burst >= 1
    assert profile.capacity_per_second(workers) == pytest.approx(rate * workers)


def test_the_pace_of_two_workers() -> None:
    rate, burst = collectors.profile_for("plugchoice").pacing(2)
    assert (round(rate, 3), burst) == (round((250 * 0.95 - 4) / 60, 3), 4)  # 3.89 a second each: 467 a minute in all
    rate, burst = collectors.profile_for("evenergy").pacing(2)
    assert (round(rate * 3600), burst) == (470, 5)  # 940 an hour in all, where 0.25 a second each made 1,800


def test_the_secret_overrides_the_limit_or_sets_the_pace_outright() -> None:
    profile = collectors.profile_for("plugchoice")
    lower = profile.tuned({"rate_limit_requests": 120})
    assert lower.rate_limit == RateLimit(120, timedelta(minutes=1))
    assert lower.pacing(2)[0] == pytest.approx((120 * 0.95 / 2 - 4) / 60)
    hourly = profile.tuned({"rate_limit_requests": "3600", "rate_limit_window_seconds": "3600"})
    assert hourly.rate_limit == RateLimit(3600, timedelta(hours=1))
    fixed = profile.tuned({"requests_per_second": 1000})
    assert fixed.pacing(2) == (1000.0, 4)
    own = collectors.profile_for("ocpplab").tuned({"rate_limit_requests": 600})
    assert own.rate_limit == RateLimit(600, timedelta(minutes=1))  # one named where the docs name none
    unlimited = VendorProfile(timedelta(0), timedelta(0), requests_per_second=5.0, burst=5, page_size=10)
    assert unlimited.pacing(3) == (5.0, 5)
    assert unlimited.capacity_per_second(3) == 15.0


def test_a_pass_budget_is_what_the_workers_make_in_a_pass() -> None:
    profile = collectors.profile_for("plugchoice")
    budget = Budget.of(profile, PASS, workers=2)
    assert budget.per_pass == pytest.approx(2 * (250 * 0.95 - 4) / 60 * 300)
    assert budget.available == budget.per_pass
