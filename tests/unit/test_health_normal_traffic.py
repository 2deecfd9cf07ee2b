"""A simulated week of the simulators' normal traffic through the health detectors opens no alert.

Four chargers (two OCPPLAB, one Plugchoice, one ChargePilot) play a week of `chargelog_simulators.traffic`; their
frames become records the way each vendor serves them and its adapter normalizes them (OCPPLAB's record, a
Plugchoice log as it looks at the time it is read - pending until answered -, a ChargePilot exchange entry). They
are fed as a worker would: every 5 minutes the records of the last 35 minutes (the collector's 30-minute lookback
re-reads the earlier ones), from the state as last stored (a state is stored only when `Observation.changed`), then
the monitor's `evaluate` at that slice's end as data time.

Normal traffic is healthy traffic: the expectation is no alert of any kind. Each kind is its own test, so a failure
names the kind and lists the alerts (the traffic generator's deliberate failures - connector faults of 30 s to
30 minutes, UploadFailed diagnostics, failed firmware updates - are the expected failures of connector_faulted,
diagnostics_failed and firmware_failed until the generator's normal traffic stops including them).

Besides: re-reading records already read never changes the state nor opens anything; no alert id opens twice; the
state is written a bounded number of times a day.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

import pytest

from chargelog.collectors.chargepilot import ChargepilotAdapter
from chargelog.collectors.ocpplab import OcpplabAdapter
from chargelog.collectors.plugchoice import PlugchoiceAdapter
from chargelog.logic.charger_health.detectors import AlertChange, evaluate, observe
from chargelog.models.alerts import ALERT_KINDS, HealthThresholds
from chargelog.models.health_state import ChargerHealthState
from chargelog.models.records import LogRecord
from chargelog_simulators.chargepilot import exchanges, log_entry
from chargelog_simulators.ocpplab import record_item
from chargelog_simulators.plugchoice import PlugchoiceSimulator
from chargelog_simulators.traffic import TrafficFrame, iter_traffic, to_ms

START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 7
SLICE = timedelta(minutes=5)
LOOKBACK = timedelta(minutes=30)
THRESHOLDS = HealthThresholds()
# A stored state write per charger and day, at most (the traffic has ~16 sessions a day on 2-3 connectors: each
# changes connector statuses and opens/ends a session; latest_at and session progress about hourly).
MAX_WRITES_PER_DAY = 150


@dataclass
class _Charger:
    """One simulated charger: its records as read at a given time, and what the detectors made of them."""

    vendor: str
    source_id: str
    charger_id: str
    records_at: Any  # (window start, window end) -> the records a read of that window returns
    stored: ChargerHealthState = field(default_factory=ChargerHealthState)
    memory: ChargerHealthState = field(default_factory=ChargerHealthState)
    read: dict[str, LogRecord] = field(default_factory=dict)
    last_record_at: datetime | None = None
    writes: int = 0


def _frames(charger_id: str, seed: int, connectors: int) -> list[TrafficFrame]:
    rng = Random(seed)  # noqa: S311 - a seeded simulation
    return list(iter_traffic(charger_id, START, START + timedelta(days=DAYS), rng, connectors))


def _in_window(records: list[LogRecord], times: list[datetime], start: datetime, end: datetime) -> list[LogRecord]:
    return records[bisect.bisect_left(times, start) : bisect.bisect_right(times, end)]


def _ocpplab(charger_id: str, seed: int, connectors: int) -> _Charger:
    records = [
        OcpplabAdapter.normalize(charger_id, record_item(frame)) for frame in _frames(charger_id, seed, connectors)
    ]
    records.sort(key=lambda record: record.timestamp)
    times = [record.timestamp for record in records]
    return _Charger("ocpplab", charger_id, charger_id, lambda start, end: _in_window(records, times, start, end))


def _chargepilot(site_id: str, charger_id: str, seed: int) -> _Charger:
    entries = (
        log_entry(site_id, "Depot", charger_id, call, answer)
        for call, answer in exchanges(_frames(charger_id, seed, 2))
    )
    records = sorted((ChargepilotAdapter.normalize(site_id, entry) for entry in entries), key=lambda r: r.timestamp)
    times = [record.timestamp for record in records]
    return _Charger("chargepilot", site_id, charger_id, lambda start, end: _in_window(records, times, start, end))


def _plugchoice(uuid: str, seed: int) -> _Charger:
    """Plugchoice's logs as the simulator serves them at each read: pending until the answer came."""
    simulator = PlugchoiceSimulator(seed=seed)
    simulator.add_charger(uuid)
    simulator.insert(uuid, _frames(uuid, seed, 2))
    charger = simulator._charger(uuid)  # the served items at any time, without an HTTP round trip per slice
    logs = charger.logs
    created = [log.created_s for log in logs]
    normalized: dict[tuple[int, str], LogRecord] = {}

    def records_at(start: datetime, end: datetime) -> list[LogRecord]:
        now_ms = to_ms(end)
        first = bisect.bisect_left(created, int(start.timestamp()))
        last = bisect.bisect_right(created, int(end.timestamp()))
        records = []
        for log in logs[first:last]:
            key = (log.id, log.status_at(now_ms))
            if key not in normalized:
                normalized[key] = PlugchoiceAdapter.normalize(uuid, log.item(charger.number, now_ms))
            records.append(normalized[key])
        return records

    return _Charger("plugchoice", uuid, uuid, records_at)


@dataclass
class _Week:
    changes: list[AlertChange]
    writes_per_day: dict[str, float]
    refeed_problems: list[str]


def _run_week() -> _Week:
    chargers = [
        _ocpplab("OL-0001", 11, 2),
        _ocpplab("OL-0002", 12, 3),
        _plugchoice("7f1c3a52-0d7e-4e0b-9a8e-2b1f5c6d7e80", 13),
        _chargepilot("site-7", "CP-0001", 14),
    ]
    changes: list[AlertChange] = []
    problems: list[str] = []
    end = START + SLICE
    while end <= START + timedelta(days=DAYS):
        for charger in chargers:
            window = charger.records_at(end - SLICE - LOOKBACK, end)
            seen = [record for record in window if charger.read.get(record.record_id) == record]
            # Records read before, read again (the lookback): nothing to write, nothing opens or resolves. (The
            # state may differ in latest_at: after the monitor wrote it, it holds the stored, hourly latest_at.)
            again = observe(charger.memory, list(reversed(seen)), thresholds=THRESHOLDS)
            if again.changes or again.changed:
                problems.append(f"{charger.charger_id} at {end}: a re-read changed {again.changes or 'the state'}")
            # The worker's page: from the stored state (read once per job), stored again only when changed.
            page = observe(charger.stored, window, thresholds=THRESHOLDS)
            changes.extend(page.changes)
            charger.memory = page.state
            if page.changed:
                charger.stored = page.state
                charger.writes += 1
            charger.read.update((record.record_id, record) for record in window)
            if window:
                latest = max(record.timestamp for record in window)
                charger.last_record_at = max(latest, charger.last_record_at or latest)
            # The monitor, at the collector's high-water mark.
            monitor = evaluate(
                charger.stored,
                vendor=charger.vendor,
                source_id=charger.source_id,
                charger_id=charger.charger_id,
                site_id=charger.source_id if charger.vendor == "chargepilot" else None,
                data_time=end,
                last_record_at=charger.last_record_at,
                collector_healthy=True,
                thresholds=THRESHOLDS,
            )
            changes.extend(monitor.changes)
            if monitor.changed:
                charger.stored = charger.memory = monitor.state
                charger.writes += 1
        end += SLICE
    writes = {charger.charger_id: charger.writes / DAYS for charger in chargers}
    return _Week(changes, writes, problems)


@pytest.fixture(scope="module")
def week() -> _Week:
    return _run_week()


def _opened(week: _Week) -> Iterator[AlertChange]:
    return (change for change in week.changes if change.action == "open")


@pytest.mark.parametrize("kind", ALERT_KINDS)
def test_a_week_of_normal_traffic_opens_no_alert_of_this_kind(week: _Week, kind: str) -> None:
    opened = [change.alert for change in _opened(week) if change.kind == kind]
    counts = Counter(change.kind for change in _opened(week))
    assert not opened, (
        f"{len(opened)} {kind} alerts in a week of normal traffic (all kinds: {dict(counts)}):\n"
        + "\n".join(f"  {alert.charger_id}: {alert.summary}" for alert in opened if alert is not None)
    )


def test_re_reading_records_changes_nothing(week: _Week) -> None:
    assert week.refeed_problems == []


def test_no_alert_opens_twice_and_every_resolution_is_of_an_open_alert(week: _Week) -> None:
    opened = Counter(change.alert_id for change in _opened(week))
    assert [alert_id for alert_id, count in opened.items() if count > 1] == []
    open_now: set[str] = set()
    for change in week.changes:
        if change.action == "open":
            open_now.add(change.alert_id)
        else:
            assert change.alert_id in open_now, change
            open_now.remove(change.alert_id)


def test_the_state_is_written_a_bounded_number_of_times_a_day(week: _Week) -> None:
    assert all(writes <= MAX_WRITES_PER_DAY for writes in week.writes_per_day.values()), week.writes_per_day
