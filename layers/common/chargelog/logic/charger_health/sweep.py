"""The health monitor's pass (every ``ScheduleMinutes``): what absence reveals, for every charger.

For each charger of the charger index it runs the detectors' time-driven checks (`detectors.evaluate`) at its
source's *data time*: the collector's high-water mark, up to which every record of the source is stored. The wall
clock is never used: a collector that is down or behind does not move its mark, so its chargers do not look silent,
and a charger's silence is measured only up to what chargelog has read. ``offline`` also needs the collector to be
healthy (`collector_healthy`): its last job succeeded and its mark is recent.

Reads per pass: the charger index (one Query of its partition), every health state (one Query), the collector states
(one Query); writes only what changed. Sources with a charger in trouble (an open alert) are poked, so the adaptive
scheduler (chargelog.logic.scheduling) polls them in its next pass however quiet they were: the alert resolves, or
its evidence grows, within a pass. Then it re-sends the notices of alerts whose transition was not notified (a
worker that stopped between writing an alert and sending its notice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chargelog.logic.charger_health.monitor import ChargerHealthStores, ChargerKey, HealthTally
from chargelog.models.health_state import ChargerHealthState

if TYPE_CHECKING:
    from chargelog.dal.alert_notices import AlertNotices
    from chargelog.dal.alerts import AlertStore
    from chargelog.dal.record_queries import RecordStore
    from chargelog.dal.state import CollectorState, CollectorStateStore

# A notice not sent this long after its alert changed is sent again (the worker's own send is far quicker).
RESEND_AFTER = timedelta(minutes=2)
# Resolve notices are sent again for alerts opened up to this long ago (older episodes' notices are not re-sent).
RESEND_RESOLVED_WITHIN = timedelta(days=7)
# A collector whose high-water mark is older than this cannot vouch for its chargers' silence (LagAlarmMinutes'
# default: the operations alarm for a collector that stopped fires then).
STALE_COLLECTOR_AFTER = timedelta(minutes=60)


@dataclass(frozen=True)
class SweepStores:
    detectors: ChargerHealthStores
    records: RecordStore
    collector_states: CollectorStateStore


def run(now: datetime, *, stores: SweepStores, stale_after: timedelta = STALE_COLLECTOR_AFTER) -> dict[str, Any]:
    """The health monitor function's pass at ``now`` (its schedule's time)."""
    return sweep(now, stores=stores, stale_after=stale_after)


def collector_healthy(state: CollectorState | None, now: datetime, stale_after: timedelta) -> bool:
    """Whether a source's collector can vouch for its chargers' silence: it has a mark, its last job did not fail,
    and its mark is no older than ``stale_after``."""
    if state is None or state.high_water_mark is None:
        return False
    if state.consecutive_failures > 0 or state.backed_off(now):
        return False
    return now - state.high_water_mark <= stale_after


def sweep(now: datetime, *, stores: SweepStores, stale_after: timedelta) -> dict[str, Any]:
    """One pass over every charger; returns what it did (logged and measured by the handler)."""
    detectors = stores.detectors
    monitor = detectors.monitor()
    collectors = {(state.vendor, state.source_id): state for state in stores.collector_states.list()}
    stored = {
        (item.vendor, item.source_id, item.charger_id): (
            ChargerHealthState.model_validate_json(item.state_json),
            item.version,
        )
        for item in detectors.health.all()
    }
    tally = HealthTally()
    without_data = 0
    alerting: set[tuple[str, str]] = set()  # the sources of chargers with an open alert
    for entry in stores.records.charger_index():
        key: ChargerKey = (entry.vendor, entry.source_id, entry.charger_id)
        collector = collectors.get(key[:2])
        if collector is None or collector.high_water_mark is None:
            without_data += 1
            continue
        held = stored.get(key)
        if held is not None and held[0].open_alerts:
            alerting.add(key[:2])
        tally.add(
            monitor.evaluate(
                key,
                site_id=entry.site_id,
                data_time=collector.high_water_mark,
                last_record_at=entry.last_record_at,
                collector_healthy=collector_healthy(collector, now, stale_after),
                stored=held,
            )
        )
    woken = wake_alerting_sources(now, alerting, collectors, stores.collector_states)
    resent = resend_unnotified(now, alerts=detectors.alerts, notices=detectors.notices)
    return {
        "chargers": tally.chargers,
        "chargers_without_data": without_data,
        "alerts_opened": tally.opened,
        "alerts_resolved": tally.resolved,
        "states_written": tally.states_written,
        "state_conflicts": tally.state_conflicts,
        "sources_woken": woken,
        "notices_resent": resent,
    }


def wake_alerting_sources(
    now: datetime,
    alerting: set[tuple[str, str]],
    collectors: dict[tuple[str, str], CollectorState],
    states: CollectorStateStore,
) -> int:
    """Poke each source with a charger in trouble at ``now``: the scheduler's next pass polls it first. A source still
    poked past its mark (an earlier pass's poke no job has read past yet) is not written again."""
    woken = 0
    for vendor, source_id in sorted(alerting):
        state = collectors.get((vendor, source_id))
        mark, poked_at = (state.high_water_mark, state.poked_at) if state is not None else (None, None)
        if mark is not None and poked_at is not None and poked_at > mark:
            continue
        states.poke(vendor, source_id, now)
        woken += 1
    return woken


def resend_unnotified(now: datetime, *, alerts: AlertStore, notices: AlertNotices | None) -> int:
    """Send again the notices of transitions the notifier has not claimed (older than `RESEND_AFTER`)."""
    if notices is None:
        return 0
    pending = alerts.unnotified(changed_before=now - RESEND_AFTER, resolved_since=now - RESEND_RESOLVED_WITHIN)
    if pending:
        notices.send(pending)
    return len(pending)
