"""The charger health detectors: pure functions of a charger's health state, its records, the thresholds and times.

- `observe` (the worker, on every page it stores): reads one charger's records, in (time, record id) order
  whatever order they come in, and returns the new state and the alerts to open or resolve.
- `evaluate` (the health monitor, every few minutes): what the passing of *data time* reveals - a charger gone
  silent, a connector still faulted, a session without energy progress, a burst or a boot loop gone quiet, a
  failure alert that expired.

Time only ever comes from records and data time, never from the clock. Before a record is read, time advances to
it: whatever would have opened or resolved by then does (so a Faulted connector that a record proves faulted past
``fault_minutes`` opens its alert there, even when the same page later shows it recover). The kinds and their
rules are in docs/health.md ("Kinds").

Idempotency: reading records again (a lookback's re-read, other page boundaries, a replay) changes nothing. Each
part of the state keeps the latest report by (time, record id) and ignores what is not newer; the counting kinds
keep the record ids of their recent events, ignore events older than their window of ``latest_at`` and, after an
episode resolved, every event at or before its last one; sessions ended are never reopened by their records. An
alert's id comes from the record that started its episode (`alert_id_for`), so even a state lost and rebuilt from
the same records in the same order derives the same ids.

Cost: `observe` touches each record's already-parsed fields only (no validation, no copies per record); the
state is copied once per call and compared once at the end (`Observation.changed`). Ordinary traffic -
Heartbeats, MeterValues - changes nothing but ``latest_at`` and, about hourly, a session's progress; ``latest_at``
moving within the same UTC hour does not count as a change, so the worker writes the state about once an hour for
it, not once per page.

Standard library and pydantic only.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, NamedTuple

from chargelog.models.alerts import MAX_EVIDENCE, Alert, AlertKind, HealthThresholds, alert_id_for
from chargelog.models.health_state import (
    ChargerHealthState,
    ConnectorState,
    SessionState,
    StatusTrack,
    WindowState,
)
from chargelog.models.keys import api_record_id
from chargelog.models.records import LogRecord

# A session's energy progress is recorded at most this often (or a quarter of stuck_session_hours, if shorter).
PROGRESS_STEP: Final = timedelta(hours=1)
# ``latest_at`` moving within one UTC hour (of this length) does not make an observation "changed".
LATEST_AT_STEP: Final = timedelta(hours=1)
# Bounds of the state: open sessions and connectors tracked per charger.
MAX_SESSIONS: Final = 16
MAX_CONNECTORS: Final = 64

FAULTED: Final = "Faulted"
NO_ERROR: Final = "NoError"
# (Signed)FirmwareStatusNotification statuses (1.6, its security extension, 2.0.1) that say an update failed.
FIRMWARE_FAILURES: Final = frozenset(
    {
        "DownloadFailed",
        "InstallationFailed",
        "InstallVerificationFailed",
        "InvalidSignature",
        "SignatureError",
        "InstallRebootFailed",
    }
)
# Neither a failure nor a new attempt: an Idle report (as TriggerMessage asks for) leaves a failure open.
FIRMWARE_NEUTRAL: Final = frozenset({"Idle"})
# DiagnosticsStatusNotification (1.6) and LogStatusNotification (1.6 security extension, 2.0.1) failures.
DIAGNOSTICS_FAILURES: Final = frozenset(
    {"UploadFailed", "UploadFailure", "BadMessage", "PermissionDenied", "NotSupportedOperation"}
)
DIAGNOSTICS_PROGRESS: Final = frozenset({"Uploading", "Uploaded"})
# idTagInfo / idTokenInfo statuses that are not a refusal.
AUTHORIZED: Final = frozenset({"Accepted", "ConcurrentTx"})
# An answer's top-level ``status`` that refuses the request (every version's enumerations of refusals).
REFUSED_ANSWERS: Final = frozenset(
    {
        "Rejected",
        "Invalid",
        "Blocked",
        "NotSupported",
        "NotImplemented",
        "Unknown",
        "Failed",
        "UnlockFailed",
        "UnknownMessageId",
        "UnknownVendorId",
        "VersionMismatch",
        "InvalidCertificate",
        "RevokedCertificate",
    }
)
# Answers that look refused but report a normal outcome: ClearChargingProfile's "no profile matched".
BENIGN_ANSWERS: Final = frozenset({("ClearChargingProfile", "Unknown")})
SESSION_ACTIONS: Final = frozenset({"StartTransaction", "MeterValues", "StopTransaction", "TransactionEvent"})

_NOUNS: Final = {
    "boot_loop": ("BootNotification", "BootNotifications"),
    "error_burst": ("CALLERROR or refused request", "CALLERRORs and refused requests"),
    "authorization_failures": ("refused id tag", "refused id tags"),
}
_LABELS: Final = {"boot_loop": "Boot loop", "error_burst": "Error burst", "authorization_failures": "Refused id tags"}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class AlertChange:
    """An alert the detectors open or resolve.

    - ``action == "open"``: ``alert`` is the whole alert (``state="open"``, ``evidence`` oldest first);
      ``alert_id``, ``kind`` and ``connector_id`` repeat its own. Its id is derived from the record that started
      the episode, so the store writes it only if no alert has that id (a re-read finds the one it opened then).
    - ``action == "resolve"``: ``alert`` is None; ``alert_id``, ``kind`` and ``connector_id`` name the open alert,
      ``resolved_at`` is the time of the record (or the data time) that ended it, ``resolution`` one line saying
      why, ``resolution_evidence`` the ids of the records that ended it (empty when the absence of records did).

    Build them with `AlertChange.opened` and `AlertChange.resolved`.
    """

    action: Literal["open", "resolve"]
    alert_id: str
    kind: AlertKind
    connector_id: int | None = None
    alert: Alert | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None
    resolution_evidence: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.action == "open":
            if self.alert is None or self.alert.alert_id != self.alert_id or self.resolved_at is not None:
                raise ValueError("an opening carries its alert, with the same id, and no resolution")
        elif self.alert is not None or self.resolved_at is None or not self.resolution:
            raise ValueError("a resolution carries resolved_at and resolution, and no alert")

    @classmethod
    def opened(cls, alert: Alert) -> AlertChange:
        return cls("open", alert.alert_id, alert.kind, alert.connector_id, alert=alert)

    @classmethod
    def resolved(
        cls,
        alert_id: str,
        kind: AlertKind,
        connector_id: int | None,
        resolved_at: datetime,
        resolution: str,
        evidence: Iterable[str] = (),
    ) -> AlertChange:
        return cls(
            "resolve",
            alert_id,
            kind,
            connector_id,
            resolved_at=resolved_at,
            resolution=resolution,
            resolution_evidence=tuple(evidence)[:MAX_EVIDENCE],
        )


class Observation(NamedTuple):
    """What one `observe` or `evaluate` found.

    ``state`` is the charger's new state (the same object as the one given when nothing was read), ``changes`` the
    alerts to open and resolve, in the order they happened. ``changed`` says whether the state must be written:
    False when it equals the one given, apart from ``latest_at`` moving within the same UTC hour
    (`LATEST_AT_STEP`), so ordinary traffic costs about one write an hour. A caller that keeps the given state when
    ``changed`` is False loses nothing the detectors need (``latest_at`` lags by at most an hour; the monitor also
    reads the charger index's ``last_record_at``).
    """

    state: ChargerHealthState
    changes: tuple[AlertChange, ...] = ()
    changed: bool = False

    @property
    def opened(self) -> list[Alert]:
        return [change.alert for change in self.changes if change.alert is not None]

    @property
    def resolved(self) -> list[AlertChange]:
        return [change for change in self.changes if change.action == "resolve"]


# ---------------------------------------------------------------------------------------------- entry points
def observe(state: ChargerHealthState, records: Iterable[LogRecord], *, thresholds: HealthThresholds) -> Observation:
    """Read records of ONE charger (one vendor, source and charger), in any order and any number of times.

    Sorts them by (time, record id), advances time to each before reading it, and returns the new state, the
    alerts opened and resolved, and whether the state changed. Raises ValueError for records of several chargers.
    """
    ordered = sorted(records, key=_record_order)
    if not ordered:
        return Observation(state)
    first = ordered[0]
    identity = (first.vendor, first.source_id, first.charger_id)
    site_id = first.site_id
    for record in ordered:
        if (record.vendor, record.source_id, record.charger_id) != identity:
            raise ValueError(
                f"observe reads one charger's records: {record.record_id} is of "
                f"{record.vendor}/{record.source_id}/{record.charger_id}, not {'/'.join(identity)}"
            )
        site_id = site_id or record.site_id
    run = _Run(state, thresholds, *identity, site_id)
    for record in ordered:
        run.read(record)
    return run.result(state)


def evaluate(
    state: ChargerHealthState,
    *,
    vendor: str,
    source_id: str,
    charger_id: str,
    site_id: str | None,
    data_time: datetime,
    last_record_at: datetime | None,
    collector_healthy: bool,
    thresholds: HealthThresholds,
) -> Observation:
    """What the passing of data time reveals for one charger.

    ``data_time``: the source collector's high-water mark (every record up to it is stored and was observed),
    never the wall clock. ``last_record_at``: the charger's last record time from the charger index (it may be
    newer than ``state.latest_at``). ``collector_healthy``: False never opens ``offline`` (a collector that cannot
    read its source says nothing about the chargers). Opens and resolves what is due at ``data_time`` (or at
    ``state.latest_at``, if later): ``connector_faulted``, ``stuck_session``, ``offline``; resolves the counting
    kinds gone quiet and the failure kinds expired.
    """
    for name, moment in (("data_time", data_time), ("last_record_at", last_record_at)):
        if moment is not None and moment.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime, got {moment!r}")
    run = _Run(state, thresholds, vendor, source_id, charger_id, site_id)
    now = data_time if state.latest_at is None or data_time >= state.latest_at else state.latest_at
    run.tick(now)
    run.offline(data_time, last_record_at, collector_healthy)
    return run.result(state)


# ---------------------------------------------------------------------------------------------- the run
class _Limits(NamedTuple):
    boot_count: int
    boot_window: timedelta
    fault: timedelta
    offline_minimum: timedelta
    offline_heartbeats: float
    error_count: int
    error_window: timedelta
    authorization_count: int
    authorization_window: timedelta
    stuck: timedelta
    progress_step: timedelta
    failure_expiry: timedelta

    @classmethod
    def of(cls, thresholds: HealthThresholds) -> _Limits:
        stuck = timedelta(hours=thresholds.stuck_session_hours)
        return cls(
            boot_count=thresholds.boot_loop_count,
            boot_window=timedelta(minutes=thresholds.boot_loop_minutes),
            fault=timedelta(minutes=thresholds.fault_minutes),
            offline_minimum=timedelta(minutes=thresholds.offline_minutes),
            offline_heartbeats=thresholds.offline_heartbeats,
            error_count=thresholds.error_burst_count,
            error_window=timedelta(minutes=thresholds.error_burst_minutes),
            authorization_count=thresholds.authorization_failure_count,
            authorization_window=timedelta(minutes=thresholds.authorization_failure_minutes),
            stuck=stuck,
            progress_step=min(PROGRESS_STEP, stuck / 4),
            failure_expiry=timedelta(hours=thresholds.failure_alert_hours),
        )


class _Run:
    """One observe or evaluate: a working copy of the state, mutated in place, and the alert changes."""

    def __init__(
        self,
        state: ChargerHealthState,
        thresholds: HealthThresholds,
        vendor: str,
        source_id: str,
        charger_id: str,
        site_id: str | None,
    ) -> None:
        self.state = state.model_copy(deep=True)
        self.limits = _Limits.of(thresholds)
        self.vendor, self.source_id, self.charger_id, self.site_id = vendor, source_id, charger_id, site_id
        self.changes: list[AlertChange] = []
        self._deadline: datetime | None = None
        self._stale = True  # the deadline must be computed again

    def result(self, given: ChargerHealthState) -> Observation:
        if _same(self.state, given):
            return Observation(self.state, tuple(self.changes), False)
        self._prune()  # only when the state is written anyway: pruning alone never costs a write
        return Observation(self.state, tuple(self.changes), True)

    def _prune(self) -> None:
        """Drops the events no window can count any more (they would be ignored; they only take room)."""
        latest = self.state.latest_at
        if latest is None:
            return
        for _, window_state, window in self._windows():
            horizon = latest - window
            if window_state.events and window_state.events[0][0] < horizon:
                window_state.events = [event for event in window_state.events if event[0] >= horizon]

    # ------------------------------------------------------------------ records
    def read(self, record: LogRecord) -> None:
        state = self.state
        at = record.timestamp
        # Evidence and the state name records by the API's id (time and record id): GET /chargers/{c}/logs/{id}
        # and the viewer open them as they are.
        record_id = api_record_id(at, record.record_id)
        if state.latest_at is None or at > state.latest_at:
            self.tick(at)  # time passes up to the record before it is read
            state.latest_at = at
        if state.offline_since is not None and at > state.offline_since:
            self._back_online(at, record_id)

        message_type = record.message_type
        payload, result = record.payload, record.result
        error = message_type == "CALLERROR" or (
            message_type is None
            and isinstance(result, dict)
            and (record.status == "failed" or ("errorCode" in result and "errorDescription" in result))
        )
        # The request side of the record (a CALL, or an exchange whatever its answer), and its answer when accepted.
        request = payload if message_type in (None, "CALL") and isinstance(payload, dict) else None
        answer = result if message_type != "CALL" and not error and isinstance(result, dict) else None
        action = record.action
        limits = self.limits

        if error:
            self._count("error_burst", state.errors, limits.error_window, limits.error_count, at, record_id)
        elif answer is not None:
            status = answer.get("status")
            if isinstance(status, str) and status in REFUSED_ANSWERS and (action, status) not in BENIGN_ANSWERS:
                self._count("error_burst", state.errors, limits.error_window, limits.error_count, at, record_id)
        if action == "BootNotification":
            if request is not None and record.direction != "csms_to_cp" and _key(request, "reason") != "Triggered":
                self._count("boot_loop", state.boots, limits.boot_window, limits.boot_count, at, record_id)
            if answer is not None:
                self._heartbeat_interval(answer, at)

        extracted = record.extracted
        if extracted is None:
            return
        authorization = extracted.authorization_status
        if authorization is not None:
            if authorization not in AUTHORIZED:
                window, count = limits.authorization_window, limits.authorization_count
                self._count("authorization_failures", state.authorization_failures, window, count, at, record_id)
            elif authorization == "Accepted":
                self._authorized(at, record_id)
        connector_id = _connector_of(record, request)
        if extracted.connector_status is not None and connector_id is not None:
            self._connector(connector_id, at, record_id, extracted.connector_status, extracted.error_code)
        if extracted.firmware_status is not None:
            self._firmware(at, record_id, extracted.firmware_status)
        if extracted.diagnostics_status is not None:
            self._diagnostics(at, record_id, extracted.diagnostics_status, extracted.log_request_id)
        transaction_id = extracted.transaction_id
        if transaction_id is not None and action in SESSION_ACTIONS:
            if action == "StopTransaction" or (
                action == "TransactionEvent" and request is not None and _key(request, "eventType") == "Ended"
            ):
                if request is not None:
                    self._session_ended(transaction_id, at, record_id, f"{action} at {_hhmm(at)} UTC")
            elif action != "StartTransaction" or answer is not None:
                energy = extracted.meter.energy_wh if extracted.meter is not None else None
                self._session_seen(transaction_id, at, record_id, connector_id, energy)

    def tick(self, now: datetime) -> None:
        """Time has come to ``now``: open and resolve what is due by then."""
        if self._stale:
            self._deadline = self._next_deadline()
            self._stale = False
        if self._deadline is not None and now >= self._deadline:
            self._due(now)
            self._stale = True

    # ------------------------------------------------------------------ time
    def _next_deadline(self) -> datetime | None:
        state, limits = self.state, self.limits
        open_alerts = state.open_alerts
        moments: list[datetime] = []
        for connector_id, connector in state.connectors.items():
            if connector.fault_since is not None and f"connector_faulted#{connector_id}" not in open_alerts:
                moments.append(connector.fault_since + limits.fault)
        for kind, window_state, window in self._windows():
            if kind in open_alerts and window_state.episode_last_at is not None:
                moments.append(window_state.episode_last_at + window)
        for kind, track in (("firmware_failed", state.firmware), ("diagnostics_failed", state.diagnostics)):
            if track is not None and track.failed_at is not None and kind in open_alerts:
                moments.append(track.failed_at + limits.failure_expiry)
        for session in state.sessions.values():
            if session.alert_key is None and _stuck_key(session) not in open_alerts:
                moments.append(session.progress_at + limits.stuck)
        return min(moments, default=None)

    def _due(self, now: datetime) -> None:
        state, limits = self.state, self.limits
        for connector_id, connector in state.connectors.items():
            key = f"connector_faulted#{connector_id}"
            since = connector.fault_since
            if since is not None and key not in state.open_alerts and now >= since + limits.fault:
                self._open_fault(connector_id, connector, now)
        for kind, window_state, window in self._windows():
            last = window_state.episode_last_at
            if kind in state.open_alerts and last is not None and now >= last + window:
                singular, plural = _NOUNS[kind]
                count = window_state.episode_events
                self._close_episode(
                    kind,
                    window_state,
                    now,
                    f"Quiet: no {singular} for {_duration(window)} after the last at {_hhmm(last)} UTC "
                    f"({count} {plural if count != 1 else singular} from {_hhmm(window_state.episode_since)} UTC)",
                )
        tracks: tuple[tuple[AlertKind, StatusTrack | None, str], ...] = (
            ("firmware_failed", state.firmware, "firmware"),
            ("diagnostics_failed", state.diagnostics, "diagnostics"),
        )
        for kind, track, noun in tracks:
            failed_at = track.failed_at if track is not None else None
            if track is not None and failed_at is not None and kind in state.open_alerts:
                if now < failed_at + limits.failure_expiry:
                    continue
                resolution = (
                    f"Expired: no new {noun} attempt for {_duration(limits.failure_expiry)} after the failure at "
                    f"{_hhmm(failed_at)} UTC"
                )
                self._resolve(kind, kind, None, now, resolution)
                track.failed_at = None
        for transaction_id, session in state.sessions.items():
            key = _stuck_key(session)
            if session.alert_key is None and key not in state.open_alerts and now >= session.progress_at + limits.stuck:
                self._open_stuck(transaction_id, session, key, now)

    def _windows(self) -> tuple[tuple[AlertKind, WindowState, timedelta], ...]:
        state, limits = self.state, self.limits
        return (
            ("boot_loop", state.boots, limits.boot_window),
            ("error_burst", state.errors, limits.error_window),
            ("authorization_failures", state.authorization_failures, limits.authorization_window),
        )

    # ------------------------------------------------------------------ alerts
    def _open(
        self,
        kind: AlertKind,
        key: str,
        connector_id: int | None,
        episode_start: str,
        opened_at: datetime,
        summary: str,
        evidence: Iterable[str],
    ) -> None:
        alert_id = alert_id_for(self.vendor, self.source_id, self.charger_id, kind, connector_id, episode_start)
        alert = Alert.model_validate(
            {
                "alert_id": alert_id,
                "kind": kind,
                "state": "open",
                "charger_id": self.charger_id,
                "vendor": self.vendor,
                "source_id": self.source_id,
                "site_id": self.site_id,
                "connector_id": connector_id,
                "opened_at": opened_at,
                "summary": summary,
                "evidence": list(dict.fromkeys(evidence))[:MAX_EVIDENCE],
            }
        )
        self.state.open_alerts[key] = alert_id
        self.changes.append(AlertChange.opened(alert))
        self._stale = True

    def _resolve(
        self,
        kind: AlertKind,
        key: str,
        connector_id: int | None,
        at: datetime,
        resolution: str,
        evidence: Iterable[str] = (),
    ) -> None:
        alert_id = self.state.open_alerts.pop(key)
        self.changes.append(AlertChange.resolved(alert_id, kind, connector_id, at, resolution, evidence))
        self._stale = True

    # ------------------------------------------------------------------ counting kinds
    def _count(
        self, kind: AlertKind, window_state: WindowState, window: timedelta, count: int, at: datetime, record_id: str
    ) -> None:
        """One event of a counting kind: an episode opens when ``count`` of them fall within ``window``."""
        if window_state.closed_through is not None and at <= window_state.closed_through:
            return  # part of a resolved episode (or before it)
        state = self.state
        if kind in state.open_alerts:
            if window_state.episode_last_at is None or at > window_state.episode_last_at:
                window_state.episode_last_at = at
                window_state.episode_events += 1
                self._stale = True
            return
        assert state.latest_at is not None  # read() set it
        horizon = state.latest_at - window
        if at < horizon:
            return  # older than the window the state keeps
        event = (at, record_id)
        events = window_state.events
        if event in events or (len(events) >= count and event < events[0]):
            return
        insort(events, event)
        while events[0][0] < horizon:
            del events[0]
        del events[:-count]
        if len(events) < count or events[-1][0] - events[0][0] > window:
            return
        since, last = events[0][0], events[-1][0]
        summary = (
            f"{_LABELS[kind]}: {len(events)} {_NOUNS[kind][1]} in {_duration(last - since)} (from {_hhmm(since)} UTC)"
        )
        self._open(kind, kind, None, events[0][1], last, summary, [record for _, record in events])
        window_state.episode_since, window_state.episode_last_at = since, last
        window_state.episode_events = len(events)
        window_state.events = []

    def _close_episode(
        self, kind: AlertKind, window_state: WindowState, at: datetime, resolution: str, *evidence: str
    ) -> None:
        self._resolve(kind, kind, None, at, resolution, evidence)
        window_state.closed_through = at if evidence else window_state.episode_last_at
        window_state.episode_since = window_state.episode_last_at = None
        window_state.episode_events = 0
        window_state.events = []

    def _authorized(self, at: datetime, record_id: str) -> None:
        window_state = self.state.authorization_failures
        last = window_state.episode_last_at
        if "authorization_failures" in self.state.open_alerts and last is not None and at > last:
            resolution = f"An id tag was accepted at {_hhmm(at)} UTC"
            self._close_episode("authorization_failures", window_state, at, resolution, record_id)

    # ------------------------------------------------------------------ connectors
    def _connector(self, connector_id: int, at: datetime, record_id: str, status: str, error_code: str | None) -> None:
        state = self.state
        current = state.connectors.get(connector_id)
        if current is not None and (at, record_id) <= (current.at, current.record_id):
            return  # not newer than the status the state has
        if current is None and len(state.connectors) >= MAX_CONNECTORS:
            return
        error = error_code if error_code and error_code != NO_ERROR else None
        updated = ConnectorState(status=status, error_code=error, at=at, record_id=record_id)
        if status == FAULTED or error is not None:
            if current is not None and current.fault_since is not None:
                updated.fault_since, updated.fault_record_id = current.fault_since, current.fault_record_id
            else:
                updated.fault_since, updated.fault_record_id = at, record_id
        else:
            key = f"connector_faulted#{connector_id}"
            if key in state.open_alerts and current is not None:
                since = current.fault_since or current.at
                self._resolve(
                    "connector_faulted",
                    key,
                    connector_id,
                    at,
                    f"{_connector_name(connector_id)} {status} at {_hhmm(at)} UTC, after {_duration(at - since)} "
                    f"{current.status}",
                    [record_id],
                )
            if status == "Available" and error_code is not None:  # 1.6 (errorCode): no transaction runs
                for transaction_id, session in list(state.sessions.items()):
                    if session.connector_id == connector_id and session.started_at < at:
                        why = f"connector {connector_id} Available at {_hhmm(at)} UTC"
                        self._session_ended(transaction_id, at, record_id, why)
        state.connectors[connector_id] = updated
        self._stale = True

    def _open_fault(self, connector_id: int, connector: ConnectorState, now: datetime) -> None:
        assert connector.fault_since is not None
        assert connector.fault_record_id is not None
        name = _connector_name(connector_id)
        if connector.status == FAULTED:
            what = f"{name} Faulted" + (f" ({connector.error_code})" if connector.error_code else "")
        else:
            what = f"{name} reports {connector.error_code} ({connector.status})"
        self._open(
            "connector_faulted",
            f"connector_faulted#{connector_id}",
            connector_id,
            connector.fault_record_id,
            now,
            f"{what} since {_hhmm(connector.fault_since)} UTC",
            [connector.fault_record_id, connector.record_id],
        )

    # ------------------------------------------------------------------ firmware, diagnostics
    def _firmware(self, at: datetime, record_id: str, status: str) -> None:
        failed = status in FIRMWARE_FAILURES
        progress = not failed and status not in FIRMWARE_NEUTRAL
        self._track("firmware_failed", "firmware", at, record_id, status, failed, progress, "Firmware update failed")

    def _diagnostics(self, at: datetime, record_id: str, status: str, request_id: int | None) -> None:
        failed = status in DIAGNOSTICS_FAILURES
        progress = status in DIAGNOSTICS_PROGRESS
        what = "Diagnostics upload failed" + (f" (request {request_id})" if request_id is not None else "")
        self._track("diagnostics_failed", "diagnostics", at, record_id, status, failed, progress, what)

    def _track(
        self,
        kind: AlertKind,
        attribute: Literal["firmware", "diagnostics"],
        at: datetime,
        record_id: str,
        status: str,
        failed: bool,
        progress: bool,
        what: str,
    ) -> None:
        state = self.state
        current: StatusTrack | None = getattr(state, attribute)
        if current is not None and (at, record_id) <= (current.at, current.record_id):
            return  # not newer than the status the state has
        updated = StatusTrack(status=status, at=at, record_id=record_id)
        if current is not None:
            updated.failed_at = current.failed_at
        if failed:
            if kind not in state.open_alerts:
                self._open(kind, kind, None, record_id, at, f"{what}: {status} at {_hhmm(at)} UTC", [record_id])
            updated.failed_at = at
        elif progress and kind in state.open_alerts:
            assert current is not None  # an open alert has its failure tracked
            resolution = f"{status} at {_hhmm(at)} UTC, after the failure at {_hhmm(current.failed_at)} UTC"
            self._resolve(kind, kind, None, at, resolution, [record_id])
            updated.failed_at = None
        setattr(state, attribute, updated)
        self._stale = True

    # ------------------------------------------------------------------ sessions
    def _session_seen(
        self, transaction_id: str, at: datetime, record_id: str, connector_id: int | None, energy: float | None
    ) -> None:
        state, limits = self.state, self.limits
        # One rule for every record of a session but its end, whether the session is open or not, so that a record
        # ignored once is ignored however often it is read again: not at or before the latest end of a session (a
        # record of a session that ended, or from before it), not a stuck_session_hours older than the latest.
        if state.sessions_closed_through is not None and at <= state.sessions_closed_through:
            return
        assert state.latest_at is not None  # read() set it
        if at < state.latest_at - limits.stuck:
            return
        session = state.sessions.get(transaction_id)
        if session is None:
            if connector_id is not None:
                self._supersede(connector_id, at, transaction_id, record_id)
            if len(state.sessions) >= MAX_SESSIONS:
                oldest = min(state.sessions, key=lambda tx: state.sessions[tx].progress_at)
                self._session_ended(oldest, at, record_id, f"no longer tracked: over {MAX_SESSIONS} open sessions")
            state.sessions[transaction_id] = SessionState(
                connector_id=connector_id,
                started_at=at,
                record_id=record_id,
                energy_wh=energy,
                progress_at=at,
                progress_record_id=record_id,
            )
            self._stale = True
            return
        if connector_id is not None and session.connector_id is None:
            session.connector_id = connector_id
            self._supersede(connector_id, session.started_at, transaction_id, record_id)
            self._stale = True
        if at < session.started_at:
            session.started_at, session.record_id = at, record_id
            self._stale = True
        if energy is None:
            return
        if session.energy_wh is None:
            session.energy_wh = energy  # the first reading: a baseline, not progress
            self._stale = True
        elif energy > session.energy_wh and at >= session.progress_at + limits.progress_step:
            before, since = session.energy_wh, session.progress_at
            session.energy_wh, session.progress_at, session.progress_record_id = energy, at, record_id
            self._stale = True
            if session.alert_key is not None:
                resolution = (
                    f"Energy register rose to {energy / 1000:.1f} kWh at {_hhmm(at)} UTC "
                    f"(from {before / 1000:.1f} kWh at {_hhmm(since)} UTC)"
                )
                self._resolve("stuck_session", session.alert_key, session.connector_id, at, resolution, [record_id])
                session.alert_key = None

    def _supersede(self, connector_id: int, started_at: datetime, transaction_id: str, record_id: str) -> None:
        """A session on a connector ends the ones that started there before it (their end was never seen)."""
        for other_id, other in list(self.state.sessions.items()):
            if other_id != transaction_id and other.connector_id == connector_id and other.started_at < started_at:
                self._session_ended(other_id, started_at, record_id, f"transaction {transaction_id} started after it")

    def _session_ended(self, transaction_id: str, at: datetime, record_id: str, why: str) -> None:
        state = self.state
        session = state.sessions.pop(transaction_id, None)
        if state.sessions_closed_through is None or at > state.sessions_closed_through:
            state.sessions_closed_through = at
            self._stale = True
        if session is None:
            return
        self._stale = True
        if session.alert_key is not None:
            resolution = f"Session {transaction_id} ended: {why}"
            self._resolve("stuck_session", session.alert_key, session.connector_id, at, resolution, [record_id])

    def _open_stuck(self, transaction_id: str, session: SessionState, key: str, now: datetime) -> None:
        where = f" on connector {session.connector_id}" if session.connector_id is not None else ""
        energy = f" at {session.energy_wh / 1000:.1f} kWh" if session.energy_wh is not None else ""
        summary = (
            f"Stuck session: transaction {transaction_id}{where} open since {_day_hhmm(session.started_at)} UTC, "
            f"no energy progress{energy} since {_day_hhmm(session.progress_at)} UTC"
        )
        self._open(
            "stuck_session",
            key,
            session.connector_id,
            session.progress_record_id,
            now,
            summary,
            [session.record_id, session.progress_record_id],
        )
        session.alert_key = key

    # ------------------------------------------------------------------ heartbeat, offline
    def _heartbeat_interval(self, answer: dict[str, Any], at: datetime) -> None:
        interval = answer.get("interval")
        if isinstance(interval, float) and interval.is_integer():
            interval = int(interval)
        if not isinstance(interval, int) or isinstance(interval, bool) or interval <= 0:
            return
        state = self.state
        if state.heartbeat_interval_at is not None and at < state.heartbeat_interval_at:
            return  # an older boot's answer
        if state.heartbeat_interval_seconds != interval or state.heartbeat_interval_at != at:
            state.heartbeat_interval_seconds, state.heartbeat_interval_at = interval, at

    def offline(self, data_time: datetime, last_record_at: datetime | None, collector_healthy: bool) -> None:
        state = self.state
        moments = [moment for moment in (last_record_at, state.latest_at) if moment is not None]
        last = max(moments) if moments else None
        if "offline" in state.open_alerts:
            if state.offline_since is not None and last is not None and last > state.offline_since:
                resolution = f"Records again from {_hhmm(last)} UTC"
                self._resolve("offline", "offline", None, last, resolution)
                state.offline_since = None
            return
        if not collector_healthy or last is None:
            return
        limit = self.limits.offline_minimum
        if state.heartbeat_interval_seconds is not None:
            limit = max(limit, timedelta(seconds=state.heartbeat_interval_seconds * self.limits.offline_heartbeats))
        silence = data_time - last
        if silence <= limit:
            return
        interval = state.heartbeat_interval_seconds
        summary = f"Offline: no record for {_duration(silence)} since {_day_hhmm(last)} UTC" + (
            f" (heartbeat interval {interval} s)" if interval is not None else ""
        )
        self._open("offline", "offline", None, f"silent-after:{_iso(last)}", data_time, summary, [])
        state.offline_since = last

    def _back_online(self, at: datetime, record_id: str) -> None:
        state = self.state
        since = state.offline_since
        assert since is not None
        if "offline" in state.open_alerts:
            resolution = f"Records again from {_hhmm(at)} UTC, after {_duration(at - since)} of silence"
            self._resolve("offline", "offline", None, at, resolution, [record_id])
        state.offline_since = None


# ---------------------------------------------------------------------------------------------- helpers
def _record_order(record: LogRecord) -> tuple[datetime, str]:
    return record.timestamp, record.record_id


def _stuck_key(session: SessionState) -> str:
    return "stuck_session" if session.connector_id is None else f"stuck_session#{session.connector_id}"


def _connector_of(record: LogRecord, request: dict[str, Any] | None) -> int | None:
    """The connector a record is about, as the detectors count connectors: OCPP 1.6's ``connectorId``; for 2.0.1,
    whose ``connectorId`` counts within an EVSE, the EVSE's id (``evseId``, ``evse.id``: EVSEs count across the
    station as 1.6 connectors do, 0 being the station). Else the record's own ``connector_id``."""
    if request is not None:
        evse = _key(request, "evseId")
        if evse is None:
            nested = request.get("evse")
            evse = nested.get("id") if isinstance(nested, dict) else None
        if isinstance(evse, int) and not isinstance(evse, bool) and evse >= 0:
            return evse
    return record.connector_id


def _key(document: dict[str, Any], camel: str) -> Any:
    """A payload's value by its OCPP (camelCase) name, or by the snake_case name OCPPLAB logs it under."""
    if camel in document:
        return document[camel]
    return document.get("".join(f"_{c.lower()}" if c.isupper() else c for c in camel))


def _same(new: ChargerHealthState, given: ChargerHealthState) -> bool:
    """Whether ``new`` needs no write: equal to ``given`` but for ``latest_at`` within the same UTC hour."""
    if _step(new.latest_at) != _step(given.latest_at):
        return False
    return new.model_copy(update={"latest_at": None}) == given.model_copy(update={"latest_at": None})


def _step(moment: datetime | None) -> int | None:
    return None if moment is None else (moment - _EPOCH) // LATEST_AT_STEP


def _connector_name(connector_id: int) -> str:
    return "Charger (connector 0)" if connector_id == 0 else f"Connector {connector_id}"


def _hhmm(moment: datetime | None) -> str:
    return "?" if moment is None else moment.astimezone(UTC).strftime("%H:%M")


def _day_hhmm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _duration(span: timedelta) -> str:
    seconds = max(0, round(span.total_seconds()))
    if seconds < 120:
        return f"{seconds} seconds"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} minutes"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours / 24:.1f} days"
