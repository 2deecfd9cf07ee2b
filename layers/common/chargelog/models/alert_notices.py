"""Charger alert notifications: the AlertQueue message that announces an alert's transition, and the notification
the alert notifier renders from it for its channels (the ChargerAlertTopic and the optional webhook).

Standard library and pydantic only: the worker and the health monitor send notices, the notifier reads them.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import ConfigDict, Field

from chargelog.models.alerts import AlertId, AlertState
from chargelog.models.base import Model

# SNS: "Subjects must be ASCII text that begins with a letter, number, or punctuation mark; must not include line
# breaks or control characters; and must be less than 100 characters long."
MAX_SUBJECT_LENGTH: Final = 99


class AlertNotice(Model):
    """One AlertQueue message: ``{"alert_id": "...", "state": "open"|"resolved"}``.

    Sent by whoever opened or resolved the alert (the worker, the health monitor), possibly more than once and by
    both: the notifier sends one notification per alert and state however many notices announce it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: AlertId
    state: AlertState


class AlertNotification(Model):
    """What the channels send for one notice (chargelog.logic.alert_notifications renders it)."""

    model_config = ConfigDict(frozen=True)

    subject: str = Field(max_length=MAX_SUBJECT_LENGTH)
    """The SNS subject (email subject line): ASCII, one line."""
    text: str
    """One line a person reads: the webhook's ``text``, the first line of the SNS message."""
    message: str
    """The SNS message: ``text``, then the alert as JSON."""
    attributes: dict[str, str]
    """SNS message attributes for subscription filter policies: kind, state, vendor, charger_id."""
    alert: dict[str, Any]
    """The alert as JSON (``GET /alerts``' shape)."""
    suppressed: int = Field(default=0, ge=0)
    """Notifications for this charger the rate limit held back since the last one sent (they were not sent)."""
