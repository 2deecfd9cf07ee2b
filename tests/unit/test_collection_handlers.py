"""Dispatcher (schedule -> jobs) and worker (jobs -> collectors), fed with the events in events/."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

import dispatcher_handler
import worker_handler
from chargelog import aws
from chargelog.collectors import CollectionResult
from chargelog.local.provision import LocalStack
from chargelog.logic import sources
from chargelog.models.jobs import CollectionJob
from chargelog.models.sources import SourceCreate
from conftest import load_event


@dataclass
class RecordingCollector:
    fail: bool = False
    jobs: list[CollectionJob] = field(default_factory=list)

    def collect(self, job: CollectionJob, remaining_ms: Callable[[], int]) -> CollectionResult:
        assert remaining_ms() > 0
        self.jobs.append(job)
        if self.fail:
            raise RuntimeError("vendor API down")
        return CollectionResult(records_stored=3, pages_fetched=1)


def queued_jobs(stack: LocalStack) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=stack.refs["WorkQueue"], MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return sorted(bodies, key=lambda b: (b["vendor"], b["source_id"]))
        bodies += [json.loads(m["Body"]) for m in messages]


def add(vendor: str, source_id: str, enabled: bool = True) -> None:
    sources.create_source(SourceCreate(vendor=vendor, source_id=source_id, enabled=enabled))  # type: ignore[arg-type]


def test_dispatch_enqueues_one_job_per_enabled_source_with_a_collector(
    stack: LocalStack, lambda_context: Any, register_collector: Any
) -> None:
    register_collector("ocpplab", RecordingCollector())
    for i in range(12):
        add("ocpplab", f"dep-{i:02d}")
    add("ocpplab", "dep-off", enabled=False)
    add("evenergy", "evse-1")  # no collector for this vendor

    result = dispatcher_handler.lambda_handler(load_event("schedule_collect"), lambda_context)

    assert result == {"enqueued": 12, "without_collector": 1}
    jobs = queued_jobs(stack)
    assert [j["source_id"] for j in jobs] == [f"dep-{i:02d}" for i in range(12)]
    assert {j["scheduled_at"] for j in jobs} == {"2026-11-21T09:30:00Z"}


def test_dispatch_with_no_sources_enqueues_nothing(stack: LocalStack, lambda_context: Any) -> None:
    assert dispatcher_handler.lambda_handler(load_event("schedule_collect"), lambda_context) == {
        "enqueued": 0,
        "without_collector": 0,
    }
    assert queued_jobs(stack) == []


def test_worker_runs_each_job_and_reports_only_failures(
    stack: LocalStack, lambda_context: Any, register_collector: Any
) -> None:
    ocpplab, plugchoice = RecordingCollector(), RecordingCollector(fail=True)
    register_collector("ocpplab", ocpplab)
    register_collector("plugchoice", plugchoice)
    event = load_event("sqs_collection_jobs")

    result = worker_handler.lambda_handler(event, lambda_context)

    assert [job.source_id for job in ocpplab.jobs] == ["dep-123"]
    assert len(plugchoice.jobs) == 1
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}


def test_worker_fails_jobs_it_cannot_read_or_run(stack: LocalStack, lambda_context: Any) -> None:
    event = load_event("sqs_collection_jobs")
    event["Records"][0]["body"] = '{"vendor": "ocpplab"'  # truncated
    # Record 1 is a plugchoice job, and no plugchoice collector is registered. When every record of
    # a batch fails, Powertools fails the invocation, so Lambda returns the whole batch to the queue.
    with pytest.raises(BatchProcessingError, match="All records failed") as failure:
        worker_handler.lambda_handler(event, lambda_context)
    assert "json_invalid" in str(failure.value)
    assert "No collector is installed for vendor 'plugchoice'" in str(failure.value)
