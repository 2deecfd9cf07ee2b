"""The charger health detectors (chargelog.logic.charger_health.detectors): each kind opens once, with its evidence,
resolves when its pattern ends, never opens below its threshold, and reading records again changes nothing.

Records are built as the adapters make them: OCPPLAB's one record per frame (CALL, CALLRESULT, CALLERROR, the answer
keeping its CALL's action), Plugchoice's one record per exchange (payload and result, ``status`` pending / done /
failed), ChargePilot's exchange entry with its own extracted fields; OCPP 1.6 and 2.0.1 payloads.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chargelog.logic.charger_health.detectors import AlertChange, Observation, evaluate, observe
from chargelog.models.alerts import MAX_EVIDENCE, Alert, HealthThresholds, alert_id_for
from chargelog.models.health_state import ChargerHealthState
from chargelog.models.keys import api_record_id
from chargelog.models.records import LogRecord, connector_id_from, record_id_for
from chargelog.vendors import Vendor

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
THRESHOLDS = HealthThresholds()


def api(record: LogRecord) -> str:
    """How alerts and the state name a record: the API's id of it."""
    return api_record_id(record.timestamp, record.record_id)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Charger:
    """Builds the records of one charger as a vendor's adapter makes them, in OCPP 1.6 or 2.0.1."""

    def __init__(self, vendor: Vendor = "ocpplab", charger_id: str = "CP-1", version: str = "1.6") -> None:
        self.vendor, self.charger_id, self.version = vendor, charger_id, version
        self.source_id = "site-1" if vendor == "chargepilot" else charger_id
        self.site_id = "site-1" if vendor == "chargepilot" else None
        self._serial = itertools.count(1)

    @property
    def v201(self) -> bool:
        return self.version == "2.0.1"

    # ------------------------------------------------------------------ frames and exchanges
    def record(
        self, moment: datetime, *, vendor_id: int | None = None, raw: dict[str, Any] | None = None, **fields: Any
    ) -> LogRecord:
        n = next(self._serial)
        record_id = record_id_for(self.vendor, self.source_id, vendor_id, n=n, charger=self.charger_id)
        return LogRecord(
            vendor=self.vendor,
            source_id=self.source_id,
            charger_id=self.charger_id,
            site_id=self.site_id,
            timestamp=moment,
            kind="ocpp",
            ocpp_version=self.version,
            record_id=record_id,
            raw=raw if raw is not None else {"n": n},
            **fields,
        )

    def call(self, moment: datetime, action: str, payload: dict[str, Any], *, from_cp: bool = True) -> LogRecord:
        return self.record(
            moment,
            action=action,
            direction="cp_to_csms" if from_cp else "csms_to_cp",
            message_type="CALL",
            message_id=f"m-{moment.timestamp()}-{action}",
            connector_id=connector_id_from(payload),
            payload=payload,
        )

    def answer(self, moment: datetime, action: str, result: dict[str, Any], *, from_cp: bool = False) -> LogRecord:
        return self.record(
            moment,
            action=action,
            direction="cp_to_csms" if from_cp else "csms_to_cp",
            message_type="CALLRESULT",
            message_id=f"m-{moment.timestamp()}-{action}",
            result=result,
        )

    def exchange(
        self, moment: datetime, action: str, payload: dict[str, Any], result: dict[str, Any], *, from_cp: bool = True
    ) -> list[LogRecord]:
        """The CALL and its answer, 300 ms later, as OCPPLAB's two records."""
        return [
            self.call(moment, action, payload, from_cp=from_cp),
            self.answer(moment + timedelta(milliseconds=300), action, result, from_cp=not from_cp),
        ]

    def error(self, moment: datetime, action: str, code: str = "InternalError", *, from_cp: bool = True) -> LogRecord:
        """A CALLERROR (sent by the charge point unless ``from_cp`` is False), as OCPPLAB logs it."""
        details = {"errorCode": code, "errorDescription": "it failed", "errorDetails": {}}
        return self.record(
            moment,
            action=action,
            direction="cp_to_csms" if from_cp else "csms_to_cp",
            message_type="CALLERROR",
            message_id=f"m-{moment.timestamp()}-{action}",
            status=code,
            result=details,
        )

    def plugchoice_log(
        self,
        moment: datetime,
        action: str,
        payload: dict[str, Any],
        result: dict[str, Any] | None,
        *,
        log_id: int,
        status: str = "done",
        from_cp: bool = True,
    ) -> LogRecord:
        """One Plugchoice log: the CALL's params and its answer in one record (no message type)."""
        assert self.vendor == "plugchoice"
        return self.record(
            moment,
            vendor_id=log_id,
            action=action,
            direction="cp_to_csms" if from_cp else "csms_to_cp",
            status=status,
            connector_id=connector_id_from(payload),
            payload=payload,
            result=result,
        )

    # ------------------------------------------------------------------ messages
    def boot(self, moment: datetime, interval: int = 300, *, reason: str = "PowerUp") -> list[LogRecord]:
        if self.v201:
            request = {"reason": reason, "chargingStation": {"model": "Terra", "vendorName": "ABB"}}
        else:
            request = {"chargePointVendor": "ABB", "chargePointModel": "Terra AC"}
        return self.exchange(
            moment,
            "BootNotification",
            request,
            {"status": "Accepted", "currentTime": iso(moment), "interval": interval},
        )

    def heartbeat(self, moment: datetime) -> LogRecord:
        return self.call(moment, "Heartbeat", {})

    def heartbeats(self, start: float, end: float, every: float = 5) -> list[LogRecord]:
        """Heartbeat CALLs every ``every`` minutes from minute ``start`` (inclusive) to ``end`` (exclusive)."""
        count = int((end - start) / every)
        return [self.heartbeat(at(start + i * every)) for i in range(count)]

    def status(self, moment: datetime, connector: int, status: str, error_code: str = "NoError") -> LogRecord:
        if self.v201:
            payload: dict[str, Any] = {
                "timestamp": iso(moment),
                "connectorStatus": status,
                "evseId": connector,
                "connectorId": 1,
            }
            if connector == 0:
                payload = {"timestamp": iso(moment), "connectorStatus": status, "evseId": 0, "connectorId": 0}
        else:
            payload = {"connectorId": connector, "status": status, "errorCode": error_code, "timestamp": iso(moment)}
        # 2.0.1: the station's EVSE ``connector`` with its one connector (1): the record's connector_id is 1,
        # the detectors count the EVSE.
        return self.call(moment, "StatusNotification", payload)

    def authorize(self, moment: datetime, verdict: str) -> list[LogRecord]:
        if self.v201:
            return self.exchange(
                moment,
                "Authorize",
                {"idToken": {"idToken": "04A1B2", "type": "ISO14443"}},
                {"idTokenInfo": {"status": verdict}},
            )
        return self.exchange(moment, "Authorize", {"idTag": "04A1B2"}, {"idTagInfo": {"status": verdict}})

    def firmware(self, moment: datetime, status: str, *, signed: bool = False) -> LogRecord:
        payload: dict[str, Any] = {"status": status}
        if self.v201 or signed:
            payload["requestId"] = 3
        return self.call(
            moment, "SignedFirmwareStatusNotification" if signed else "FirmwareStatusNotification", payload
        )

    def diagnostics(self, moment: datetime, status: str) -> LogRecord:
        if self.v201:
            return self.call(moment, "LogStatusNotification", {"status": status, "requestId": 7})
        return self.call(moment, "DiagnosticsStatusNotification", {"status": status})

    def start(self, moment: datetime, connector: int, transaction_id: int, meter_start: int) -> list[LogRecord]:
        request = {"connectorId": connector, "idTag": "04A1B2", "meterStart": meter_start, "timestamp": iso(moment)}
        answer = {"transactionId": transaction_id, "idTagInfo": {"status": "Accepted"}}
        return self.exchange(moment, "StartTransaction", request, answer)

    def meter(self, moment: datetime, connector: int, transaction_id: int, energy_wh: float) -> LogRecord:
        sample = {"value": str(int(energy_wh)), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
        payload = {
            "connectorId": connector,
            "transactionId": transaction_id,
            "meterValue": [{"timestamp": iso(moment), "sampledValue": [sample]}],
        }
        return self.call(moment, "MeterValues", payload)

    def stop(self, moment: datetime, transaction_id: int, meter_stop: int) -> LogRecord:
        return self.call(
            moment,
            "StopTransaction",
            {"transactionId": transaction_id, "meterStop": meter_stop, "timestamp": iso(moment), "reason": "Local"},
        )

    def transaction_event(
        self, moment: datetime, event: str, transaction_id: str, evse: int, energy_wh: float
    ) -> LogRecord:
        sample = {"value": energy_wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}
        payload = {
            "eventType": event,
            "timestamp": iso(moment),
            "triggerReason": "MeterValuePeriodic" if event == "Updated" else "CablePluggedIn",
            "seqNo": 0,
            "transactionInfo": {"transactionId": transaction_id},
            "evse": {"id": evse, "connectorId": 1},
            "meterValue": [{"timestamp": iso(moment), "sampledValue": [sample]}],
        }
        return self.call(moment, "TransactionEvent", payload)


def feed(
    state: ChargerHealthState, *records: LogRecord | Iterable[LogRecord], thresholds: HealthThresholds = THRESHOLDS
) -> Observation:
    flat: list[LogRecord] = []
    for item in records:
        flat.extend([item] if isinstance(item, LogRecord) else item)
    return observe(state, flat, thresholds=thresholds)


def tick(
    charger: Charger,
    state: ChargerHealthState,
    data_time: datetime,
    *,
    last_record_at: datetime | None = None,
    healthy: bool = False,
    thresholds: HealthThresholds = THRESHOLDS,
) -> Observation:
    """The monitor's pass at ``data_time``. The collector counts as unhealthy unless told (``offline`` would open
    in most tests, whose chargers stop talking): the offline tests say ``healthy=True``."""
    return evaluate(
        state,
        vendor=charger.vendor,
        source_id=charger.source_id,
        charger_id=charger.charger_id,
        site_id=charger.site_id,
        data_time=data_time,
        last_record_at=last_record_at,
        collector_healthy=healthy,
        thresholds=thresholds,
    )


def opened(observation: Observation, kind: str | None = None) -> list[Alert]:
    return [alert for alert in observation.opened if kind is None or alert.kind == kind]


def resolved(observation: Observation, kind: str | None = None) -> list[AlertChange]:
    return [change for change in observation.resolved if kind is None or change.kind == kind]


def ids(records: Iterable[LogRecord]) -> list[str]:
    return [api(record) for record in records]


def calls(records: Iterable[LogRecord]) -> list[LogRecord]:
    return [record for record in records if record.message_type == "CALL"]


def assert_nothing_changes(state: ChargerHealthState, records: Sequence[LogRecord]) -> None:
    """Feeding ``records`` again - whole, reversed, shuffled, in pages of any size - changes nothing."""
    orders = [list(records), list(reversed(records))]
    shuffled = list(records)
    random.Random(7).shuffle(shuffled)  # noqa: S311 - a fixed order
    orders.append(shuffled)
    for order in orders:
        again = observe(state, order, thresholds=THRESHOLDS)
        assert (again.changes, again.changed, again.state) == ((), False, state)
    for size in (1, 3, 17):
        current = state
        for start in range(0, len(shuffled), size):
            again = observe(current, shuffled[start : start + size], thresholds=THRESHOLDS)
            assert (again.changes, again.changed, again.state) == ((), False, state)
            current = again.state


# ---------------------------------------------------------------------------------------------- boot_loop
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_boot_loop_opens_once_with_its_boots_as_evidence(version: str) -> None:
    charger = Charger(version=version)
    boots = [*charger.boot(at(0)), *charger.boot(at(5)), *charger.boot(at(12))]
    observation = feed(ChargerHealthState(), boots)
    [alert] = opened(observation)
    assert alert.kind == "boot_loop"
    assert alert.state == "open"
    assert alert.connector_id is None
    assert alert.evidence == ids(calls(boots))
    assert alert.opened_at == at(12)
    assert alert.summary == "Boot loop: 3 BootNotifications in 12 minutes (from 02:00 UTC)"
    assert alert.alert_id == alert_id_for("ocpplab", "CP-1", "CP-1", "boot_loop", None, api(boots[0]))
    assert (alert.vendor, alert.source_id, alert.charger_id, alert.site_id) == ("ocpplab", "CP-1", "CP-1", None)
    assert observation.state.open_alerts == {"boot_loop": alert.alert_id}
    assert observation.state.heartbeat_interval_seconds == 300
    assert observation.changed
    assert_nothing_changes(observation.state, boots)


def test_boots_below_the_count_or_spread_wider_than_the_window_open_nothing() -> None:
    charger = Charger()
    two = feed(ChargerHealthState(), charger.boot(at(0)), charger.boot(at(10)))
    assert opened(two) == []
    spread = feed(ChargerHealthState(), charger.boot(at(0)), charger.boot(at(16)), charger.boot(at(31)))
    assert opened(spread) == []  # 31 minutes from the first to the third: never 3 within 30


def test_a_boot_loop_resolves_after_its_window_of_data_time_without_a_boot() -> None:
    charger = Charger()
    boots = [*charger.boot(at(0)), *charger.boot(at(5)), *charger.boot(at(10))]
    state = feed(ChargerHealthState(), boots).state
    assert tick(charger, state, at(39.9)).changes == ()
    quiet = tick(charger, state, at(40))
    [change] = quiet.changes
    assert (change.action, change.kind, change.alert_id) == ("resolve", "boot_loop", state.open_alerts["boot_loop"])
    assert change.resolved_at == at(40)
    assert change.resolution_evidence == ()
    assert (
        change.resolution
        == "Quiet: no BootNotification for 30 minutes after the last at 02:10 UTC (3 BootNotifications from 02:00 UTC)"
    )
    assert quiet.state.open_alerts == {}
    assert quiet.changed
    assert tick(charger, quiet.state, at(50)).changes == ()
    assert_nothing_changes(quiet.state, boots)  # the replayed boots belong to the resolved episode


def test_a_record_that_proves_the_quiet_resolves_a_boot_loop_and_a_later_loop_is_a_new_alert() -> None:
    charger = Charger()
    first = [*charger.boot(at(0)), *charger.boot(at(5)), *charger.boot(at(10))]
    state = feed(ChargerHealthState(), first).state
    proof = feed(state, charger.heartbeat(at(41)))
    assert [change.action for change in proof.changes] == ["resolve"]
    second = [*charger.boot(at(24 * 60)), *charger.boot(at(24 * 60 + 3)), *charger.boot(at(24 * 60 + 6))]
    again = feed(proof.state, second)
    [alert] = opened(again)
    assert alert.evidence == ids(calls(second))
    assert alert.alert_id != state.open_alerts["boot_loop"]


def test_a_boot_the_csms_triggered_is_no_reboot() -> None:
    charger = Charger(version="2.0.1")
    boots = [*charger.boot(at(0), reason="Triggered"), *charger.boot(at(5), reason="Triggered"), *charger.boot(at(9))]
    assert opened(feed(ChargerHealthState(), boots)) == []


def test_plugchoice_boots_are_counted_once_whether_read_pending_or_answered() -> None:
    charger = Charger(vendor="plugchoice", charger_id="0b3a5d2c-uuid")
    request = {"chargePointVendor": "ABB", "chargePointModel": "Terra AC"}
    pending = [
        charger.plugchoice_log(at(m), "BootNotification", request, None, log_id=100 + m, status="pending")
        for m in (0, 5)
    ]
    state = feed(ChargerHealthState(), pending).state
    assert state.open_alerts == {}
    answered = [
        charger.plugchoice_log(
            at(m),
            "BootNotification",
            request,
            {"status": "Accepted", "interval": 120, "currentTime": iso(at(m))},
            log_id=100 + m,
        )
        for m in (0, 5)
    ]
    state = feed(state, answered).state
    assert state.open_alerts == {}
    assert state.heartbeat_interval_seconds == 120
    assert len(state.boots.events) == 2
    third = feed(state, charger.plugchoice_log(at(8), "BootNotification", request, None, log_id=108, status="pending"))
    [alert] = opened(third)
    assert [evidence.split("~")[1] for evidence in alert.evidence] == [
        "plugchoice:100",
        "plugchoice:105",
        "plugchoice:108",
    ]


def test_a_plugchoice_boot_answered_with_a_callerror_is_still_a_boot() -> None:
    charger = Charger(vendor="plugchoice", charger_id="0b3a5d2c-uuid")
    request = {"chargePointVendor": "ABB", "chargePointModel": "Terra AC"}
    failure = {"errorCode": "InternalError", "errorDescription": "x", "errorDetails": {}}
    boots = [
        charger.plugchoice_log(at(m), "BootNotification", request, failure, log_id=m + 1, status="failed")
        for m in (0, 4, 8)
    ]
    state = feed(ChargerHealthState(), boots).state
    assert set(state.open_alerts) == {"boot_loop"}
    assert state.errors.events == [(boot.timestamp, api(boot)) for boot in boots]


# ---------------------------------------------------------------------------------------------- connector_faulted
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_fault_opens_when_data_time_passes_fault_minutes_and_resolves_on_a_later_good_status(version: str) -> None:
    charger = Charger(version=version)
    fault = charger.status(at(14), 2, "Faulted", "GroundFailure")
    state = feed(ChargerHealthState(), charger.status(at(1), 2, "Available"), fault).state
    assert state.connectors[2].status == "Faulted"
    assert state.connectors[2].fault_since == at(14)
    assert tick(charger, state, at(18.9)).changes == ()
    due = tick(charger, state, at(19))
    [alert] = opened(due, "connector_faulted")
    assert alert.connector_id == 2
    assert alert.opened_at == at(19)
    assert alert.evidence == [api(fault)]
    expected = (
        "Connector 2 Faulted (GroundFailure) since 02:14 UTC"
        if version == "1.6"
        else "Connector 2 Faulted since 02:14 UTC"
    )
    assert alert.summary == expected
    assert alert.alert_id == alert_id_for("ocpplab", "CP-1", "CP-1", "connector_faulted", 2, api(fault))
    assert due.state.open_alerts == {"connector_faulted#2": alert.alert_id}
    assert tick(charger, due.state, at(25)).changes == ()  # open already

    recovery = charger.status(at(31), 2, "Available")
    back = feed(due.state, recovery)
    [change] = back.changes
    assert (change.action, change.kind, change.connector_id, change.alert_id) == (
        "resolve",
        "connector_faulted",
        2,
        alert.alert_id,
    )
    assert change.resolved_at == at(31)
    assert change.resolution_evidence == (api(recovery),)
    assert change.resolution == "Connector 2 Available at 02:31 UTC, after 17 minutes Faulted"
    assert back.state.connectors[2].fault_since is None
    assert back.state.open_alerts == {}
    assert_nothing_changes(back.state, [fault, recovery])
    assert tick(charger, back.state, at(60)).changes == ()


def test_a_later_record_of_the_charger_proves_the_fault_lasted() -> None:
    charger = Charger()
    fault = charger.status(at(0), 1, "Faulted", "HighTemperature")
    observation = feed(ChargerHealthState(), fault, charger.heartbeat(at(4)), charger.heartbeat(at(6)))
    [alert] = opened(observation)
    assert alert.opened_at == at(6)
    assert alert.summary == "Connector 1 Faulted (HighTemperature) since 02:00 UTC"


def test_a_fault_that_recovers_within_fault_minutes_opens_nothing_and_one_past_them_opens_and_resolves() -> None:
    charger = Charger()
    brief = feed(
        ChargerHealthState(),
        charger.status(at(0), 1, "Faulted", "EVCommunicationError"),
        charger.status(at(4), 1, "Available"),
    )
    assert brief.changes == ()
    assert tick(charger, brief.state, at(30)).changes == ()
    longer = feed(
        ChargerHealthState(),
        charger.status(at(0), 1, "Faulted", "EVCommunicationError"),
        charger.status(at(7), 1, "Available"),
    )
    assert [(change.action, change.kind) for change in longer.changes] == [
        ("open", "connector_faulted"),
        ("resolve", "connector_faulted"),
    ]


def test_an_error_code_without_faulted_counts_and_so_does_connector_zero() -> None:
    charger = Charger()
    state = feed(
        ChargerHealthState(),
        charger.status(at(0), 1, "Charging", "HighTemperature"),
        charger.status(at(0), 0, "Faulted", "OtherError"),
    ).state
    due = tick(charger, state, at(6))
    summaries = sorted(alert.summary for alert in opened(due))
    assert summaries == [
        "Charger (connector 0) Faulted (OtherError) since 02:00 UTC",
        "Connector 1 reports HighTemperature (Charging) since 02:00 UTC",
    ]
    assert set(due.state.open_alerts) == {"connector_faulted#0", "connector_faulted#1"}


def test_repeated_fault_reports_are_one_episode_and_a_new_fault_a_new_alert() -> None:
    charger = Charger()
    first = charger.status(at(0), 1, "Faulted", "GroundFailure")
    state = feed(ChargerHealthState(), first, charger.status(at(3), 1, "Faulted", "GroundFailure")).state
    due = tick(charger, state, at(6))
    [alert] = opened(due)
    assert alert.alert_id == alert_id_for("ocpplab", "CP-1", "CP-1", "connector_faulted", 1, api(first))
    state = feed(due.state, charger.status(at(20), 1, "Available")).state
    second = charger.status(at(24 * 60), 1, "Faulted", "GroundFailure")
    again = tick(charger, feed(state, second).state, at(24 * 60 + 5))
    [new] = opened(again)
    assert new.alert_id != alert.alert_id
    assert new.evidence == [api(second)]


def test_an_older_status_read_late_does_not_overwrite_the_latest() -> None:
    charger = Charger()
    late_fault = charger.status(at(0), 1, "Faulted", "GroundFailure")
    state = feed(ChargerHealthState(), charger.status(at(10), 1, "Available")).state
    observation = feed(state, late_fault)
    assert observation.state == state
    assert not observation.changed
    assert tick(charger, observation.state, at(60)).changes == ()


# ---------------------------------------------------------------------------------------------- offline
def test_offline_opens_after_the_longer_of_heartbeats_and_offline_minutes_of_silence_and_resolves_on_a_record() -> None:
    charger = Charger()
    records = [*charger.boot(at(0), interval=300), *charger.heartbeats(5, 60)]  # the last at minute 55
    state = feed(ChargerHealthState(), records).state
    assert (
        tick(charger, state, at(85), healthy=True).changes == ()
    )  # 30 minutes: max(3 x 300 s, 30 min) not yet exceeded
    silent = tick(charger, state, at(85.5), healthy=True)
    [alert] = opened(silent, "offline")
    assert alert.opened_at == at(85.5)
    assert alert.evidence == []
    assert alert.summary == "Offline: no record for 30 minutes since 2026-03-02 02:55 UTC (heartbeat interval 300 s)"
    assert alert.alert_id == alert_id_for(
        "ocpplab", "CP-1", "CP-1", "offline", None, "silent-after:2026-03-02T02:55:00.000000Z"
    )
    assert silent.state.offline_since == at(55)
    assert tick(charger, silent.state, at(120), healthy=True).changes == ()  # one alert per silence

    assert feed(silent.state, records).changes == ()  # records from before the silence do not end it
    back = charger.heartbeat(at(130))
    online = feed(silent.state, back, charger.heartbeat(at(135)))
    [change] = online.changes
    assert (change.action, change.kind, change.resolution_evidence) == ("resolve", "offline", (api(back),))
    assert change.resolution == "Records again from 04:10 UTC, after 75 minutes of silence"
    assert online.state.offline_since is None
    assert online.state.open_alerts == {}


def test_a_long_heartbeat_interval_stretches_the_silence_that_counts() -> None:
    charger = Charger()
    state = feed(ChargerHealthState(), charger.boot(at(0), interval=1200)).state  # 3 x 20 minutes
    assert tick(charger, state, at(59), healthy=True).changes == ()
    assert [alert.kind for alert in opened(tick(charger, state, at(61), healthy=True))] == ["offline"]


def test_offline_never_opens_while_the_collector_is_unhealthy_or_its_data_time_stands_still() -> None:
    charger = Charger()
    state = feed(ChargerHealthState(), charger.heartbeat(at(0))).state
    assert tick(charger, state, at(600), healthy=False).changes == ()
    for _ in range(10):  # a collector that is stuck keeps its mark: the silence never grows
        observation = tick(charger, state, at(20), healthy=True)
        assert observation.changes == ()
        assert not observation.changed


def test_offline_measures_the_silence_from_the_charger_index_when_it_is_newer_than_the_state() -> None:
    charger = Charger()
    state = feed(ChargerHealthState(), charger.heartbeat(at(0))).state
    assert tick(charger, state, at(50), last_record_at=at(45), healthy=True).changes == ()
    [alert] = opened(tick(charger, state, at(80), last_record_at=at(45), healthy=True))
    assert alert.summary.startswith("Offline: no record for 35 minutes since 2026-03-02 02:45 UTC")


def test_an_offline_alert_resolves_in_evaluate_once_the_index_shows_a_newer_record() -> None:
    charger = Charger()
    state = feed(ChargerHealthState(), charger.heartbeat(at(0))).state
    silent = tick(charger, state, at(40), healthy=True).state
    [change] = tick(charger, silent, at(50), last_record_at=at(45), healthy=True).changes
    assert (change.action, change.kind, change.resolved_at, change.resolution_evidence) == (
        "resolve",
        "offline",
        at(45),
        (),
    )


def test_a_second_silence_is_a_new_offline_alert() -> None:
    charger = Charger()
    state = feed(ChargerHealthState(), charger.heartbeat(at(0))).state
    first = tick(charger, state, at(40), healthy=True)
    state = feed(first.state, charger.heartbeat(at(50))).state
    second = tick(charger, state, at(90), healthy=True)
    assert opened(first)[0].alert_id != opened(second)[0].alert_id


# ---------------------------------------------------------------------------------------------- error_burst
def test_an_error_burst_of_callerrors_and_refused_answers_opens_once() -> None:
    charger = Charger()
    errors = [
        charger.error(at(0), "StatusNotification", "InternalError", from_cp=False),
        charger.error(at(1), "ChangeConfiguration", "NotSupported"),
        *charger.exchange(
            at(2), "ChangeConfiguration", {"key": "X", "value": "1"}, {"status": "Rejected"}, from_cp=False
        ),
        *charger.exchange(at(3), "RemoteStartTransaction", {"idTag": "A"}, {"status": "Rejected"}, from_cp=False),
        *charger.exchange(
            at(4), "TriggerMessage", {"requestedMessage": "Heartbeat"}, {"status": "NotImplemented"}, from_cp=False
        ),
    ]
    observation = feed(ChargerHealthState(), errors)
    [alert] = opened(observation)
    counted = [record for record in errors if record.message_type != "CALL"]
    assert alert.kind == "error_burst"
    assert alert.evidence == ids(counted)
    assert alert.opened_at == counted[-1].timestamp
    assert alert.summary == "Error burst: 5 CALLERRORs and refused requests in 4 minutes (from 02:00 UTC)"
    more = feed(observation.state, charger.error(at(6), "Heartbeat"))
    assert more.changes == ()
    assert more.state.errors.episode_events == 6
    assert_nothing_changes(more.state, [*errors, charger.error(at(-60), "Heartbeat")])
    assert tick(charger, more.state, at(15.9)).changes == ()
    [change] = tick(charger, more.state, at(16)).changes
    assert (change.action, change.kind) == ("resolve", "error_burst")


def test_isolated_errors_refused_authorizations_and_accepted_answers_are_no_burst() -> None:
    charger = Charger()
    records = [
        *[charger.error(at(3 * i), "Heartbeat") for i in range(5)],  # 5 in 12 minutes: never 5 within 10
        *charger.authorize(at(1), "Invalid"),
        *charger.authorize(at(2), "Blocked"),
        *charger.exchange(
            at(5), "ChangeConfiguration", {"key": "X", "value": "1"}, {"status": "Accepted"}, from_cp=False
        ),
        *charger.exchange(at(6), "ClearChargingProfile", {}, {"status": "Unknown"}, from_cp=False),
        *charger.exchange(
            at(7),
            "BootNotification",
            {"chargePointVendor": "A", "chargePointModel": "B"},
            {"status": "Pending", "interval": 60, "currentTime": iso(at(7))},
        ),
    ]
    observation = feed(ChargerHealthState(), records)
    assert opened(observation, "error_burst") == []


def test_plugchoice_failed_logs_are_callerrors() -> None:
    charger = Charger(vendor="plugchoice", charger_id="0b3a5d2c-uuid")
    failed = [
        charger.plugchoice_log(
            at(i),
            "GetConfiguration",
            {},
            {"errorCode": "InternalError", "errorDescription": "x", "errorDetails": {}},
            log_id=i + 1,
            status="failed",
            from_cp=False,
        )
        for i in range(5)
    ]
    [alert] = opened(feed(ChargerHealthState(), failed))
    assert alert.kind == "error_burst"
    assert alert.evidence == [api(record) for record in failed]


# ---------------------------------------------------------------------------------------------- authorization_failures
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_refused_id_tags_open_once_and_an_accepted_one_resolves(version: str) -> None:
    charger = Charger(version=version)
    refused = [
        *charger.authorize(at(0), "Invalid"),
        *charger.authorize(at(4), "Blocked"),
        *charger.authorize(at(9), "Expired"),
    ]
    observation = feed(ChargerHealthState(), refused)
    [alert] = opened(observation)
    answers = [record for record in refused if record.message_type == "CALLRESULT"]
    assert alert.kind == "authorization_failures"
    assert alert.evidence == ids(answers)
    assert alert.summary == "Refused id tags: 3 refused id tags in 9 minutes (from 02:00 UTC)"
    assert opened(observation, "error_burst") == []
    accepted = charger.authorize(at(12), "Accepted")
    back = feed(observation.state, accepted)
    [change] = back.changes
    assert (change.action, change.kind, change.resolution_evidence) == (
        "resolve",
        "authorization_failures",
        (api(accepted[1]),),
    )
    assert_nothing_changes(back.state, [*refused, *accepted])


def test_refused_id_tags_below_the_count_or_concurrent_transactions_open_nothing_and_a_quiet_window_resolves() -> None:
    charger = Charger()
    below = feed(
        ChargerHealthState(),
        charger.authorize(at(0), "Invalid"),
        charger.authorize(at(5), "Invalid"),
        charger.authorize(at(6), "ConcurrentTx"),
    )
    assert below.changes == ()
    spread = feed(below.state, charger.authorize(at(16), "Invalid"))  # the first is 16 minutes old: 2 within 15
    assert spread.changes == ()
    state = feed(spread.state, charger.authorize(at(17), "Invalid")).state  # 5, 16, 17
    assert state.open_alerts.keys() == {"authorization_failures"}
    assert tick(charger, state, at(31.9)).changes == ()
    [change] = tick(charger, state, at(32.1)).changes  # the last answer came at 17:00.3
    assert change.kind == "authorization_failures"
    assert change.resolution_evidence == ()


def test_chargepilot_refusals_are_read_from_its_own_extracted_fields() -> None:
    charger = Charger(vendor="chargepilot", charger_id="CP-9")
    entries = [
        charger.record(
            at(m),
            action="Authorize",
            direction="cp_to_csms",
            message_type="CALL",
            payload={"idTag": "04A1B2"},
            raw={"request_id_tag": "04A1B2", "response_id_tag_info_status": "Invalid", "n": m},
        )
        for m in (0, 1, 2)
    ]
    [alert] = opened(feed(ChargerHealthState(), entries))
    assert (alert.kind, alert.site_id, alert.source_id, alert.charger_id) == (
        "authorization_failures",
        "site-1",
        "site-1",
        "CP-9",
    )


# ---------------------------------------------------------------------------------------------- firmware_failed
@pytest.mark.parametrize(
    ("version", "signed", "failure"),
    [
        ("1.6", False, "DownloadFailed"),
        ("1.6", False, "InstallationFailed"),
        ("1.6", True, "InvalidSignature"),
        ("2.0.1", False, "InstallVerificationFailed"),
        ("2.0.1", False, "InstallRebootFailed"),
    ],
)
def test_a_failed_firmware_update_opens_and_a_new_attempt_resolves_it(version: str, signed: bool, failure: str) -> None:
    charger = Charger(version=version)
    failed = charger.firmware(at(10), failure, signed=signed)
    observation = feed(ChargerHealthState(), charger.firmware(at(0), "Downloading", signed=signed), failed)
    [alert] = opened(observation)
    assert alert.kind == "firmware_failed"
    assert alert.evidence == [api(failed)]
    assert alert.opened_at == at(10)
    assert alert.summary == f"Firmware update failed: {failure} at 02:10 UTC"
    idle = feed(observation.state, charger.firmware(at(20), "Idle", signed=signed))
    assert idle.changes == ()  # Idle is no new attempt
    retry = charger.firmware(at(30), "Downloading", signed=signed)
    back = feed(idle.state, retry)
    [change] = back.changes
    assert (change.action, change.kind, change.resolution_evidence) == (
        "resolve",
        "firmware_failed",
        (api(retry),),
    )
    assert change.resolution == "Downloading at 02:30 UTC, after the failure at 02:10 UTC"
    assert_nothing_changes(back.state, [failed, retry])


def test_a_firmware_failure_expires_after_failure_alert_hours_of_data_time() -> None:
    charger = Charger()
    failed = charger.firmware(at(0), "DownloadFailed")
    state = feed(ChargerHealthState(), failed).state
    assert tick(charger, state, at(24 * 60 - 1)).changes == ()
    expired = tick(charger, state, at(24 * 60))
    [change] = expired.changes
    assert change.kind == "firmware_failed"
    assert change.resolution == "Expired: no new firmware attempt for 24 h 00 min after the failure at 02:00 UTC"
    assert_nothing_changes(expired.state, [failed])
    later = charger.firmware(at(2 * 24 * 60), "InstallationFailed")
    [alert] = opened(feed(expired.state, later))
    assert alert.evidence == [api(later)]


def test_installed_firmware_and_a_failure_older_than_the_latest_status_open_nothing() -> None:
    charger = Charger()
    state = feed(
        ChargerHealthState(),
        [
            charger.firmware(at(m), s)
            for m, s in ((0, "Downloading"), (5, "Downloaded"), (6, "Installing"), (9, "Installed"))
        ],
    ).state
    late = feed(state, charger.firmware(at(4), "DownloadFailed"))
    assert late.changes == ()
    assert not late.changed


# ---------------------------------------------------------------------------------------------- diagnostics_failed
@pytest.mark.parametrize(
    ("version", "failure"),
    [
        ("1.6", "UploadFailed"),
        ("2.0.1", "UploadFailure"),
        ("2.0.1", "PermissionDenied"),
        ("2.0.1", "BadMessage"),
        ("2.0.1", "NotSupportedOperation"),
    ],
)
def test_a_failed_diagnostics_upload_opens_and_a_later_upload_resolves_it(version: str, failure: str) -> None:
    charger = Charger(version=version)
    failed = charger.diagnostics(at(3), failure)
    observation = feed(ChargerHealthState(), charger.diagnostics(at(0), "Uploading"), failed)
    [alert] = opened(observation)
    request = " (request 7)" if version == "2.0.1" else ""
    assert alert.kind == "diagnostics_failed"
    assert alert.evidence == [api(failed)]
    assert alert.summary == f"Diagnostics upload failed{request}: {failure} at 02:03 UTC"
    uploaded = charger.diagnostics(at(40), "Uploaded")
    [change] = feed(observation.state, charger.diagnostics(at(30), "Idle"), uploaded).changes
    assert (change.kind, change.resolution_evidence) == ("diagnostics_failed", (api(uploaded),))


def test_a_diagnostics_failure_expires_after_failure_alert_hours() -> None:
    charger = Charger()
    state = feed(ChargerHealthState(), charger.diagnostics(at(0), "UploadFailed")).state
    thresholds = HealthThresholds.model_validate({"failure_alert_hours": 2})
    assert tick(charger, state, at(119), thresholds=thresholds).changes == ()
    assert [c.kind for c in tick(charger, state, at(120), thresholds=thresholds).changes] == ["diagnostics_failed"]


# ---------------------------------------------------------------------------------------------- stuck_session
def session_16(charger: Charger, *, hours: float, rising: bool, start: float = 0) -> list[LogRecord]:
    """A 1.6 session on connector 1: StartTransaction, then MeterValues every 10 minutes for ``hours``."""
    records = charger.start(at(start), 1, 42, 10_000)
    for i in range(1, int(hours * 6) + 1):
        records.append(charger.meter(at(start + 10 * i), 1, 42, 10_000 + (i * 500 if rising else 0)))
    return records


def test_a_session_without_energy_progress_for_stuck_session_hours_opens_and_its_stop_resolves() -> None:
    charger = Charger()
    records = session_16(charger, hours=20, rising=False)
    state = feed(ChargerHealthState(), records).state
    [session] = state.sessions.values()
    assert (session.connector_id, session.started_at, session.energy_wh) == (1, records[1].timestamp, 10_000)
    assert tick(charger, state, records[1].timestamp + timedelta(hours=23.9)).changes == ()
    due = tick(charger, state, records[1].timestamp + timedelta(hours=24))
    [alert] = opened(due)
    assert (alert.kind, alert.connector_id) == ("stuck_session", 1)
    assert alert.evidence == [api(records[1])]
    assert (
        alert.summary == "Stuck session: transaction 42 on connector 1 open since 2026-03-02 02:00 UTC, "
        "no energy progress at 10.0 kWh since 2026-03-02 02:00 UTC"
    )
    assert due.state.open_alerts == {"stuck_session#1": alert.alert_id}
    stop = charger.stop(at(25 * 60), 42, 10_000)
    ended = feed(due.state, stop)
    [change] = ended.changes
    assert (change.kind, change.connector_id, change.resolution_evidence) == ("stuck_session", 1, (api(stop),))
    assert ended.state.sessions == {}
    assert_nothing_changes(ended.state, [*records, stop])  # an ended session's records never reopen it
    assert tick(charger, ended.state, at(60 * 60)).changes == ()


def test_a_charging_session_is_never_stuck_and_changes_the_state_about_hourly() -> None:
    charger = Charger()
    state = feed(ChargerHealthState(), charger.start(at(0), 1, 42, 10_000)).state
    writes = 0
    for i in range(1, 30 * 12):  # 30 hours of 5-minute pages: a MeterValues a minute and a Heartbeat
        page = [charger.meter(at(5 * i + m), 1, 42, 10_000 + 100 * (5 * i + m)) for m in range(5)]
        observation = feed(state, page, charger.heartbeat(at(5 * i + 2.5)))
        assert observation.changes == ()
        assert tick(charger, observation.state, at(5 * i + 5)).changes == ()
        writes += observation.changed
        state = observation.state
    assert 29 <= writes <= 60  # latest_at's hour and the session's progress, hourly each (often together)


def test_a_rise_of_the_register_resolves_a_stuck_session_and_a_later_stall_is_a_new_alert() -> None:
    charger = Charger()
    records = session_16(charger, hours=1, rising=False)
    due = tick(charger, feed(ChargerHealthState(), records).state, at(24 * 60 + 1))
    [alert] = opened(due)
    rise = charger.meter(at(24 * 60 + 10), 1, 42, 12_000)
    back = feed(due.state, rise)
    [change] = back.changes
    assert (change.kind, change.resolution_evidence) == ("stuck_session", (api(rise),))
    assert change.resolution == "Energy register rose to 12.0 kWh at 02:10 UTC (from 10.0 kWh at 02:00 UTC)"
    again = tick(charger, back.state, at(48 * 60 + 10))
    [second] = opened(again)
    assert second.alert_id != alert.alert_id
    assert second.evidence == [api(records[1]), api(rise)]


@pytest.mark.parametrize("ending", ["Ended", "superseded", "Available"])
def test_2_0_1_sessions_follow_transaction_events(ending: str) -> None:
    charger = Charger(version="2.0.1")
    started = charger.transaction_event(at(0), "Started", "tx-1", 2, 5_000)
    updates = [charger.transaction_event(at(m), "Updated", "tx-1", 2, 5_000) for m in (15, 30)]
    state = feed(ChargerHealthState(), started, updates).state
    assert state.sessions["tx-1"].connector_id == 2
    due = tick(charger, state, at(24 * 60))
    [alert] = opened(due)
    assert alert.connector_id == 2
    assert alert.evidence == [api(started)]
    if ending == "Ended":
        end = charger.transaction_event(at(24 * 60 + 5), "Ended", "tx-1", 2, 5_000)
    elif ending == "superseded":  # the end was never logged: the connector's next transaction ends it
        end = charger.transaction_event(at(24 * 60 + 5), "Started", "tx-2", 2, 5_000)
    else:  # a 2.0.1 connector may be Available while its transaction waits for the cable: no end
        end = charger.status(at(24 * 60 + 5), 2, "Available")
    observation = feed(due.state, end)
    if ending == "Available":
        assert observation.changes == ()
        assert "tx-1" in observation.state.sessions
    else:
        [change] = observation.changes
        assert (change.kind, change.resolution_evidence) == ("stuck_session", (api(end),))


def test_a_1_6_connector_available_again_ends_its_session() -> None:
    charger = Charger()
    state = feed(ChargerHealthState(), session_16(charger, hours=1, rising=True)).state
    assert set(state.sessions) == {"42"}
    state = feed(state, charger.status(at(70), 1, "Available")).state
    assert state.sessions == {}
    assert state.sessions_closed_through == at(70)


def test_a_replay_of_an_old_session_never_opens_it() -> None:
    charger = Charger()
    old = session_16(charger, hours=2, rising=True)
    state = feed(ChargerHealthState(), charger.heartbeat(at(3 * 24 * 60))).state
    observation = feed(state, old)
    assert observation.state.sessions == {}
    assert not observation.changed


# ---------------------------------------------------------------------------------------------- vendors' shapes
def test_2_0_1_evses_are_told_apart_though_each_names_its_connector_1() -> None:
    charger = Charger(version="2.0.1")
    records = [charger.status(at(0), 1, "Faulted"), charger.status(at(1), 2, "Available")]
    assert {record.connector_id for record in records} == {1}
    state = feed(ChargerHealthState(), records).state
    assert (state.connectors[1].status, state.connectors[2].status) == ("Faulted", "Available")
    [alert] = opened(tick(charger, state, at(6)))
    assert alert.connector_id == 1


def ocpplab_item(moment: datetime, frame: list[Any], direction: str = "cp_to_csms") -> dict[str, Any]:
    return {"direction": direction, "action": frame[2], "message": json.dumps(frame), "timestamp": iso(moment)}


def test_ocpplab_snake_case_2_0_1_payloads_are_read() -> None:
    from chargelog.collectors.ocpplab import OcpplabAdapter

    def frame(moment: datetime, action: str, payload: dict[str, Any]) -> LogRecord:
        return OcpplabAdapter.normalize("CP-1", ocpplab_item(moment, [2, f"m{moment.timestamp()}", action, payload]))

    def event(moment: datetime, kind: str) -> LogRecord:
        payload = {
            "event_type": kind,
            "timestamp": iso(moment),
            "trigger_reason": "Authorized",
            "seq_no": 0,
            "transaction_info": {"transaction_id": "tx-9"},
            "evse": {"id": 2, "connector_id": 1},
        }
        return frame(moment, "TransactionEvent", payload)

    fault = frame(
        at(0),
        "StatusNotification",
        {"timestamp": iso(at(0)), "connector_status": "Faulted", "evse_id": 2, "connector_id": 1},
    )
    started = event(at(1), "Started")
    state = feed(ChargerHealthState(), fault, started).state
    assert state.connectors[2].fault_since == at(0)
    assert state.sessions["tx-9"].connector_id == 2
    ended = feed(state, event(at(30), "Ended")).state
    assert ended.sessions == {}


def test_status_records_without_ocpp_count_as_records() -> None:
    def sample(moment: datetime) -> LogRecord:
        return LogRecord(
            vendor="evenergy",
            source_id="evse-1",
            charger_id="evse-1",
            timestamp=moment,
            kind="status",
            payload={"is_plugged_in": True, "is_charging": False, "charge_rate_watts": 0},
            record_id=record_id_for("evenergy", "evse-1", None, url=f"https://x/{moment.timestamp()}"),
            raw={},
        )

    state = feed(ChargerHealthState(), sample(at(0)), sample(at(5))).state
    assert state.latest_at == at(5)
    silent = evaluate(
        state,
        vendor="evenergy",
        source_id="evse-1",
        charger_id="evse-1",
        site_id=None,
        data_time=at(40),
        last_record_at=at(5),
        collector_healthy=True,
        thresholds=THRESHOLDS,
    )
    assert [alert.kind for alert in silent.opened] == ["offline"]
    back = feed(silent.state, sample(at(45)))
    assert [change.kind for change in back.resolved] == ["offline"]


# ---------------------------------------------------------------------------------------------- idempotency
def storyline(charger: Charger) -> list[LogRecord]:
    """Two days of a 1.6 charger with one episode of every kind but offline, each of which ends."""
    records = [*charger.boot(at(0)), *charger.heartbeats(5, 48 * 60)]
    records += [*charger.boot(at(60)), *charger.boot(at(65)), *charger.boot(at(70))]  # boot_loop, quiet from 100
    records += [charger.status(at(120), 1, "Faulted", "GroundFailure"), charger.status(at(140), 1, "Available")]
    records += [charger.error(at(200 + i), "DataTransfer") for i in range(5)]  # error_burst, quiet from 214
    records += [
        *charger.authorize(at(300), "Invalid"),
        *charger.authorize(at(301), "Invalid"),
        *charger.authorize(at(302), "Blocked"),
    ]
    records += charger.authorize(at(310), "Accepted")
    records += [charger.firmware(at(400), "DownloadFailed"), charger.firmware(at(500), "Downloading")]
    records += [charger.diagnostics(at(420), "UploadFailed")]  # expires at 420 + 24 h
    records += charger.start(at(600), 2, 7, 1_000)
    records += [charger.meter(at(600 + 10 * i), 2, 7, 1_000) for i in range(1, 30)]  # stuck from 600 + 24 h
    records += [charger.stop(at(2100), 7, 1_000)]
    return records


STORY_KINDS = {
    "boot_loop",
    "connector_faulted",
    "error_burst",
    "authorization_failures",
    "firmware_failed",
    "diagnostics_failed",
    "stuck_session",
}


def pages(records: Sequence[LogRecord], sizes: Iterable[int]) -> list[list[LogRecord]]:
    ordered = sorted(records, key=lambda record: (record.timestamp, record.record_id))
    result: list[list[LogRecord]] = []
    start = 0
    for size in itertools.cycle(sizes):
        if start >= len(ordered):
            return result
        result.append(ordered[start : start + size])
        start += size
    raise AssertionError("unreachable")


def run_pages(
    state: ChargerHealthState, batches: Iterable[list[LogRecord]], *, seed: int = 0
) -> tuple[ChargerHealthState, list[AlertChange]]:
    changes: list[AlertChange] = []
    rng = random.Random(seed)  # noqa: S311 - a fixed order
    for batch in batches:
        shuffled = list(batch)
        rng.shuffle(shuffled)
        observation = observe(state, shuffled, thresholds=THRESHOLDS)
        changes.extend(observation.changes)
        state = observation.state
    return state, changes


def test_the_storyline_opens_and_resolves_every_episode_once_however_it_is_paged() -> None:
    charger = Charger()
    records = storyline(charger)
    whole = observe(ChargerHealthState(), records, thresholds=THRESHOLDS)
    assert Counter(alert.kind for alert in whole.opened) == Counter(STORY_KINDS)
    assert Counter(change.kind for change in whole.resolved) == Counter(STORY_KINDS)
    assert whole.state.open_alerts == {}
    expected = [(change.action, change.alert_id) for change in whole.changes]
    for sizes in ([1], [7, 1, 50], [200], [33, 2]):
        state, changes = run_pages(ChargerHealthState(), pages(records, sizes), seed=sum(sizes))
        assert [(change.action, change.alert_id) for change in changes] == expected
        assert state == whole.state
    assert_nothing_changes(whole.state, records)


def test_overlapping_pages_like_a_lookback_open_each_episode_once() -> None:
    charger = Charger()
    records = sorted(storyline(charger), key=lambda record: record.timestamp)
    state, changes = ChargerHealthState(), list[AlertChange]()
    step, lookback = timedelta(minutes=5), timedelta(minutes=30)
    end = at(5)
    while end <= at(48 * 60 + 5):
        window = [record for record in records if end - step - lookback <= record.timestamp <= end]
        observation = observe(state, window, thresholds=THRESHOLDS)
        changes.extend(observation.changes)
        state = observation.state
        monitor = tick(charger, state, end)
        changes.extend(monitor.changes)
        state = monitor.state
        end += step
    opens = Counter(change.alert_id for change in changes if change.action == "open")
    assert set(opens.values()) == {1}
    assert len(opens) == len(STORY_KINDS)
    assert Counter(change.kind for change in changes if change.action == "resolve") == Counter(STORY_KINDS)


def test_a_replay_long_after_everything_resolved_changes_nothing() -> None:
    charger = Charger()
    records = storyline(charger)
    state = observe(ChargerHealthState(), records, thresholds=THRESHOLDS).state
    state = tick(charger, state, at(10 * 24 * 60), healthy=True).state  # a silence: offline opens
    state = observe(state, [charger.heartbeat(at(10 * 24 * 60 + 1))], thresholds=THRESHOLDS).state
    assert state.open_alerts == {}
    assert_nothing_changes(state, records)


def test_a_state_lost_and_rebuilt_from_the_same_records_derives_the_same_alert_ids() -> None:
    charger = Charger()
    records = storyline(charger)
    first = observe(ChargerHealthState(), records, thresholds=THRESHOLDS)
    rebuilt = observe(ChargerHealthState(), list(reversed(records)), thresholds=THRESHOLDS)
    assert [alert.alert_id for alert in first.opened] == [alert.alert_id for alert in rebuilt.opened]


# ---------------------------------------------------------------------------------------------- the state, the results
def test_ordinary_traffic_within_an_hour_does_not_change_the_state() -> None:
    charger = Charger()
    state = feed(ChargerHealthState(), charger.boot(at(0)), charger.heartbeat(at(5))).state
    quiet = feed(state, charger.heartbeats(10, 55))
    assert not quiet.changed
    assert quiet.changes == ()
    assert quiet.state.latest_at == at(50)  # exact in the returned state
    assert feed(quiet.state, charger.heartbeat(at(60))).changed  # a new hour: written once


def test_the_state_serializes_compactly_and_reads_back_equal() -> None:
    assert ChargerHealthState().model_dump_json(exclude_defaults=True) == "{}"
    charger = Charger()
    state = observe(ChargerHealthState(), storyline(charger)[:400], thresholds=THRESHOLDS).state
    text = state.model_dump_json(exclude_defaults=True)
    assert ChargerHealthState.model_validate_json(text) == state
    assert len(text) < 2000
    assert set(json.loads(text)) <= set(ChargerHealthState.model_fields)


def test_observe_reads_one_charger_and_nothing_is_nothing() -> None:
    with pytest.raises(ValueError, match="one charger"):
        observe(
            ChargerHealthState(),
            [Charger(charger_id="A").heartbeat(at(0)), Charger(charger_id="B").heartbeat(at(0))],
            thresholds=THRESHOLDS,
        )
    state = ChargerHealthState()
    assert observe(state, [], thresholds=THRESHOLDS) == Observation(state)


def test_evaluate_wants_aware_times() -> None:
    with pytest.raises(ValueError, match="aware"):
        tick(Charger(), ChargerHealthState(), datetime(2026, 3, 2))


def test_alert_changes_say_what_they_are() -> None:
    charger = Charger()
    alert = opened(feed(ChargerHealthState(), [*charger.boot(at(0)), *charger.boot(at(1)), *charger.boot(at(2))]))[0]
    change = AlertChange.opened(alert)
    assert (change.action, change.alert_id, change.kind, change.connector_id, change.alert) == (
        "open",
        alert.alert_id,
        "boot_loop",
        None,
        alert,
    )
    with pytest.raises(ValueError, match="resolution"):
        AlertChange("resolve", alert.alert_id, "boot_loop")
    with pytest.raises(ValueError, match="alert"):
        AlertChange("open", alert.alert_id, "boot_loop")
    many = AlertChange.resolved(alert.alert_id, "boot_loop", None, at(5), "over", [f"r{i}" for i in range(50)])
    assert len(many.resolution_evidence) == MAX_EVIDENCE
