"""The ChargePilot simulator: its site OCPP-log and site-list endpoints, as documented, quirks included.

Served under the ``/rest/v1`` prefix (the base URL clients get ends with it):

- ``GET /rest/v1/ocpp-logs/site/{id}``: ``from`` and ``to`` (ISO 8601, required, both inclusive, compared at
  the entries' millisecond precision), ``actions`` (comma-separated OCPP actions of the documented list),
  ``sort_order`` (``asc`` | ``desc``, default ``desc``: newest first), ``take`` (1..1000, default 100),
  ``skip`` (>= 0, default 0). Body: ``{"ocpp_logs": [...], "count": <entries matching the filter>}``.
- ``GET /rest/v1/sites``: the sites of the API key, ``[{"id", "name"}]``.
- Each entry is one OCPP exchange of one charger of the site: ``occurrence_time`` (the request's time, UTC,
  ``...SS.mmmZ``), ``action``, ``payload`` (the request's OCPP 1.6 payload, camelCase), ``site_id``,
  ``site_name``, ``charger_id``, ``connector_id`` (null when the message names none) and every documented
  extracted field (``request_*``, ``req_cs_profile_sched_*``, ``response_id_tag_info_status``,
  ``extracted_*``), null where the exchange has none.
- Auth: ``x-api-key``, ``x-req-timestamp`` (Unix seconds) and ``x-signature`` = hex(HMAC-SHA256(key =
  hex(SHA-256(secret)), message = ``METHOD:PATH_WITH_QUERY:TIMESTAMP:BODY``)), over the path and query as
  sent. A missing header, an unknown key, a timestamp more than ``max_skew_seconds`` from the real time
  (``auth_clock``, not the simulated clock) or a wrong signature: 401.
- Errors are NestJS's: ``{"statusCode", "message", "error"}``; validation errors are 400 with a list of
  messages; a site of another key is 403, an unknown site 404. Order: route, auth, faults, validation, site.
- An entry is visible from its time on (or ``late_seconds`` later when added late); entries not yet visible
  are neither returned nor counted.
- Traffic: ``seed`` adds every charger's generated OCPP traffic for a span, ``stream`` from a time on without an
  end (``catch_up``, called by ``base.LiveTraffic``, adds it as the clock moves). Both are healthy by default;
  ``behaviour=traffic.Behaviour(misbehaviours=(...))`` plays misbehaviours (a boot loop, a faulted connector, a
  silence, a failed firmware update, ...) at given times. ``start_local`` serves the local fleet: a day of
  history, live traffic, and the few misbehaving chargers ``local_behaviours`` lists. The traffic is OCPP 1.6
  (ChargePilot logs 1.6 payloads): there is no OCPP 2.0.1 to convert.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from random import Random
from typing import Any, NamedTuple
from urllib.parse import quote

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from chargelog.models.records import connector_id_from
from chargelog_simulators.base import (
    Clock,
    Faults,
    LiveTraffic,
    SimulatorServer,
    VendorSimulator,
    json_response,
    system_clock,
)
from chargelog_simulators.traffic import (
    CALL,
    CALLRESULT,
    AuthorizationFailures,
    Behaviour,
    Density,
    DiagnosticsFailure,
    FaultedConnector,
    FirmwareFailure,
    Silent,
    TrafficFeed,
    TrafficFrame,
    from_ms,
    generate_heartbeats,
    iso_ms,
    iter_traffic,
    to_ms,
)


def signature(api_secret: str, method: str, path_with_query: str, timestamp: str, body: str = "") -> str:
    """The signature ChargePilot expects, written from its README, independently of the collector's (so the
    simulator catches a signing bug instead of sharing it): hex HMAC-SHA256 keyed with the hex SHA-256 of the
    secret, over ``METHOD:PATH_WITH_QUERY:TIMESTAMP:BODY``."""
    key = hashlib.sha256(api_secret.encode()).hexdigest().encode()
    return hmac.new(key, f"{method.upper()}:{path_with_query}:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()


PREFIX = "/rest/v1"
MAX_TAKE = 1000
DEFAULT_TAKE = 100
MAX_SKEW_SECONDS = 300
ACTIONS = frozenset(
    {
        "Authorize",
        "BootNotification",
        "CancelReservation",
        "CertificateSigned",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DataTransfer",
        "DeleteCertificate",
        "DiagnosticsStatusNotification",
        "ExtendedTriggerMessage",
        "FirmwareStatusNotification",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetInstalledCertificateIds",
        "GetLocalListVersion",
        "GetLog",
        "Heartbeat",
        "InstallCertificate",
        "LogStatusNotification",
        "MeterValues",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SecurityEventNotification",
        "SendLocalList",
        "SetChargingProfile",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
        "SignedUpdateFirmware",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
    }
)
# request_* field -> the request payload key it is extracted from.
REQUEST_FIELDS = {
    "request_timestamp": "timestamp",
    "request_info": "info",
    "request_status": "status",
    "request_reason": "reason",
    "request_id_tag": "idTag",
    "request_transaction_id": "transactionId",
    "request_vendor_id": "vendorId",
    "request_error_code": "errorCode",
    "request_vendor_error_code": "vendorErrorCode",
    "request_meter_stop": "meterStop",
}
PROFILE_FIELDS = (
    "req_cs_profile_sched_charging_rate_unit",
    "req_cs_profile_sched_duration",
    "req_cs_profile_sched_start_schedule",
    "req_cs_profile_sched_min_charging_rate",
    "req_cs_profile_sched_schedule_period",
)
METER_FIELDS = (
    *(
        f"extracted_{quantity}{suffix}"
        for quantity in ("voltage", "current", "power")
        for suffix in ("", "_phase1", "_phase2", "_phase3")
    ),
    "extracted_state_of_charge",
)
_MEASURANDS = {"Voltage": "voltage", "Current.Import": "current", "Power.Active.Import": "power"}
_PHASES = {"L1": "_phase1", "L2": "_phase2", "L3": "_phase3", "L1-N": "_phase1", "L2-N": "_phase2", "L3-N": "_phase3"}
_INTEGER = re.compile(r"[+-]?\d+")
_AT = attrgetter("at_ms")


# ---------------------------------------------------------------------------------------------- entries
def _extracted_meter_values(payload: dict[str, Any]) -> dict[str, float | None]:
    values: dict[str, float | None] = dict.fromkeys(METER_FIELDS)
    for meter_value in payload.get("meterValue", []):
        for sampled in meter_value.get("sampledValue", []):
            measurand = sampled.get("measurand", "Energy.Active.Import.Register")
            try:
                number = float(sampled["value"])
            except (KeyError, ValueError):
                continue
            if measurand == "SoC":
                values["extracted_state_of_charge"] = number
            elif measurand in _MEASURANDS:
                values[f"extracted_{_MEASURANDS[measurand]}{_PHASES.get(sampled.get('phase', ''), '')}"] = number
    for quantity in ("current", "power"):
        phases = [values[f"extracted_{quantity}_phase{n}"] for n in (1, 2, 3)]
        if values[f"extracted_{quantity}"] is None and all(v is not None for v in phases):
            values[f"extracted_{quantity}"] = round(sum(v for v in phases if v is not None), 3)
    return values


def log_entry(
    site_id: str, site_name: str, charger_id: str, request: TrafficFrame, answer: TrafficFrame | None
) -> dict[str, Any]:
    """The entry ChargePilot serves for one exchange: the request and what was extracted from it and its answer."""
    payload = request.payload
    entry: dict[str, Any] = {
        "occurrence_time": iso_ms(request.timestamp),
        "action": request.action,
        "payload": payload,
        "site_id": site_id,
        "site_name": site_name,
        "charger_id": charger_id,
        "connector_id": connector_id_from(payload),
    }
    for name, key in REQUEST_FIELDS.items():
        value = payload.get(key)
        entry[name] = str(value) if name == "request_meter_stop" and value is not None else value
    entry.update(dict.fromkeys(PROFILE_FIELDS))
    id_tag_info = (
        answer.payload.get("idTagInfo") if answer is not None and answer.message_type_id == CALLRESULT else None
    )
    entry["response_id_tag_info_status"] = id_tag_info.get("status") if isinstance(id_tag_info, dict) else None
    if request.action == "MeterValues":
        entry.update(_extracted_meter_values(payload))
    else:
        entry.update(dict.fromkeys(METER_FIELDS))
    return entry


def exchanges(frames: Iterable[TrafficFrame]) -> Iterable[tuple[TrafficFrame, TrafficFrame | None]]:
    """Each CALL with the frame that answers it (None if it is never answered), in the CALLs' order."""
    pending: dict[str, TrafficFrame] = {}
    order: list[str] = []
    answers: dict[str, TrafficFrame] = {}
    for frame in frames:
        if frame.message_type_id == CALL:
            pending[frame.message_id] = frame
            order.append(frame.message_id)
        else:
            answers[frame.message_id] = frame
    for message_id in order:
        yield pending[message_id], answers.get(message_id)


# ---------------------------------------------------------------------------------------------- state
class _Entry(NamedTuple):
    at_ms: int
    visible_ms: int
    action: str
    item: dict[str, Any]


@dataclass
class _Site:
    site_id: str
    name: str
    api_key: str
    chargers: dict[str, int] = field(default_factory=dict)  # charger id -> connectors
    entries: list[_Entry] = field(default_factory=list)  # by time, ties in the order added


def _problem(status: int, message: str | list[str], error: str | None) -> Response:
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if error is not None:
        body["error"] = error
    return json_response(body, status)


def _last(request: Request, name: str) -> str | None:
    values = request.args.getlist(name)
    return values[-1] if values else None


def _iso_ms(raw: str | None, name: str, errors: list[str]) -> int | None:
    if raw is None or not raw.strip():
        errors.append(f"{name} should not be empty")
        errors.append(f"{name} must be a valid ISO 8601 date string")
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        errors.append(f"{name} must be a valid ISO 8601 date string")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _number(raw: str | None, name: str, default: int, low: int, high: int | None, errors: list[str]) -> int:
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw.strip()):
        errors.append(f"{name} must be an integer number")
        return default
    number = int(raw)
    if number < low:
        errors.append(f"{name} must not be less than {low}")
    elif high is not None and number > high:
        errors.append(f"{name} must not be greater than {high}")
    return number


# ---------------------------------------------------------------------------------------------- simulator
class ChargepilotSimulator(VendorSimulator):
    """ChargePilot with its sites, their chargers' log entries and the API keys that see them."""

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Clock = system_clock,
        faults: Faults | None = None,
        auth_clock: Callable[[], float] = time.time,
        max_skew_seconds: float = MAX_SKEW_SECONDS,
    ) -> None:
        super().__init__(seed=seed, clock=clock, faults=faults)
        self.auth_clock = auth_clock
        self.max_skew_seconds = max_skew_seconds
        self._secrets: dict[str, str] = {}
        self._sites: dict[str, _Site] = {}
        self._routes = Map(
            [
                Rule(f"{PREFIX}/sites", endpoint="sites", methods=["GET"]),
                Rule(f"{PREFIX}/ocpp-logs/site/<site_id>", endpoint="logs", methods=["GET"]),
            ]
        )

    # ------------------------------------------------------------------ set-up
    def add_api_key(self, api_key: str, api_secret: str) -> None:
        with self.lock:
            self._secrets[api_key] = api_secret

    def add_site(self, site_id: str, api_key: str, name: str | None = None) -> None:
        with self.lock:
            if site_id in self._sites:
                raise ValueError(f"site {site_id!r} exists already")
            self._sites[site_id] = _Site(site_id, name or site_id, api_key)

    def add_charger(self, site_id: str, charger_id: str, connectors: int = 2) -> None:
        with self.lock:
            self._site(site_id).chargers[charger_id] = connectors

    def seed(
        self,
        site_id: str,
        start: datetime,
        end: datetime,
        *,
        density: Density | None = None,
        behaviour: Behaviour | Mapping[str, Behaviour] | None = None,
    ) -> int:
        """Add every charger's generated traffic in [start, end] to the site's log; returns the entries added.
        A charger without entries yet boots at ``start``; later spans continue its traffic. ``behaviour``: one
        for every charger of the site, or one per charger id (the others healthy); healthy by default."""
        with self.lock:
            site = self._site(site_id)
            added = 0
            for charger_id, connectors in site.chargers.items():
                rng = Random(self.rng.getrandbits(64))  # noqa: S311 - reproducible simulation, not security
                booting = not any(entry.item["charger_id"] == charger_id for entry in site.entries)
                frames = iter_traffic(
                    charger_id,
                    start,
                    end,
                    rng,
                    connectors,
                    density,
                    booting,
                    behaviour=_behaviour_of(behaviour, charger_id),
                )
                added += self._add(site, charger_id, frames)
            return added

    def stream(
        self,
        site_id: str,
        start: datetime,
        *,
        density: Density | None = None,
        behaviour: Behaviour | Mapping[str, Behaviour] | None = None,
    ) -> int:
        """Every charger's traffic from ``start`` on, without an end: what is due by the clock's now is added at
        once, the rest by ``catch_up`` as the clock moves (``base.LiveTraffic`` calls it), whole exchanges at a
        time. ``behaviour`` as for ``seed``; returns how many entries were added now."""
        with self.lock:
            site = self._site(site_id)
            added = 0
            for charger_id, connectors in site.chargers.items():
                rng = Random(self.rng.getrandbits(64))  # noqa: S311 - reproducible simulation, not security
                booting = not any(entry.item["charger_id"] == charger_id for entry in site.entries)
                frames = iter_traffic(
                    charger_id,
                    start,
                    None,
                    rng,
                    connectors,
                    density,
                    booting,
                    behaviour=_behaviour_of(behaviour, charger_id),
                )
                added += self.add_feed(self._feed(site, charger_id, TrafficFeed(frames)))
            return added

    def _feed(self, site: _Site, charger_id: str, feed: TrafficFeed) -> Callable[[datetime], int]:
        return lambda moment: self._add(site, charger_id, feed.until(moment))

    def forget_before(self, moment: datetime) -> int:
        with self.lock:
            cutoff = to_ms(moment)
            dropped = 0
            for site in self._sites.values():
                index = bisect_left(site.entries, cutoff, key=_AT)
                del site.entries[:index]
                dropped += index
            return dropped

    def insert(self, site_id: str, charger_id: str, frames: Iterable[TrafficFrame]) -> int:
        """Add these frames' exchanges as the charger's entries; returns how many were added."""
        with self.lock:
            return self._add(self._site(site_id), charger_id, frames)

    def visible_records(self, site_id: str) -> list[dict[str, Any]]:
        """Every entry of the site visible now, oldest first: what a complete collection holds."""
        with self.lock:
            now = to_ms(self.clock())
            return [dict(entry.item) for entry in self._site(site_id).entries if entry.visible_ms <= now]

    def _site(self, site_id: str) -> _Site:
        try:
            return self._sites[site_id]
        except KeyError:
            raise KeyError(f"no site {site_id!r}: add_site() it first") from None

    def _add(self, site: _Site, charger_id: str, frames: Iterable[TrafficFrame]) -> int:
        if charger_id not in site.chargers:
            raise KeyError(f"no charger {charger_id!r} at site {site.site_id!r}: add_charger() it first")
        late_rate, late_ms = self.faults.late_rate, int(self.faults.late_seconds * 1000)
        added: list[_Entry] = []
        for request, answer in exchanges(frames):
            at_ms = to_ms(request.timestamp)
            visible_ms = at_ms
            if late_rate > 0 and self.rng.random() < late_rate:
                visible_ms += late_ms
                self.counters.late_records += 1
            item = log_entry(site.site_id, site.name, charger_id, request, answer)
            added.append(_Entry(at_ms, visible_ms, request.action, item))
        if added:
            site.entries.extend(added)
            site.entries.sort(key=_AT)
        return len(added)

    # ------------------------------------------------------------------ HTTP
    def handle(self, request: Request) -> Response:
        try:
            endpoint, arguments = self._routes.bind_to_environ(request.environ).match()
        except HTTPException:  # no route (NestJS answers an unknown method or path alike), or a redirect
            return _problem(404, f"Cannot {request.method} {request.path}", "Not Found")
        api_key = self._authenticated(request)
        if api_key is None:
            return _problem(401, "Unauthorized", None)
        fault = self.transport_fault()
        if fault is not None:
            return fault
        if endpoint == "sites":
            with self.lock:
                sites = [{"id": s.site_id, "name": s.name} for s in self._sites.values() if s.api_key == api_key]
            return self.ok(sites)
        return self._logs(request, api_key, arguments["site_id"])

    def _authenticated(self, request: Request) -> str | None:
        """The request's API key if its signature is good and fresh, else None."""
        api_key = request.headers.get("x-api-key", "")
        timestamp = request.headers.get("x-req-timestamp", "")
        sent = request.headers.get("x-signature", "")
        with self.lock:
            secret = self._secrets.get(api_key)
        if secret is None or not _INTEGER.fullmatch(timestamp) or not sent:
            return None
        if abs(self.auth_clock() - int(timestamp)) > self.max_skew_seconds:
            return None
        expected = signature(
            secret, request.method, _path_with_query(request), timestamp, request.get_data(as_text=True)
        )
        return api_key if hmac.compare_digest(expected, sent.lower()) else None

    def throttled_response(self, retry_after_seconds: int) -> Response:
        body = {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}
        return json_response(body, 429, {"Retry-After": str(retry_after_seconds)})

    def wrong_types(self, body: Any) -> Any:
        """``count`` as a string and each entry's ``occurrence_time`` as Unix seconds."""
        if not isinstance(body, dict):
            return [{**site, "id": 0} for site in body]
        return {
            **body,
            "count": str(body["count"]),
            "ocpp_logs": [
                {**item, "occurrence_time": datetime.fromisoformat(item["occurrence_time"]).timestamp()}
                for item in body["ocpp_logs"]
            ],
        }

    def _logs(self, request: Request, api_key: str, site_id: str) -> Response:
        errors: list[str] = []
        start_us = _iso_ms(_last(request, "from"), "from", errors)
        end_us = _iso_ms(_last(request, "to"), "to", errors)
        sort_order = _last(request, "sort_order") or "desc"
        if sort_order not in ("asc", "desc"):
            errors.append("sort_order must be one of the following values: asc, desc")
        actions_raw = _last(request, "actions")
        actions = {a.strip() for a in actions_raw.split(",") if a.strip()} if actions_raw else set()
        unknown = sorted(actions - ACTIONS)
        if unknown:
            errors.append(f"each value in actions must be one of the following values: {', '.join(sorted(ACTIONS))}")
        take = _number(_last(request, "take"), "take", DEFAULT_TAKE, 1, MAX_TAKE, errors)
        skip = _number(_last(request, "skip"), "skip", 0, 0, None, errors)
        if errors or start_us is None or end_us is None:
            return _problem(400, errors, "Bad Request")
        low, high = -(-start_us // 1000), end_us // 1000  # inclusive bounds in whole milliseconds
        with self.lock:
            site = self._sites.get(site_id)
            if site is None:
                return _problem(404, "Site not found", "Not Found")
            if site.api_key != api_key:
                return _problem(403, "Forbidden resource", "Forbidden")
            if self.chance(self.faults.insert_while_paging_rate):
                self._insert_while_paging(site, low, high)
            now = to_ms(self.clock())
            entries = site.entries[bisect_left(site.entries, low, key=_AT) : bisect_right(site.entries, high, key=_AT)]
            matching = [e.item for e in entries if e.visible_ms <= now and (not actions or e.action in actions)]
        if sort_order == "desc":
            matching.reverse()
        return self.ok({"ocpp_logs": matching[skip : skip + take], "count": len(matching)})

    def _insert_while_paging(self, site: _Site, low: int, high: int) -> None:
        """Add ``insert_count`` Heartbeat entries of a random charger within the range (and not after now)."""
        high = min(high, to_ms(self.clock()))
        if low > high or not site.chargers:
            return
        charger_id = self.rng.choice(sorted(site.chargers))
        frames = generate_heartbeats(from_ms(low), from_ms(high), self.rng, 2 * self.faults.insert_count)
        self._add(site, charger_id, frames)
        self.counters.inserts_while_paging += 1


def _behaviour_of(behaviour: Behaviour | Mapping[str, Behaviour] | None, charger_id: str) -> Behaviour | None:
    if behaviour is None or isinstance(behaviour, Behaviour):
        return behaviour
    return behaviour.get(charger_id)


def _path_with_query(request: Request) -> str:
    """The path and query exactly as the client sent them (what the signature covers)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        return str(raw)
    query = request.query_string.decode("latin-1")
    path = quote(request.root_path + request.path, safe="/:@!$&'()*+,;=-._~%")
    return f"{path}?{query}" if query else path


# ---------------------------------------------------------------------------------------------- local stack
LOCAL_SEED = 23
LOCAL_HISTORY = timedelta(days=1)
LOCAL_RETENTION = timedelta(days=2)
# (site id, name, ((charger id, connectors), ...)): two sites of a depot operator.
LOCAL_SITES = (
    ("site-2f7a91", "Riverside depot", (("CP-RIV-01", 2), ("CP-RIV-02", 2), ("CP-RIV-03", 1))),
    ("site-8c04d3", "Airport long-stay", (("CP-AIR-01", 4), ("CP-AIR-02", 2))),
)


def local_behaviours(started: datetime) -> dict[str, Behaviour]:
    """The local sites' misbehaving chargers, relative to when they start (the others are healthy):

    - CP-RIV-03 was silent from 10 h to 7 h before the start, then booted (a resolved offline alert); its
      connector 1 refused 4 id tags in 5 minutes 4 h before the start (a resolved authorization_failures alert);
      a diagnostics upload failed (UploadFailed) 12 h before the start.
    - CP-AIR-02 failed a firmware update (DownloadFailed) 2 h before the start, with no new attempt (an open
      firmware_failed alert), and had connector 2 Faulted (OverCurrentFailure) for 45 minutes 5 h before the
      start (a resolved connector_faulted alert)."""
    return {
        "CP-RIV-03": Behaviour(
            misbehaviours=(
                Silent(started - timedelta(hours=10), timedelta(hours=3)),
                AuthorizationFailures(started - timedelta(hours=4)),
                DiagnosticsFailure(started - timedelta(hours=12)),
            )
        ),
        "CP-AIR-02": Behaviour(
            misbehaviours=(
                FirmwareFailure(started - timedelta(hours=2), recover=False),
                FaultedConnector(
                    started - timedelta(hours=5), timedelta(minutes=45), connector=2, error_code="OverCurrentFailure"
                ),
            )
        ),
    }


def start_local() -> tuple[str, dict[str, str], Callable[[], None]]:
    """Start ChargePilot for ``chargelog local``: the sites above with a day of traffic ending now that goes on
    live (``LiveTraffic``: new entries every minute; entries older than two days are forgotten), two chargers
    misbehaving (``local_behaviours``), one API key that sees them. Returns (base URL with ``/rest/v1``,
    {"api_key", "api_secret"}, stop): stop ends the live traffic and the server."""
    simulator = ChargepilotSimulator(seed=LOCAL_SEED)
    api_key, api_secret = f"cp-local-{secrets.token_hex(8)}", secrets.token_urlsafe(32)
    simulator.add_api_key(api_key, api_secret)
    started = system_clock()
    behaviours = local_behaviours(started)
    for site_id, name, chargers in LOCAL_SITES:
        simulator.add_site(site_id, api_key, name)
        for charger_id, connectors in chargers:
            simulator.add_charger(site_id, charger_id, connectors)
        simulator.stream(site_id, started - LOCAL_HISTORY, behaviour=behaviours)
    simulator.retention = LOCAL_RETENTION
    live = LiveTraffic(simulator)
    live.start()
    server = SimulatorServer(simulator.wsgi_app)

    def stop() -> None:
        live.stop()
        server.stop()

    try:
        return server.start() + PREFIX, {"api_key": api_key, "api_secret": api_secret}, stop
    except BaseException:
        live.stop()
        raise
