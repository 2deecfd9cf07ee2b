"""What the vendors' convergence tests (tests/integration/test_*_convergence.py) share: a worker run the way
Lambda runs it on the vendor's work queue, a Lambda context whose time runs out, fast retries, every fault a
simulator can make, and a worker killed between pages.

Each test module starts one `WorkerHarness` (`worker_harness`) with its vendor, its simulator and its secret.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters

import worker_handler
from chargelog import aws, stores
from chargelog.collectors import vendor_http
from chargelog.dal.records import record_from_item, with_raw
from chargelog.dal.state import CollectorStateStore
from chargelog.logic import dispatcher
from chargelog_local.provision import LocalStack
from chargelog_local.triggers import sqs_event
from chargelog_simulators.base import Faults, ManualClock, SimulatorServer, VendorSimulator


def with_raw_forms(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored items as records with their raw forms, as the API serves one: read from the archived page an item points
    at (``raw_ref``), or held in the item."""
    return with_raw([record_from_item(item) for item in items], stores.raw_archive())


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


def running_low_every_third() -> Iterator[ShrinkingContext]:
    """Invocations of which every third runs low on time after a few pages and hands over to a continuation."""
    return iter([ShrinkingContext(4) if i % 3 == 0 else ShrinkingContext(10**6) for i in range(10**4)])


def plenty() -> Iterator[ShrinkingContext]:
    """Invocations that never run low on time."""
    while True:
        yield ShrinkingContext(10**6)


def every_fault(**changes: Any) -> Faults:
    """Every fault on: 5xx, 429 (no wait), slow answers, records inserted while a client pages, late records, and
    two truncated bodies; ``changes`` tune it for a vendor."""
    faults = Faults(
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
    return replace(faults, **changes)


def logical_prefix(vendor: str) -> str:
    """The template's name stem of a vendor's resources: ``ocpplab`` -> ``Ocpplab`` (OcpplabWorkQueue...)."""
    return vendor.capitalize()


def quick_retries(monkeypatch: pytest.MonkeyPatch, stack: LocalStack, vendor: str) -> None:
    """Retries back off for real on AWS; here for a few milliseconds, and a failed message comes straight back
    (visibility timeout 0), so the tests stay fast."""
    monkeypatch.setattr(vendor_http, "INITIAL_BACKOFF_SECONDS", 0.001)
    monkeypatch.setattr(vendor_http, "MAX_BACKOFF_SECONDS", 0.01)
    aws.client("sqs").set_queue_attributes(
        QueueUrl=stack.refs[f"{logical_prefix(vendor)}WorkQueue"], Attributes={"VisibilityTimeout": "0"}
    )


@dataclass
class WorkerHarness[Simulator: VendorSimulator]:
    """A vendor's simulator behind its secret, the template's resources, and a worker run on its queue."""

    vendor: str
    stack: LocalStack
    simulator: Simulator
    clock: ManualClock
    base_url: str
    secret: dict[str, Any]  # the vendor's credentials and tuning, besides base_url
    monkeypatch: pytest.MonkeyPatch
    _save_progress: Any = field(init=False, repr=False)  # the checkpoint writer that does not kill the worker

    def __post_init__(self) -> None:
        self._save_progress = CollectorStateStore.save_progress

    def configure(self, **tuning: Any) -> None:
        """Put the vendor's secret: base URL, credentials and tuning, with ``tuning`` over them."""
        self.put_secret({"base_url": self.base_url, **self.secret} | tuning)

    def kill_worker_after_every(self, checkpoints: int) -> Counter[str]:
        """Kill the worker now and then between pages: right after every ``checkpoints``-th checkpoint, before
        the next page. Returns the count of checkpoints saved (``["n"]``)."""
        store_save = self._save_progress
        saves = Counter[str]()

        def save_then_maybe_die(store: CollectorStateStore, *args: Any, **kwargs: Any) -> None:
            store_save(store, *args, **kwargs)
            saves["n"] += 1
            if saves["n"] % checkpoints == 0:
                raise Killed(f"killed after checkpoint {saves['n']}")

        self.monkeypatch.setattr(CollectorStateStore, "save_progress", save_then_maybe_die)
        return saves

    def calm_down(self) -> None:
        """The vendor makes no more faults, and the worker is no longer killed."""
        self.simulator.faults = Faults()
        self.monkeypatch.setattr(CollectorStateStore, "save_progress", self._save_progress)

    @property
    def _queue(self) -> tuple[str, str]:
        name = f"{logical_prefix(self.vendor)}WorkQueue"
        return self.stack.refs[name], self.stack.attributes[(name, "Arn")]

    def put_secret(self, secret: dict[str, Any]) -> None:
        aws.client("secretsmanager").put_secret_value(
            SecretId=self.stack.refs[f"{logical_prefix(self.vendor)}Secret"], SecretString=json.dumps(secret)
        )
        parameters.clear_caches()  # workers re-read a changed secret within 5 minutes; here, at once

    def schedule(self, contexts: Iterator[Any], max_invocations: int = 500) -> dict[str, int]:
        """One scheduled pass: dispatch, then run the worker on the queue until it is empty, with SQS's
        retries (a failed message is redelivered) and continuations."""
        dispatcher.dispatch(
            self.clock(), sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues()
        )
        sqs = aws.client("sqs")
        queue, arn = self._queue
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
                    tally["retried"] += 1  # visibility timeout is 0 here: it comes straight back
                else:
                    tally["done"] += 1
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        raise AssertionError(f"the queue did not drain in {max_invocations} invocations: {tally}")

    def drop_queued_jobs(self) -> None:
        """What an operator does after fixing the vendor: drop the failing jobs (SQS allows a purge a minute)."""
        sqs = aws.client("sqs")
        queue, _ = self._queue
        while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


@contextmanager
def worker_harness[Simulator: VendorSimulator](
    vendor: str,
    stack: LocalStack,
    monkeypatch: pytest.MonkeyPatch,
    simulator: Simulator,
    clock: ManualClock,
    secret: dict[str, Any],
    base_path: str = "",
) -> Iterator[WorkerHarness[Simulator]]:
    """The simulator served over HTTP at ``base_path`` (the vendor's base URL), its secret put, quick retries:
    a harness to schedule runs with, until the block ends."""
    quick_retries(monkeypatch, stack, vendor)
    server = SimulatorServer(simulator.wsgi_app)
    harness = WorkerHarness(vendor, stack, simulator, clock, server.start() + base_path, secret, monkeypatch)
    harness.configure()
    try:
        yield harness
    finally:
        server.stop()
