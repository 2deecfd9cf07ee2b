"""Applying the detectors: a charger's health state in, its alerts opened and resolved, its state saved if it changed.

`ChargerHealthMonitor` is what the worker and the health monitor function share. The worker feeds it each page it
stored (`observe`); the monitor function runs `evaluate` for every charger (chargelog.logic.charger_health.sweep).

Order of writes, so that a crash anywhere loses nothing and duplicates nothing:
1. alerts first: an opened alert is a PutItem only if its id is new (the id is derived from the episode), a resolve is
   conditional on the alert being open - so repeating either after a crash changes nothing;
2. then the state, with optimistic concurrency (its ``version``): the worker (holding its source's lease) and the
   monitor function may both write a charger's state; the one that loses reads the state again and recomputes;
3. then a notice per alert that changed on the alert queue; a notice lost to a crash between 1 and 3 is sent by the
   monitor function's catch-up (`sweep.resend_unnotified`), and the notifier sends each transition once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from chargelog.logic.charger_health import detectors
from chargelog.models.alerts import HealthThresholds
from chargelog.models.health_state import ChargerHealthState
from chargelog.observability import logger

if TYPE_CHECKING:
    from chargelog.dal.alert_notices import AlertNotices
    from chargelog.dal.alerts import AlertStore, HealthStore
    from chargelog.models.records import LogRecord

# A state write that lost to a concurrent writer is recomputed from the state as stored this many times at most.
MAX_STATE_ATTEMPTS = 4

ChargerKey = tuple[str, str, str]  # (vendor, source_id, charger_id)


@dataclass
class HealthTally:
    """What a run of the detectors did: the worker's and the monitor's logs and metrics report it."""

    chargers: int = 0
    states_written: int = 0
    state_conflicts: int = 0
    opened: int = 0
    resolved: int = 0
    transitions: list[tuple[str, str]] = field(default_factory=list)  # (alert_id, "open" | "resolved")

    def add(self, other: HealthTally) -> None:
        self.chargers += other.chargers
        self.states_written += other.states_written
        self.state_conflicts += other.state_conflicts
        self.opened += other.opened
        self.resolved += other.resolved
        self.transitions.extend(other.transitions)


@dataclass
class _Held:
    state: ChargerHealthState
    version: int | None
    site_id: str | None


Detect = Callable[[ChargerHealthState], detectors.Observation]


class ChargerHealthStores(NamedTuple):
    """What the detectors' writes need: the state items, the alert items, the alert queue and the thresholds."""

    health: HealthStore
    alerts: AlertStore
    notices: AlertNotices | None
    thresholds: HealthThresholds

    def monitor(self) -> ChargerHealthMonitor:
        """A monitor for one job or pass (it keeps the states it read)."""
        return ChargerHealthMonitor(
            health=self.health, alerts=self.alerts, notices=self.notices, thresholds=self.thresholds
        )


class ChargerHealthMonitor:
    """Runs the detectors for chargers and writes what they decide. Keeps each charger's state between calls (a job's
    pages), so a job reads a charger's state once."""

    def __init__(
        self,
        *,
        health: HealthStore,
        alerts: AlertStore,
        notices: AlertNotices | None,
        thresholds: HealthThresholds,
    ) -> None:
        self._health = health
        self._alerts = alerts
        self._notices = notices
        self.thresholds = thresholds
        self._held: dict[ChargerKey, _Held] = {}

    # ------------------------------------------------------------------ the worker's side
    def observe(self, records: Iterable[LogRecord]) -> HealthTally:
        """Feed one stored page's records (new, changed and re-read alike: the detectors ignore what they saw)."""
        by_charger: dict[ChargerKey, list[LogRecord]] = defaultdict(list)
        for record in records:
            by_charger[(record.vendor, record.source_id, record.charger_id)].append(record)
        tally = HealthTally()
        for key, group in by_charger.items():
            site_id = next((record.site_id for record in group if record.site_id), None)
            tally.add(self._run(key, site_id, self._observing(group)))
        self._send(tally)
        return tally

    def _observing(self, records: list[LogRecord]) -> Detect:
        def detect(state: ChargerHealthState) -> detectors.Observation:
            return detectors.observe(state, records, thresholds=self.thresholds)

        return detect

    # ------------------------------------------------------------------ the monitor function's side
    def evaluate(
        self,
        key: ChargerKey,
        *,
        site_id: str | None,
        data_time: datetime,
        last_record_at: datetime | None,
        collector_healthy: bool,
        stored: tuple[ChargerHealthState, int | None] | None = None,
    ) -> HealthTally:
        """The time-driven checks of one charger at its source's data time. ``stored``: its state and version if the
        caller read them already (the monitor reads every state in one Query)."""
        if stored is not None and key not in self._held:
            self._held[key] = _Held(stored[0], stored[1], site_id)
        vendor, source_id, charger_id = key
        tally = self._run(
            key,
            site_id,
            lambda state: detectors.evaluate(
                state,
                vendor=vendor,
                source_id=source_id,
                charger_id=charger_id,
                site_id=site_id,
                data_time=data_time,
                last_record_at=last_record_at,
                collector_healthy=collector_healthy,
                thresholds=self.thresholds,
            ),
        )
        self._send(tally)
        return tally

    # ------------------------------------------------------------------ writing
    def _run(self, key: ChargerKey, site_id: str | None, detect: Detect) -> HealthTally:
        tally = HealthTally(chargers=1)
        for _attempt in range(MAX_STATE_ATTEMPTS):
            held = self._held.get(key) or self._load(key, site_id)
            observation = detect(held.state)
            self._apply(observation, tally)
            if not observation.changed:
                self._held[key] = held
                return tally
            vendor, source_id, charger_id = key
            version = self._health.put(
                vendor,
                source_id,
                charger_id,
                site_id or held.site_id,
                observation.state.model_dump_json(exclude_defaults=True),
                expected_version=held.version,
            )
            if version is not None:
                tally.states_written += 1
                self._held[key] = _Held(observation.state, version, site_id or held.site_id)
                return tally
            # Another writer saved the state since it was read: read it again and decide again (the alert writes
            # already made are idempotent, so deciding again repeats nothing).
            tally.state_conflicts += 1
            self._held.pop(key, None)
        logger.warning("Charger health state kept changing under this writer", extra={"charger": list(key)})
        return tally

    def _load(self, key: ChargerKey, site_id: str | None) -> _Held:
        vendor, source_id, charger_id = key
        stored = self._health.get(vendor, source_id, charger_id)
        if stored is None:
            return _Held(ChargerHealthState(), None, site_id)
        return _Held(ChargerHealthState.model_validate_json(stored.state_json), stored.version, stored.site_id)

    def _apply(self, observation: detectors.Observation, tally: HealthTally) -> None:
        for change in observation.changes:
            if change.action == "open":
                assert change.alert is not None
                if self._alerts.open(change.alert):
                    tally.opened += 1
                    tally.transitions.append((change.alert.alert_id, "open"))
                    logger.info(
                        "Charger alert opened",
                        extra={
                            "alert_id": change.alert.alert_id,
                            "kind": change.alert.kind,
                            "charger_id": change.alert.charger_id,
                            "vendor": change.alert.vendor,
                        },
                    )
            else:
                assert change.resolved_at is not None
                assert change.resolution is not None
                resolved = self._alerts.resolve(
                    change.alert_id, change.resolved_at, change.resolution, list(change.resolution_evidence)
                )
                if resolved is not None:
                    tally.resolved += 1
                    tally.transitions.append((resolved.alert_id, "resolved"))
                    logger.info(
                        "Charger alert resolved",
                        extra={"alert_id": resolved.alert_id, "kind": resolved.kind, "charger_id": resolved.charger_id},
                    )

    def _send(self, tally: HealthTally) -> None:
        if self._notices is not None and tally.transitions:
            self._notices.send(tally.transitions)
