"""Replay against the template's resources in moto's server: records collected from the OCPPLAB simulator over
HTTP, deleted from the table, come back identical through POST /collectors/{vendor}/{source_id}/replay and the
worker on the vendor's queue (handing over to continuations as its time runs low), without one request to the
vendor; a second replay writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import worker_handler
from api_calls import call_api
from chargelog import aws, stores
from chargelog.dal.records import charger_items
from chargelog.logic import sources
from chargelog.models.sources import SourceCreate
from chargelog_local.provision import LocalStack
from chargelog_local.triggers import sqs_event
from chargelog_simulators.base import ManualClock
from chargelog_simulators.ocpplab import OcpplabSimulator
from chargelog_simulators.traffic import Density
from convergence_harness import ShrinkingContext, WorkerHarness, plenty, worker_harness

TOKEN = "test-token"
CHARGER = "dep-r"
BUSY = Density(session_gap_seconds=900, session_seconds=1800, meter_interval_seconds=20)

type Harness = WorkerHarness[OcpplabSimulator]


@pytest.fixture
def harness(server_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    # The records end at the clock's time, and the worker fetches them after it (a record is fetched at or after its
    # time, which is what a replay relies on): the clock stands still, real time runs on.
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5))
    simulator = OcpplabSimulator(seed=5, clock=clock)
    simulator.add_token(TOKEN, "tenant-1")
    simulator.add_charger(CHARGER, "tenant-1")
    simulator.seed(CHARGER, clock() - timedelta(hours=3), clock(), density=BUSY)
    sources.create_source(
        SourceCreate.model_validate({"vendor": "ocpplab", "source_id": CHARGER}), store=stores.sources()
    )
    secret = {"token": TOKEN, "page_size": 50, "requests_per_second": 1000}
    with worker_harness("ocpplab", server_stack, monkeypatch, simulator, clock, secret) as harness:
        yield harness


def items(stack: LocalStack) -> dict[str, dict[str, Any]]:
    """The charger's items by sort key, without their TTL: a rewritten item is hot for a window from its writing."""
    return {
        str(item["sk"]): {name: value for name, value in item.items() if name != "expires_at"}
        for item in charger_items(stack.refs["Table"], CHARGER)
    }


def expiries(stack: LocalStack) -> dict[str, int]:
    return {str(item["sk"]): int(item["expires_at"]) for item in charger_items(stack.refs["Table"], CHARGER)}


def drain(harness: Harness, contexts: Iterator[Any], max_invocations: int = 200) -> int:
    """Run the worker on the vendor's queue until it is empty; returns the invocations."""
    sqs = aws.client("sqs")
    name = "OcpplabWorkQueue"
    queue, arn = harness.stack.refs[name], harness.stack.attributes[(name, "Arn")]
    for invocation in range(max_invocations):
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, AttributeNames=["All"]).get(
            "Messages", []
        )
        if not messages:
            return invocation
        result = worker_handler.lambda_handler(sqs_event(messages, arn, "us-east-1"), next(contexts))
        assert result == {"batchItemFailures": []}
        for message in messages:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    raise AssertionError(f"the queue did not drain in {max_invocations} invocations")


def test_a_replay_through_the_api_and_the_worker_restores_deleted_records_without_the_vendor(
    harness: Harness, lambda_context: Any
) -> None:
    harness.schedule(plenty())
    harness.schedule(plenty())  # a second pass re-reads its lookback: those records are in two pages
    before, expired_before = items(harness.stack), expiries(harness.stack)
    assert len(before) > 300
    table = aws.table(harness.stack.refs["Table"])
    with table.batch_writer() as batch:
        for sk in before:
            batch.delete_item(Key={"pk": f"CHARGER#{CHARGER}", "sk": sk})
    assert items(harness.stack) == {}
    requests = harness.simulator.counters.requests
    body = {"from": (harness.clock() - timedelta(hours=4)).isoformat(), "to": harness.clock().isoformat()}

    response = call_api(lambda_context, "POST", f"/collectors/ocpplab/{CHARGER}/replay", body=body)
    assert response.status == 202, response.text
    replay_id = response.json()["replay_id"]
    # Every invocation runs low on time after a few pages and hands over to a continuation.
    invocations = drain(harness, iter(ShrinkingContext(4) for _ in range(10**4)))

    assert invocations > 1
    assert items(harness.stack) == before  # the same items: content, digest and raw_ref
    assert all(expires >= expired_before[sk] for sk, expires in expiries(harness.stack).items())
    assert harness.simulator.counters.requests == requests  # not one call to the vendor
    progress = stores.replays().get("ocpplab", CHARGER, replay_id)
    assert progress is not None
    assert (progress.state, progress.records_written) == ("done", len(before))
    # A record two pages hold is counted once per invocation: continuations count it again, but never write it twice.
    assert progress.records_read >= len(before)

    response = call_api(lambda_context, "POST", f"/collectors/ocpplab/{CHARGER}/replay", body=body)
    assert response.status == 202, response.text
    drain(harness, plenty())
    again = stores.replays().get("ocpplab", CHARGER, response.json()["replay_id"])
    assert again is not None
    assert (again.state, again.records_written, again.pages_read) == ("done", 0, progress.pages_read)
    assert items(harness.stack) == before
