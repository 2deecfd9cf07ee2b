"""The AlertQueue: one message per alert transition (opened, resolved), which the alert notifier sends on."""

from __future__ import annotations

from collections.abc import Iterable

from chargelog.dal.queue import WorkQueue
from chargelog.models.alert_notices import AlertNotice


class AlertNotices:
    """Announces alert transitions on the AlertQueue (SendMessageBatch, ten a call).

    Sending the same (alert, state) again, or from both the worker and the health monitor, is harmless: the notifier
    claims each alert's state once and drops the rest."""

    def __init__(self, queue_url: str) -> None:
        self._queue = WorkQueue(queue_url)

    @property
    def url(self) -> str:
        return self._queue.url

    def send(self, transitions: Iterable[tuple[str, str]]) -> int:
        """Send one message per distinct ``(alert_id, state)`` (state ``"open"`` or ``"resolved"``); raises
        ``chargelog.dal.queue.QueueSendError`` (or botocore's errors) if SQS refuses any. Returns how many were sent."""
        notices = [
            AlertNotice.model_validate({"alert_id": alert_id, "state": state})
            for alert_id, state in dict.fromkeys(transitions)
        ]
        if not notices:
            return 0
        return self._queue.send(notices)
