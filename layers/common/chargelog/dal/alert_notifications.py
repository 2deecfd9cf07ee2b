"""What the alert notifier keeps in the table: which alert transitions were notified (claims on the alert's own item)
and how many notifications each charger had this hour (one small rate item per charger).

- Claims: the alert item (``pk = "ALERT#<alert_id>"``, ``sk = "ALERT"``, written by chargelog.dal.alerts) holds a
  string set ``notified``: a state is added to it (``ADD``, on condition it is not there yet) before the
  notification for it is sent, and deleted again if sending fails. ``"<state>:suppressed"`` is added too when the rate
  limit held that notification back.
- Rate: ``pk = "ALERTNOTIFY"``, ``sk = <charger_id>``: the clock hour counted (``window``), notifications sent in it
  (``sent``), notifications held back and not yet reported (``suppressed``), and a TTL (``expires_at``) two days
  after its last write. Every change is one conditional UpdateItem.

``get`` reads an alert from its item, for the notifier; chargelog.dal.alerts' ``AlertStore.get`` answers the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import ClientError

from chargelog.dal import TableStore, is_condition_failure
from chargelog.dal.alerts import alert_key

NOTIFY_PARTITION: Final = "ALERTNOTIFY"
NOTIFIED_FIELD: Final = "notified"
SUPPRESSED_SUFFIX: Final = ":suppressed"
# A charger's rate item outlives its hour by this much, so notifications held back are still reported with the next
# one sent for the charger within two days; after that the item (and the count) expires.
RATE_ITEM_SECONDS: Final = 2 * 24 * 3600
# Conditional writes one slot may take when other notifiers race for the same charger's item.
MAX_SLOT_ATTEMPTS: Final = 5


def rate_key(charger_id: str) -> dict[str, str]:
    return {"pk": NOTIFY_PARTITION, "sk": charger_id}


def rate_window(now: datetime) -> str:
    """The clock hour (UTC) a notification counts in: ``2026-11-20T14``."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H")


@dataclass(frozen=True)
class NotificationSlot:
    """The answer to "may this charger have one more notification this hour?"."""

    allowed: bool
    window: str
    suppressed: int
    """Allowed: notifications held back before this one and not reported yet (the notification reports them).
    Not allowed: how many are held back now, this one included."""


class AlertNotificationStore(TableStore):
    """The per-charger rate and the held-back marks the notifier keeps, on the table (the alert itself and its claims:
    chargelog.dal.alerts.AlertStore)."""

    # ---------------------------------------------------------------------------------------------- suppressed

    def mark_suppressed(self, alert_id: str, state: str) -> None:
        """Note on the alert that the rate limit held back its notification of ``state`` (its claim stays: it is
        never sent later)."""
        self._update_alert(
            alert_id, "ADD #notified :states", {":states": {f"{state}{SUPPRESSED_SUFFIX}"}}, "attribute_exists(pk)"
        )

    def _update_alert(self, alert_id: str, expression: str, values: dict[str, Any], condition: str) -> bool:
        try:
            self._table.update_item(
                Key=alert_key(alert_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#notified": NOTIFIED_FIELD},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    # ---------------------------------------------------------------------------------------------- the rate

    def take_slot(self, charger_id: str, now: datetime, per_hour: int) -> NotificationSlot:
        """One of the charger's ``per_hour`` notifications of this clock hour, if one is left; else the
        notification is counted as held back. Conditional writes only, so notifiers racing for one charger never
        let more than ``per_hour`` through."""
        window = rate_window(now)
        expires = {":expires": int(now.timestamp()) + RATE_ITEM_SECONDS}
        for _ in range(MAX_SLOT_ATTEMPTS):
            # A slot left in this hour.
            item = self._update_rate(
                charger_id,
                "SET #expires_at = :expires ADD #sent :one",
                {":window": window, ":limit": per_hour, ":one": 1, **expires},
                "#window = :window AND #sent < :limit",
            )
            if item is not None:
                return NotificationSlot(True, window, int(item.get("suppressed", 0)))
            # A new hour (or the charger's first notification): its first slot.
            item = self._update_rate(
                charger_id,
                "SET #window = :window, #sent = :one, #expires_at = :expires",
                {":window": window, ":one": 1, **expires},
                "attribute_not_exists(#window) OR #window <> :window",
            )
            if item is not None:
                return NotificationSlot(True, window, int(item.get("suppressed", 0)))
            # This hour's slots are taken: held back, and counted.
            item = self._update_rate(
                charger_id,
                "SET #expires_at = :expires ADD #suppressed :one",
                {":window": window, ":limit": per_hour, ":one": 1, **expires},
                "#window = :window AND #sent >= :limit",
            )
            if item is not None:
                return NotificationSlot(False, window, int(item["suppressed"]))
        raise RuntimeError(f"The notification rate of charger {charger_id} kept changing; try again")

    def give_back_slot(self, charger_id: str, slot: NotificationSlot) -> None:
        """The slot's notification was not sent after all (a channel failed): its hour has it back."""
        self._update_rate(
            charger_id,
            "ADD #sent :minus_one",
            {":window": slot.window, ":minus_one": -1, ":zero": 0},
            "#window = :window AND #sent > :zero",
        )

    def suppressed_reported(self, charger_id: str, count: int) -> None:
        """A notification sent told of ``count`` held back: they are reported (those held back since stay counted)."""
        if count > 0:
            self._update_rate(
                charger_id, "ADD #suppressed :minus", {":minus": -count, ":count": count}, "#suppressed >= :count"
            )

    def _update_rate(
        self, charger_id: str, expression: str, values: dict[str, Any], condition: str
    ) -> dict[str, Any] | None:
        """One conditional UpdateItem of the charger's rate item: the item as it is after, or None if the
        condition failed."""
        names = {
            f"#{name}": name
            for name in ("window", "sent", "suppressed", "expires_at")
            if f"#{name}" in expression or f"#{name}" in condition
        }
        try:
            response = self._table.update_item(
                Key=rate_key(charger_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if is_condition_failure(error):
                return None
            raise
        return dict(response.get("Attributes", {}))
