"""Charger alert notifications: each alert transition (opened, resolved) announced on the AlertQueue becomes one
message on the ChargerAlertTopic and, if configured, one POST to a Slack-compatible webhook (docs/health.md,
"Notifications").

For each notice (``AlertNotice``):

1. the alert is read; gone (expired) or not there: nothing to send;
2. the notification of its state is claimed on the alert (once per alert and state): a notice delivered twice, or sent
   by both the worker and the health monitor, finds it claimed and sends nothing;
3. the charger's rate: at most ``per_hour`` notifications per charger per clock hour. Past it the notification is
   held back (marked on the alert, counted on the charger), and the next one sent for the charger says how many were;
4. the channels send it, the webhook first. Should one fail, the claim and the rate slot are given back and the error
   raised: SQS delivers the notice again (then to the dead-letter queue).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal, Protocol

from chargelog.dal.alert_notifications import NotificationSlot
from chargelog.models.alert_notices import MAX_SUBJECT_LENGTH, AlertNotice, AlertNotification
from chargelog.models.alerts import Alert

SUBJECT_PREFIX: Final = "[chargelog] "
_MARKS: Final = {"open": ":rotating_light:", "resolved": ":white_check_mark:"}
EN_DASH: Final = "\u2013"


class AlertReader(Protocol):
    def get(self, alert_id: str) -> Alert | None: ...


class NotificationClaims(Protocol):
    def claim_notification(self, alert_id: str, state: str) -> bool: ...

    def release_notification(self, alert_id: str, state: str) -> None: ...


class NotificationRate(Protocol):
    def take_slot(self, charger_id: str, now: datetime, per_hour: int) -> NotificationSlot: ...

    def give_back_slot(self, charger_id: str, slot: NotificationSlot) -> None: ...

    def suppressed_reported(self, charger_id: str, count: int) -> None: ...

    def mark_suppressed(self, alert_id: str, state: str) -> None: ...


class AlertChannel(Protocol):
    @property
    def name(self) -> str: ...

    def send(self, notification: AlertNotification) -> None: ...


@dataclass(frozen=True)
class AlertNotifierStores:
    """What the notifier reads and writes (chargelog.stores.alert_notifier builds it)."""

    alerts: AlertReader
    claims: NotificationClaims
    rate: NotificationRate
    channels: Sequence[AlertChannel]
    """In the order they send: the webhook (when configured) first, the topic last."""


class AlertNotYetResolvedError(RuntimeError):
    """A "resolved" notice for an alert the read still finds open: raised, so the notice is delivered again."""


@dataclass(frozen=True)
class NotifyOutcome:
    status: Literal["sent", "duplicate", "gone", "suppressed"]
    charger_id: str | None = None
    suppressed: int = 0
    """sent: the held-back notifications it reported; suppressed: how many are held back now, this one included."""
    channels: tuple[str, ...] = field(default_factory=tuple)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _where(alert: Alert) -> str:
    connector = f" connector {alert.connector_id}" if alert.connector_id is not None else ""
    return f"{alert.charger_id}{connector} ({alert.vendor})"


def notification_text(alert: Alert, state: str, suppressed: int = 0) -> str:
    """The one line a person reads: ``:rotating_light: OPEN boot_loop on CP-1 (ocpplab) \u2013 4 boots in 12 minutes``
    (the dash an en dash)."""
    if state == "resolved":
        detail = alert.resolution or alert.summary
        if alert.resolved_at is not None:
            detail = f"{detail} (opened {_time(alert.opened_at)})"
    else:
        detail = alert.summary
        if alert.state == "resolved" and alert.resolved_at is not None:
            detail = f"{detail} (since resolved, {_time(alert.resolved_at)})"
    line = f"{_MARKS.get(state, '')} {state.upper()} {alert.kind} on {_where(alert)} {EN_DASH} {detail}"
    if suppressed:
        plural = "notification" if suppressed == 1 else "notifications"
        line += f" [{suppressed} earlier {plural} for {alert.charger_id} held back by the hourly limit]"
    return _one_line(line)


def notification_subject(alert: Alert, state: str) -> str:
    """The SNS subject: ASCII, one line, under 100 characters."""
    subject = f"{SUBJECT_PREFIX}{state.upper()} {alert.kind} on {_where(alert)}"
    subject = "".join(c if " " <= c <= "~" else "?" for c in _one_line(subject))
    if len(subject) > MAX_SUBJECT_LENGTH:
        subject = subject[: MAX_SUBJECT_LENGTH - 3].rstrip() + "..."
    return subject


def render(alert: Alert, state: str, suppressed: int = 0) -> AlertNotification:
    """The notification of one transition of the alert (``state``: the notice's; the alert is as it is now)."""
    text = notification_text(alert, state, suppressed)
    alert_json = alert.model_dump(mode="json")
    return AlertNotification(
        subject=notification_subject(alert, state),
        text=text,
        message=f"{text}\n\n{json.dumps(alert_json, indent=2, ensure_ascii=False)}\n",
        attributes={
            "kind": alert.kind,
            "state": state,
            "vendor": alert.vendor,
            "charger_id": alert.charger_id,
        },
        alert=alert_json,
        suppressed=suppressed,
    )


def notify(notice: AlertNotice, now: datetime, *, stores: AlertNotifierStores, per_hour: int) -> NotifyOutcome:
    """Send the notice's notification once (module docstring); raises when a channel fails, after giving back the
    claim and the rate slot."""
    alert = stores.alerts.get(notice.alert_id)
    if alert is None:
        return NotifyOutcome("gone")
    if notice.state == "resolved" and alert.state != "resolved":
        raise AlertNotYetResolvedError(f"Alert {notice.alert_id} is not resolved yet; its notice is tried again")
    if not stores.claims.claim_notification(notice.alert_id, notice.state):
        return NotifyOutcome("duplicate", alert.charger_id)
    try:
        slot = stores.rate.take_slot(alert.charger_id, now, per_hour)
        if not slot.allowed:
            stores.rate.mark_suppressed(notice.alert_id, notice.state)
            return NotifyOutcome("suppressed", alert.charger_id, slot.suppressed)
    except Exception:
        stores.claims.release_notification(notice.alert_id, notice.state)
        raise
    notification = render(alert, notice.state, slot.suppressed)
    try:
        for channel in stores.channels:
            channel.send(notification)
    except Exception:
        stores.rate.give_back_slot(alert.charger_id, slot)
        stores.claims.release_notification(notice.alert_id, notice.state)
        raise
    stores.rate.suppressed_reported(alert.charger_id, slot.suppressed)
    return NotifyOutcome("sent", alert.charger_id, slot.suppressed, tuple(channel.name for channel in stores.channels))
