"""Seeded, realistic OCPP 1.6 traffic of one charge point, for the vendor simulators to serve.

``generate_traffic`` plays a charge point with a few connectors over a time span and returns every OCPP-J
frame it exchanged with its CSMS, in time order:

- at the start (unless told the charge point is already running), BootNotification and a
  StatusNotification per connector (0 is the charge point itself);
- Heartbeats at the heartbeat interval;
- per connector, charging sessions separated by idle time: Preparing, Authorize (or a CSMS
  RemoteStartTransaction), StartTransaction, Charging, MeterValues every meter interval (energy register,
  power, current per phase L1..L3, voltage, state of charge), StopTransaction (after a CSMS
  RemoteStopTransaction when the stop is remote), Finishing, Available; now and then a connector that faults
  for a moment instead of a session (Faulted with an error code, Available again 30 s to 4 min later), or an
  Authorize that is refused;
- CSMS-initiated operations: GetDiagnostics (then DiagnosticsStatusNotification Uploading, Uploaded),
  TriggerMessage (then the triggered message), ChangeConfiguration (now and then Rejected or NotSupported)
  and UpdateFirmware (then FirmwareStatusNotification Downloading ... Installed), a few of them answered with
  a CALLERROR.

**Healthy by default.** ``Behaviour()`` (what every function here uses unless given another) is a charger
that opens none of chargelog's health alerts (docs/health.md) however long it runs: transient faults recover
within 4 minutes, no firmware update or diagnostics upload fails, and a refused Authorize, a CALLERROR or a
rejected ChangeConfiguration stays isolated (none within 15 minutes of another). ``FLAKY`` is the old,
noisier mix (faults up to 30 minutes, failed uploads and updates); any rate can be set on a ``Behaviour``.

**Misbehaviours** are opt-in episodes, each a documented pattern at a time, for a duration (on a connector,
where it names one): ``BootLoop``, ``FaultedConnector``, ``Silent``, ``FirmwareFailure``,
``DiagnosticsFailure``, ``ErrorBurst``, ``AuthorizationFailures``, ``StuckSession``, e.g.
``Behaviour(misbehaviours=(FaultedConnector(at, timedelta(minutes=20), connector=2),))``. The rest of the
traffic makes room for an episode: a stream whose next activity would run into it skips to its end (a
session that would is cut short to end before it), so outside its span the traffic is the healthy one. An
episode's frames are drawn from a random generator of its own, seeded from the charger and the episode, so
consecutive spans of one charger (``boot=False``) continue an episode that crosses from one to the next.

Every CALL is followed by its CALLRESULT (or CALLERROR) from the other side, with the same unique message id,
20 ms to 1 s later. Payloads are in the OCPP 1.6 JSON schemas' camelCase form and valid against them.
Message ids are UUIDs drawn from the caller's ``random.Random``, so a seed reproduces the traffic exactly
and ids are unique across everything generated. Timestamps are whole milliseconds, aware UTC; every frame
lies within [start, end]: an exchange whose answer would fall after ``end`` is not generated.

The streams of the charge point (station, each connector, the CSMS, each episode) are Python generators merged
lazily by time, so 200,000 frames take a couple of seconds and ``iter_traffic`` never holds more than one frame
per stream. Without an ``end`` it never ends: ``TrafficFeed`` hands such traffic out as a clock moves (the
simulators' live traffic).
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, insort
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
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
_NO_END = 2**62  # an end_ms no frame reaches

# One frame's answer comes this many milliseconds after the frame, at most.
MAX_REPLY_MS = 1000
# A refused Authorize, a CALLERROR or a rejected ChangeConfiguration of a healthy charger has no other of them
# within this many seconds (chargelog's authorization_failures window; error_burst's is 10 minutes).
ISOLATION_SECONDS = 15 * 60
# What a stream checks before its next activity: that no episode starts within this (a session, a transient
# fault, a CSMS operation); a session is cut short to end this long before an episode of its connector.
_CONNECTOR_ACTIVITY_MS = 20 * 60_000
_SESSION_WIND_DOWN_MS = 12 * 60_000
_CSMS_OPERATION_MS = 10 * 60_000
_HEARTBEAT_MS = 2000

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
# OCPP 1.6 ChargePointErrorCode, but NoError.
ERROR_CODES = frozenset(
    {
        *_FAULT_CODES,
        "InternalError",
        "LocalListConflict",
        "OtherError",
        "PowerSwitchFailure",
        "ReaderFailure",
        "ResetFailure",
        "WeakSignal",
    }
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
_REFUSED_ID_TAG = ("Invalid", "Blocked", "Expired")


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


# ---------------------------------------------------------------------------------------------- misbehaviours
@dataclass(frozen=True)
class Misbehaviour:
    """One episode of a charge point misbehaving, from ``at`` for ``duration``; the subclasses are the kinds.

    While an episode lasts, the charge point's ordinary traffic that it concerns (the connector's sessions, the
    CSMS's operations, or everything) makes room for it; the episode's own frames are its pattern. Two episodes
    of one charge point that concern the same traffic must not overlap (``iter_traffic`` raises ValueError)."""

    at: datetime
    duration: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(f"{type(self).__name__}.at must be an aware datetime, got {self.at!r}")
        if self.duration <= timedelta(0):
            raise ValueError(f"{type(self).__name__}.duration must be positive, got {self.duration!r}")

    @property
    def until(self) -> datetime:
        """When the episode ends: ``at + duration``."""
        return self.at + self.duration


@dataclass(frozen=True)
class BootLoop(Misbehaviour):
    """The charge point reboots every ``every`` from ``at`` for ``duration`` (each boot up to 5 % of ``every``
    late; ceil(duration / every) boots): BootNotification and a StatusNotification Available per connector (0
    included) each time, nothing else (no Heartbeat, session or CSMS operation) in between. After the span it runs
    normally, the last boot being its boot."""

    duration: timedelta = timedelta(minutes=30)
    every: timedelta = timedelta(minutes=4)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.every < timedelta(minutes=1):
            raise ValueError(f"BootLoop.every must be at least a minute, got {self.every!r}")


@dataclass(frozen=True)
class FaultedConnector(Misbehaviour):
    """StatusNotification Faulted with ``error_code`` (and a vendor error code and info) on ``connector`` at
    ``at``; Available at ``at + duration``. No session on that connector in between."""

    duration: timedelta = timedelta(minutes=20)
    connector: int = 1
    error_code: str = "GroundFailure"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.error_code not in ERROR_CODES:
            raise ValueError(
                f"FaultedConnector.error_code must be one of {sorted(ERROR_CODES)}, got {self.error_code!r}"
            )


@dataclass(frozen=True)
class Silent(Misbehaviour):
    """No frame at all from ``at`` for ``duration``: the charge point is offline. At ``at + duration`` it boots
    again (BootNotification and a StatusNotification per connector) or, with ``reboot=False``, resumes with a
    Heartbeat."""

    duration: timedelta = timedelta(hours=2)
    reboot: bool = True


FirmwareOutcome = Literal["DownloadFailed", "InstallationFailed"]


@dataclass(frozen=True)
class FirmwareFailure(Misbehaviour):
    """An UpdateFirmware at ``at`` (accepted) that ends in ``failure``: FirmwareStatusNotification Downloading
    then DownloadFailed, or Downloading, Downloaded, Installing then InstallationFailed. The CSMS starts no
    other operation until ``at + duration``; there, with ``recover``, an UpdateFirmware that ends Installed."""

    duration: timedelta = timedelta(hours=2)
    failure: FirmwareOutcome = "DownloadFailed"
    recover: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.failure not in ("DownloadFailed", "InstallationFailed"):
            raise ValueError(f"FirmwareFailure.failure must be DownloadFailed or InstallationFailed: {self.failure!r}")
        if self.duration < timedelta(minutes=10):
            raise ValueError(f"FirmwareFailure.duration must be at least 10 minutes, got {self.duration!r}")


@dataclass(frozen=True)
class DiagnosticsFailure(Misbehaviour):
    """A GetDiagnostics at ``at`` (accepted), DiagnosticsStatusNotification Uploading a few seconds later and
    UploadFailed at ``at + duration``. The CSMS starts no other operation in between."""

    duration: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.duration < timedelta(seconds=10):
            raise ValueError(f"DiagnosticsFailure.duration must be at least 10 seconds, got {self.duration!r}")


@dataclass(frozen=True)
class ErrorBurst(Misbehaviour):
    """``count`` CSMS-initiated CALLs (TriggerMessage, ChangeConfiguration) answered with a CALLERROR, one in each
    ``duration / count`` slice of the span. The CSMS starts no other operation in between."""

    duration: timedelta = timedelta(minutes=5)
    count: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.count < 1 or self.duration / self.count < timedelta(seconds=4):
            raise ValueError(
                f"ErrorBurst needs count >= 1 and at least 4 s a CALL, got {self.count} in {self.duration}"
            )


@dataclass(frozen=True)
class AuthorizationFailures(Misbehaviour):
    """``count`` refused Authorize on ``connector``, one in each ``duration / count`` slice of the span: Preparing,
    Authorize of an unknown id tag answered Invalid, Blocked or Expired, Available. No session on that connector
    in between."""

    duration: timedelta = timedelta(minutes=5)
    connector: int = 1
    count: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.count < 1 or self.duration / self.count < timedelta(minutes=1):
            raise ValueError(
                f"AuthorizationFailures needs count >= 1 and at least a minute an attempt, got {self.count} in "
                f"{self.duration}"
            )


@dataclass(frozen=True)
class StuckSession(Misbehaviour):
    """A transaction on ``connector`` whose energy register never moves: Preparing, Authorize, StartTransaction
    and SuspendedEV at ``at``, then MeterValues every meter interval with the same register, 0 W and 0 A, until
    StopTransaction (reason Other), Finishing and Available at ``at + duration``."""

    duration: timedelta = timedelta(hours=26)
    connector: int = 1


@dataclass(frozen=True)
class Behaviour:
    """How a charge point behaves: the chances of its ordinary troubles and its misbehaviours.

    The default is healthy (see the module's docstring). Chances are per opportunity: ``connector_fault`` per
    idle connector instead of a session, ``refused_authorize`` per Authorize, ``csms_call_error`` per
    CSMS-initiated CALL, ``configuration_refused`` per ChangeConfiguration (Rejected or NotSupported),
    ``diagnostics_failure`` per upload, ``download_failure`` / ``installation_failure`` per firmware update.
    ``fault_seconds`` bounds how long a transient fault lasts. ``isolated`` keeps refusals (a refused
    Authorize, a CALLERROR, a rejected ChangeConfiguration) apart: a refusal drawn within
    ``ISOLATION_SECONDS`` of another one, or of an ``ErrorBurst`` or ``AuthorizationFailures`` episode, is an
    acceptance instead."""

    connector_fault: float = 0.04
    fault_seconds: tuple[float, float] = (30.0, 240.0)
    refused_authorize: float = 0.05
    csms_call_error: float = 0.08
    configuration_refused: float = 0.10
    diagnostics_failure: float = 0.0
    download_failure: float = 0.0
    installation_failure: float = 0.0
    isolated: bool = True
    misbehaviours: tuple[Misbehaviour, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in (
            "connector_fault",
            "refused_authorize",
            "csms_call_error",
            "configuration_refused",
            "diagnostics_failure",
            "download_failure",
            "installation_failure",
        ):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"Behaviour.{name} is a chance between 0 and 1, got {value!r}")
        low, high = self.fault_seconds
        if not 0 < low <= high:
            raise ValueError(
                f"Behaviour.fault_seconds must be (low, high) with 0 < low <= high, got {self.fault_seconds}"
            )
        object.__setattr__(self, "misbehaviours", tuple(self.misbehaviours))
        for misbehaviour in self.misbehaviours:
            if not isinstance(misbehaviour, Misbehaviour):
                raise TypeError(f"Behaviour.misbehaviours holds Misbehaviour episodes, got {misbehaviour!r}")


HEALTHY = Behaviour()
# The generator's mix before it was made healthy: faults lasting up to 30 minutes, 10 % of diagnostics uploads
# and 10 % of firmware updates failing, refusals not kept apart. Every frame kind and status shows up.
FLAKY = Behaviour(
    fault_seconds=(30.0, 1800.0),
    diagnostics_failure=0.10,
    download_failure=0.05,
    installation_failure=0.05,
    isolated=False,
)


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
Scope = str | int  # "station", "csms" or a connector number: what an episode keeps the ordinary traffic out of


class _Link:
    """Exchanges between the charge point and its CSMS within [start_ms, end_ms], timed and identified by one
    random generator. An exchange before ``start_ms`` is played (its random draws made) but not yielded: an
    episode that began before the span yields only its part within it."""

    def __init__(self, rng: Random, start_ms: int, end_ms: int) -> None:
        self.rng = rng
        self.start_ms = start_ms
        self.end_ms = end_ms

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
        message_id = random_uuid(self.rng)
        if at < self.start_ms:
            return reply_at
        sent: Direction = "cp_to_csms" if from_cp else "csms_to_cp"
        answered: Direction = "csms_to_cp" if from_cp else "cp_to_csms"
        yield TrafficFrame(from_ms(at), sent, action, CALL, message_id, request)
        reply_time = from_ms(reply_at)
        if error is not None:
            details = {"errorCode": error[0], "errorDescription": error[1], "errorDetails": {}}
            yield TrafficFrame(reply_time, answered, action, CALLERROR, message_id, details)
        else:
            body = response(iso_ms(reply_time)) if callable(response) else response
            yield TrafficFrame(reply_time, answered, action, CALLRESULT, message_id, body)
        return reply_at

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


class _Spacing:
    """Keeps refusals isolated: ``allow(at)`` is False within ``window_ms`` of an allowed one or of a reserved
    span. Streams decide out of time order (each runs ahead to its next frame), so both sides are checked:
    no two allowed refusals are ever within the window, whichever was decided first."""

    def __init__(self, window_ms: int, reserved: list[tuple[int, int]], enabled: bool) -> None:
        self.window_ms = window_ms
        self.reserved = reserved
        self.enabled = enabled
        self.allowed: list[int] = []  # sorted

    def allow(self, at: int) -> bool:
        if not self.enabled:
            return True
        window = self.window_ms
        if any(start - window < at < end + window for start, end in self.reserved):
            return False
        index = bisect_left(self.allowed, at - window + 1)
        if index < len(self.allowed) and self.allowed[index] < at + window:
            return False
        insort(self.allowed, at)
        if len(self.allowed) > 1000:  # an endless feed: forget refusals far behind (a week) the newest
            del self.allowed[: bisect_left(self.allowed, self.allowed[-1] - 7 * 86_400_000)]
        return True


class _ChargePoint(_Link):
    """One charge point's state while its traffic is generated; each ``_…`` generator is one stream of it."""

    def __init__(
        self,
        charger_id: str,
        start_ms: int,
        end_ms: int,
        rng: Random,
        connectors: int,
        density: Density,
        boot: bool,
        behaviour: Behaviour,
    ) -> None:
        super().__init__(rng, start_ms, end_ms)
        self.charger_id = charger_id
        self.boot = boot
        self.connectors = connectors
        self.density = density
        self.behaviour = behaviour
        self.heartbeat_interval = max(1, round(density.heartbeat_interval_seconds))
        self.transaction_id = rng.randint(1, 900_000)
        # What the charge point is stays the same from one span to the next: drawn from its id, not the span's RNG.
        identity = Random(f"charge point {charger_id}")  # noqa: S311 - reproducible simulation, not security
        self.vendor, self.model = identity.choice(_VENDORS)
        self.max_power_w = identity.choice((7_400, 11_000, 22_000))
        self.serial_number = f"SN{identity.getrandbits(40):013d}"
        self.firmware_version = f"{identity.randint(1, 4)}.{identity.randint(0, 9)}.{identity.randint(0, 20)}"
        self.id_tags = [f"{identity.getrandbits(56):014X}" for _ in range(8)]
        self.blackouts: dict[Scope, list[tuple[int, int]]] = {}
        self.episodes: list[Stream] = []
        reserved: list[tuple[int, int]] = []
        for misbehaviour in behaviour.misbehaviours:
            connector = getattr(misbehaviour, "connector", None)
            if connector is not None and not 1 <= connector <= connectors:
                raise ValueError(f"{misbehaviour!r} names connector {connector}; the charge point has 1..{connectors}")
            if isinstance(misbehaviour, ErrorBurst | AuthorizationFailures):
                reserved.append((to_ms(misbehaviour.at), to_ms(misbehaviour.until)))
            self._plan(misbehaviour)
        for scope, spans in self.blackouts.items():
            spans.sort()
            for (_, end), (start, _) in itertools.pairwise(spans):
                if start <= end:
                    raise ValueError(f"misbehaviours overlap on {scope!r}: {behaviour.misbehaviours!r}")
        self.spacing = _Spacing(ISOLATION_SECONDS * 1000, reserved, behaviour.isolated)

    # ------------------------------------------------------------------ episodes
    def _plan(self, misbehaviour: Misbehaviour) -> None:
        """Keep the ordinary traffic out of the episode's span and add the episode's stream (unless it ended
        before the span)."""
        at, until = to_ms(misbehaviour.at), to_ms(misbehaviour.until)
        everything: list[Scope] = ["station", "csms", *range(1, self.connectors + 1)]
        scopes: list[Scope]
        # Its own RNG, from the charger and the episode: the same frames whichever span it is generated in.
        link = _Link(Random(f"{self.charger_id}|{misbehaviour!r}"), self.start_ms, self.end_ms)  # noqa: S311
        match misbehaviour:
            case BootLoop():
                scopes, end, episode = everything, until, self._boot_loop(link, misbehaviour)
            case Silent():
                scopes, end, episode = everything, until + 30_000, self._silent(link, misbehaviour)
            case FaultedConnector():
                scopes, end = [misbehaviour.connector], until + 2000
                episode = self._faulted(link, misbehaviour)
            case AuthorizationFailures():
                scopes, end = [misbehaviour.connector], until + 60_000
                episode = self._refused_authorizations(link, misbehaviour)
            case StuckSession():
                scopes, end = [misbehaviour.connector], until + 120_000
                episode = self._stuck_session(link, misbehaviour)
            case FirmwareFailure():
                scopes, end = ["csms"], until + _CSMS_OPERATION_MS
                episode = self._failed_firmware(link, misbehaviour)
            case DiagnosticsFailure():
                scopes, end = ["csms"], until + 60_000
                episode = self._failed_diagnostics(link, misbehaviour)
            case ErrorBurst():
                scopes, end = ["csms"], until + 60_000
                episode = self._error_burst(link, misbehaviour)
            case _:
                raise TypeError(f"unknown misbehaviour {misbehaviour!r}")
        for scope in scopes:
            self.blackouts.setdefault(scope, []).append((at, end))
        if end >= self.start_ms:  # (a generator: nothing is drawn until the merge asks it for a frame)
            self.episodes.append(episode)

    def blocked_until(self, scope: Scope, at: int, need_ms: int) -> int | None:
        """None if [at, at + need_ms] is clear of episodes of ``scope``; else when the episodes it runs into end."""
        moved = None
        for start, end in self.blackouts.get(scope, ()):
            if start <= at + need_ms and at <= end:
                at = moved = end + 1
        return moved

    def next_episode(self, scope: Scope, at: int) -> int:
        """When the next episode of ``scope`` after ``at`` starts (``_NO_END`` if none)."""
        return min((start for start, _ in self.blackouts.get(scope, ()) if start > at), default=_NO_END)

    def _boot_loop(self, link: _Link, loop: BootLoop) -> Stream:
        start, until, every = to_ms(loop.at), to_ms(loop.until), loop.every // _MS
        at, boots = start, 0
        while start + boots * every < until:
            late = link.rng.randint(0, every // 20) if boots else 0  # the first boot is the episode's start
            at = yield from self._boot(start + boots * every + late, link)
            boots += 1
        return at

    def _silent(self, link: _Link, silent: Silent) -> Stream:
        until = to_ms(silent.until)
        if silent.reboot:
            return (yield from self._boot(until, link))
        return (yield from link.exchange(until, "Heartbeat", {}, lambda now: {"currentTime": now}))

    def _faulted(self, link: _Link, fault: FaultedConnector) -> Stream:
        at = yield from link.status(to_ms(fault.at), fault.connector, "Faulted", fault.error_code)
        return (yield from link.status(max(at + 1, to_ms(fault.until)), fault.connector, "Available"))

    def _refused_authorizations(self, link: _Link, refusals: AuthorizationFailures) -> Stream:
        start, slot = to_ms(refusals.at), to_ms(refusals.until) - to_ms(refusals.at)
        at = start
        for n in range(refusals.count):
            at = link.pause(start + slot * n // refusals.count, 0, slot / refusals.count / 4000)
            at = yield from link.status(at, refusals.connector, "Preparing")
            verdict = {"idTagInfo": {"status": link.rng.choice(_REFUSED_ID_TAG)}}
            id_tag = f"{link.rng.getrandbits(56):014X}"  # a card the CSMS does not know
            at = yield from link.exchange(link.pause(at, 2, 10), "Authorize", {"idTag": id_tag}, verdict)
            at = yield from link.status(link.pause(at, 5, 20), refusals.connector, "Available")
        return at

    def _stuck_session(self, link: _Link, stuck: StuckSession) -> Stream:
        rng, connector = link.rng, stuck.connector
        id_tag = rng.choice(self.id_tags)
        transaction_id = rng.randint(1_000_000, 1_999_999)
        register_wh = rng.randint(50_000, 20_000_000)
        soc = rng.uniform(20, 70)
        until = to_ms(stuck.until)
        at = yield from link.status(to_ms(stuck.at), connector, "Preparing")
        verdict = {"idTagInfo": {"status": "Accepted"}}
        at = yield from link.exchange(link.pause(at, 2, 10), "Authorize", {"idTag": id_tag}, verdict)
        at = link.pause(at, 1, 5)
        start = {"connectorId": connector, "idTag": id_tag, "meterStart": register_wh, "timestamp": iso_ms(from_ms(at))}
        accepted = {"transactionId": transaction_id, "idTagInfo": {"status": "Accepted"}}
        at = yield from link.exchange(at, "StartTransaction", start, accepted)
        at = yield from link.status(link.pause(at, 0.5, 3), connector, "SuspendedEV")
        interval_ms = max(1000, int(self.density.meter_interval_seconds * 1000))
        sample_at = at
        while sample_at + interval_ms < until:
            sample_at += interval_ms
            meter_values = {
                "connectorId": connector,
                "transactionId": transaction_id,
                "meterValue": [
                    {"timestamp": iso_ms(from_ms(sample_at)), "sampledValue": self._sample(0.0, register_wh, soc, rng)}
                ],
            }
            at = yield from link.exchange(max(at, sample_at) + int(rng.random() * 200), "MeterValues", meter_values, {})
        at = max(at + 1, until)
        at = yield from link.exchange(
            at,
            "StopTransaction",
            self._stop(transaction_id, id_tag, register_wh, at, "Other"),
            {"idTagInfo": {"status": "Accepted"}},
        )
        at = yield from link.status(link.pause(at, 0.5, 3), connector, "Finishing")
        return (yield from link.status(link.pause(at, 5, 60), connector, "Available"))

    def _failed_firmware(self, link: _Link, failure: FirmwareFailure) -> Stream:
        at = yield from self._firmware_update(link, to_ms(failure.at), failure.failure)
        if failure.recover:
            at = yield from self._firmware_update(link, max(at + 1, to_ms(failure.until)), "Installed")
        return at

    def _failed_diagnostics(self, link: _Link, failure: DiagnosticsFailure) -> Stream:
        return (yield from self._upload_diagnostics(link, to_ms(failure.at), "UploadFailed", to_ms(failure.until)))

    def _error_burst(self, link: _Link, burst: ErrorBurst) -> Stream:
        start, span = to_ms(burst.at), to_ms(burst.until) - to_ms(burst.at)
        at = start
        for n in range(burst.count):
            at = link.pause(start + span * n // burst.count, 0, span / burst.count / 2000)
            if link.rng.random() < 0.5:
                action, request = "TriggerMessage", {"requestedMessage": link.rng.choice(("Heartbeat", "MeterValues"))}
            else:
                key, value = link.rng.choice(_CONFIGURATION)
                action, request = "ChangeConfiguration", {"key": key, "value": value}
            error = link.rng.choice(_CALL_ERRORS)
            at = yield from link.exchange(at, action, request, {}, from_cp=False, error=error)
        return at

    # ------------------------------------------------------------------ plumbing
    def csms_call(
        self, at: int, action: str, request: dict[str, Any], response: dict[str, Any]
    ) -> Generator[TrafficFrame, None, tuple[int, bool]]:
        """A CSMS-initiated CALL the charge point answers, now and then with a CALLERROR; returns when the
        answer was sent and whether it was a CALLRESULT."""
        rng = self.rng
        error = rng.choice(_CALL_ERRORS) if rng.random() < self.behaviour.csms_call_error else None
        if error is not None and not self.spacing.allow(at):
            error = None
        at = yield from self.exchange(at, action, request, response, from_cp=False, error=error)
        return at, error is None

    # ------------------------------------------------------------------ streams
    def streams(self) -> list[Iterator[TrafficFrame]]:
        bodies = [
            self._station(),
            self._csms(),
            *(self._connector(c) for c in range(1, self.connectors + 1)),
            *self.episodes,
        ]
        return [self._until_span_ends(body) for body in bodies]

    @staticmethod
    def _until_span_ends(body: Stream) -> Iterator[TrafficFrame]:
        try:
            yield from body
        except _SpanEnded:
            return

    def _station(self) -> Stream:
        """Boot and the first status of every connector (if booting), then Heartbeats."""
        interval = self.heartbeat_interval
        at = self.pause(self.start_ms, 0, 5)
        if self.boot and self.blocked_until("station", at, 60_000) is None:
            at = yield from self._boot(at, self)
        while True:
            at = self.pause(at, interval * 0.99, interval * 1.01)
            moved = self.blocked_until("station", at, _HEARTBEAT_MS)
            if moved is not None:
                at = moved  # an episode: the next Heartbeat an interval after it
                continue
            at = yield from self.exchange(at, "Heartbeat", {}, lambda now: {"currentTime": now})

    def _boot(self, at: int, link: _Link) -> Stream:
        boot = {
            "chargePointVendor": self.vendor,
            "chargePointModel": self.model,
            "chargePointSerialNumber": self.serial_number,
            "firmwareVersion": self.firmware_version,
            "meterType": "DZG DVH4013",
        }
        interval = self.heartbeat_interval
        at = yield from link.exchange(
            at,
            "BootNotification",
            boot,
            lambda now: {"status": "Accepted", "currentTime": now, "interval": interval},
        )
        for connector in range(self.connectors + 1):
            at = yield from link.status(link.pause(at, 0.05, 0.5), connector, "Available")
        return at

    def _connector(self, connector: int) -> Stream:
        """Sessions on one connector, an occasional transient fault between them."""
        behaviour = self.behaviour
        register_wh = self.rng.randint(50_000, 20_000_000)
        at = self.pause(self.start_ms, 10, 20)
        while True:
            at = self.wait(at, self.density.session_gap_seconds)
            moved = self.blocked_until(connector, at, _CONNECTOR_ACTIVITY_MS)
            if moved is not None:
                at = moved  # an episode on this connector: idle again after it
                continue
            if self.rng.random() < behaviour.connector_fault:
                fault_at = at
                at = yield from self.status(at, connector, "Faulted", self.rng.choice(_FAULT_CODES))
                recovered_at = max(at + 1, self.pause(fault_at, *behaviour.fault_seconds))
                at = yield from self.status(recovered_at, connector, "Available")
                continue
            deadline = self.next_episode(connector, at) - _SESSION_WIND_DOWN_MS
            at, register_wh = yield from self._session(at, connector, register_wh, deadline)

    def _session(
        self, at: int, connector: int, register_wh: int, deadline: int
    ) -> Generator[TrafficFrame, None, tuple[int, int]]:
        """One charging session, charging until ``deadline`` at the latest; returns when it ended and the energy
        register after it."""
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
            authorize_at = self.pause(at, 2, 30)
            refused = rng.random() < self.behaviour.refused_authorize and self.spacing.allow(authorize_at)
            verdict = {"idTagInfo": {"status": "Invalid" if refused else "Accepted"}}
            at = yield from self.exchange(authorize_at, "Authorize", {"idTag": id_tag}, verdict)
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
        ends_at = max(at + 1000, min(at + session_ms, deadline))
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
        stop = self._stop(transaction_id, id_tag, register_wh, at, reason)
        at = yield from self.exchange(at, "StopTransaction", stop, {"idTagInfo": {"status": "Accepted"}})
        at = yield from self.status(self.pause(at, 0.5, 3), connector, "Finishing")
        at = yield from self.status(self.pause(at, 5, 600), connector, "Available")
        return at, register_wh

    @staticmethod
    def _stop(transaction_id: int, id_tag: str, register_wh: int, at: int, reason: str) -> dict[str, Any]:
        stop_time = iso_ms(from_ms(at))
        return {
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

    def _sample(self, power_w: float, energy_wh: float, soc: float, rng: Random | None = None) -> list[dict[str, str]]:
        rng = rng or self.rng
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
            moved = self.blocked_until("csms", at, _CSMS_OPERATION_MS)
            if moved is not None:
                at = moved
                continue
            operation = self.rng.choices(operations, weights=(2, 3, 3, 1))[0]
            at = yield from operation(at)

    def _diagnostics(self, at: int) -> Stream:
        outcome = "UploadFailed" if self.rng.random() < self.behaviour.diagnostics_failure else "Uploaded"
        return (yield from self._upload_diagnostics(self, at, outcome))

    def _upload_diagnostics(self, link: _Link, at: int, outcome: str, outcome_at: int | None = None) -> Stream:
        """GetDiagnostics (a CALLERROR now and then, unless it is an episode's), Uploading, then ``outcome`` some
        seconds later or at ``outcome_at``."""
        now = iso_ms(from_ms(at))
        file_name = f"diagnostics-{now}.zip"
        request = {
            "location": f"https://diagnostics.example.com/upload/{quote(self.charger_id, safe='')}/",
            "retries": 3,
            "retryInterval": 60,
            "startTime": iso_ms(from_ms(at - 86_400_000)),
            "stopTime": now,
        }
        if link is self:
            at, accepted = yield from self.csms_call(at, "GetDiagnostics", request, {"fileName": file_name})
            if not accepted:
                return at
        else:
            at = yield from link.exchange(at, "GetDiagnostics", request, {"fileName": file_name}, from_cp=False)
        at = yield from link.exchange(
            link.pause(at, 1, 5), "DiagnosticsStatusNotification", {"status": "Uploading"}, {}
        )
        at = link.pause(at, 5, 120) if outcome_at is None else max(at + 1, outcome_at)
        return (yield from link.exchange(at, "DiagnosticsStatusNotification", {"status": outcome}, {}))

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
        roll = self.rng.random()
        refused = self.behaviour.configuration_refused
        if roll < refused:
            status = "Rejected" if roll < refused / 2 else "NotSupported"
            if not self.spacing.allow(at):
                status = "Accepted"
        else:
            status = "RebootRequired" if roll < refused + 0.05 else "Accepted"
        at, _ = yield from self.csms_call(at, "ChangeConfiguration", {"key": key, "value": value}, {"status": status})
        return at

    def _update_firmware(self, at: int) -> Stream:
        download_failed = self.rng.random() < self.behaviour.download_failure
        installation_failed = self.rng.random() < self.behaviour.installation_failure
        outcome = "DownloadFailed" if download_failed else "InstallationFailed" if installation_failed else "Installed"
        return (yield from self._firmware_update(self, at, outcome))

    def _firmware_update(self, link: _Link, at: int, outcome: str) -> Stream:
        """UpdateFirmware (a CALLERROR now and then, unless it is an episode's), then Downloading ... ``outcome``
        (DownloadFailed comes after Downloading)."""
        version = f"{link.rng.randint(1, 4)}.{link.rng.randint(0, 9)}.{link.rng.randint(0, 20)}"
        request = {
            "location": f"https://firmware.example.com/{quote(self.model.replace(' ', '-'))}/{version}.bin",
            "retrieveDate": iso_ms(from_ms(at + 5000)),
            "retries": 3,
        }
        if link is self:
            at, accepted = yield from self.csms_call(at, "UpdateFirmware", request, {})
            if not accepted:
                return at
        else:
            at = yield from link.exchange(at, "UpdateFirmware", request, {}, from_cp=False)
        at = link.pause(at, 5, 10)
        for status, low, high in (("Downloading", 30, 300), ("Downloaded", 1, 5), ("Installing", 5, 120)):
            at = yield from link.exchange(at, "FirmwareStatusNotification", {"status": status}, {})
            at = link.pause(at, low, high)
            if status == "Downloading" and outcome == "DownloadFailed":
                break
        return (yield from link.exchange(at, "FirmwareStatusNotification", {"status": outcome}, {}))


def iter_traffic(
    charger_id: str,
    start: datetime,
    end: datetime | None,
    rng: Random,
    connectors: int = 2,
    density: Density | None = None,
    boot: bool = True,
    *,
    behaviour: Behaviour | None = None,
) -> Iterator[TrafficFrame]:
    """The frames of ``generate_traffic`` one at a time, in time order (ties: station, CSMS, connectors,
    episodes). ``end=None``: the traffic never ends (take what you need, or hand it to a ``TrafficFeed``)."""
    if connectors < 1:
        raise ValueError("a charge point has at least one connector")
    end_ms = _NO_END if end is None else to_ms(end)
    charge_point = _ChargePoint(
        charger_id, to_ms(start), end_ms, rng, connectors, density or Density(), boot, behaviour or HEALTHY
    )
    return heapq.merge(*charge_point.streams(), key=attrgetter("timestamp"))


def generate_traffic(
    charger_id: str,
    start: datetime,
    end: datetime,
    rng: Random,
    connectors: int = 2,
    density: Density | None = None,
    boot: bool = True,
    *,
    behaviour: Behaviour | None = None,
) -> list[TrafficFrame]:
    """Every OCPP-J frame one charge point exchanged with its CSMS in [start, end], in time order.

    ``boot``: the charge point boots at ``start``; without it, the span continues earlier traffic (no
    BootNotification; the connectors start idle). ``behaviour``: healthy by default; its misbehaviours are
    played where they overlap the span (one that began before ``start`` shows its part from ``start`` on)."""
    return list(iter_traffic(charger_id, start, end, rng, connectors, density, boot, behaviour=behaviour))


class TrafficFeed:
    """Traffic handed out in time order as a clock moves, in batches of whole exchanges.

    ``until(moment)`` returns the frames up to ``moment`` not handed out yet, and with them the answers of their
    CALLs (up to a second later) and whatever comes in between, so no batch holds a CALL without its answer.
    Holds one frame of the traffic ahead: an endless ``iter_traffic`` costs the same memory at any time."""

    def __init__(self, frames: Iterator[TrafficFrame]) -> None:
        self._frames = frames
        self._next: TrafficFrame | None = None

    def until(self, moment: datetime) -> list[TrafficFrame]:
        batch: list[TrafficFrame] = []
        unanswered: set[str] = set()
        while True:
            frame = self._next if self._next is not None else next(self._frames, None)
            self._next = None
            if frame is None:
                return batch
            if frame.timestamp > moment and not unanswered:
                self._next = frame
                return batch
            batch.append(frame)
            if frame.message_type_id == CALL:
                unanswered.add(frame.message_id)
            else:
                unanswered.discard(frame.message_id)


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
