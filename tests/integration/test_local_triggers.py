"""The local stack's triggers: WorkerFunction's SQS event source and DispatcherFunction's schedule.

The queue is the one WorkerFunction's SQS event source names in the template, provisioned in moto's
server with its RedrivePolicy; its dead-letter queue, maxReceiveCount and ReportBatchItemFailures come
from the template too. The functions are real LocalFunctions running a small handler module written to
a temporary directory.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from chargelog import aws
from chargelog_local.lambdas import LocalFunction
from chargelog_local.provision import LocalStack
from chargelog_local.template import FunctionSpec, functions
from chargelog_local.triggers import SQS_MAX_BATCH, ScheduleTrigger, SqsTrigger
from conftest import REGION, load_event

HANDLER_SOURCE = '''
import time

EVENTS = []
SLEEP_SECONDS = 0.0


def partial(event, context):
    """Reports each record whose body starts with "fail" as failed; the rest succeed."""
    EVENTS.append(event)
    failed = [r["messageId"] for r in event["Records"] if r["body"].startswith("fail")]
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def explode(event, context):
    EVENTS.append(event)
    raise RuntimeError("the whole batch failed")


def every_record_fails(event, context):
    """Powertools' batch processor with a record handler that always fails: it raises BatchProcessingError."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    def fail(record):
        raise ValueError(f"cannot handle {record.body}")

    EVENTS.append(event)
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(event=event, record_handler=fail, processor=processor, context=context)


def record(event, context):
    EVENTS.append(event)
    return {"handled": True}


def sleepy(event, context):
    EVENTS.append(event)
    time.sleep(SLEEP_SECONDS)
    return {"batchItemFailures": []}


def paced(event, context):
    """Takes as long as its records say ("sleep 2.5": 2.5 s), whatever container runs it (each has its own globals)."""
    for record in event["Records"]:
        words = record["body"].split()
        if words[0] == "sleep":
            time.sleep(float(words[1]))
    return {"batchItemFailures": []}
'''

MakeFunction = Callable[..., LocalFunction]


@pytest.fixture(scope="module")
def handlers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The handler module, under a name no other test module uses."""
    code_dir = tmp_path_factory.mktemp("trigger_handlers")
    name = f"trigger_test_handlers_{uuid.uuid4().hex}"
    (code_dir / f"{name}.py").write_text(HANDLER_SOURCE)
    sys.path.insert(0, str(code_dir))
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)
    if str(code_dir) in sys.path:
        sys.path.remove(str(code_dir))


@pytest.fixture
def handler(handlers: ModuleType) -> ModuleType:
    handlers.EVENTS.clear()
    handlers.SLEEP_SECONDS = 0.0
    return handlers


@pytest.fixture
def make_function(handler: ModuleType) -> Iterator[MakeFunction]:
    created: list[LocalFunction] = []

    def make(
        function: str, logical_id: str = "WorkerFunction", timeout_seconds: int = 5, max_containers: int | None = None
    ) -> LocalFunction:
        spec = FunctionSpec(
            logical_id=logical_id,
            code_dir=Path(handler.__file__).parent,
            handler=f"{handler.__name__}.{function}",
            timeout_seconds=timeout_seconds,
            memory_mb=512,
            environment={},
            routes=(),
            schedules=(),
            queues=(),
        )
        local_function = LocalFunction(spec, REGION, max_containers=max_containers)
        created.append(local_function)
        return local_function

    yield make
    for local_function in created:
        local_function.shutdown()


@dataclass(frozen=True)
class WorkQueue:
    """The queue of WorkerFunction's SQS event source, and what the template says about it."""

    logical_id: str
    url: str
    arn: str
    batch_size: int
    reports_failures: bool
    max_receive_count: int
    dead_letter_url: str


def worker_spec(template: dict[str, Any]) -> FunctionSpec:
    (worker,) = [spec for spec in functions(template) if spec.logical_id == "WorkerFunction"]
    return worker


@pytest.fixture
def work_queue(template: dict[str, Any], server_stack: LocalStack) -> WorkQueue:
    """WorkerFunction's (first) SQS event source, resolved against the stack as the runner does."""
    queue_arn_expr, batch_size, reports = worker_spec(template).queues[0]
    resolver = server_stack.resolver()
    arn = resolver.resolve(queue_arn_expr)
    logical_id = server_stack.logical_id_of_arn(arn)
    redrive = resolver.resolve(template["Resources"][logical_id]["Properties"]["RedrivePolicy"])
    dead_letter_id = server_stack.logical_id_of_arn(redrive["deadLetterTargetArn"])
    return WorkQueue(
        logical_id=logical_id,
        url=server_stack.refs[logical_id],
        arn=arn,
        batch_size=batch_size,
        reports_failures=reports,
        max_receive_count=int(redrive["maxReceiveCount"]),
        dead_letter_url=server_stack.refs[dead_letter_id],
    )


@dataclass(frozen=True)
class EventSource:
    """One of WorkerFunction's SQS event sources (a vendor's work queue), resolved as the runner does."""

    logical_id: str
    url: str
    arn: str
    batch_size: int
    reports_failures: bool
    concurrency: int  # ScalingConfig.MaximumConcurrency


@pytest.fixture
def event_sources(template: dict[str, Any], server_stack: LocalStack) -> list[EventSource]:
    spec = worker_spec(template)
    resolver = server_stack.resolver()
    found = []
    for number, (queue_arn_expr, batch_size, reports) in enumerate(spec.queues):
        arn = resolver.resolve(queue_arn_expr)
        logical_id = server_stack.logical_id_of_arn(arn)
        url = server_stack.refs[logical_id]
        found.append(EventSource(logical_id, url, arn, batch_size, reports, spec.concurrency_of(number)))
    return found


@pytest.fixture
def sqs(server_stack: LocalStack) -> Any:
    client = aws.client("sqs")
    assert client.meta.endpoint_url.startswith("http://127.0.0.1:")
    return client


@pytest.fixture
def immediate_retry(sqs: Any, work_queue: WorkQueue) -> None:
    """VisibilityTimeout 0 on the work queue: what is not deleted can be received again at once."""
    sqs.set_queue_attributes(QueueUrl=work_queue.url, Attributes={"VisibilityTimeout": "0"})


def make_trigger(
    function: LocalFunction,
    queue: WorkQueue,
    *,
    batch_size: int | None = None,
    reports: bool | None = None,
    stop: threading.Event | None = None,
) -> SqsTrigger:
    """An SqsTrigger as the runner makes it for `queue`, unless told another batch size or reporting."""
    return SqsTrigger(
        function,
        queue.url,
        queue.arn,
        queue.batch_size if batch_size is None else batch_size,
        queue.reports_failures if reports is None else reports,
        REGION,
        stop or threading.Event(),
    )


def send(sqs: Any, url: str, *bodies: str) -> dict[str, str]:
    """Sends each body; returns body -> MessageId."""
    return {body: sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"] for body in bodies}


def depth(sqs: Any, url: str) -> int:
    """Messages in the queue, visible or in flight."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def records(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {record["body"]: record for record in event["Records"]}


# ---------------------------------------------------------------------------------------- SQS


def test_every_worker_event_source_reports_batch_item_failures(template: dict[str, Any]) -> None:
    sources = worker_spec(template).queues
    assert sources
    assert all(reports for _arn, _batch_size, reports in sources)


@pytest.mark.usefixtures("immediate_retry")
def test_reported_failure_stays_in_the_queue_and_the_rest_is_deleted(
    sqs: Any, work_queue: WorkQueue, make_function: MakeFunction, handler: ModuleType
) -> None:
    ids = send(sqs, work_queue.url, "ok-1", "fail-2", "ok-3")
    # One batch of all three, whatever batch size the template sets.
    trigger = make_trigger(make_function("partial"), work_queue, batch_size=SQS_MAX_BATCH)

    assert trigger.poll_once(wait_seconds=0) == 3

    assert set(records(handler.EVENTS[0])) == {"ok-1", "fail-2", "ok-3"}
    assert depth(sqs, work_queue.url) == 1
    # The failed message is received again, and only it.
    assert trigger.poll_once(wait_seconds=0) == 1
    (again,) = handler.EVENTS[1]["Records"]
    assert again["body"] == "fail-2"
    assert again["messageId"] == ids["fail-2"]
    assert again["attributes"]["ApproximateReceiveCount"] == "2"
    assert depth(sqs, work_queue.url) == 1


@pytest.mark.usefixtures("immediate_retry")
def test_batch_item_failures_are_ignored_without_report_batch_item_failures(
    sqs: Any, work_queue: WorkQueue, make_function: MakeFunction, handler: ModuleType
) -> None:
    send(sqs, work_queue.url, "ok-1", "fail-2")
    trigger = make_trigger(make_function("partial"), work_queue, batch_size=SQS_MAX_BATCH, reports=False)

    assert trigger.poll_once(wait_seconds=0) == 2

    assert depth(sqs, work_queue.url) == 0
    assert trigger.poll_once(wait_seconds=0) == 0
    assert len(handler.EVENTS) == 1


@pytest.mark.usefixtures("immediate_retry")
def test_a_batch_whose_every_record_failed_is_one_log_line_and_stays_queued(
    sqs: Any, work_queue: WorkQueue, make_function: MakeFunction, caplog: pytest.LogCaptureFixture
) -> None:
    send(sqs, work_queue.url, "job-1", "job-2")
    trigger = make_trigger(make_function("every_record_fails"), work_queue, batch_size=SQS_MAX_BATCH)

    with caplog.at_level(logging.ERROR, logger="chargelog_local.triggers"):
        assert trigger.poll_once(wait_seconds=0) == 2

    assert depth(sqs, work_queue.url) == 2
    (line,) = [r for r in caplog.records if r.name == "chargelog_local.triggers"]
    assert "SQS batch failed (All records failed processing" in line.getMessage()
    assert line.exc_info is None  # the handler logged each record's error; no second traceback


@pytest.mark.usefixtures("immediate_retry")
def test_handler_that_raises_deletes_nothing(
    sqs: Any, work_queue: WorkQueue, make_function: MakeFunction, handler: ModuleType
) -> None:
    ids = send(sqs, work_queue.url, "job-1", "job-2", "job-3")
    trigger = make_trigger(make_function("explode"), work_queue, batch_size=SQS_MAX_BATCH)

    assert trigger.poll_once(wait_seconds=0) == 3

    assert depth(sqs, work_queue.url) == 3
    assert trigger.poll_once(wait_seconds=0) == 3
    again = records(handler.EVENTS[1])
    assert {body: record["messageId"] for body, record in again.items()} == ids
    assert {record["attributes"]["ApproximateReceiveCount"] for record in again.values()} == {"2"}


@pytest.mark.usefixtures("immediate_retry")
def test_handler_that_times_out_deletes_nothing(
    sqs: Any, work_queue: WorkQueue, make_function: MakeFunction, handler: ModuleType
) -> None:
    send(sqs, work_queue.url, "slow-1", "slow-2")
    handler.SLEEP_SECONDS = 1.5
    trigger = make_trigger(make_function("sleepy", timeout_seconds=1), work_queue, batch_size=SQS_MAX_BATCH)

    assert trigger.poll_once(wait_seconds=0) == 2

    assert depth(sqs, work_queue.url) == 2


@pytest.mark.usefixtures("immediate_retry")
def test_message_failing_every_time_moves_to_the_dead_letter_queue_after_max_receive_count(
    sqs: Any, work_queue: WorkQueue, make_function: MakeFunction, handler: ModuleType
) -> None:
    max_receive_count = work_queue.max_receive_count
    assert max_receive_count >= 1
    ids = send(sqs, work_queue.url, "fail-forever")
    trigger = make_trigger(make_function("explode"), work_queue)

    for _ in range(3 * max_receive_count):
        if trigger.poll_once(wait_seconds=0) == 0 and depth(sqs, work_queue.url) == 0:
            break

    assert depth(sqs, work_queue.url) == 0
    assert len(handler.EVENTS) == max_receive_count
    counts = [event["Records"][0]["attributes"]["ApproximateReceiveCount"] for event in handler.EVENTS]
    assert counts == [str(n) for n in range(1, max_receive_count + 1)]
    dead = sqs.receive_message(QueueUrl=work_queue.dead_letter_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)[
        "Messages"
    ]
    assert [(m["MessageId"], m["Body"]) for m in dead] == [(ids["fail-forever"], "fail-forever")]


def test_sqs_event_has_the_sample_events_shape(
    sqs: Any, work_queue: WorkQueue, make_function: MakeFunction, handler: ModuleType
) -> None:
    url, queue_arn = work_queue.url, work_queue.arn
    body = json.dumps({"vendor": "ocpplab", "source_id": "dep-123", "scheduled_at": "2026-11-21T09:30:00Z"})
    sent = sqs.send_message(QueueUrl=url, MessageBody=body)
    trigger = make_trigger(make_function("record"), work_queue)

    assert trigger.poll_once(wait_seconds=0) == 1

    sample = load_event("sqs_collection_jobs")
    (event,) = handler.EVENTS
    assert set(event) == set(sample)
    (record,) = event["Records"]
    assert set(record) == set(sample["Records"][0])
    assert record["eventSourceARN"] == queue_arn
    assert record["eventSource"] == "aws:sqs"
    assert record["awsRegion"] == REGION
    assert record["messageId"] == sent["MessageId"]
    assert record["md5OfBody"] == sent["MD5OfMessageBody"]
    assert record["body"] == body
    assert record["receiptHandle"]
    assert set(sample["Records"][0]["attributes"]) <= set(record["attributes"])
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {}
    # Powertools' model of Lambda's SQS event (what WorkerFunction's BatchProcessor parses) accepts it.
    SqsModel.model_validate(event)


def test_sqs_event_message_attributes_have_lambdas_shape(
    sqs: Any, work_queue: WorkQueue, make_function: MakeFunction, handler: ModuleType
) -> None:
    url = work_queue.url
    sqs.send_message(
        QueueUrl=url,
        MessageBody="with attributes",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "collect"}},
    )
    trigger = make_trigger(make_function("record"), work_queue)

    assert trigger.poll_once(wait_seconds=0) == 1

    (event,) = handler.EVENTS
    assert event["Records"][0]["messageAttributes"] == {
        "kind": {
            "stringValue": "collect",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
    }
    SqsModel.model_validate(event)


def test_running_sqs_trigger_consumes_the_queue_until_stopped(
    sqs: Any, work_queue: WorkQueue, make_function: MakeFunction, handler: ModuleType
) -> None:
    url = work_queue.url
    stop = threading.Event()
    trigger = make_trigger(make_function("partial"), work_queue, stop=stop)
    trigger.start()
    try:
        send(sqs, url, "ok-1", "ok-2")
        deadline = time.monotonic() + 10
        while depth(sqs, url) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert depth(sqs, url) == 0
    finally:
        stop.set()
        trigger.join(timeout=5)
    assert not trigger.is_alive()
    assert sorted(body for event in handler.EVENTS for body in records(event)) == ["ok-1", "ok-2"]


# ---------------------------------------------------------------------------------------- concurrency


def test_each_work_queue_runs_the_template_s_maximum_concurrency(template: dict[str, Any]) -> None:
    spec = worker_spec(template)
    assert len(spec.queues) == 4  # one event source per vendor
    assert [spec.concurrency_of(n) for n in range(4)] == [2, 2, 2, 2]  # ScalingConfig.MaximumConcurrency
    assert spec.max_containers == 9  # two per vendor queue, and one for direct invocations


def start_triggers(function: LocalFunction, sources: list[EventSource], stop: threading.Event) -> list[SqsTrigger]:
    """Each event source's trigger, as the runner starts them: its own pollers, its MaximumConcurrency."""
    triggers = [
        SqsTrigger(function, s.url, s.arn, s.batch_size, s.reports_failures, REGION, stop, concurrency=s.concurrency)
        for s in sources
    ]
    for trigger in triggers:
        trigger.start()
    return triggers


def wait_until_empty(sqs: Any, url: str, seconds: float) -> float:
    """Seconds until the queue holds no message (visible or in flight); fails past ``seconds``."""
    began = time.monotonic()
    while depth(sqs, url):
        assert time.monotonic() - began < seconds, f"{url} still holds messages after {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - began


def test_a_slow_job_on_one_vendor_queue_does_not_delay_another_vendors_jobs(
    sqs: Any, template: dict[str, Any], event_sources: list[EventSource], make_function: MakeFunction
) -> None:
    slow_queue, other_queue = event_sources[0], event_sources[1]
    function = make_function("paced", timeout_seconds=30, max_containers=worker_spec(template).max_containers)
    stop = threading.Event()
    triggers = start_triggers(function, event_sources, stop)
    try:
        # The slow vendor's queue is busy with as many slow jobs as it may run at once, and one more waiting.
        send(sqs, slow_queue.url, *(f"sleep 6 #{n}" for n in range(slow_queue.concurrency + 1)))
        time.sleep(0.5)
        send(sqs, other_queue.url, "sleep 0.1 #a", "sleep 0.1 #b")
        assert wait_until_empty(sqs, other_queue.url, 5) < 3  # not behind the 6 s jobs
        # The slow queue ran its jobs side by side, two at a time: the third waited for one of the first two.
        assert 10 < 0.5 + wait_until_empty(sqs, slow_queue.url, 30) < 17
    finally:
        stop.set()
        for trigger in triggers:
            trigger.join(timeout=10)
    assert not any(trigger.is_alive() for trigger in triggers)
    assert function.containers_started <= function.max_containers


def test_a_queue_never_runs_more_than_its_maximum_concurrency(
    sqs: Any, template: dict[str, Any], event_sources: list[EventSource], make_function: MakeFunction
) -> None:
    queue = event_sources[0]
    function = make_function("paced", timeout_seconds=30, max_containers=worker_spec(template).max_containers)
    stop = threading.Event()
    triggers = start_triggers(function, [queue], stop)
    in_flight = []
    try:
        send(sqs, queue.url, *(f"sleep 1 #{n}" for n in range(5)))
        began = time.monotonic()
        while depth(sqs, queue.url) and time.monotonic() - began < 20:
            attributes = sqs.get_queue_attributes(
                QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            in_flight.append(int(attributes["ApproximateNumberOfMessagesNotVisible"]))
            time.sleep(0.05)
        assert depth(sqs, queue.url) == 0
    finally:
        stop.set()
        for trigger in triggers:
            trigger.join(timeout=10)
    assert max(in_flight) == queue.concurrency  # every poller busy, and never one more
    assert function.containers_started == queue.concurrency


def test_each_container_runs_its_own_copy_of_the_handlers_module(
    make_function: MakeFunction, handler: ModuleType
) -> None:
    function = make_function("paced", max_containers=2)
    event = {"Records": [{"body": "sleep 0.5"}]}
    began = time.monotonic()
    first, second = function.submit(event), function.submit(event)
    assert first.result(timeout=5) == second.result(timeout=5) == {"batchItemFailures": []}
    assert time.monotonic() - began < 0.9  # side by side
    assert function.containers_started == 2
    (copy,) = function.module_copies  # the first container runs the module as imported, the second its own copy
    assert sys.modules[copy] is not handler
    assert sys.modules[copy].paced is not handler.paced
    function.shutdown()
    assert copy not in sys.modules


# ---------------------------------------------------------------------------------------- schedule


def dispatcher_rule(template: dict[str, Any]) -> str:
    (dispatcher,) = [spec for spec in functions(template) if spec.logical_id == "DispatcherFunction"]
    (rule,) = dispatcher.schedules
    return rule


def test_schedule_fire_invokes_the_function_with_the_scheduled_event(
    template: dict[str, Any], make_function: MakeFunction, handler: ModuleType
) -> None:
    rule = dispatcher_rule(template)
    trigger = ScheduleTrigger(
        make_function("record", logical_id="DispatcherFunction"), rule, 60.0, REGION, threading.Event()
    )

    before = datetime.now(UTC).replace(microsecond=0)
    assert trigger.fire() == {"handled": True}
    after = datetime.now(UTC)

    sample = load_event("schedule_collect")
    (event,) = handler.EVENTS
    assert set(event) == set(sample)
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["detail"] == {}
    assert event["region"] == REGION
    assert event["account"] == sample["account"]
    assert event["resources"] == [f"arn:aws:events:{REGION}:{sample['account']}:rule/{rule}"]
    fired_at = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= fired_at <= after
    uuid.UUID(event["id"])


def test_running_schedule_fires_repeatedly_and_survives_a_failing_function(
    template: dict[str, Any], make_function: MakeFunction, handler: ModuleType
) -> None:
    stop = threading.Event()
    trigger = ScheduleTrigger(
        make_function("explode", logical_id="DispatcherFunction"),
        dispatcher_rule(template),
        0.05,
        REGION,
        stop,
    )
    trigger.start()
    try:
        deadline = time.monotonic() + 5
        while len(handler.EVENTS) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        trigger.join(timeout=2)
    assert not trigger.is_alive()
    assert len(handler.EVENTS) >= 3
    assert len({event["id"] for event in handler.EVENTS}) == len(handler.EVENTS)
