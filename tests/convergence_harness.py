"""What the vendors' convergence tests (tests/integration/test_*_convergence.py) share: a worker run the way
Lambda runs it on the vendor's work queue, a Lambda context whose time runs out, and fast retries.

Each test module subclasses `WorkerHarness` with its vendor and its secret (`configure`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from aws_lambda_powertools.utilities import parameters

import worker_handler
from chargelog import aws, stores, vendor_http
from chargelog.logic import collection
from chargelog_local.provision import LocalStack
from chargelog_local.triggers import sqs_event
from chargelog_simulators.base import ManualClock


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
class WorkerHarness:
    """A vendor's simulator behind its secret, the template's resources, and a worker run on its queue."""

    vendor: ClassVar[str]

    stack: LocalStack
    simulator: Any
    clock: ManualClock
    base_url: str

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
        collection.dispatch(
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
