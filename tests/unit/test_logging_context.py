"""The Logger's keys belong to one invocation, and to one record of a batch: a warm container's next invocation,
the next record, or a function running at the same time in another thread (the local stack) never logs them."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

import alert_notifier_handler
import api_handler
import diagnostics_indexer_handler
import dispatcher_handler
import export_handler
import health_monitor_handler
import upload_authorizer_handler
import worker_handler
from chargelog.observability import keys_per_record, logger, tracer
from chargelog_local.lambdas import LocalLambdaContext
from chargelog_local.provision import LocalStack
from conftest import REGION, load_event

Lines = Callable[[], list[dict[str, Any]]]
LEFT_OVER = "from-the-last-invocation"


@pytest.fixture
def lines() -> Iterator[Lines]:
    """The Logger's JSON lines from here on, parsed."""
    stream = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    handler.setStream(previous)  # type: ignore[arg-type]
    logger.clear_state()


def context(function_name: str) -> LocalLambdaContext:
    return LocalLambdaContext(function_name=function_name, memory_limit_in_mb=512, timeout_seconds=30, region=REGION)


def invoke(module: ModuleType, event: dict[str, Any], lambda_context: LocalLambdaContext) -> None:
    with contextlib.suppress(BatchProcessingError):  # every record of the batch failed: SQS redelivers them all
        module.lambda_handler(event, lambda_context)


def _one_record(name: str) -> dict[str, Any]:
    event = load_event(name)
    return {"Records": event["Records"][:1]}


def _upload_notification(stack: LocalStack) -> dict[str, Any]:
    text = json.dumps(load_event("sqs_diagnostics_upload"))
    text = text.replace("BUCKET_PLACEHOLDER", stack.refs["DiagnosticsBucket"]).replace("KEY_PLACEHOLDER", "stray")
    return dict(json.loads(text))


# Each handler, with an event that makes it log at least one line without reaching a vendor.
HANDLERS: list[tuple[ModuleType, Callable[[LocalStack], dict[str, Any]]]] = [
    (api_handler, lambda _: load_event("api_create_source")),
    (dispatcher_handler, lambda _: load_event("schedule_collect")),
    (worker_handler, lambda _: _one_record("sqs_collection_jobs")),  # ocpplab has no base_url: fails at once
    (export_handler, lambda _: load_event("sqs_export_jobs")),  # no such export
    (upload_authorizer_handler, lambda _: load_event("upload_authorizer_request")),  # no such request: denied
    (diagnostics_indexer_handler, _upload_notification),  # not an upload's key: dropped
    (health_monitor_handler, lambda _: load_event("schedule_collect")),
    (alert_notifier_handler, lambda _: load_event("sqs_alert_notices")),  # no such alert: nothing to send
]


@pytest.mark.parametrize(("module", "event"), HANDLERS, ids=[module.__name__ for module, _ in HANDLERS])
def test_a_warm_containers_next_invocation_logs_none_of_the_last_ones_keys(
    stack: LocalStack, lines: Lines, module: ModuleType, event: Callable[[LocalStack], dict[str, Any]]
) -> None:
    # What an earlier invocation of this container appended, a record's keys or an API request's correlation id.
    logger.append_keys(correlation_id=LEFT_OVER, export_id=LEFT_OVER, job_id=LEFT_OVER, request_note=LEFT_OVER)
    invocation = context(f"{module.__name__}-fn")
    invoke(module, event(stack), invocation)
    logged = lines()
    assert logged, "the event should make the handler log"
    for line in logged:
        assert line["function_name"] == invocation.function_name
        assert line["function_request_id"] == invocation.aws_request_id
        assert LEFT_OVER not in line.values(), line
        assert "request_note" not in line


def test_the_workers_second_invocation_has_none_of_the_first_jobs_keys(stack: LocalStack, lines: Lines) -> None:
    collection = _one_record("sqs_collection_jobs")  # ocpplab/dep-123
    invoke(worker_handler, collection, context("WorkerFunction"))
    first = lines()
    assert {(line["source_id"], line["job_id"]) for line in first} == {("dep-123", "6f1c0e5f8a8b4b7e9a1f2d3c4b5a6978")}
    discovery = json.loads(json.dumps(collection))
    discovery["Records"][0]["body"] = json.dumps(
        {"kind": "discover", "job_id": "d15c0fe7", "vendor": "ocpplab", "scheduled_at": "2026-11-21T09:30:00Z"}
    )
    second = context("WorkerFunction")
    invoke(worker_handler, discovery, second)
    later = lines()[len(first) :]
    assert later
    for line in later:
        assert line["function_request_id"] == second.aws_request_id
        assert line["job_id"] == "d15c0fe7"
        assert "source_id" not in line


def _sqs_batch(*bodies: str) -> dict[str, Any]:
    record = load_event("sqs_export_jobs")["Records"][0]
    return {"Records": [{**record, "messageId": f"m-{n}", "body": body} for n, body in enumerate(bodies)]}


def test_a_records_keys_are_gone_before_the_next_record_and_the_context_reaches_it(lines: Lines) -> None:
    invocation = context("BatchFunction")
    seen: list[Any] = []

    @keys_per_record
    @tracer.capture_method
    def record_handler(record: Any, lambda_context: Any) -> None:
        seen.append(lambda_context)
        if record.body != "plain":
            logger.append_keys(record_key=record.body, service="changed-for-this-record")
        logger.info("Record handled")

    @logger.inject_lambda_context(clear_state=True)
    def lambda_handler(event: dict[str, Any], lambda_context: Any) -> Any:
        result = process_partial_response(
            event=event,
            record_handler=record_handler,
            processor=BatchProcessor(event_type=EventType.SQS),
            context=lambda_context,
        )
        logger.info("Batch done")
        return result

    lambda_handler(_sqs_batch("first", "plain", "third"), invocation)
    assert seen == [invocation] * 3
    logged = [(line.get("record_key"), line["service"], line["message"]) for line in lines()]
    assert logged == [
        ("first", "changed-for-this-record", "Record handled"),
        (None, logger.service, "Record handled"),
        ("third", "changed-for-this-record", "Record handled"),
        (None, logger.service, "Batch done"),
    ]


def test_functions_running_at_once_in_threads_each_log_their_own_keys(lines: Lines) -> None:
    """As on the local stack: A's invocation starts, B's starts and appends its keys, then A logs."""
    b_has_started = threading.Event()
    a_has_logged = threading.Event()

    @logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
    def api(event: dict[str, Any], lambda_context: Any) -> None:
        b_has_started.wait(5)
        logger.info("A logs while B runs")
        a_has_logged.set()

    @logger.inject_lambda_context(clear_state=True)
    def export(event: dict[str, Any], lambda_context: Any) -> None:
        logger.append_keys(export_id="e-1")
        b_has_started.set()
        a_has_logged.wait(5)
        logger.info("B logs after A")

    a, b = context("ApiFunction"), context("ExportFunction")
    threads = [
        threading.Thread(target=api, args=({"requestContext": {"requestId": "corr-1"}}, a)),
        threading.Thread(target=export, args=({}, b)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    by_message = {line["message"]: line for line in lines()}
    api_line, export_line = by_message["A logs while B runs"], by_message["B logs after A"]
    assert (api_line["function_name"], api_line["function_request_id"]) == ("ApiFunction", a.aws_request_id)
    assert api_line["correlation_id"] == "corr-1"
    assert "export_id" not in api_line
    assert (export_line["function_name"], export_line["function_request_id"]) == ("ExportFunction", b.aws_request_id)
    assert export_line["export_id"] == "e-1"
    assert "correlation_id" not in export_line
    assert api_line["service"] == export_line["service"] == logger.service  # a new thread starts with the service
