"""The work queue (SQS)."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import batched

from pydantic import BaseModel

from chargelog import aws

SQS_BATCH_LIMIT = 10


class QueueSendError(RuntimeError):
    pass


class WorkQueue:
    def __init__(self, url: str) -> None:
        self._url = url
        self._sqs = aws.client("sqs")

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
