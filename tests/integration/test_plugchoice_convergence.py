"""Scheduled collection from the Plugchoice simulator (real HTTP) into the template's resources (moto's server).

Plugchoice gives no total, so the engine cannot check a chunk's consistency: what keeps collection exact is
ascending ``created_at`` with page numbers (a record added while paging repeats a record, it never skips
one) and record ids that turn re-reads into upserts. With every fault on - 5xx, 429, slow answers, records
inserted while a client pages, late records, broken bodies, logs staying pending - and workers killed
between pages and running out of time, repeated scheduled runs converge to exactly the simulator's logs,
none missing, none twice, pending ones stored as done once they are.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chargelog import stores
from chargelog.dal.records import charger_items
from chargelog.dal.state import CollectorStateStore
from chargelog.logic import sources
from chargelog.logic.collection import JobRunner
from chargelog.models.jobs import CollectionJob
from chargelog.models.sources import SourceCreate
from chargelog_local.provision import LocalStack
from chargelog_simulators.base import Faults, ManualClock
from chargelog_simulators.plugchoice import PlugchoiceSimulator
from chargelog_simulators.traffic import Density
from convergence_harness import (
    WorkerHarness,
    every_fault,
    plenty,
    running_low_every_third,
    with_raw_forms,
    worker_harness,
)

TOKEN = "test-personal-access-token"
CHARGERS = ("6f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8", "0b9a8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d")
BUSY = Density(session_gap_seconds=1200, session_seconds=1800, meter_interval_seconds=30)
# Each five-minute step starts the charger's streams afresh: short gaps so every step has traffic.
STEP = Density(session_gap_seconds=60, session_seconds=600, meter_interval_seconds=10, heartbeat_interval_seconds=20)


type Harness = WorkerHarness[PlugchoiceSimulator]


def stored_records(stack: LocalStack, charger: str) -> list[dict[str, Any]]:
    return with_raw_forms(charger_items(stack.refs["Table"], charger))


def as_multiset(items: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(item, sort_keys=True) for item in items)


@pytest.fixture
def harness(server_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    # The per-minute limit counts wall-clock minutes; this test makes far more requests a minute than a real
    # worker may (its limiter is set to 1000/s), so only the throttle fault answers 429 here.
    # (A seed whose first hour has sessions on both chargers: assert_converged wants more than 40 logs each.)
    simulator = PlugchoiceSimulator(seed=22, clock=clock, rate_limit_per_minute=None)
    simulator.add_token(TOKEN)
    for charger in CHARGERS:
        simulator.add_charger(charger)
        simulator.seed(charger, clock() - timedelta(hours=1), clock(), density=BUSY)
        sources.create_source(
            SourceCreate.model_validate({"vendor": "plugchoice", "source_id": charger}), store=stores.sources()
        )
    secret = {"token": TOKEN, "requests_per_second": 1000}
    with worker_harness("plugchoice", server_stack, monkeypatch, simulator, clock, secret, "/api") as harness:
        yield harness


def assert_converged(harness: Harness) -> None:
    for charger in CHARGERS:
        expected = as_multiset(harness.simulator.visible_records(charger))
        stored = stored_records(harness.stack, charger)
        got = as_multiset([record["raw"] for record in stored])
        assert sum(expected.values()) > 40
        assert got - expected == Counter(), "stored records the simulator does not have (or stale versions)"
        assert expected - got == Counter(), f"{sum((expected - got).values())} records missing"
        assert len(stored) == sum(expected.values())


def test_repeated_runs_with_every_fault_converge_to_exactly_the_simulators_records(harness: Harness) -> None:
    simulator, clock = harness.simulator, harness.clock
    simulator.faults = every_fault()
    simulator.slow_answer_rate, simulator.slow_answer_seconds = 0.1, 200
    saves = harness.kill_worker_after_every(13)
    contexts = running_low_every_third()

    tallies = Counter[str]()
    pending_seen = 0
    for _ in range(4):
        before = clock()
        clock.advance(300)
        for charger in CHARGERS:
            simulator.seed(charger, before, clock(), density=STEP)
        tallies.update(harness.schedule(contexts))
        pending_seen += sum(
            r["status"] == "pending" for charger in CHARGERS for r in stored_records(harness.stack, charger)
        )
    counters = simulator.counters
    assert counters.errors > 0
    assert counters.throttled > 0
    assert counters.inserts_while_paging > 0
    assert counters.late_records > 0
    assert counters.bad_responses == 2
    assert saves["n"] >= 13
    assert tallies["retried"] > 0
    assert pending_seen > 0  # some logs were stored while pending...

    harness.calm_down()
    for _ in range(2):
        clock.advance(300)
        harness.schedule(contexts)
    assert_converged(harness)  # ...and are stored done now, once each
    for charger in CHARGERS:
        assert {r["status"] for r in stored_records(harness.stack, charger)} <= {"done", "failed"}


def test_a_pending_log_is_updated_in_place_when_it_is_done(harness: Harness) -> None:
    simulator, clock = harness.simulator, harness.clock
    simulator.slow_answer_rate, simulator.slow_answer_seconds = 1.0, 600
    before = clock()
    clock.advance(120)
    simulator.seed(CHARGERS[0], before, clock(), density=STEP, boot=False)
    clock.advance(60)  # past the settle delay
    harness.schedule(plenty())
    first = {r["record_id"]: r for r in stored_records(harness.stack, CHARGERS[0])}
    pending = {rid: r for rid, r in first.items() if r["status"] == "pending"}
    assert pending

    clock.advance(600)
    harness.schedule(plenty())
    second = {r["record_id"]: r for r in stored_records(harness.stack, CHARGERS[0])}
    assert second.keys() == first.keys() | second.keys()  # nothing dropped
    for record_id, was in pending.items():
        now = second[record_id]
        assert now["status"] in ("done", "failed")
        assert now["timestamp"] == was["timestamp"]
        assert now["result"] is not None
    assert_converged(harness)


def test_bad_vendor_responses_are_clear_errors_and_lose_nothing(harness: Harness) -> None:
    contexts = plenty()
    harness.schedule(contexts)
    before = {c: len(stored_records(harness.stack, c)) for c in CHARGERS}
    assert all(before.values())
    states = CollectorStateStore(harness.stack.refs["Table"])
    cases = {
        "html": "answered 502: <html>",
        "truncated": "with invalid JSON",
        "wrong_types": "answered with an unexpected body",
    }
    for kind, expected_error in cases.items():
        harness.clock.advance(7200)
        harness.simulator.faults = Faults(bad_response=kind, bad_response_count=10**6)  # type: ignore[arg-type]
        with pytest.raises(AssertionError, match="did not drain"):
            harness.schedule(contexts, max_invocations=3)
        errors = [states.get("plugchoice", charger).last_error or "" for charger in CHARGERS]
        assert any(expected_error in error for error in errors), errors
        assert {c: len(stored_records(harness.stack, c)) for c in CHARGERS} == before
        harness.simulator.faults = Faults()
        harness.drop_queued_jobs()

    harness.configure(token="revoked-token")
    harness.clock.advance(3600 * 2)
    harness.schedule(contexts, max_invocations=50)
    for charger in CHARGERS:
        error = states.get("plugchoice", charger).last_error or ""
        assert "refused the credentials (401)" in error
        assert "check the plugchoice secret" in error
        assert TOKEN not in error
    assert {c: len(stored_records(harness.stack, c)) for c in CHARGERS} == before


def test_a_backfill_of_one_action_uses_the_method_filter(harness: Harness) -> None:
    start, end = harness.clock() - timedelta(hours=1), harness.clock()
    job = CollectionJob(
        vendor="plugchoice",
        source_id=CHARGERS[0],
        window_start=start,
        window_end=end,
        mode="backfill",
        scheduled_at=end,
        action="StatusNotification",
    )
    outcome = JobRunner(job, remaining_seconds=lambda: 900.0, now=harness.clock, stores=stores.collection()).run()
    expected = [r for r in harness.simulator.visible_records(CHARGERS[0]) if r["method"] == "StatusNotification"]
    stored = stored_records(harness.stack, CHARGERS[0])
    assert len(expected) > 5
    assert as_multiset([r["raw"] for r in stored]) == as_multiset(expected)
    assert outcome.vendor_requests == -(-len(expected) // 25)
    assert CollectorStateStore(harness.stack.refs["Table"]).get("plugchoice", CHARGERS[0]).high_water_mark is None
