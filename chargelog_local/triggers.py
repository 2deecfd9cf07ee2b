"""The template's non-HTTP triggers, for the local stack: EventBridge schedules and SQS event sources.

A schedule fires its function every ``interval`` seconds with the event EventBridge sends. An SQS event
source polls its queue like Lambda's event source mapping: it invokes the function with a batch,
deletes what succeeded (all of it, or all but the reported ``batchItemFailures``), and leaves the rest
to reappear after the visibility timeout and, past ``maxReceiveCount``, move to the dead-letter queue.
Each event source runs ``concurrency`` pollers, each receiving a batch and invoking the function with it, so up to
that many invocations run at once (the template's ScalingConfig.MaximumConcurrency, as Lambda caps them); each event
source polls on its own, so a slow queue never holds back another.
"""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from chargelog import aws
from chargelog_local.lambdas import LocalFunction

logger = logging.getLogger("chargelog_local.triggers")

SQS_MAX_BATCH = 10


def scheduled_event(rule_name: str, region: str, now: datetime | None = None) -> dict[str, Any]:
    """The event an EventBridge schedule rule delivers."""
    now = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:123456789012:rule/{rule_name}"],
        "detail": {},
    }


def _lambda_attribute(attribute: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda delivers it (camelCase, list fields), not as SQS returns it."""
    converted: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": attribute["DataType"]}
    if "StringValue" in attribute:
        converted["stringValue"] = attribute["StringValue"]
    if "BinaryValue" in attribute:
        converted["binaryValue"] = base64.b64encode(attribute["BinaryValue"]).decode("ascii")
    return converted


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping delivers for received messages."""
    records = []
    for message in messages:
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                name: _lambda_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


class ScheduleTrigger(threading.Thread):
    def __init__(
        self,
        function: LocalFunction,
        rule_name: str,
        interval: float,
        region: str,
        stop: threading.Event,
        fire_at_start: bool = False,
    ) -> None:
        super().__init__(name=f"schedule-{rule_name}", daemon=True)
        self.fire_at_start = fire_at_start
        self.function = function
        self.rule_name = rule_name
        self.interval = interval
        self.region = region
        self._stop = stop

    def fire(self) -> Any:
        return self.function.invoke(scheduled_event(self.rule_name, self.region))

    def run(self) -> None:
        if self.fire_at_start:
            self._fire_logged()
        while not self._stop.wait(self.interval):
            self._fire_logged()

    def _fire_logged(self) -> None:
        try:
            self.fire()
        except Exception:
            if self._stop.is_set():  # the stack stops: the invocation was cancelled, nothing failed
                return
            logger.exception("Scheduled invocation of %s failed", self.function.name)


class SqsTrigger(threading.Thread):
    def __init__(
        self,
        function: LocalFunction,
        queue_url: str,
        queue_arn: str,
        batch_size: int,
        reports_failures: bool,
        region: str,
        stop: threading.Event,
        concurrency: int = 1,
    ) -> None:
        super().__init__(name=f"sqs-{function.name}-{queue_arn.rsplit(':', 1)[-1]}", daemon=True)
        self.function = function
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.batch_size = min(batch_size, SQS_MAX_BATCH)
        self.reports_failures = reports_failures
        self.region = region
        self.concurrency = max(1, concurrency)
        self._stop = stop
        # moto's ReceiveMessage checks and marks a message received in two steps: two pollers of one queue receiving at
        # once could both get it. One receive at a time per event source (each returns at once when messages wait).
        self._receiving = threading.Lock()

    def poll_once(self, wait_seconds: int = 1) -> int:
        """Receive one batch and run it; returns how many messages were received."""
        sqs = aws.client("sqs")
        with self._receiving:
            messages = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.batch_size,
                WaitTimeSeconds=wait_seconds,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        if not messages:
            return 0
        try:
            result = self.function.invoke(sqs_event(messages, self.queue_arn, self.region))
        except BatchProcessingError as error:
            # Every record of the batch failed: the handler logged each failure itself (as on AWS, where Lambda then
            # reports the invocation as failed). One line here, not the traceback a second time.
            if not self._stop.is_set():
                logger.error("SQS batch failed (%s); messages return after the visibility timeout", error.msg)
            return len(messages)
        except Exception:
            if not self._stop.is_set():  # when the stack stops, its invocations are cancelled: not a failure
                logger.exception("SQS batch failed; messages return after the visibility timeout")
            return len(messages)
        failed: set[str] = set()
        if self.reports_failures and isinstance(result, dict):
            failed = {item.get("itemIdentifier") for item in result.get("batchItemFailures") or []}
            if not failed <= {m["MessageId"] for m in messages}:
                # Lambda treats a failure it cannot match to a message as the whole batch failing.
                logger.error("batchItemFailures names unknown messages; the whole batch returns to the queue")
                return len(messages)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), SQS_MAX_BATCH):
            sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + SQS_MAX_BATCH])
                ],
            )
        return len(messages)

    def run(self) -> None:
        """Poll until stopped with ``concurrency`` pollers: this thread and the others it starts (and waits for)."""
        pollers = [
            threading.Thread(target=self._poll_until_stopped, name=f"{self.name}-{number}", daemon=True)
            for number in range(1, self.concurrency)
        ]
        for poller in pollers:
            poller.start()
        self._poll_until_stopped()
        for poller in pollers:
            poller.join()

    def _poll_until_stopped(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                if self._stop.is_set():  # moto stopped with the stack
                    return
                logger.exception("SQS poll for %s failed", self.function.name)
                self._stop.wait(1.0)
