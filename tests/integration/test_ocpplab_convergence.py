"""Scheduled collection from the OCPPLAB simulator (real HTTP) into the template's resources (moto's server).

With every fault on - 5xx, 429, slow answers, records inserted while a client pages, late records, broken
bodies - and workers killed between pages and running out of time, repeated scheduled runs converge to
exactly the simulator's records: none missing, none twice.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chargelog import stores
from chargelog.dal.records import charger_items
from chargelog.dal.state import CollectorStateStore
from chargelog.logic import health, sources
from chargelog.logic.collection import JobRunner
from chargelog.models.jobs import CollectionJob
from chargelog.models.sources import SourceCreate
from chargelog_local.provision import LocalStack
from chargelog_simulators.base import Faults, ManualClock
from chargelog_simulators.ocpplab import OcpplabSimulator
from chargelog_simulators.traffic import Density
from convergence_harness import (
    WorkerHarness,
    every_fault,
    plenty,
    running_low_every_third,
    with_raw_forms,
    worker_harness,
)

TOKEN = "test-token"
CHARGERS = ("dep-a", "dep-b")
BUSY = Density(session_gap_seconds=900, session_seconds=1800, meter_interval_seconds=20)


type Harness = WorkerHarness[OcpplabSimulator]


def stored_records(stack: LocalStack, charger: str) -> list[dict[str, Any]]:
    return list(charger_items(stack.refs["Table"], charger))


def as_multiset(records: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    return Counter((r["timestamp"], r["direction"], r["message"]) for r in records)


@pytest.fixture
def harness(server_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    simulator = OcpplabSimulator(seed=11, clock=clock)
    simulator.add_token(TOKEN, "tenant-1")
    for charger in CHARGERS:
        simulator.add_charger(charger, "tenant-1")
        simulator.seed(charger, clock() - timedelta(hours=3), clock(), density=BUSY)
        sources.create_source(
            SourceCreate.model_validate({"vendor": "ocpplab", "source_id": charger}), store=stores.sources()
        )
    secret = {"token": TOKEN, "page_size": 50, "requests_per_second": 1000}
    with worker_harness("ocpplab", server_stack, monkeypatch, simulator, clock, secret) as harness:
        yield harness


def test_repeated_runs_with_every_fault_converge_to_exactly_the_simulators_records(harness: Harness) -> None:
    simulator, clock = harness.simulator, harness.clock
    simulator.faults = every_fault(insert_while_paging_rate=0.05)
    # Kill the worker between pages now and then: right after a checkpoint, before the next page.
    saves = harness.kill_worker_after_every(13)
    # Every third invocation runs low on time after a few pages, and hands over to a continuation.
    contexts = running_low_every_third()

    tallies = Counter[str]()
    for _ in range(6):  # half an hour of five-minute schedules, while the chargers keep talking
        before = clock()
        clock.advance(300)
        for charger in CHARGERS:
            simulator.seed(charger, before, clock(), density=BUSY)
        tallies.update(harness.schedule(contexts))
    counters = simulator.counters
    assert counters.errors > 0
    assert counters.throttled > 0
    assert counters.inserts_while_paging > 0
    assert counters.late_records > 0
    assert counters.bad_responses == 2
    assert saves["n"] >= 13
    assert tallies["retried"] > 0

    # The vendor calms down; late records become visible; a couple more schedules catch up.
    harness.calm_down()
    for _ in range(2):
        clock.advance(300)
        harness.schedule(contexts)

    for charger in CHARGERS:
        expected = as_multiset(simulator.visible_records(charger))
        stored = stored_records(harness.stack, charger)
        got = as_multiset([r["raw"] for r in with_raw_forms(stored)])
        assert sum(expected.values()) > 500
        assert got - expected == Counter(), "stored records the simulator does not have"
        assert expected - got == Counter(), f"{sum((expected - got).values())} records missing"
        assert len(stored) == len({item["sk"] for item in stored}) == sum(expected.values())


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
        harness.clock.advance(7200)  # past the backoff the previous case left
        # More broken answers than the client's attempts: every job fails, each attempt until SQS gives up.
        harness.simulator.faults = Faults(bad_response=kind, bad_response_count=10**6)  # type: ignore[arg-type]
        with pytest.raises(AssertionError, match="did not drain"):
            harness.schedule(contexts, max_invocations=3)
        state = states.get("ocpplab", CHARGERS[0])
        assert state.last_error is not None
        assert expected_error in state.last_error, state.last_error
        assert state.consecutive_failures >= 1
        report = health.collectors_report(
            harness.clock(), states=stores.collector_states(), sources=stores.sources(), queues=stores.work_queues()
        )
        row = next(r for r in report["collectors"] if r["source_id"] == CHARGERS[0])
        assert row["status"] in ("failing", "backing_off")
        assert expected_error in row["last_error"]
        assert {c: len(stored_records(harness.stack, c)) for c in CHARGERS} == before
        harness.simulator.faults = Faults()
        harness.drop_queued_jobs()

    harness.configure(token="revoked-token")
    harness.clock.advance(3600 * 2)  # past any backoff
    harness.schedule(contexts, max_invocations=50)
    state = states.get("ocpplab", CHARGERS[0])
    assert "refused the credentials (401)" in (state.last_error or "")
    assert "check the ocpplab secret" in (state.last_error or "")
    assert TOKEN not in (state.last_error or "")
    assert {c: len(stored_records(harness.stack, c)) for c in CHARGERS} == before


def test_a_backfill_of_one_action_uses_the_vendors_event_filter(harness: Harness) -> None:
    start, end = harness.clock() - timedelta(hours=3), harness.clock()
    job = CollectionJob(
        vendor="ocpplab",
        source_id=CHARGERS[0],
        window_start=start,
        window_end=end,
        mode="backfill",
        scheduled_at=end,
        action="StatusNotification",
    )
    outcome = JobRunner(job, remaining_seconds=lambda: 900.0, now=harness.clock, stores=stores.collection()).run()
    expected = [r for r in harness.simulator.visible_records(CHARGERS[0]) if r["action"] == "StatusNotification"]
    stored = with_raw_forms(stored_records(harness.stack, CHARGERS[0]))
    assert len(expected) > 10
    assert {r["action"] for r in stored} == {"StatusNotification"}
    assert as_multiset([r["raw"] for r in stored]) == as_multiset(expected)
    assert outcome.vendor_requests == math.ceil(len(expected) / 50)  # page_size 50: no request wasted
    # A backfill leaves the scheduled high-water mark alone.
    assert CollectorStateStore(harness.stack.refs["Table"]).get("ocpplab", CHARGERS[0]).high_water_mark is None
