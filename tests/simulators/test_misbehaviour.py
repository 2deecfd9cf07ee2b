"""Healthy traffic by default, misbehaviours on demand, and live traffic.

The health alerts these stay clear of or provoke are docs/health.md's: boot_loop (>= 3 BootNotifications in 30
minutes), connector_faulted (Faulted or an error code not recovered within 5 minutes), offline (no record for 30
minutes), error_burst (>= 5 CALLERRORs or rejected answers in 10 minutes), authorization_failures (>= 3 refused
id tags in 15 minutes), firmware_failed, diagnostics_failed and stuck_session (a transaction open > 24 h with
no meter progress).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from random import Random
from typing import Any

import httpx
import ocpp
import pytest
from jsonschema import Draft4Validator

from chargelog.collectors.chargepilot import ChargepilotSignature
from chargelog_simulators import chargepilot, evenergy, ocpplab, plugchoice
from chargelog_simulators.base import LiveTraffic, ManualClock, VendorSimulator
from chargelog_simulators.chargepilot import ChargepilotSimulator
from chargelog_simulators.evenergy import EvEnergySimulator
from chargelog_simulators.ocpplab import OcpplabSimulator
from chargelog_simulators.plugchoice import PlugchoiceSimulator
from chargelog_simulators.traffic import (
    CALL,
    CALLERROR,
    CALLRESULT,
    FLAKY,
    AuthorizationFailures,
    Behaviour,
    BootLoop,
    Density,
    DiagnosticsFailure,
    ErrorBurst,
    FaultedConnector,
    FirmwareFailure,
    Misbehaviour,
    Silent,
    StuckSession,
    TrafficFeed,
    TrafficFrame,
    generate_traffic,
    iter_traffic,
)

T0 = datetime(2026, 4, 1, tzinfo=UTC)
AT = T0 + timedelta(hours=10)  # where the tests place an episode
MINUTE = timedelta(minutes=1)
HEARTBEAT = timedelta(seconds=300 * 1.01 + 1)  # the longest a running charger stays quiet
SCHEMAS = Path(ocpp.__file__).parent / "v16" / "schemas"
FAILED_STATUSES = {"DownloadFailed", "InstallationFailed", "UploadFailed"}


# ---------------------------------------------------------------------------------------------- reading traffic
def _calls(frames: Iterable[TrafficFrame], action: str | None = None) -> list[TrafficFrame]:
    return [f for f in frames if f.message_type_id == CALL and (action is None or f.action == action)]


def _answers(frames: Iterable[TrafficFrame]) -> dict[str, TrafficFrame]:
    return {f.message_id: f for f in frames if f.message_type_id != CALL}


def _refused_authorizations(frames: Iterable[TrafficFrame]) -> list[datetime]:
    return [
        f.timestamp
        for f in frames
        if f.action == "Authorize"
        and f.message_type_id == CALLRESULT
        and f.payload["idTagInfo"]["status"] != "Accepted"
    ]


def _refusals(frames: Iterable[TrafficFrame]) -> list[datetime]:
    """CALLERRORs and rejected answers (refused id tags, rejected configuration): error_burst's count."""
    frames = list(frames)
    rejected = [
        f.timestamp
        for f in frames
        if f.message_type_id == CALLERROR
        or (f.action == "ChangeConfiguration" and f.payload.get("status") in ("Rejected", "NotSupported"))
    ]
    return sorted(rejected + _refused_authorizations(frames))


def _most_within(times: list[datetime], window: timedelta) -> int:
    """The most of ``times`` (sorted) within any ``window``."""
    most, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


def _faults(frames: Iterable[TrafficFrame]) -> list[tuple[int, datetime, datetime | None, str]]:
    """Each fault of a connector (Faulted or an error code): (connector, since, until (None: not over), code)."""
    open_faults: dict[int, tuple[datetime, str]] = {}
    faults: list[tuple[int, datetime, datetime | None, str]] = []
    for call in _calls(frames, "StatusNotification"):
        connector, payload = call.payload["connectorId"], call.payload
        faulty = payload["status"] == "Faulted" or payload["errorCode"] != "NoError"
        if faulty and connector not in open_faults:
            open_faults[connector] = (call.timestamp, payload["errorCode"])
        elif not faulty and connector in open_faults:
            since, code = open_faults.pop(connector)
            faults.append((connector, since, call.timestamp, code))
    faults += [(connector, since, None, code) for connector, (since, code) in open_faults.items()]
    return faults


def _largest_gap(frames: list[TrafficFrame]) -> timedelta:
    return max(later.timestamp - earlier.timestamp for earlier, later in itertools.pairwise(frames))


def _firmware_and_diagnostics(frames: Iterable[TrafficFrame]) -> list[tuple[datetime, str]]:
    return [
        (f.timestamp, f.payload["status"])
        for f in _calls(frames)
        if f.action in ("FirmwareStatusNotification", "DiagnosticsStatusNotification")
    ]


def _within(frames: Iterable[TrafficFrame], start: datetime, end: datetime) -> list[TrafficFrame]:
    return [f for f in frames if start <= f.timestamp <= end]


def _outside(frames: Iterable[TrafficFrame], start: datetime, end: datetime) -> list[TrafficFrame]:
    return [f for f in frames if not start <= f.timestamp <= end]


def _names_connector(frame: TrafficFrame, connector: int) -> bool:
    return frame.message_type_id == CALL and frame.payload.get("connectorId") == connector


def _traffic(
    *misbehaviours: Misbehaviour,
    start: datetime = T0,
    days: float = 1,
    connectors: int = 2,
    seed: int = 3,
    boot: bool = True,
    density: Density | None = None,
) -> list[TrafficFrame]:
    behaviour = Behaviour(misbehaviours=misbehaviours)
    end = start + timedelta(days=days)
    return generate_traffic("CP-MIS", start, end, Random(seed), connectors, density, boot, behaviour=behaviour)  # noqa: S311


@cache
def _schema(action: str, response: bool) -> Draft4Validator:
    path = SCHEMAS / f"{action}{'Response' if response else ''}.json"
    return Draft4Validator(json.loads(path.read_text("utf-8-sig")), format_checker=Draft4Validator.FORMAT_CHECKER)


# ---------------------------------------------------------------------------------------------- healthy traffic
@pytest.fixture(scope="module")
def healthy_week() -> dict[str, list[TrafficFrame]]:
    """A week of four chargers' default traffic (1, 2, 2 and 4 connectors)."""
    return {
        f"CP-{n}": generate_traffic(
            f"CP-{n}",
            T0,
            T0 + timedelta(days=7),
            Random(n),  # noqa: S311 - seeded test data
            connectors,
        )
        for n, connectors in enumerate((1, 2, 2, 4))
    }


def _assert_healthy(frames: list[TrafficFrame], cut: tuple[datetime, datetime] | None = None) -> None:
    """No alert of any kind comes of these frames (those of ``cut``, an episode's span, left out)."""
    if cut is not None:
        frames = _outside(frames, *cut)
    boots = _calls(frames, "BootNotification")
    assert boots == [_calls(frames)[0]]  # the boot at the start, then none
    gaps = [
        later.timestamp - earlier.timestamp
        for earlier, later in itertools.pairwise(frames)
        if cut is None or not earlier.timestamp < cut[0] < cut[1] < later.timestamp
    ]
    assert max(gaps) < timedelta(minutes=30)
    for connector, since, until, code in _faults(frames):
        assert until is not None, (connector, since, code)
        assert until - since <= timedelta(minutes=4), (connector, since, until, code)
    assert not [status for _, status in _firmware_and_diagnostics(frames) if status in FAILED_STATUSES]
    assert _most_within(_refused_authorizations(frames), timedelta(minutes=15)) < 3
    assert _most_within(_refusals(frames), timedelta(minutes=10)) < 5
    # stuck_session: every transaction's meter moves, or it stops within a day
    answers = _answers(frames)
    started = {
        answers[start.message_id].payload["transactionId"]: start.timestamp
        for start in _calls(frames, "StartTransaction")
    }
    for transaction_id, since in started.items():
        registers = {
            sampled["value"]
            for meter in _calls(frames, "MeterValues")
            if meter.payload["transactionId"] == transaction_id
            for sampled in meter.payload["meterValue"][0]["sampledValue"]
            if sampled["measurand"] == "Energy.Active.Import.Register"
        }
        assert len(registers) > 1 or frames[-1].timestamp - since < timedelta(hours=24)


def test_a_week_of_default_traffic_opens_no_alert(healthy_week: dict[str, list[TrafficFrame]]) -> None:
    for frames in healthy_week.values():
        _assert_healthy(frames)


def test_healthy_traffic_keeps_its_isolated_troubles(healthy_week: dict[str, list[TrafficFrame]]) -> None:
    """Transient faults, refused id tags and CALLERRORs are realistic: they stay, just below every threshold."""
    every = [frame for frames in healthy_week.values() for frame in frames]
    assert len(_faults(every)) > 5
    assert len(_refused_authorizations(every)) > 5
    assert sum(1 for f in every if f.message_type_id == CALLERROR) > 5
    statuses = {status for _, status in _firmware_and_diagnostics(every)}
    assert {"Uploaded", "Installed"} <= statuses


def test_busy_healthy_traffic_keeps_refusals_apart() -> None:
    """With CSMS operations every 5 minutes and sessions every 10, refusals would cluster: they are kept
    isolated, so no burst comes of them."""
    density = Density(session_gap_seconds=600, meter_interval_seconds=60, csms_call_gap_seconds=300)
    frames = _traffic(days=2, connectors=4, density=density)
    refusals = _refusals(frames)

    assert len(refusals) > 20
    assert all(later - earlier >= timedelta(minutes=15) for earlier, later in itertools.pairwise(refusals))
    _assert_healthy(frames)


def test_flaky_behaviour_has_the_old_failures() -> None:
    density = Density(csms_call_gap_seconds=300, session_gap_seconds=600)
    frames = generate_traffic("CP-FLAKY", T0, T0 + timedelta(days=2), Random(1), 2, density, behaviour=FLAKY)  # noqa: S311

    statuses = Counter(status for _, status in _firmware_and_diagnostics(frames))
    assert {"UploadFailed", "DownloadFailed"} <= set(statuses)
    assert any(until is not None and until - since > timedelta(minutes=5) for _, since, until, _ in _faults(frames))


def test_the_same_seed_and_behaviour_give_the_same_frames() -> None:
    episodes = (
        BootLoop(AT),
        FaultedConnector(AT + timedelta(hours=2), connector=2),
        StuckSession(AT + timedelta(hours=1), connector=1),
    )

    assert _traffic(*episodes, seed=9) == _traffic(*episodes, seed=9)
    assert _traffic(*episodes, seed=9) != _traffic(*episodes, seed=10)


def test_every_misbehaviours_frame_validates_against_the_ocpp16_schemas() -> None:
    hours = [AT + timedelta(hours=n) for n in range(0, 40, 3)]
    frames = _traffic(
        BootLoop(hours[0]),
        FaultedConnector(hours[1], connector=2, error_code="HighTemperature"),
        Silent(hours[2]),
        Silent(hours[3], reboot=False),
        FirmwareFailure(hours[4], failure="InstallationFailed"),
        FirmwareFailure(hours[6], timedelta(minutes=30), failure="DownloadFailed", recover=False),
        DiagnosticsFailure(hours[7]),
        ErrorBurst(hours[8]),
        AuthorizationFailures(hours[9], connector=2),
        StuckSession(hours[10], timedelta(hours=6), connector=1),
        days=3,
    )
    for frame in frames:
        if frame.message_type_id == CALLERROR:
            continue
        errors = list(_schema(frame.action, frame.message_type_id == CALLRESULT).iter_errors(frame.payload))
        assert not errors, (frame, errors[0].message)
    assert len({f.message_id for f in frames}) == len(frames) / 2


# ---------------------------------------------------------------------------------------------- each misbehaviour
def test_boot_loop_reboots_every_few_minutes_for_its_span_then_runs_normally() -> None:
    loop = BootLoop(AT, timedelta(minutes=30), every=timedelta(minutes=4))
    frames = _traffic(loop)

    boots = [call.timestamp for call in _calls(frames, "BootNotification")]
    in_span = [moment for moment in boots if loop.at <= moment < loop.until]
    assert boots == [boots[0], *in_span]
    assert boots[0] < T0 + MINUTE  # the charger's own boot at the start
    assert in_span[0] == loop.at
    assert len(in_span) == 8  # ceil(30 / 4)
    assert _most_within(in_span, timedelta(minutes=30)) >= 3
    for earlier, later in itertools.pairwise(in_span):
        assert timedelta(minutes=3.8) <= later - earlier <= timedelta(minutes=4.2)
    during = _calls(_within(frames, loop.at, loop.until))
    assert {call.action for call in during} == {"BootNotification", "StatusNotification"}
    assert {call.payload["status"] for call in _calls(during, "StatusNotification")} == {"Available"}
    assert len(_calls(during, "StatusNotification")) == 3 * len(in_span)  # connectors 0, 1, 2
    after = _calls(_outside(frames, T0, loop.until))
    assert after[0].action == "Heartbeat"
    assert after[0].timestamp - loop.until <= HEARTBEAT
    assert _calls(after, "StartTransaction")  # sessions again
    _assert_healthy(frames, (loop.at, loop.until))


def test_faulted_connector_stays_faulted_for_its_span_then_is_available() -> None:
    fault = FaultedConnector(AT, timedelta(minutes=45), connector=2, error_code="OverCurrentFailure")
    frames = _traffic(fault)

    faults = [f for f in _faults(frames) if f[2] is None or f[2] - f[1] > timedelta(minutes=4)]
    assert faults == [(2, fault.at, fault.until, "OverCurrentFailure")]
    (faulted,) = [c for c in _calls(frames, "StatusNotification") if c.timestamp == fault.at]
    assert faulted.payload["status"] == "Faulted"
    assert faulted.payload["vendorErrorCode"]
    assert "OverCurrentFailure" in faulted.payload["info"]
    on_connector = [f for f in _within(frames, fault.at, fault.until) if _names_connector(f, 2)]
    assert [f.payload["status"] for f in on_connector] == ["Faulted", "Available"]
    assert _largest_gap(_within(frames, fault.at, fault.until)) <= HEARTBEAT  # the charger itself talks on
    _assert_healthy(frames, (fault.at, fault.until))


@pytest.mark.parametrize("reboot", [True, False])
def test_silent_charger_sends_nothing_for_its_span_then_boots_or_resumes(reboot: bool) -> None:
    silent = Silent(AT, timedelta(hours=2), reboot=reboot)
    frames = _traffic(silent)

    before = [f for f in frames if f.timestamp < silent.at]
    after = [f for f in frames if f.timestamp >= silent.at]
    assert after[0].timestamp == silent.until
    assert silent.at - before[-1].timestamp <= HEARTBEAT
    assert after[0].action == ("BootNotification" if reboot else "Heartbeat")
    assert len(_calls(frames, "BootNotification")) == (2 if reboot else 1)
    assert _largest_gap(after) <= HEARTBEAT + timedelta(seconds=30)
    assert _calls(after, "StartTransaction")
    assert _largest_gap(frames) == after[0].timestamp - before[-1].timestamp


@pytest.mark.parametrize("failure", ["DownloadFailed", "InstallationFailed"])
@pytest.mark.parametrize("recover", [True, False])
def test_firmware_failure_fails_at_its_time_and_succeeds_later_if_asked(failure: Any, recover: bool) -> None:
    episode = FirmwareFailure(AT, timedelta(hours=3), failure=failure, recover=recover)
    frames = _traffic(episode)

    updates = [call for call in _calls(frames, "UpdateFirmware") if episode.at <= call.timestamp <= episode.until]
    assert [call.timestamp for call in updates] == ([episode.at, episode.until] if recover else [episode.at])
    assert all(_answers(frames)[call.message_id].message_type_id == CALLRESULT for call in updates)
    statuses = [
        status
        for moment, status in _firmware_and_diagnostics(frames)
        if episode.at <= moment <= episode.until + 10 * MINUTE
    ]
    failed = (
        ["Downloading", failure]
        if failure == "DownloadFailed"
        else ["Downloading", "Downloaded", "Installing", failure]
    )
    assert statuses == failed + (["Downloading", "Downloaded", "Installing", "Installed"] if recover else [])
    csms_calls = [c for c in _calls(_within(frames, episode.at, episode.until)) if c.direction == "csms_to_cp"]
    assert [c.action for c in csms_calls] == ["UpdateFirmware"] * len(updates)  # nothing else from the CSMS
    _assert_healthy(frames, (episode.at, episode.until + 10 * MINUTE))


def test_diagnostics_failure_uploads_then_fails_at_the_end_of_its_span() -> None:
    episode = DiagnosticsFailure(AT, timedelta(minutes=5))
    frames = _traffic(episode)

    (request,) = [c for c in _calls(frames, "GetDiagnostics") if c.timestamp == episode.at]
    assert _answers(frames)[request.message_id].payload["fileName"]
    statuses = [(moment, status) for moment, status in _firmware_and_diagnostics(frames) if status != "Idle"]
    in_span = [(moment, status) for moment, status in statuses if episode.at <= moment <= episode.until]
    assert [status for _, status in in_span] == ["Uploading", "UploadFailed"]
    assert in_span[1][0] == episode.until
    assert [status for _, status in statuses].count("UploadFailed") == 1
    _assert_healthy(frames, (episode.at, episode.until))


def test_error_burst_answers_its_calls_with_callerrors_in_a_few_minutes() -> None:
    burst = ErrorBurst(AT, timedelta(minutes=5), count=8)
    frames = _traffic(burst, density=Density(csms_call_gap_seconds=900))

    errors = [f for f in frames if f.message_type_id == CALLERROR]
    in_span = [f for f in errors if burst.at <= f.timestamp <= burst.until + MINUTE]
    assert len(in_span) == 8
    assert {f.action for f in in_span} <= {"TriggerMessage", "ChangeConfiguration"}
    assert all(f.direction == "cp_to_csms" for f in in_span)
    assert _most_within([f.timestamp for f in in_span], timedelta(minutes=10)) >= 5
    around = (burst.at - timedelta(minutes=15), burst.until + timedelta(minutes=15))
    assert [moment for moment in _refusals(frames) if around[0] <= moment <= around[1]] == [
        f.timestamp for f in in_span
    ]
    _assert_healthy(frames, (burst.at, burst.until + MINUTE))


def test_authorization_failures_refuse_several_id_tags_in_a_few_minutes() -> None:
    episode = AuthorizationFailures(AT, timedelta(minutes=6), connector=2, count=5)
    frames = _traffic(episode, density=Density(session_gap_seconds=900))

    refused = _refused_authorizations(frames)
    in_span = [moment for moment in refused if episode.at <= moment <= episode.until]
    assert len(in_span) == 5
    assert _most_within(in_span, timedelta(minutes=15)) >= 3
    around = (episode.at - timedelta(minutes=15), episode.until + timedelta(minutes=15))
    assert [moment for moment in refused if around[0] <= moment <= around[1]] == in_span
    on_connector = [f.payload["status"] for f in _within(frames, episode.at, episode.until) if _names_connector(f, 2)]
    assert on_connector == ["Preparing", "Available"] * 5
    _assert_healthy(frames, (episode.at, episode.until + MINUTE))


def test_stuck_session_holds_a_transaction_without_meter_progress_until_it_stops() -> None:
    stuck = StuckSession(AT, timedelta(hours=26), connector=1)
    frames = _traffic(stuck, days=2)

    (start,) = [
        c
        for c in _calls(frames, "StartTransaction")
        if c.payload["connectorId"] == 1 and c.timestamp >= stuck.at - MINUTE and c.timestamp < stuck.until
    ]
    transaction_id = _answers(frames)[start.message_id].payload["transactionId"]
    meters = [c for c in _calls(frames, "MeterValues") if c.payload["transactionId"] == transaction_id]
    registers = {
        sampled["value"]
        for meter in meters
        for sampled in meter.payload["meterValue"][0]["sampledValue"]
        if sampled["measurand"] == "Energy.Active.Import.Register"
    }
    assert registers == {str(start.payload["meterStart"])}
    assert meters[-1].timestamp - meters[0].timestamp > timedelta(hours=24)
    (stop,) = [c for c in _calls(frames, "StopTransaction") if c.payload["transactionId"] == transaction_id]
    assert stop.timestamp == stuck.until
    assert stop.payload["meterStop"] == start.payload["meterStart"]
    on_connector = [f for f in _within(frames, stuck.at, stuck.until) if _names_connector(f, 1)]
    assert [f.action for f in on_connector if f.action != "MeterValues"] == [
        "StatusNotification",
        "StartTransaction",
        "StatusNotification",
    ]
    assert _calls(frames, "StartTransaction")[-1].timestamp > stuck.until  # sessions again after it
    _assert_healthy(frames, (stuck.at, stuck.until + 2 * MINUTE))


def test_an_episode_crossing_two_seeded_spans_continues_in_the_second() -> None:
    stuck = StuckSession(T0 + timedelta(hours=20), timedelta(hours=26), connector=2)
    fault = FaultedConnector(T0 + timedelta(hours=23), timedelta(hours=2), connector=1)
    whole = _traffic(stuck, fault, days=2)
    first = _traffic(stuck, fault, days=1)
    second = _traffic(stuck, fault, start=T0 + timedelta(days=1), days=1, boot=False, seed=4)

    def episode_ids(frames: list[TrafficFrame]) -> list[str]:
        return [
            f.message_id
            for f in _calls(frames)
            if (stuck.at <= f.timestamp <= stuck.until and _names_connector(f, 2))
            or (fault.at <= f.timestamp <= fault.until and _names_connector(f, 1))
        ]

    assert episode_ids(first) + episode_ids(second) == episode_ids(whole)
    assert not _calls(second, "BootNotification")
    assert [f.payload["status"] for f in _calls(second) if f.timestamp <= fault.until and _names_connector(f, 1)] == [
        "Available"
    ]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Behaviour(misbehaviours=(FaultedConnector(AT, connector=3),)), "connector 3"),
        (lambda: Behaviour(misbehaviours=(BootLoop(AT), Silent(AT + MINUTE))), "overlap"),
        (
            lambda: Behaviour(misbehaviours=(StuckSession(AT, connector=1), AuthorizationFailures(AT, connector=1))),
            "overlap",
        ),
    ],
)
def test_misbehaviours_that_cannot_be_played_are_refused(build: Callable[[], Behaviour], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        iter_traffic("CP-X", T0, T0 + timedelta(days=1), Random(1), 2, behaviour=build())  # noqa: S311


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: BootLoop(datetime(2026, 4, 1)), "aware"),  # a naive datetime
        (lambda: Silent(AT, timedelta(0)), "positive"),
        (lambda: BootLoop(AT, every=timedelta(seconds=20)), "at least a minute"),
        (lambda: FaultedConnector(AT, error_code="NoError"), "error_code"),
        (lambda: ErrorBurst(AT, timedelta(seconds=10), count=8), "4 s a CALL"),
        (lambda: AuthorizationFailures(AT, timedelta(minutes=2), count=4), "a minute an attempt"),
        (lambda: Behaviour(refused_authorize=1.5), "between 0 and 1"),
        (lambda: Behaviour(fault_seconds=(300, 30)), "low <= high"),
    ],
)
def test_invalid_misbehaviours_and_behaviours_are_errors(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_episodes_of_other_streams_may_overlap() -> None:
    frames = _traffic(
        FaultedConnector(AT, timedelta(hours=1), connector=1),
        AuthorizationFailures(AT, connector=2),
        ErrorBurst(AT),
    )
    assert len(_refused_authorizations(_within(frames, AT, AT + timedelta(minutes=6)))) == 4


# ---------------------------------------------------------------------------------------------- feeds and live traffic
def test_a_feed_hands_out_endless_traffic_in_whole_exchanges() -> None:
    feed = TrafficFeed(iter_traffic("CP-FEED", T0, None, Random(2), 2))  # noqa: S311
    batches = [feed.until(T0 + timedelta(minutes=7 * n)) for n in range(1, 200)]
    handed = [frame for batch in batches for frame in batch]

    reference = iter_traffic("CP-FEED", T0, None, Random(2), 2)  # noqa: S311
    assert handed == [next(reference) for _ in handed]
    for batch in batches:
        calls = {f.message_id for f in batch if f.message_type_id == CALL}
        assert calls == {f.message_id for f in batch if f.message_type_id != CALL}
    assert handed[-1].timestamp > T0 + timedelta(hours=23)


def _ocpplab(clock: ManualClock) -> OcpplabSimulator:
    simulator = OcpplabSimulator(seed=3, clock=clock)
    simulator.add_charger("dep-live")
    return simulator


def test_a_streamed_charger_continues_its_traffic_as_the_clock_moves() -> None:
    clock = ManualClock(T0)
    simulator = _ocpplab(clock)
    stuck = StuckSession(T0 + timedelta(hours=1), timedelta(hours=25))
    added = simulator.stream("dep-live", T0 - timedelta(hours=2), behaviour=Behaviour(misbehaviours=(stuck,)))
    assert added == len(simulator.visible_records("dep-live")) > 0

    for _ in range(6 * 28):  # 28 hours, a pass every 10 minutes
        clock.advance(600)
        simulator.catch_up(timedelta(minutes=2))
    records = simulator.visible_records("dep-live")
    frames = [json.loads(record["message"]) for record in records]

    times = [datetime.fromisoformat(record["timestamp"]) for record in records]
    assert max(later - earlier for earlier, later in itertools.pairwise(times)) <= HEARTBEAT
    assert times[-1] > clock() - HEARTBEAT
    actions = Counter(record["action"] for record in records if json.loads(record["message"])[0] == CALL)
    assert actions["BootNotification"] == 1
    assert abs(actions["StartTransaction"] - actions["StopTransaction"]) <= 2  # sessions end: none cut at a pass
    assert [frame[3]["reason"] for frame in frames if frame[:1] == [CALL] and frame[2] == "StopTransaction"].count(
        "Other"
    ) == 1  # the stuck session, stopped at its end, a day after it began
    sent = Counter(frame[1] for frame in frames)
    unanswered = [record for record in records if sent[json.loads(record["message"])[1]] == 1]
    assert set(sent.values()) <= {1, 2}  # every CALL once, with its answer...
    assert all(clock() - datetime.fromisoformat(r["timestamp"]) < timedelta(seconds=1) for r in unanswered)  # ...soon


def test_retention_forgets_old_records() -> None:
    clock = ManualClock(T0)
    simulator = _ocpplab(clock)
    simulator.stream("dep-live", T0 - timedelta(days=1))
    simulator.retention = timedelta(hours=2)

    simulator.catch_up()
    first = datetime.fromisoformat(simulator.visible_records("dep-live")[0]["timestamp"])

    assert T0 - timedelta(hours=2) <= first < T0 - timedelta(hours=1, minutes=50)


def test_live_traffic_adds_records_as_the_clock_moves_and_stops() -> None:
    clock = ManualClock(T0)
    simulator = _ocpplab(clock)
    simulator.stream("dep-live", T0 - timedelta(hours=1))
    before = len(simulator.visible_records("dep-live"))

    with LiveTraffic(simulator, interval_seconds=0.01) as live:
        clock.advance(3600)
        deadline = time.monotonic() + 10
        while datetime.fromisoformat(simulator.visible_records("dep-live")[-1]["timestamp"]) < clock() - HEARTBEAT:
            assert time.monotonic() < deadline, "no live records"
            time.sleep(0.01)
        assert live.running
    assert not live.running
    assert not [t for t in threading.enumerate() if t.name.startswith("live-traffic")]
    assert live.passes >= 1
    grown = len(simulator.visible_records("dep-live"))
    assert grown > before + 20

    clock.advance(10)  # what the last pass added ahead shows now; nothing more comes
    settled = len(simulator.visible_records("dep-live"))
    clock.advance(3600)
    time.sleep(0.05)
    assert len(simulator.visible_records("dep-live")) == settled


def _plugchoice(clock: ManualClock) -> tuple[VendorSimulator, Callable[[], list[dict[str, Any]]]]:
    simulator = PlugchoiceSimulator(seed=3, clock=clock, string_params_rate=0)
    simulator.add_charger("c0ffee00-0000-4000-8000-000000000001")
    simulator.stream("c0ffee00-0000-4000-8000-000000000001", T0 - timedelta(hours=1))
    return simulator, lambda: simulator.visible_records("c0ffee00-0000-4000-8000-000000000001")


def _chargepilot(clock: ManualClock) -> tuple[VendorSimulator, Callable[[], list[dict[str, Any]]]]:
    simulator = ChargepilotSimulator(seed=3, clock=clock)
    simulator.add_site("site-live", "key")
    simulator.add_charger("site-live", "CP-A", 2)
    simulator.add_charger("site-live", "CP-B", 1)
    simulator.stream("site-live", T0 - timedelta(hours=1))
    return simulator, lambda: simulator.visible_records("site-live")


def _evenergy(clock: ManualClock) -> tuple[VendorSimulator, Callable[[], list[dict[str, Any]]]]:
    simulator = EvEnergySimulator(seed=3, clock=clock)
    simulator.add_evse("evse-live", "client")
    simulator.stream("evse-live", T0 - timedelta(hours=1))
    return simulator, lambda: simulator.visible_records("evse-live")


@pytest.mark.parametrize("build", [_plugchoice, _chargepilot, _evenergy])
def test_every_simulator_streams_live_records(
    build: Callable[[ManualClock], tuple[VendorSimulator, Callable[[], list[dict[str, Any]]]]],
) -> None:
    clock = ManualClock(T0)
    simulator, records = build(clock)
    before = len(records())

    for _ in range(12):
        clock.advance(300)
        simulator.catch_up(timedelta(minutes=2))
    after = records()

    assert before > 0
    assert len(after) > before + 10
    if isinstance(simulator, PlugchoiceSimulator):
        assert {log["status"] for log in after} <= {"done", "failed"}  # no answer lost between passes
    if isinstance(simulator, ChargepilotSimulator):
        authorizations = [e for e in after if e["action"] == "Authorize"]
        assert all(e["response_id_tag_info_status"] for e in authorizations)
        assert {e["charger_id"] for e in after} == {"CP-A", "CP-B"}


def test_evenergy_takes_no_sample_while_silent() -> None:
    clock = ManualClock(T0 + timedelta(days=1))
    simulator = EvEnergySimulator(seed=3, clock=clock)
    simulator.add_evse("evse-quiet", "client")
    silent = Silent(AT, timedelta(hours=3))
    simulator.seed("evse-quiet", T0, T0 + timedelta(days=1), behaviour=Behaviour(misbehaviours=(silent,)))

    sampled = [datetime.fromisoformat(r["sampled_at"]) for r in simulator.visible_records("evse-quiet")]
    assert not [moment for moment in sampled if silent.at <= moment <= silent.until]
    assert next(moment for moment in sampled if moment > silent.until) - silent.until <= timedelta(minutes=6)
    assert [moment for moment in sampled if moment < silent.at][-1] > silent.at - timedelta(minutes=6)
    with pytest.raises(ValueError, match="only Silent"):
        simulator.seed("evse-quiet", T0, T0 + timedelta(hours=1), behaviour=Behaviour(misbehaviours=(BootLoop(AT),)))


# ---------------------------------------------------------------------------------------------- the local fleets
def _no_live_thread_left() -> bool:
    return not [thread for thread in threading.enumerate() if thread.name.startswith("live-traffic")]


def test_the_local_ocpplab_fleet_has_a_past_boot_loop_and_a_faulted_connector() -> None:
    base_url, credentials, stop = ocpplab.start_local()
    started = datetime.now(UTC)
    try:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {credentials['token']}"}) as http:
            boots = http.get("/ocpp/chargers/dep-8b14e5d0/logs", params={"event": "BootNotification"}).json()
            booted = [_at(item) for item in boots["data"] if item["direction"] == "cp_to_csms"]
            assert len(booted) == 1 + 10  # its boot a day ago, then one every 4 minutes for 40 minutes
            assert started - timedelta(hours=3, minutes=1) < booted[1] < booted[-1] < started - timedelta(hours=2)
            window = {"event": "StatusNotification", "start_date": (started - timedelta(hours=3)).isoformat()}
            statuses = http.get("/ocpp/chargers/dep-51d6fb38/logs", params=window).json()["data"]
            sent = [json.loads(item["message"])[3] for item in statuses if item["direction"] == "cp_to_csms"]
            third = [payload for payload in sent if payload["connector_id"] == 3]
            assert (third[-1]["status"], third[-1]["error_code"]) == ("Faulted", "GroundFailure")  # and still is
            faulted_at = datetime.fromisoformat(third[-1]["timestamp"])
            assert timedelta(hours=2) <= started - faulted_at < timedelta(hours=2, minutes=1)
    finally:
        stop()
    assert _no_live_thread_left()


def test_the_local_plugchoice_fleet_has_a_silent_charger_and_a_failed_firmware_update() -> None:
    base_url, credentials, stop = plugchoice.start_local()
    started = datetime.now(UTC)
    try:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {credentials['token']}"}) as http:
            home = http.get("/v3/chargers/c4d5e6f7-a8b9-4c0d-8e1f-2a3b4c5d6e7f/logs").json()["data"]
            assert started - _at(home[0], "created_at") > timedelta(minutes=89)  # newest first: silent since
            office = "/v3/chargers/0b9a8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d/logs"
            firmware = http.get(office, params={"filter[method]": "FirmwareStatusNotification"}).json()["data"]
            statuses = [_params(log)["status"] for log in reversed(firmware)]
            assert "InstallationFailed" in statuses
            assert "Installed" in statuses[statuses.index("InstallationFailed") :]
            failed = http.get(office, params={"filter[status]": "failed"}).json()["data"]
            assert len([log for log in failed if started - _at(log, "created_at") < timedelta(hours=2)]) >= 8
    finally:
        stop()
    assert _no_live_thread_left()


def test_the_local_chargepilot_sites_have_a_failed_firmware_update_and_a_past_silence() -> None:
    base_url, credentials, stop = chargepilot.start_local()
    started = datetime.now(UTC)
    try:
        auth = ChargepilotSignature(credentials["api_key"], credentials["api_secret"])
        with httpx.Client(base_url=base_url, auth=auth) as http:
            day: dict[str, str | int] = {"from": (started - timedelta(days=1)).isoformat(), "to": started.isoformat()}
            day["take"] = 1000
            firmware = http.get(
                "/ocpp-logs/site/site-8c04d3", params={**day, "actions": "FirmwareStatusNotification"}
            ).json()["ocpp_logs"]
            air = [e["request_status"] for e in reversed(firmware) if e["charger_id"] == "CP-AIR-02"]
            assert air[-2:] == ["Downloading", "DownloadFailed"]  # the last update failed
            quiet = {**day, "from": (started - timedelta(hours=9, minutes=55)).isoformat()}
            quiet["to"] = (started - timedelta(hours=7, minutes=5)).isoformat()
            riverside = http.get("/ocpp-logs/site/site-2f7a91", params=quiet).json()["ocpp_logs"]
            assert riverside
            assert "CP-RIV-03" not in {e["charger_id"] for e in riverside}
    finally:
        stop()
    assert _no_live_thread_left()


def test_the_local_evenergy_evses_have_one_gone_silent() -> None:
    base_url, credentials, stop = evenergy.start_local()
    started = datetime.now(UTC)
    try:
        with httpx.Client() as http:
            grant = http.post(
                base_url.removesuffix("/v2") + "/o/token", data={"grant_type": "client_credentials", **credentials}
            )
            headers = {"Authorization": f"Bearer {grant.json()['access_token']}", "EvEnergy-Version": "2"}
            recent = {"sampled_at__gte": (started - timedelta(minutes=44)).isoformat()}
            silent = http.get(
                f"{base_url}/evses/evse01HSH0C8R2F5T1Y6ZMB4QG7NWE/status_logs", params=recent, headers=headers
            )
            talking = http.get(
                f"{base_url}/evses/evse01HSH04KDEWF6Z4DB2J77J74K5/status_logs", params=recent, headers=headers
            )
            assert silent.json() == []
            assert talking.json()
    finally:
        stop()
    assert _no_live_thread_left()


def _at(item: dict[str, Any], name: str = "timestamp") -> datetime:
    return datetime.fromisoformat(item[name])


def _params(log: dict[str, Any]) -> dict[str, Any]:
    params = log["params"]
    return json.loads(params) if isinstance(params, str) else dict(params)
