"""What the API answers about chargers' health: a page of alerts (``GET /alerts``) and one charger's health
(``GET /chargers/{charger_id}/health``). The API's only: the worker, which opens and resolves alerts, loads
chargelog.models.alerts without these.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from chargelog.models.alerts import Alert
from chargelog.models.base import Model


class AlertPage(Model):
    """``GET /alerts``: newest opened first."""

    alerts: list[Alert]
    next_cursor: str | None = None


class ConnectorHealth(Model):
    connector_id: int
    status: str = Field(
        description="The connector's last reported status (OCPP's names: Available, Charging, Faulted...)."
    )
    error_code: str | None = None
    since: datetime = Field(description="When it reported that status.")
    record_id: str


class ChargerHealth(Model):
    """``GET /chargers/{charger_id}/health``."""

    charger_id: str
    vendor: str | None = None
    source_id: str | None = None
    site_id: str | None = None
    last_record_at: datetime | None = None
    heartbeat_interval_seconds: int | None = None
    connectors: list[ConnectorHealth] = Field(default_factory=list)
    open_alerts: list[Alert] = Field(default_factory=list)
