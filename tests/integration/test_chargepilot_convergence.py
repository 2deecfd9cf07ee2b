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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters
from boto3.dynamodb.conditions import Key

import worker_handler
from chargelog import aws, vendor_http
from chargelog.dal.records import charger_items, record_from_item, site_partition
from chargelog.dal.state import CollectorStateStore
from chargelog.local.provision import LocalStack
from chargelog.local.triggers import sqs_event
from chargelog.logic import collection, sources
from chargelog.models.sources import SourceCreate
from chargelog.simulators.base import Faults, ManualClock, SimulatorServer
from chargelog.simulators.chargepilot import ChargepilotSimulator
from chargelog.simulators.traffic import Density

API_KEY, API_SECRET = "cp-test-key", "cp-test-secret"
SITES = {"site-a": ("CP-A1", "CP-A2", "CP-A3"), "site-b": ("CP-B1",)}
BUSY = Density(session_gap_seconds=900, session_seconds=1800, meter_interval_seconds=30)


class Killed(Exception):
    """The worker dying between two pages."""


@dataclass
class ShrinkingContext:
    """A Lambda context whose time runs out after a few checks, so jobs must continue in a new invocation."""

    checks_before_low: int
    function_name: str = "WorkerFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:WorkerFunction"
    aws_request_id: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        self.checks_before_low -= 1
        return 900_000 if self.checks_before_low > 0 else 30_000


@dataclass
class Harness:
    stack: LocalStack
    simulator: ChargepilotSimulator
    clock: ManualClock
    base_url: str

    def configure(self, **tuning: Any) -> None:
        secret = {
            "base_url": self.base_url,
            "api_key": API_KEY,
            "api_secret": API_SECRET,
            "page_size": 50,
            "requests_per_second": 1000,
        } | tuning
        aws.client("secretsmanager").put_secret_value(
            SecretId=self.stack.refs["ChargepilotSecret"], SecretString=json.dumps(secret)
        )
        parameters.clear_caches()

    def schedule(self, contexts: Iterator[Any], max_invocations: int = 500) -> dict[str, int]:
        collection.dispatch(self.clock())
        sqs = aws.client("sqs")
        queue = self.stack.refs["ChargepilotWorkQueue"]
        arn = self.stack.attributes[("ChargepilotWorkQueue", "Arn")]
        tally: Counter[str] = Counter()
        for _ in range(max_invocations):
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, AttributeNames=["All"]).get(
                "Messages", []
            )
            if not messages:
                return dict(tally)
            try:
                result = worker_handler.lambda_handler(sqs_event(messages, arn, "us-east-1"), next(contexts))
                failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
            except Exception:  # every record failed: Powertools fails the invocation
                failed = {m["MessageId"] for m in messages}
            for message in messages:
                if message["MessageId"] in failed:
                    tally["retried"] += 1
                else:
                    tally["done"] += 1
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        raise AssertionError(f"the queue did not drain in {max_invocations} invocations: {tally}")


def entry_key(entry: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        entry["occurrence_time"],
        entry["charger_id"],
        entry["action"],
        json.dumps(entry["payload"], sort_keys=True),
    )


def site_items(stack: LocalStack, site_id: str) -> list[dict[str, Any]]:
    table = aws.table(stack.refs["Table"])
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {"IndexName": "gsi2", "KeyConditionExpression": Key("gsi2pk").eq(site_partition(site_id))}
    while True:
        page = table.query(**query)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture
def harness(server_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setattr(vendor_http, "INITIAL_BACKOFF_SECONDS", 0.001)
    monkeypatch.setattr(vendor_http, "MAX_BACKOFF_SECONDS", 0.01)
    aws.client("sqs").set_queue_attributes(
        QueueUrl=server_stack.refs["ChargepilotWorkQueue"], Attributes={"VisibilityTimeout": "0"}
    )
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    # Signatures are checked against the real time; the simulated clock only drives the data.
    simulator = ChargepilotSimulator(seed=17, clock=clock)
    simulator.add_api_key(API_KEY, API_SECRET)
    for site_id, chargers in SITES.items():
        simulator.add_site(site_id, API_KEY, f"Site {site_id}")
        for charger in chargers:
            simulator.add_charger(site_id, charger, 2)
        simulator.seed(site_id, clock() - timedelta(hours=2), clock(), density=BUSY)
        sources.create_source(SourceCreate.model_validate({"vendor": "chargepilot", "source_id": site_id}))
    server = SimulatorServer(simulator.wsgi_app)
    harness = Harness(server_stack, simulator, clock, server.start() + "/rest/v1")
    harness.configure()
    yield harness
    server.stop()


def test_repeated_runs_with_every_fault_converge_to_exactly_the_simulators_entries(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator, clock = harness.simulator, harness.clock
    simulator.faults = Faults(
        error_rate=0.15,
        throttle_rate=0.1,
        retry_after_seconds=0,
        slow_rate=0.05,
        slow_seconds=0.02,
        insert_while_paging_rate=0.1,
        insert_count=3,
        late_rate=0.1,
        late_seconds=240,
        bad_response="truncated",
        bad_response_count=2,
    )
    store_save = CollectorStateStore.save_progress
    saves = Counter[str]()

    def save_then_maybe_die(self: CollectorStateStore, *args: Any, **kwargs: Any) -> None:
        store_save(self, *args, **kwargs)
        saves["n"] += 1
        if saves["n"] % 11 == 0:
            raise Killed(f"killed after checkpoint {saves['n']}")

    monkeypatch.setattr(CollectorStateStore, "save_progress", save_then_maybe_die)
    contexts = iter([ShrinkingContext(4) if i % 3 == 0 else ShrinkingContext(10**6) for i in range(10**4)])

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

    simulator.faults = Faults()
    monkeypatch.setattr(CollectorStateStore, "save_progress", store_save)
    for _ in range(2):
        clock.advance(300)
        harness.schedule(contexts)

    for site_id, chargers in SITES.items():
        expected_entries = simulator.visible_records(site_id)
        expected = Counter(entry_key(e) for e in expected_entries)
        assert sum(expected.values()) > 100
        assert len(expected) == sum(expected.values())  # the simulator's entries are distinct
        # Filed under the site...
        at_site = [record_from_item(item) for item in site_items(harness.stack, site_id)]
        got = Counter(entry_key(r["raw"]) for r in at_site)
        assert got - expected == Counter(), "stored entries the simulator does not have"
        assert expected - got == Counter(), f"{sum((expected - got).values())} entries missing"
        assert {r["site_id"] for r in at_site} == {site_id}
        # ...and under each charger, with its connector.
        for charger in chargers:
            stored = [record_from_item(item) for item in charger_items(harness.stack.refs["Table"], charger)]
            mine = Counter(entry_key(e) for e in expected_entries if e["charger_id"] == charger)
            assert Counter(entry_key(r["raw"]) for r in stored) == mine
            assert len(stored) == len({r["record_id"] for r in stored}) == sum(mine.values())
            assert all(r.get("connector_id") == r["raw"]["connector_id"] for r in stored if r["raw"]["connector_id"])
