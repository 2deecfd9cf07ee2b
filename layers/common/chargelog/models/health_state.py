"""Charger health: what the detectors (`chargelog.logic.charger_health.detectors`) remember of one charger.

One `ChargerHealthState` per charger (vendor, source, charger), stored as one small item and written only when
the detectors say it changed (`Observation.changed`). It holds only what the detectors need: the latest status of
each connector, the few recent events of each counting kind (boots, errors, refused id tags) within their
window, the latest firmware and diagnostics status, the open sessions with their energy progress (recorded at most
about hourly), and the open alerts' ids. Every list is bounded.

Serialize it with ``model_dump_json(exclude_defaults=True)``: empty parts are left out. Times are aware UTC
datetimes; ``(time, record id)`` pairs order records as the detectors do.

Standard library and pydantic only: this module loads on the worker's cold start.
"""

from datetime import datetime

from pydantic import ConfigDict, Field

from chargelog.models.base import Model

# A pair (record time, record id): one event of a counting kind.
Event = tuple[datetime, str]


class ConnectorState(Model):
    """A connector's latest status report (connector 0: the charger as a whole)."""

    model_config = ConfigDict(extra="forbid")

    status: str
    """OCPP's name: Available, Preparing, Charging, Faulted (1.6 ``status``, 2.0.1 ``connectorStatus``)."""
    error_code: str | None = None
    """1.6 ``errorCode`` when other than NoError (None: no error, or 2.0.1, which has none there)."""
    at: datetime
    """The time of the latest report (repeated reports of one status move it)."""
    record_id: str
    """The record of the latest report."""
    fault_since: datetime | None = None
    """While the connector is faulted: the time of the report that started the fault (None: not faulted)."""
    fault_record_id: str | None = None
    """While faulted: the record that started the fault (the id of its ``connector_faulted`` episode)."""


class WindowState(Model):
    """A counting kind (boot_loop, error_burst, authorization_failures): the recent events, or the open episode.

    With no episode open, ``events`` holds the newest events (at most the kind's count) within the kind's window of
    ``latest_at``, oldest first. When they reach the count within the window an episode opens: the events become
    its evidence and are dropped; ``episode_since`` / ``episode_last_at`` / ``episode_events`` follow it until it
    resolves, when ``closed_through`` becomes its last event's time: no event at or before it counts again.
    """

    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(default_factory=list)
    episode_since: datetime | None = None
    episode_last_at: datetime | None = None
    episode_events: int = 0
    closed_through: datetime | None = None


class StatusTrack(Model):
    """The latest firmware (or diagnostics) status the charger reported, and the failure episode it is in."""

    model_config = ConfigDict(extra="forbid")

    status: str
    at: datetime
    record_id: str
    failed_at: datetime | None = None
    """While a ``firmware_failed`` / ``diagnostics_failed`` alert is open: the latest failure's time. (Reports not
    newer than the latest status are never read again, so a resolved failure needs no other mark.)"""


class SessionState(Model):
    """An open transaction and its energy progress.

    ``progress_at`` is the time of the last *recorded* rise of the energy register (or the session's start): a rise
    is recorded only when it comes at least `PROGRESS_STEP` (1 hour) after the one recorded before (or while a
    ``stuck_session`` alert is open), so a charging session changes the state about once an hour, not on every
    MeterValues.
    """

    model_config = ConfigDict(extra="forbid")

    connector_id: int | None = None
    started_at: datetime
    record_id: str
    """The first record of the session the detectors saw (StartTransaction's answer, TransactionEvent Started)."""
    energy_wh: float | None = None
    """The energy register at ``progress_at`` (None until a sample gave one)."""
    progress_at: datetime
    progress_record_id: str
    alert_key: str | None = None
    """While a ``stuck_session`` alert is open: its key in ``open_alerts``."""


class ChargerHealthState(Model):
    """What the detectors remember of one charger (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    latest_at: datetime | None = None
    """The latest record time the detectors have seen for the charger (exact in the returned state; the stored item
    may lag it by up to an hour: moves within the hour do not make `Observation.changed`)."""
    heartbeat_interval_seconds: int | None = None
    """The ``interval`` of the latest BootNotification answer (OCPP 1.6 and 2.0.1)."""
    heartbeat_interval_at: datetime | None = None
    """The time of the record that answer is in (an older boot's answer does not change the interval)."""
    connectors: dict[int, ConnectorState] = Field(default_factory=dict)
    open_alerts: dict[str, str] = Field(default_factory=dict)
    """``"<kind>"`` or ``"<kind>#<connector_id>"`` -> the alert id of the open alert."""
    boots: WindowState = Field(default_factory=WindowState)
    errors: WindowState = Field(default_factory=WindowState)
    authorization_failures: WindowState = Field(default_factory=WindowState)
    firmware: StatusTrack | None = None
    diagnostics: StatusTrack | None = None
    sessions: dict[str, SessionState] = Field(default_factory=dict)
    """Open transactions by transaction id (text)."""
    sessions_closed_through: datetime | None = None
    """The latest end of a session: a record at or before it never opens a session (a re-read of an ended one)."""
    offline_since: datetime | None = None
    """While an ``offline`` alert is open: the time of the last record before the silence."""
