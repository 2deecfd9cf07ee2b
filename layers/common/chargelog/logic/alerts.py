"""Reading charger health: the alerts (newest opened first, page by page, with signed cursors), one alert, and one
charger's health now (its last record, its connectors' statuses, its open alerts).

The alerts are on index gsi2, one partition per state (chargelog.dal.alerts); a charger's health comes from its
charger index entries (when its records last moved), the detectors' state items of the charger (its connectors, its
heartbeat interval, the ids of its open alerts) and those alerts themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, ConfigDict, Field, ValidationError

from chargelog.dal.alerts import AlertStore, HealthStore, StoredHealth
from chargelog.dal.record_queries import ChargerIndexEntry, RecordStore
from chargelog.dal.secrets import Secret
from chargelog.errors import ChargelogError, NotFoundError
from chargelog.logic.cursors import decode_cursor, encode_cursor, query_digest
from chargelog.models.alerts import (
    ALERT_ID_HEX_LENGTH,
    ALERT_ID_PREFIX,
    Alert,
)
from chargelog.models.base import Model
from chargelog.models.health_views import AlertPage, ChargerHealth, ConnectorHealth
from chargelog.observability import logger

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
_ALERT_ID = re.compile(rf"{ALERT_ID_PREFIX}[0-9a-f]{{{ALERT_ID_HEX_LENGTH}}}")


class InvalidAlertQueryError(ChargelogError):
    status = 400
    title = "Bad Request"


@dataclass(frozen=True)
class AlertFilters:
    state: str | None = None
    charger_id: str | None = None
    site_id: str | None = None
    vendor: str | None = None
    kind: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = DEFAULT_LIMIT

    def described(self) -> dict[str, Any]:
        """What the filters ask for (not the page size): a cursor continues only the query it came from."""
        return {
            "view": "alerts",
            "state": self.state,
            "charger_id": self.charger_id,
            "site_id": self.site_id,
            "vendor": self.vendor,
            "kind": self.kind,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
        }


def list_alerts(
    filters: AlertFilters, cursor: str | None = None, *, alerts: AlertStore, cursor_secret: Secret
) -> AlertPage:
    """One page of alerts, newest opened first, and the cursor of the next (None at the end)."""
    if filters.start and filters.end and filters.start > filters.end:
        raise InvalidAlertQueryError(f"'from' ({filters.start.isoformat()}) is after 'to' ({filters.end.isoformat()}).")
    digest = query_digest(filters.described())
    after = decode_cursor(cursor, digest, cursor_secret) if cursor else None
    found, position = alerts.list(
        state=filters.state,
        charger_id=filters.charger_id,
        site_id=filters.site_id,
        vendor=filters.vendor,
        kind=filters.kind,
        opened_from=filters.start,
        opened_to=filters.end,
        limit=filters.limit,
        after=after,
    )
    return AlertPage(
        alerts=found, next_cursor=encode_cursor(position, digest, cursor_secret) if position is not None else None
    )


def get_alert(alert_id: str, *, alerts: AlertStore) -> Alert:
    """One alert; 400 for an id that cannot be one, 404 for an unknown one."""
    if not _ALERT_ID.fullmatch(alert_id):
        raise InvalidAlertQueryError(
            f"An alert id is {ALERT_ID_PREFIX!r} and {ALERT_ID_HEX_LENGTH} hex digits, as GET /alerts lists them."
        )
    alert = alerts.get(alert_id)
    if alert is None:
        raise NotFoundError(f"No alert {alert_id!r} (a resolved alert is kept for the alert retention, then gone).")
    return alert


# ---------------------------------------------------------------------------------------------- a charger's health


class _ConnectorState(Model):
    """What the health route reads of one connector in the detectors' state; the rest is theirs."""

    model_config = ConfigDict(extra="ignore")

    status: str | None = None
    error_code: str | None = None
    at: AwareDatetime | None = None
    record_id: str | None = None


class _StateView(Model):
    """What the health route reads of the detectors' state (chargelog.models.health_state), leniently: only these
    fields, each optional, anything else ignored."""

    model_config = ConfigDict(extra="ignore")

    connectors: dict[str, _ConnectorState] = Field(default_factory=dict)
    heartbeat_interval_seconds: float | None = None
    open_alerts: dict[str, str] = Field(default_factory=dict)


def _view(stored: StoredHealth) -> _StateView:
    try:
        return _StateView.model_validate_json(stored.state_json)
    except ValidationError as error:
        logger.warning(
            "Unreadable charger health state", charger_id=stored.charger_id, vendor=stored.vendor, error=str(error)
        )
        return _StateView()


def charger_health(charger_id: str, *, records: RecordStore, health: HealthStore, alerts: AlertStore) -> ChargerHealth:
    """A charger's health now. Its vendor, source and site are those of its charger index entry with the latest
    record; a connector's status is the latest any of its sources reported; its open alerts, newest first, are those
    its states name that are still open. 404 when chargelog knows nothing of the charger."""
    entries = records.charger_entries(charger_id)
    states = health.for_charger(charger_id)
    if not entries and not states:
        raise NotFoundError(f"No charger {charger_id!r} in the collected records.")
    latest: ChargerIndexEntry | None = max(entries, key=lambda entry: entry.last_record_at, default=None)
    # The latest entry's source first: its state says the heartbeat interval when several do.
    ordered = sorted(
        states, key=lambda state: latest is None or (state.vendor, state.source_id) != (latest.vendor, latest.source_id)
    )
    views = [_view(state) for state in ordered]
    connectors: dict[int, ConnectorHealth] = {}
    for view in views:
        for key, connector in view.connectors.items():
            try:
                connector_id = int(key)
            except ValueError:
                continue
            if connector.status is None or connector.at is None or connector.record_id is None:
                continue
            held = connectors.get(connector_id)
            if held is None or connector.at > held.since:
                connectors[connector_id] = ConnectorHealth(
                    connector_id=connector_id,
                    status=connector.status,
                    error_code=connector.error_code,
                    since=connector.at,
                    record_id=connector.record_id,
                )
    open_ids = [alert_id for view in views for alert_id in view.open_alerts.values()]
    still_open = [alert for alert in alerts.get_many(open_ids) if alert.state == "open"]
    still_open.sort(key=lambda alert: (alert.opened_at, alert.alert_id), reverse=True)
    described = latest or (ordered[0] if ordered else None)
    return ChargerHealth(
        charger_id=charger_id,
        vendor=described.vendor if described else None,
        source_id=described.source_id if described else None,
        site_id=described.site_id if described else None,
        last_record_at=latest.last_record_at if latest else None,
        heartbeat_interval_seconds=next(
            (round(view.heartbeat_interval_seconds) for view in views if view.heartbeat_interval_seconds is not None),
            None,
        ),
        connectors=[connectors[connector_id] for connector_id in sorted(connectors)],
        open_alerts=still_open,
    )
