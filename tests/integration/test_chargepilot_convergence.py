"""Scheduled collection from the ChargePilot simulator (real HTTP, signed requests) into the template's resources.

A source is a site whose log holds several chargers. With every fault on - 5xx, 429, slow answers, entries
inserted while a client pages (offset pages shift), late entries, broken bodies - and workers killed between
pages and running out of time, repeated scheduled runs converge to exactly the simulator's entries, each filed
under its charger and its site: none missing, none twice.
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
from chargelog.logic import sources
from chargelog.models.sources import SourceCreate
from chargelog_local.provision import LocalStack
from chargelog_simulators.base import ManualClock
from chargelog_simulators.chargepilot import ChargepilotSimulator
from chargelog_simulators.traffic import Density
from convergence_harness import WorkerHarness, every_fault, running_low_every_third, with_raw_forms, worker_harness

API_KEY, API_SECRET = "cp-test-key", "cp-test-secret"
SITES = {"site-a": ("CP-A1", "CP-A2", "CP-A3"), "site-b": ("CP-B1",)}
BUSY = Density(session_gap_seconds=900, session_seconds=1800, meter_interval_seconds=30)


type Harness = WorkerHarness[ChargepilotSimulator]


def entry_key(entry: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        entry["occurrence_time"],
        entry["charger_id"],
        entry["action"],
        json.dumps(entry["payload"], sort_keys=True),
    )


def site_items(stack: LocalStack, site_id: str) -> list[dict[str, Any]]:
    """A site's records as the API finds them: its chargers from the charger index (gsi2), then their partitions."""
    return [
        item
        for charger in stores.records().site_chargers(site_id)
        for item in charger_items(stack.refs["Table"], charger)
        if item.get("site_id") == site_id
    ]


@pytest.fixture
def harness(server_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    # Signatures are checked against the real time; the simulated clock only drives the data.
    simulator = ChargepilotSimulator(seed=17, clock=clock)
    simulator.add_api_key(API_KEY, API_SECRET)
    for site_id, chargers in SITES.items():
        simulator.add_site(site_id, API_KEY, f"Site {site_id}")
        for charger in chargers:
            simulator.add_charger(site_id, charger, 2)
        simulator.seed(site_id, clock() - timedelta(hours=2), clock(), density=BUSY)
        sources.create_source(
            SourceCreate.model_validate({"vendor": "chargepilot", "source_id": site_id}), store=stores.sources()
        )
    secret = {"api_key": API_KEY, "api_secret": API_SECRET, "page_size": 50, "requests_per_second": 1000}
    with worker_harness("chargepilot", server_stack, monkeypatch, simulator, clock, secret, "/rest/v1") as harness:
        yield harness


def test_repeated_runs_with_every_fault_converge_to_exactly_the_simulators_entries(harness: Harness) -> None:
    simulator, clock = harness.simulator, harness.clock
    simulator.faults = every_fault()
    saves = harness.kill_worker_after_every(11)
    contexts = running_low_every_third()

    tallies = Counter[str]()
    for _ in range(5):
        before = clock()
        clock.advance(300)
        for site_id in SITES:
            simulator.seed(site_id, before, clock(), density=BUSY)
        tallies.update(harness.schedule(contexts))
    counters = simulator.counters
    assert counters.errors > 0
    assert counters.throttled > 0
    assert counters.inserts_while_paging > 0
    assert counters.late_records > 0
    assert counters.bad_responses == 2
    assert saves["n"] >= 11
    assert tallies["retried"] > 0

    harness.calm_down()
    for _ in range(2):
        clock.advance(300)
        harness.schedule(contexts)

    for site_id, chargers in SITES.items():
        expected_entries = simulator.visible_records(site_id)
        expected = Counter(entry_key(e) for e in expected_entries)
        assert sum(expected.values()) > 100
        assert len(expected) == sum(expected.values())  # the simulator's entries are distinct
        # Filed under the site...
        at_site = with_raw_forms(site_items(harness.stack, site_id))
        got = Counter(entry_key(r["raw"]) for r in at_site)
        assert got - expected == Counter(), "stored entries the simulator does not have"
        assert expected - got == Counter(), f"{sum((expected - got).values())} entries missing"
        assert {r["site_id"] for r in at_site} == {site_id}
        # ...and under each charger, with its connector.
        for charger in chargers:
            stored = with_raw_forms(charger_items(harness.stack.refs["Table"], charger))
            mine = Counter(entry_key(e) for e in expected_entries if e["charger_id"] == charger)
            assert Counter(entry_key(r["raw"]) for r in stored) == mine
            assert len(stored) == len({r["record_id"] for r in stored}) == sum(mine.values())
            assert all(r.get("connector_id") == r["raw"]["connector_id"] for r in stored if r["raw"]["connector_id"])
