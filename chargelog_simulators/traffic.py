"""Seeded, realistic OCPP 1.6 traffic of one charge point, for the vendor simulators to serve.

``generate_traffic`` plays a charge point with a few connectors over a time span and returns every OCPP-J
frame it exchanged with its CSMS, in time order:

- at the start (unless told the charge point is already running), BootNotification and a
  StatusNotification per connector (0 is the charge point itself);
- Heartbeats at the heartbeat interval;
- per connector, charging sessions separated by idle time: Preparing, Authorize (or a CSMS
  RemoteStartTransaction), StartTransaction, Charging, MeterValues every meter interval (energy register,
  power, current per phase L1..L3, voltage, state of charge), StopTransaction (after a CSMS
  RemoteStopTransaction when the stop is remote), Finishing, Available; now and then a Faulted connector
  with an error code instead of a session, or an Authorize that is refused;
- CSMS-initiated operations: GetDiagnostics (then DiagnosticsStatusNotification Uploading, Uploaded or
  UploadFailed), TriggerMessage (then the triggered message), ChangeConfiguration and UpdateFirmware (then
  FirmwareStatusNotification Downloading ... Installed), a few of them answered with a CALLERROR.

Every CALL is followed by its CALLRESULT (or CALLERROR) from the other side, with the same unique message id,
20 ms to 1 s later. Payloads are in the OCPP 1.6 JSON schemas' camelCase form and valid against them.
Message ids are UUIDs drawn from the caller's ``random.Random``, so a seed reproduces the traffic exactly
and ids are unique across everything generated. Timestamps are whole milliseconds, aware UTC; every frame
lies within [start, end]: an exchange whose answer would fall after ``end`` is not generated.

The streams of the charge point (station, each connector, the CSMS) are Python generators merged lazily by
time, so 200,000 frames take a couple of seconds and ``iter_traffic`` never holds more than one frame per
stream.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from random import Random
from typing import Any, Literal, NamedTuple
from urllib.parse import quote

Direction = Literal["cp_to_csms", "csms_to_cp"]
CALL = 2
CALLRESULT = 3
CALLERROR = 4

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

# One frame's answer comes this many milliseconds after the frame, at most.
MAX_REPLY_MS = 1000
# Chance that an Authorize is refused, that a connector faults instead of charging, that a CSMS-initiated
# CALL is answered with a CALLERROR.
REFUSED_AUTHORIZE = 0.05
CONNECTOR_FAULT = 0.04
CSMS_CALL_ERROR = 0.08

_VENDORS = (("OCPPLAB", "SDK-DC-50"), ("OCPPLAB", "SDK-AC-22"), ("Alfen BV", "NG920-61023"), ("ABB", "Terra AC"))
_FAULT_CODES = (
    "ConnectorLockFailure",
    "EVCommunicationError",
    "GroundFailure",
    "HighTemperature",
    "OverCurrentFailure",
    "PowerMeterFailure",
    "UnderVoltage",
    "OverVoltage",
)
_CONFIGURATION = (
    ("HeartbeatInterval", "300"),
    ("MeterValueSampleInterval", "60"),
    ("ConnectionTimeOut", "90"),
    ("MeterValuesSampledData", "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,SoC"),
    ("LocalAuthorizeOffline", "true"),
    ("AuthorizeRemoteTxRequests", "false"),
    ("WebSocketPingInterval", "60"),
)
_CALL_ERRORS = (
    ("InternalError", "Internal error while processing the request"),
    ("NotSupported", "Action is recognized but not supported"),
    ("GenericError", "Charge point busy, try again later"),
)


class TrafficFrame(NamedTuple):
    """One OCPP-J frame a charge point sent or received.

    ``action`` is the CALL's action, also on the CALLRESULT or CALLERROR that answers it. ``payload`` is the
    CALL's or CALLRESULT's payload; for a CALLERROR it holds ``errorCode``, ``errorDescription`` and
    ``errorDetails``.
    """

    timestamp: datetime
    direction: Direction
    action: str
    message_type_id: int
    message_id: str
    payload: dict[str, Any]

    def ocpp_j(self) -> list[Any]:
        """The frame as it travels on the WebSocket: ``[2, id, action, payload]``, ``[3, id, payload]`` or
        ``[4, id, errorCode, errorDescription, errorDetails]``."""
        if self.message_type_id == CALL:
            return [CALL, self.message_id, self.action, self.payload]
        if self.message_type_id == CALLRESULT:
            return [CALLRESULT, self.message_id, self.payload]
        error = self.payload
        return [CALLERROR, self.message_id, error["errorCode"], error["errorDescription"], error["errorDetails"]]


@dataclass(frozen=True)
class Density:
    """How busy the charge point is.

    The defaults give about 3,000 frames a day for two connectors. A benchmark wanting ~200,000 frames over
    three days can use ``Density(session_gap_seconds=600, meter_interval_seconds=4)`` (two connectors).
    """

    session_gap_seconds: float = 2 * 3600  # mean idle time of a connector between sessions
    session_seconds: float = 90 * 60  # mean charging time of a session (at least 5 minutes)
    meter_interval_seconds: float = 60.0  # MeterValues period while charging
    heartbeat_interval_seconds: float = 300.0
    csms_call_gap_seconds: float = 3 * 3600  # mean time between CSMS-initiated operations

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"Density.{name} must be positive, got {value!r}")


def to_ms(moment: datetime) -> int:
    """Whole milliseconds since the Unix epoch (rounded down) of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError(f"an aware datetime is needed, got {moment!r}")
    return (moment - EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """The aware UTC datetime of whole milliseconds since the Unix epoch."""
    # A float holds any millisecond of these centuries to well under a microsecond, which fromtimestamp
    # rounds away; it is several times faster than adding a timedelta.
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso_ms(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` of a UTC datetime, the form OCPP payload timestamps take here."""
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def random_uuid(rng: Random) -> str:
    """A version 4 UUID drawn from ``rng`` (``uuid.uuid4`` cannot be seeded), as OCPP message ids are."""
    bits = rng.getrandbits(128) & ~(0xF << 76 | 0x3 << 62) | (0x4 << 76 | 0x2 << 62)
    digits = f"{bits:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


class _SpanEnded(Exception):
    """Raised inside a stream when its next exchange would end after the span: the stream stops there."""


Stream = Generator[TrafficFrame, None, int]


class _ChargePoint:
    """One charge point's state while its traffic is generated; each ``_…`` generator is one stream of it."""

    def __init__(
        self, charger_id: str, start_ms: int, end_ms: int, rng: Random, connectors: int, density: Density, boot: bool
    ) -> None:
        self.charger_id = charger_id
        self.boot = boot
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.rng = rng
        self.connectors = connectors
        self.density = density
        self.transaction_id = rng.randint(1, 900_000)
        self.id_tags = [f"{rng.getrandbits(56):014X}" for _ in range(8)]
        self.vendor, self.model = rng.choice(_VENDORS)
        self.max_power_w = rng.choice((7_400, 11_000, 22_000))

    # ------------------------------------------------------------------ plumbing
    def exchange(
        self,
        at: int,
        action: str,
        request: dict[str, Any],
        response: dict[str, Any] | Callable[[str], dict[str, Any]],
        *,
        from_cp: bool = True,
        error: tuple[str, str] | None = None,
    ) -> Stream:
        """A CALL at ``at`` and its CALLRESULT (or, given ``error``, a CALLERROR with that code and
        description); returns when the answer was sent. ``response`` may be a function of the answer's ISO
        time, for ``currentTime``."""
        reply_at = at + 20 + int(self.rng.random() * (MAX_REPLY_MS - 20))
        if reply_at > self.end_ms:
            raise _SpanEnded
        sent: Direction = "cp_to_csms" if from_cp else "csms_to_cp"
        answered: Direction = "csms_to_cp" if from_cp else "cp_to_csms"
        message_id = random_uuid(self.rng)
        yield TrafficFrame(from_ms(at), sent, action, CALL, message_id, request)
        reply_time = from_ms(reply_at)
        if error is not None:
            details = {"errorCode": error[0], "errorDescription": error[1], "errorDetails": {}}
            yield TrafficFrame(reply_time, answered, action, CALLERROR, message_id, details)
        else:
            body = response(iso_ms(reply_time)) if callable(response) else response
            yield TrafficFrame(reply_time, answered, action, CALLRESULT, message_id, body)
        return reply_at

    def csms_call(
        self, at: int, action: str, request: dict[str, Any], response: dict[str, Any]
    ) -> Generator[TrafficFrame, None, tuple[int, bool]]:
        """A CSMS-initiated CALL the charge point answers, now and then with a CALLERROR; returns when the
        answer was sent and whether it was a CALLRESULT."""
        error = self.rng.choice(_CALL_ERRORS) if self.rng.random() < CSMS_CALL_ERROR else None
        at = yield from self.exchange(at, action, request, response, from_cp=False, error=error)
        return at, error is None

    def pause(self, at: int, low_seconds: float, high_seconds: float) -> int:
        return at + self.rng.randint(int(low_seconds * 1000), int(high_seconds * 1000))

    def wait(self, at: int, mean_seconds: float) -> int:
        return at + int(self.rng.expovariate(1.0 / (mean_seconds * 1000)))

    def status(self, at: int, connector: int, status: str, error_code: str = "NoError") -> Stream:
        request: dict[str, Any] = {
            "connectorId": connector,
            "errorCode": error_code,
            "status": status,
            "timestamp": iso_ms(from_ms(at)),
        }
        if error_code != "NoError":
            request["vendorErrorCode"] = f"E{self.rng.randint(100, 999)}"
            request["info"] = f"{error_code} on connector {connector}"
        return (yield from self.exchange(at, "StatusNotification", request, {}))

    # ------------------------------------------------------------------ streams
    def streams(self) -> list[Iterator[TrafficFrame]]:
        bodies = [self._station(), self._csms(), *(self._connector(c) for c in range(1, self.connectors + 1))]
        return [self._until_span_ends(body) for body in bodies]

    @staticmethod
    def _until_span_ends(body: Stream) -> Iterator[TrafficFrame]:
        try:
            yield from body
        except _SpanEnded:
            return

    def _station(self) -> Stream:
        """Boot and the first status of every connector (if booting), then Heartbeats."""
        interval = max(1, round(self.density.heartbeat_interval_seconds))
        at = self.pause(self.start_ms, 0, 5)
        if self.boot:
            at = yield from self._boot(at, interval)
        while True:
            at = self.pause(at, interval * 0.99, interval * 1.01)
            at = yield from self.exchange(at, "Heartbeat", {}, lambda now: {"currentTime": now})

    def _boot(self, at: int, interval: int) -> Stream:
        boot = {
            "chargePointVendor": self.vendor,
            "chargePointModel": self.model,
            "chargePointSerialNumber": f"SN{self.rng.getrandbits(40):013d}",
            "firmwareVersion": f"{self.rng.randint(1, 4)}.{self.rng.randint(0, 9)}.{self.rng.randint(0, 20)}",
            "meterType": "DZG DVH4013",
        }
        at = yield from self.exchange(
            at,
            "BootNotification",
            boot,
            lambda now: {"status": "Accepted", "currentTime": now, "interval": interval},
        )
        for connector in range(self.connectors + 1):
            at = yield from self.status(self.pause(at, 0.05, 0.5), connector, "Available")
        return at

    def _connector(self, connector: int) -> Stream:
        """Sessions on one connector, an occasional fault between them."""
        register_wh = self.rng.randint(50_000, 20_000_000)
        at = self.pause(self.start_ms, 10, 20)
        while True:
            at = self.wait(at, self.density.session_gap_seconds)
            if self.rng.random() < CONNECTOR_FAULT:
                at = yield from self.status(at, connector, "Faulted", self.rng.choice(_FAULT_CODES))
                at = yield from self.status(self.pause(at, 30, 1800), connector, "Available")
                continue
            at, register_wh = yield from self._session(at, connector, register_wh)

    def _session(self, at: int, connector: int, register_wh: int) -> Generator[TrafficFrame, None, tuple[int, int]]:
        """One charging session; returns when it ended and the energy register after it."""
        rng = self.rng
        id_tag = rng.choice(self.id_tags)
        remote = rng.random() < 0.25
        if remote:
            start_request = {"connectorId": connector, "idTag": id_tag}
            at = yield from self.exchange(
                at, "RemoteStartTransaction", start_request, {"status": "Accepted"}, from_cp=False
            )
            at = self.pause(at, 0.2, 2)
        at = yield from self.status(at, connector, "Preparing")
        if not remote:
            refused = rng.random() < REFUSED_AUTHORIZE
            verdict = {"idTagInfo": {"status": "Invalid" if refused else "Accepted"}}
            at = yield from self.exchange(self.pause(at, 2, 30), "Authorize", {"idTag": id_tag}, verdict)
            if refused:
                at = yield from self.status(self.pause(at, 5, 60), connector, "Available")
                return at, register_wh
        self.transaction_id += 1
        transaction_id = self.transaction_id
        at = self.pause(at, 1, 10)
        start = {"connectorId": connector, "idTag": id_tag, "meterStart": register_wh, "timestamp": iso_ms(from_ms(at))}
        accepted = {"transactionId": transaction_id, "idTagInfo": {"status": "Accepted"}}
        at = yield from self.exchange(at, "StartTransaction", start, accepted)
        at = yield from self.status(self.pause(at, 0.5, 3), connector, "Charging")

        session_ms = max(300_000, int(rng.expovariate(1.0 / (self.density.session_seconds * 1000))))
        ends_at = at + session_ms
        interval_ms = max(1000, int(self.density.meter_interval_seconds * 1000))
        battery_wh = rng.uniform(40_000, 100_000)
        soc = rng.uniform(5, 60)
        energy_wh = float(register_wh)
        power_w = self.max_power_w * rng.uniform(0.6, 1.0)
        sample_at = at
        while sample_at + interval_ms < ends_at:
            sample_at += interval_ms
            # Power tapers as the battery fills; energy and state of charge follow it.
            power = power_w * rng.uniform(0.97, 1.02) * (1.0 if soc < 80 else max(0.1, (100 - soc) / 20))
            energy_wh += power * interval_ms / 3_600_000
            soc = min(100.0, soc + power * interval_ms / 3_600_000 / battery_wh * 100)
            meter_values = {
                "connectorId": connector,
                "transactionId": transaction_id,
                "meterValue": [
                    {"timestamp": iso_ms(from_ms(sample_at)), "sampledValue": self._sample(power, energy_wh, soc)}
                ],
            }
            at = yield from self.exchange(max(at, sample_at) + int(rng.random() * 200), "MeterValues", meter_values, {})

        register_wh = int(energy_wh)
        reason = rng.choices(("Local", "EVDisconnected", "Remote"), weights=(50, 35, 15))[0]
        at = self.pause(max(at, ends_at), 0.1, 1)
        if reason == "Remote":
            stop_request = {"transactionId": transaction_id}
            at = yield from self.exchange(
                at, "RemoteStopTransaction", stop_request, {"status": "Accepted"}, from_cp=False
            )
            at = self.pause(at, 0.2, 2)
        stop_time = iso_ms(from_ms(at))
        stop = {
            "transactionId": transaction_id,
            "idTag": id_tag,
            "meterStop": register_wh,
            "timestamp": stop_time,
            "reason": reason,
            "transactionData": [
                {
                    "timestamp": stop_time,
                    "sampledValue": [
                        {
                            "value": str(register_wh),
                            "context": "Transaction.End",
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh",
                        }
                    ],
                }
            ],
        }
        at = yield from self.exchange(at, "StopTransaction", stop, {"idTagInfo": {"status": "Accepted"}})
        at = yield from self.status(self.pause(at, 0.5, 3), connector, "Finishing")
        at = yield from self.status(self.pause(at, 5, 600), connector, "Available")
        return at, register_wh

    def _sample(self, power_w: float, energy_wh: float, soc: float) -> list[dict[str, str]]:
        rng = self.rng
        voltage = rng.uniform(225.0, 236.0)
        per_phase = power_w / 3 / voltage
        sampled = [
            {
                "value": str(int(energy_wh)),
                "context": "Sample.Periodic",
                "measurand": "Energy.Active.Import.Register",
                "location": "Outlet",
                "unit": "Wh",
            },
            {
                "value": f"{power_w:.0f}",
                "context": "Sample.Periodic",
                "measurand": "Power.Active.Import",
                "location": "Outlet",
                "unit": "W",
            },
        ]
        for phase in ("L1", "L2", "L3"):
            sampled.append(
                {
                    "value": f"{per_phase * rng.uniform(0.97, 1.03):.1f}",
                    "context": "Sample.Periodic",
                    "measurand": "Current.Import",
                    "phase": phase,
                    "unit": "A",
                }
            )
        sampled.append(
            {
                "value": f"{voltage:.1f}",
                "context": "Sample.Periodic",
                "measurand": "Voltage",
                "phase": "L1-N",
                "unit": "V",
            }
        )
        sampled.append(
            {
                "value": f"{soc:.0f}",
                "context": "Sample.Periodic",
                "measurand": "SoC",
                "location": "EV",
                "unit": "Percent",
            }
        )
        return sampled

    def _csms(self) -> Stream:
        """Operations the CSMS starts: diagnostics, triggers, configuration, firmware updates."""
        operations = (self._diagnostics, self._trigger, self._change_configuration, self._update_firmware)
        at = self.pause(self.start_ms, 60, 120)
        while True:
            at = self.wait(at, self.density.csms_call_gap_seconds)
            operation = self.rng.choices(operations, weights=(2, 3, 3, 1))[0]
            at = yield from operation(at)

    def _diagnostics(self, at: int) -> Stream:
        now = iso_ms(from_ms(at))
        file_name = f"diagnostics-{now}.zip"
        request = {
            "location": f"https://diagnostics.example.com/upload/{quote(self.charger_id, safe='')}/",
            "retries": 3,
            "retryInterval": 60,
            "startTime": iso_ms(from_ms(at - 86_400_000)),
            "stopTime": now,
        }
        at, accepted = yield from self.csms_call(at, "GetDiagnostics", request, {"fileName": file_name})
        if not accepted:
            return at
        at = yield from self.exchange(
            self.pause(at, 1, 5), "DiagnosticsStatusNotification", {"status": "Uploading"}, {}
        )
        outcome = "Uploaded" if self.rng.random() < 0.9 else "UploadFailed"
        return (
            yield from self.exchange(self.pause(at, 5, 120), "DiagnosticsStatusNotification", {"status": outcome}, {})
        )

    def _trigger(self, at: int) -> Stream:
        triggered: tuple[tuple[str, dict[str, Any], dict[str, Any] | Callable[[str], dict[str, Any]]], ...] = (
            ("Heartbeat", {}, lambda now: {"currentTime": now}),
            ("StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available"}, {}),
            ("DiagnosticsStatusNotification", {"status": "Idle"}, {}),
            ("FirmwareStatusNotification", {"status": "Idle"}, {}),
        )
        requested, request, response = self.rng.choice(triggered)
        trigger: dict[str, Any] = {"requestedMessage": requested}
        if requested == "StatusNotification":
            trigger["connectorId"] = 0
        at, accepted = yield from self.csms_call(at, "TriggerMessage", trigger, {"status": "Accepted"})
        if not accepted:
            return at
        return (yield from self.exchange(self.pause(at, 0.1, 2), requested, request, response))

    def _change_configuration(self, at: int) -> Stream:
        key, value = self.rng.choice(_CONFIGURATION)
        status = self.rng.choices(("Accepted", "RebootRequired", "Rejected", "NotSupported"), weights=(85, 5, 5, 5))[0]
        at, _ = yield from self.csms_call(at, "ChangeConfiguration", {"key": key, "value": value}, {"status": status})
        return at

    def _update_firmware(self, at: int) -> Stream:
        version = f"{self.rng.randint(1, 4)}.{self.rng.randint(0, 9)}.{self.rng.randint(0, 20)}"
        request = {
            "location": f"https://firmware.example.com/{quote(self.model.replace(' ', '-'))}/{version}.bin",
            "retrieveDate": iso_ms(from_ms(at + 5000)),
            "retries": 3,
        }
        at, accepted = yield from self.csms_call(at, "UpdateFirmware", request, {})
        if not accepted:
            return at
        at = self.pause(at, 5, 10)
        for status, low, high in (("Downloading", 30, 300), ("Downloaded", 1, 5), ("Installing", 5, 120)):
            at = yield from self.exchange(at, "FirmwareStatusNotification", {"status": status}, {})
            at = self.pause(at, low, high)
            if status == "Downloading" and self.rng.random() < 0.05:
                return (yield from self.exchange(at, "FirmwareStatusNotification", {"status": "DownloadFailed"}, {}))
        outcome = "Installed" if self.rng.random() < 0.95 else "InstallationFailed"
        return (yield from self.exchange(at, "FirmwareStatusNotification", {"status": outcome}, {}))


def iter_traffic(
    charger_id: str,
    start: datetime,
    end: datetime,
    rng: Random,
    connectors: int = 2,
    density: Density | None = None,
    boot: bool = True,
) -> Iterator[TrafficFrame]:
    """The frames of ``generate_traffic`` one at a time, in time order (ties: station, CSMS, connectors)."""
    if connectors < 1:
        raise ValueError("a charge point has at least one connector")
    charge_point = _ChargePoint(charger_id, to_ms(start), to_ms(end), rng, connectors, density or Density(), boot)
    return heapq.merge(*charge_point.streams(), key=attrgetter("timestamp"))


def generate_traffic(
    charger_id: str,
    start: datetime,
    end: datetime,
    rng: Random,
    connectors: int = 2,
    density: Density | None = None,
    boot: bool = True,
) -> list[TrafficFrame]:
    """Every OCPP-J frame one charge point exchanged with its CSMS in [start, end], in time order.

    ``boot``: the charge point boots at ``start``; without it, the span continues earlier traffic (no
    BootNotification; the connectors start idle)."""
    return list(iter_traffic(charger_id, start, end, rng, connectors, density, boot))


def generate_heartbeats(start: datetime, end: datetime, rng: Random, count: int) -> list[TrafficFrame]:
    """``count`` frames of Heartbeat exchanges (CALL, CALLRESULT, CALL, ...) timed within [start, end].

    For records that appear in an already-populated span, e.g. a vendor inserting while a client pages.
    """
    low, high = to_ms(start), to_ms(end)
    frames: list[TrafficFrame] = []
    while len(frames) < count:
        at = rng.randint(low, high)
        reply_at = min(high, at + rng.randint(20, MAX_REPLY_MS))
        message_id = random_uuid(rng)
        frames.append(TrafficFrame(from_ms(at), "cp_to_csms", "Heartbeat", CALL, message_id, {}))
        reply = {"currentTime": iso_ms(from_ms(reply_at))}
        frames.append(TrafficFrame(from_ms(reply_at), "csms_to_cp", "Heartbeat", CALLRESULT, message_id, reply))
    return frames[:count]
