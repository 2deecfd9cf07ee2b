"""Scheduled collection from the ev.energy simulator (real HTTP) into the template's resources (moto's server).

With every fault on - 5xx, 429, slow answers, late-logged records appearing while a client pages, late
records, broken bodies, tokens that expire under the worker - and workers killed between pages and running
out of time, repeated scheduled runs converge to exactly the simulator's records: none missing, none twice.
A record logged after its window was read is stored by a later run, as long as it is logged within the
lookback.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chargelog import stores
from chargelog.collectors import evenergy, vendor_http
from chargelog.dal.records import charger_items
from chargelog.dal.state import CollectorStateStore
from chargelog.logic import sources
from chargelog.models.sources import SourceCreate
from chargelog_local.provision import LocalStack
from chargelog_simulators.base import ManualClock
from chargelog_simulators.evenergy import EvEnergySimulator
from convergence_harness import (
    WorkerHarness,
    every_fault,
    plenty,
    running_low_every_third,
    with_raw_forms,
    worker_harness,
)

CLIENT_ID, CLIENT_SECRET = "chargelog-test", "test-client-secret"
EVSES = ("evse01HSH04KDEWF6Z4DB2J77J74K5", "evse01HSH0B1Q9N4W7V3XKD2PZ6TMA")
BUSY_SECONDS = 20.0  # a status sample every 20 s


type Harness = WorkerHarness[EvEnergySimulator]


def stored_raw(stack: LocalStack, evse: str) -> list[dict[str, Any]]:
    return [r["raw"] for r in with_raw_forms(charger_items(stack.refs["Table"], evse))]


def as_multiset(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(r, sort_keys=True) for r in records)


@pytest.fixture
def harness(server_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setattr(vendor_http, "_LIMITERS", {})
    monkeypatch.setattr(evenergy, "_AUTHS", {})
    monkeypatch.setattr(evenergy, "_PACERS", {})
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    # Tokens live 10 minutes of simulated time: they expire under the worker's cached token (real time).
    simulator = EvEnergySimulator(seed=7, clock=clock, token_seconds=600)
    simulator.add_client(CLIENT_ID, CLIENT_SECRET)
    for evse in EVSES:
        simulator.add_evse(evse, CLIENT_ID)
        sources.create_source(
            SourceCreate.model_validate({"vendor": "evenergy", "source_id": evse}), store=stores.sources()
        )
    secret = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "page_size": 50, "requests_per_second": 1000}
    with worker_harness("evenergy", server_stack, monkeypatch, simulator, clock, secret, "/v2") as harness:
        yield harness


def test_repeated_runs_with_every_fault_converge_to_exactly_the_simulators_records(harness: Harness) -> None:
    simulator, clock = harness.simulator, harness.clock
    harness.configure(page_size=evenergy.MAX_PAGE_SIZE)
    for evse in EVSES:
        simulator.seed(evse, clock() - timedelta(hours=3), clock(), interval_seconds=BUSY_SECONDS)
    # Logged ten minutes after sampling: well inside the lookback.
    simulator.faults = every_fault(late_seconds=600)
    saves = harness.kill_worker_after_every(13)
    contexts = running_low_every_third()

    tallies = Counter[str]()
    for _ in range(6):  # half an hour of five-minute schedules, while the EVSEs keep reporting
        before = clock()
        clock.advance(300)
        for evse in EVSES:
            simulator.seed(evse, before, clock(), interval_seconds=BUSY_SECONDS)
        tallies.update(harness.schedule(contexts))
    counters = simulator.counters
    assert counters.errors > 0
    assert counters.throttled > 0
    assert counters.inserts_while_paging > 0
    assert counters.late_records > 0
    assert counters.bad_responses == 2
    assert saves["n"] >= 13
    assert tallies["retried"] > 0
    assert simulator.tokens_issued > 1  # tokens expired under the worker and were refreshed

    # The vendor calms down; the late records get logged; later schedules catch up.
    harness.calm_down()
    for _ in range(3):
        clock.advance(300)
        harness.schedule(plenty())

    for evse in EVSES:
        expected = as_multiset(simulator.visible_records(evse))
        got = as_multiset(stored_raw(harness.stack, evse))
        assert sum(expected.values()) > 500
        assert got - expected == Counter(), "stored records the simulator does not have"
        assert expected - got == Counter(), f"{sum((expected - got).values())} records missing"


def test_a_record_logged_after_its_window_was_read_is_stored_by_a_later_run(harness: Harness) -> None:
    simulator, clock = harness.simulator, harness.clock
    evse = EVSES[0]
    simulator.seed(evse, clock() - timedelta(hours=2), clock(), interval_seconds=300)
    harness.schedule(plenty())
    sampled = clock() - timedelta(minutes=30)  # inside the window just read
    within = clock() + evenergy.LOOKBACK - timedelta(hours=1)  # logged 5.5 h after sampling
    beyond = clock() + evenergy.LOOKBACK + timedelta(hours=1)  # logged 7.5 h after: past the lookback
    simulator.add_status(evse, sampled, is_plugged_in=True, is_charging=True, charge_rate_watts=7360, logged_at=within)
    simulator.add_status(
        evse,
        sampled + timedelta(seconds=1),
        is_plugged_in=True,
        is_charging=False,
        charge_rate_watts=0,
        logged_at=beyond,
    )
    urls = {r["url"] for r in stored_raw(harness.stack, evse)}
    # Hourly schedules (the same mark arithmetic as five-minute ones, in fewer runs).
    while clock() < beyond + timedelta(hours=1):
        clock.advance(3600)
        harness.schedule(plenty())
    stored = {r["sampled_at"]: r for r in stored_raw(harness.stack, evse)}
    late = stored.get(vendor_http.iso_utc(sampled))
    assert late is not None, "the record logged within the lookback was never stored"
    assert late["url"] not in urls
    # Logged later than the lookback reaches: the documented limit of the setting (tune lookback_seconds).
    assert vendor_http.iso_utc(sampled + timedelta(seconds=1)) not in stored
    visible = simulator.visible_records(evse)
    assert len(stored) == len(visible) - 1


def test_expired_credentials_and_problems_are_clear_errors(harness: Harness) -> None:
    simulator, clock = harness.simulator, harness.clock
    simulator.seed(EVSES[0], clock() - timedelta(hours=1), clock(), interval_seconds=300)
    harness.configure(client_secret="rotated-away")
    clock.advance(300)
    harness.schedule(plenty(), max_invocations=50)
    state = CollectorStateStore(harness.stack.refs["Table"]).get("evenergy", EVSES[0])
    error = state.last_error or ""
    assert "refused the client credentials (401): invalid_client - check the evenergy secret" in error
    assert "rotated-away" not in error
    assert CLIENT_SECRET not in error
    assert stored_raw(harness.stack, EVSES[0]) == []
