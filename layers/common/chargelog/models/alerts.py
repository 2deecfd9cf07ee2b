"""Charger health: the alerts chargelog opens on misbehaving chargers, and the thresholds that define them.

An alert is one *episode* of one kind of misbehaviour of one charger (and connector, where the kind is about one):
it opens once, when the records show the pattern, and resolves by itself when the pattern ends (docs/health.md has
each kind's definition). Its id is derived from what started the episode (`alert_id_for`), so reading the same
records again (an overlapping window, a replay) finds the alert it opened then instead of opening another.

Standard library and pydantic only: this module loads on the worker's cold start.
"""

import hashlib
from typing import Annotated, Final, Literal, get_args

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints

from chargelog.models.base import Model
from chargelog.vendors import Vendor

AlertKind = Literal[
    "boot_loop",
    "connector_faulted",
    "offline",
    "error_burst",
    "authorization_failures",
    "firmware_failed",
    "diagnostics_failed",
    "stuck_session",
]
ALERT_KINDS: Final[tuple[str, ...]] = get_args(AlertKind)
# Kinds about one connector (their alerts carry ``connector_id``); the others are about the charger as a whole.
CONNECTOR_KINDS: Final = frozenset({"connector_faulted", "stuck_session"})
AlertState = Literal["open", "resolved"]
ALERT_STATES: Final[tuple[str, ...]] = get_args(AlertState)
# The most record ids an alert keeps as its evidence (the first ones: what opened it).
MAX_EVIDENCE: Final = 20
ALERT_ID_PREFIX: Final = "alert_"
ALERT_ID_HEX_LENGTH: Final = 24

AlertId = Annotated[
    str, StringConstraints(strict=True, pattern=rf"^{ALERT_ID_PREFIX}[0-9a-f]{{{ALERT_ID_HEX_LENGTH}}}$")
]


def alert_id_for(
    vendor: str, source_id: str, charger_id: str, kind: str, connector_id: int | None, episode_start: str
) -> str:
    """The id of the alert of one episode: the same for the same charger, kind, connector and the record that
    started the episode (``episode_start``: its record id), however often those records are read."""
    identity = "\x1f".join((vendor, source_id, charger_id, kind, "" if connector_id is None else str(connector_id)))
    digest = hashlib.sha256(f"{identity}\x1e{episode_start}".encode()).hexdigest()
    return f"{ALERT_ID_PREFIX}{digest[:ALERT_ID_HEX_LENGTH]}"


class Alert(Model):
    """One episode of a charger's misbehaviour, as the API answers it (``GET /alerts``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: AlertId = Field(
        description="Derived from the charger, the kind, the connector and the record that started the episode."
    )
    kind: AlertKind
    state: AlertState
    charger_id: str
    vendor: Vendor
    source_id: str = Field(
        description="The source whose records showed it (a ChargePilot site, otherwise the charger itself)."
    )
    site_id: str | None = None
    connector_id: int | None = Field(
        default=None, description="The connector, for ``connector_faulted`` and ``stuck_session``."
    )
    opened_at: AwareDatetime = Field(
        description=(
            "The time of the record (or, for kinds that absence reveals, of the data) that showed the pattern."
        )
    )
    resolved_at: AwareDatetime | None = None
    summary: str = Field(description="One line a person reads: what happened, how often, since when.")
    evidence: list[str] = Field(
        default_factory=list,
        max_length=MAX_EVIDENCE,
        description=(
            "The ids of the records that show it (``GET /chargers/{charger_id}/logs/{record_id}``), oldest first."
        ),
    )
    resolution: str | None = Field(default=None, description="Why it resolved (one line), once it has.")
    resolution_evidence: list[str] = Field(
        default_factory=list,
        max_length=MAX_EVIDENCE,
        description=(
            "The records that ended the episode (an Available status, the first record after silence), when"
            " records did."
        ),
    )


class HealthThresholds(Model):
    """What counts as misbehaviour: the template's parameters (docs/health.md), read by the worker and the monitor."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    boot_loop_count: int = Field(default=3, ge=2, alias="CHARGELOG_BOOT_LOOP_COUNT")
    boot_loop_minutes: float = Field(default=30, gt=0, alias="CHARGELOG_BOOT_LOOP_MINUTES")
    fault_minutes: float = Field(default=5, ge=0, alias="CHARGELOG_FAULT_MINUTES")
    offline_minutes: float = Field(default=30, gt=0, alias="CHARGELOG_OFFLINE_MINUTES")
    offline_heartbeats: float = Field(default=3, gt=0, alias="CHARGELOG_OFFLINE_HEARTBEATS")
    error_burst_count: int = Field(default=5, ge=1, alias="CHARGELOG_ERROR_BURST_COUNT")
    error_burst_minutes: float = Field(default=10, gt=0, alias="CHARGELOG_ERROR_BURST_MINUTES")
    authorization_failure_count: int = Field(default=3, ge=1, alias="CHARGELOG_AUTHORIZATION_FAILURE_COUNT")
    authorization_failure_minutes: float = Field(default=15, gt=0, alias="CHARGELOG_AUTHORIZATION_FAILURE_MINUTES")
    stuck_session_hours: float = Field(default=24, gt=0, alias="CHARGELOG_STUCK_SESSION_HOURS")
    # A firmware_failed or diagnostics_failed alert that no later status resolves resolves after this long.
    failure_alert_hours: float = Field(default=24, gt=0, alias="CHARGELOG_FAILURE_ALERT_HOURS")
