"""The work queues (SQS)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import batched
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from chargelog import aws

SQS_BATCH_LIMIT = 10
_DEPTH_ATTRIBUTES = {
    "visible": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}


class QueueSendError(RuntimeError):
    pass


# What sending to a queue may raise when SQS refuses or cannot be reached.
SEND_FAILURES: tuple[type[Exception], ...] = (QueueSendError, BotoCoreError, ClientError)


class WorkQueue:
    def __init__(self, url: str) -> None:
        self._url = url

    @property
    def url(self) -> str:
        return self._url

    @property
    def _sqs(self) -> Any:
        return aws.client("sqs")

    def send(self, messages: Iterable[BaseModel], delay_seconds: int = 0) -> int:
        """Send each message as JSON; raises if SQS refuses any of them. Returns how many were sent."""
        sent = 0
        for batch in batched(messages, SQS_BATCH_LIMIT, strict=False):
            entries = [
                {"Id": str(i), "MessageBody": m.model_dump_json(), "DelaySeconds": delay_seconds}
                for i, m in enumerate(batch)
            ]
            response = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
            failed = response.get("Failed", [])
            if failed:
                reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failed)
                raise QueueSendError(f"SQS refused {len(failed)} of {len(entries)} messages: {reasons}")
            sent += len(entries)
        return sent

    def depth(self) -> dict[str, int]:
        """How many messages wait (visible), are being worked on (in_flight) and are delayed: SQS's estimates."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._url, AttributeNames=list(_DEPTH_ATTRIBUTES.values())
        )["Attributes"]
        return {name: int(attributes.get(attribute, 0)) for name, attribute in _DEPTH_ATTRIBUTES.items()}


class WorkQueues:
    """Each vendor's work queue of collection and discovery jobs, and the dead-letter queue they share."""

    def __init__(self, vendor_urls: Mapping[str, str], dead_letter_url: str) -> None:
        self._queues = {vendor: WorkQueue(url) for vendor, url in vendor_urls.items()}
        self.dead_letter = WorkQueue(dead_letter_url)

    def of(self, vendor: str) -> WorkQueue:
        return self._queues[vendor]
