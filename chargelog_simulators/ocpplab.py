"""The OCPPLAB Gateway simulator: its charger-log and charger-list endpoints, as documented, quirks included.

- ``GET /ocpp/chargers/{charger_id}/logs``: ``start_date`` / ``end_date`` (ISO 8601, ``Z`` or an offset; both
  inclusive, compared at the records' millisecond precision), ``event`` (exact OCPP action), ``limit``
  (1..1000, default 1000), ``offset`` (>= 0, default 0). Records ascend by timestamp, ties in the order they
  were added. Body: ``{"data": [...], "total": <matching records>, "limit": L, "offset": O}``.
- ``GET /ocpp/chargers?page=&limit=`` (page from 1, limit 1..100, default 20): the token's chargers,
  ``{"data": [{"id", "identity", "name"}], "total", "page", "limit"}``.
- Each record is ``{"direction", "action", "message", "timestamp"}``. ``message`` is the raw OCPP-J frame as a
  JSON *string*, and the payload keys in it are snake_case (``charge_point_vendor``), as in the vendor's
  example (the form the Python ``ocpp`` library hands payloads to its users in). ``action`` is the CALL's
  action, also on the CALLRESULT or CALLERROR that answers it. ``timestamp`` is UTC, ``...SSZ`` on whole
  seconds and ``...SS.mmmZ`` otherwise.
- Errors are FastAPI's: 401 ``{"detail": "Not authenticated"}`` (missing or unknown Bearer token), 422 with
  pydantic's error list, 404 ``{"detail": "Charger not found"}``, 403 ``{"detail": "Forbidden"}`` (a charger of
  another tenant). Order: route, auth, faults, query validation, then the charger lookup (404/403), as a
  FastAPI handler does it.
- A record is visible from its timestamp on (or ``late_seconds`` later when added late); records not yet
  visible are neither returned nor counted.
- Traffic: ``seed`` adds a charger's generated OCPP traffic for a span, ``stream`` from a time on without an
  end (``catch_up``, called by ``base.LiveTraffic``, adds it as the clock moves). Both are healthy by default;
  ``behaviour=traffic.Behaviour(misbehaviours=(...))`` plays misbehaviours (a boot loop, a faulted connector, a
  silence, a failed firmware update, ...) at given times. ``start_local`` serves the local fleet: a day of
  history, live traffic, and the few misbehaving chargers ``local_behaviours`` lists.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from random import Random
from typing import Any, NamedTuple

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

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
    Behaviour,
    BootLoop,
    Density,
    FaultedConnector,
    StuckSession,
    TrafficFeed,
    TrafficFrame,
    from_ms,
    generate_heartbeats,
    iso_ms,
    iter_traffic,
    to_ms,
)

DEFAULT_TENANT = "tenant-1"
LOGS_MAX_LIMIT = 1000
CHARGERS_MAX_LIMIT = 100
CHARGERS_DEFAULT_LIMIT = 20
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_EPOCH_US = datetime(1970, 1, 1, tzinfo=UTC)
_AT = attrgetter("at_ms")
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False)


# ---------------------------------------------------------------------------------------------- snake_case
_WORD = re.compile(r"(.)([A-Z][a-z]+)")
_HUMP = re.compile(r"([a-z0-9])([A-Z])(?=\S)")


_SNAKE_KEYS: dict[str, str] = {}


def _snake_key(key: str) -> str:
    snake = _SNAKE_KEYS.get(key)
    if snake is None:
        snake = _SNAKE_KEYS[key] = _HUMP.sub(r"\1_\2", _WORD.sub(r"\1_\2", key)).lower()
    return snake


def snake_case_keys(value: Any) -> Any:
    """JSON data (plain dicts and lists) with every dict key, at any depth, turned from camelCase to
    snake_case; values are untouched.

    The rules of ``ocpp.charge_point.camel_to_snake_case`` (``idTagInfo`` -> ``id_tag_info``) without its
    special cases for OCPP 2.x keys, so ``ocpp.charge_point.snake_to_camel_case`` gives an OCPP 1.6 payload
    back.
    """
    # Hot when seeding (most of its time goes here): exact type checks and the cache lookup are written out
    # because they are several times faster than isinstance with a tuple and a call per key.
    if type(value) is dict:
        converted = {}
        for key, item in value.items():
            if type(item) is dict or type(item) is list:
                item = snake_case_keys(item)
            converted[_SNAKE_KEYS.get(key) or _snake_key(key)] = item
        return converted
    if type(value) is list:
        return [snake_case_keys(item) if type(item) is dict or type(item) is list else item for item in value]
    return value


def format_timestamp(moment: datetime) -> str:
    """A record's ``timestamp``: ``YYYY-MM-DDTHH:MM:SSZ``, with ``.mmm`` before the ``Z`` unless whole."""
    moment = moment.astimezone(UTC)
    if moment.microsecond // 1000:
        return iso_ms(moment)
    return moment.isoformat(timespec="seconds")[:-6] + "Z"


def record_item(frame: TrafficFrame) -> dict[str, str]:
    """The record OCPPLAB serves for one frame."""
    wire = frame.ocpp_j()
    wire[-1] = snake_case_keys(wire[-1])
    return {
        "direction": frame.direction,
        "action": frame.action,
        "message": _COMPACT_JSON.encode(wire),
        "timestamp": format_timestamp(frame.timestamp),
    }


# ---------------------------------------------------------------------------------------------- state
class _Record(NamedTuple):
    at_ms: int
    visible_ms: int
    action: str
    item: dict[str, str]


@dataclass(frozen=True)
class _Selection:
    """The visible records of one charger matching one filter, kept while nothing could change them."""

    key: tuple[int | None, int | None, str | None]
    version: int
    computed_ms: int
    valid_until_ms: float  # when the next matching record becomes visible
    items: list[dict[str, str]]


@dataclass
class _Charger:
    charger_id: str
    identity: str
    name: str
    tenant: str
    records: list[_Record] = field(default_factory=list)  # by timestamp, ties in the order added
    version: int = 0  # changes whenever records are added
    selection: _Selection | None = None


# ---------------------------------------------------------------------------------------------- validation
def _error(kind: str, name: str, message: str, raw: str, ctx: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "loc": ["query", name], "msg": message, "input": raw}
    if ctx is not None:
        error["ctx"] = ctx
    return error


def _last(request: Request, name: str) -> str | None:
    values = request.args.getlist(name)
    return values[-1] if values else None  # FastAPI takes the last of repeated parameters


def _integer(
    request: Request, name: str, default: int, errors: list[dict[str, Any]], ge: int, le: int | None = None
) -> int:
    raw = _last(request, name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        errors.append(
            _error("int_parsing", name, "Input should be a valid integer, unable to parse string as an integer", raw)
        )
        return default
    number = int(raw)
    if number < ge:
        errors.append(
            _error("greater_than_equal", name, f"Input should be greater than or equal to {ge}", raw, {"ge": ge})
        )
    elif le is not None and number > le:
        errors.append(_error("less_than_equal", name, f"Input should be less than or equal to {le}", raw, {"le": le}))
    return number


def _microseconds(request: Request, name: str, errors: list[dict[str, Any]]) -> int | None:
    """The parameter as microseconds since the epoch (no time zone means UTC), or None when absent."""
    raw = _last(request, name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        reason = "input is too short" if len(raw) < 10 else "invalid datetime format"
        message = f"Input should be a valid datetime or date, {reason}"
        errors.append(_error("datetime_from_date_parsing", name, message, raw, {"error": reason}))
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH_US) // timedelta(microseconds=1)


# ---------------------------------------------------------------------------------------------- simulator
class OcpplabSimulator(VendorSimulator):
    """OCPPLAB Gateway with its chargers, their records and the tokens of their tenants."""

    def __init__(self, *, seed: int = 0, clock: Clock = system_clock, faults: Faults | None = None) -> None:
        super().__init__(seed=seed, clock=clock, faults=faults)
        self._tokens: dict[str, str] = {}
        self._chargers: dict[str, _Charger] = {}
        self._routes = Map(
            [
                Rule("/ocpp/chargers", endpoint="chargers", methods=["GET"]),
                Rule("/ocpp/chargers/<charger_id>/logs", endpoint="logs", methods=["GET"]),
            ]
        )

    # ------------------------------------------------------------------ set-up
    def add_token(self, token: str, tenant: str = DEFAULT_TENANT) -> None:
        """Accept ``Authorization: Bearer <token>`` for the chargers of ``tenant``."""
        with self.lock:
            self._tokens[token] = tenant

    def add_charger(
        self, charger_id: str, tenant: str = DEFAULT_TENANT, identity: str | None = None, name: str | None = None
    ) -> None:
        """A charger deployment (``charger_id`` is its deployment id) owned by ``tenant``."""
        with self.lock:
            if charger_id in self._chargers:
                raise ValueError(f"charger {charger_id!r} exists already")
            identity = identity or charger_id
            self._chargers[charger_id] = _Charger(charger_id, identity, name or identity, tenant)

    def seed(
        self,
        charger_id: str,
        start: datetime,
        end: datetime,
        *,
        density: Density | None = None,
        connectors: int = 2,
        boot: bool | None = None,
        behaviour: Behaviour | None = None,
    ) -> int:
        """Add the charger's generated OCPP traffic for [start, end]; returns how many records were added.

        ``boot`` (a BootNotification at ``start``) defaults to whether the charger has no records yet, so
        seeding one span after another continues the charger's traffic. ``behaviour``: healthy by default, or
        with misbehaviours (``traffic.Behaviour``). The traffic's RNG is seeded from the simulator's: the same
        seed and the same calls in the same order give the same records."""
        with self.lock:
            charger = self._charger(charger_id)
            rng = Random(self.rng.getrandbits(64))  # noqa: S311 - reproducible simulation, not security
            booting = not charger.records if boot is None else boot
            frames = iter_traffic(charger_id, start, end, rng, connectors, density, booting, behaviour=behaviour)
            return self._add(charger, frames)

    def stream(
        self,
        charger_id: str,
        start: datetime,
        *,
        density: Density | None = None,
        connectors: int = 2,
        boot: bool | None = None,
        behaviour: Behaviour | None = None,
    ) -> int:
        """The charger's traffic from ``start`` on, without an end: what is due by the clock's now is added at
        once, the rest by ``catch_up`` as the clock moves (``base.LiveTraffic`` calls it), whole exchanges at a
        time. ``boot`` and ``behaviour`` as for ``seed``; returns how many records were added now."""
        with self.lock:
            charger = self._charger(charger_id)
            rng = Random(self.rng.getrandbits(64))  # noqa: S311 - reproducible simulation, not security
            booting = not charger.records if boot is None else boot
            feed = TrafficFeed(
                iter_traffic(charger_id, start, None, rng, connectors, density, booting, behaviour=behaviour)
            )
            return self.add_feed(lambda moment: self._add(charger, feed.until(moment)))

    def forget_before(self, moment: datetime) -> int:
        with self.lock:
            cutoff = to_ms(moment)
            dropped = 0
            for charger in self._chargers.values():
                index = bisect_left(charger.records, cutoff, key=_AT)
                if index:
                    del charger.records[:index]
                    charger.version += 1
                    dropped += index
            return dropped

    def insert(self, charger_id: str, frames: Iterable[TrafficFrame]) -> int:
        """Add these frames as the charger's records; returns how many were added."""
        with self.lock:
            return self._add(self._charger(charger_id), frames)

    def visible_records(self, charger_id: str) -> list[dict[str, str]]:
        """Every record of the charger visible now, in the API's order: what a complete collection holds."""
        with self.lock:
            now = to_ms(self.clock())
            return [dict(record.item) for record in self._charger(charger_id).records if record.visible_ms <= now]

    def _charger(self, charger_id: str) -> _Charger:
        try:
            return self._chargers[charger_id]
        except KeyError:
            raise KeyError(f"no charger {charger_id!r}: add_charger() it first") from None

    def _add(self, charger: _Charger, frames: Iterable[TrafficFrame]) -> int:
        """Store frames as records (each maybe late, per the faults), keeping the records in order."""
        late_rate, late_ms = self.faults.late_rate, int(self.faults.late_seconds * 1000)
        added: list[_Record] = []
        for frame in frames:
            at_ms = to_ms(frame.timestamp)
            visible_ms = at_ms
            if late_rate > 0 and self.rng.random() < late_rate:
                visible_ms += late_ms
                self.counters.late_records += 1
            added.append(_Record(at_ms, visible_ms, frame.action, record_item(frame)))
        if not added:
            return 0
        charger.records.extend(added)
        charger.records.sort(key=_AT)  # stable: records with equal timestamps stay in the order added
        charger.version += 1
        return len(added)

    # ------------------------------------------------------------------ HTTP
    def handle(self, request: Request) -> Response:
        try:
            endpoint, arguments = self._routes.bind_to_environ(request.environ).match()
        except NotFound:
            return json_response({"detail": "Not Found"}, 404)
        except MethodNotAllowed:
            return json_response({"detail": "Method Not Allowed"}, 405)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self.lock:
            tenant = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if tenant is None:
            return json_response({"detail": "Not authenticated"}, 401, {"WWW-Authenticate": "Bearer"})
        fault = self.transport_fault()
        if fault is not None:
            return fault
        if endpoint == "chargers":
            return self._list_chargers(request, tenant)
        return self._logs(request, tenant, arguments["charger_id"])

    def throttled_response(self, retry_after_seconds: int) -> Response:
        return json_response({"detail": "Too Many Requests"}, 429, {"Retry-After": str(retry_after_seconds)})

    def wrong_types(self, body: Any) -> Any:
        """``total`` as a string and each record's ``timestamp`` as Unix seconds."""
        return {
            **body,
            "total": str(body["total"]),
            "data": [
                {**item, "timestamp": datetime.fromisoformat(item["timestamp"]).timestamp()}
                if "timestamp" in item
                else item
                for item in body["data"]
            ],
        }

    def _list_chargers(self, request: Request, tenant: str) -> Response:
        errors: list[dict[str, Any]] = []
        page = _integer(request, "page", 1, errors, ge=1)
        limit = _integer(request, "limit", CHARGERS_DEFAULT_LIMIT, errors, ge=1, le=CHARGERS_MAX_LIMIT)
        if errors:
            return json_response({"detail": errors}, 422)
        with self.lock:
            owned = [charger for charger in self._chargers.values() if charger.tenant == tenant]
        data = [
            {"id": charger.charger_id, "identity": charger.identity, "name": charger.name}
            for charger in owned[(page - 1) * limit : page * limit]
        ]
        return self.ok({"data": data, "total": len(owned), "page": page, "limit": limit})

    def _logs(self, request: Request, tenant: str, charger_id: str) -> Response:
        errors: list[dict[str, Any]] = []
        start_us = _microseconds(request, "start_date", errors)
        end_us = _microseconds(request, "end_date", errors)
        event = _last(request, "event") or None
        limit = _integer(request, "limit", LOGS_MAX_LIMIT, errors, ge=1, le=LOGS_MAX_LIMIT)
        offset = _integer(request, "offset", 0, errors, ge=0)
        if errors:
            return json_response({"detail": errors}, 422)
        # Records are whole milliseconds: the inclusive bounds in milliseconds are these.
        low = None if start_us is None else -(-start_us // 1000)
        high = None if end_us is None else end_us // 1000
        with self.lock:
            charger = self._chargers.get(charger_id)
            if charger is None:
                return json_response({"detail": "Charger not found"}, 404)
            if charger.tenant != tenant:
                return json_response({"detail": "Forbidden"}, 403)
            if self.chance(self.faults.insert_while_paging_rate):
                self._insert_while_paging(charger, low, high)
            matching = self._select(charger, low, high, event)
            body = {"data": matching[offset : offset + limit], "total": len(matching), "limit": limit, "offset": offset}
        return self.ok(body)

    def _insert_while_paging(self, charger: _Charger, low: int | None, high: int | None) -> None:
        """Add ``insert_count`` records timed within the requested range (and not after now), if it has room."""
        now = to_ms(self.clock())
        high = now if high is None else min(high, now)
        if low is None:
            low = charger.records[0].at_ms if charger.records else now - 3_600_000
        if low > high:
            return
        self._add(charger, generate_heartbeats(from_ms(low), from_ms(high), self.rng, self.faults.insert_count))
        self.counters.inserts_while_paging += 1

    def _select(self, charger: _Charger, low: int | None, high: int | None, event: str | None) -> list[dict[str, str]]:
        """The visible records matching the filter, in order (cached while paging through one filter)."""
        now = to_ms(self.clock())
        key = (low, high, event)
        cached = charger.selection
        if (
            cached is not None
            and cached.key == key
            and cached.version == charger.version
            and cached.computed_ms <= now < cached.valid_until_ms
        ):
            return cached.items
        records = charger.records
        first = 0 if low is None else bisect_left(records, low, key=_AT)
        last = len(records) if high is None else bisect_right(records, high, key=_AT)
        items: list[dict[str, str]] = []
        next_visible = math.inf
        for record in records[first:last]:
            if event is not None and record.action != event:
                continue
            if record.visible_ms <= now:
                items.append(record.item)
            elif record.visible_ms < next_visible:
                next_visible = record.visible_ms
        charger.selection = _Selection(key, charger.version, now, next_visible, items)
        return items


# ---------------------------------------------------------------------------------------------- local stack
LOCAL_SEED = 16
LOCAL_TENANT = "local"
LOCAL_HISTORY = timedelta(days=1)
LOCAL_RETENTION = timedelta(days=2)
# (deployment id, charge point identity, name, connectors): two sites of a small fleet.
LOCAL_FLEET = (
    ("dep-3f9c2a71", "OCPPLAB-NORTH-01", "North depot, bay 1", 2),
    ("dep-8b14e5d0", "OCPPLAB-NORTH-02", "North depot, bay 2", 2),
    ("dep-c2a7904e", "OCPPLAB-HARBOUR-01", "Harbour car park, post 1", 1),
    ("dep-51d6fb38", "OCPPLAB-HARBOUR-02", "Harbour car park, post 2", 4),
)


def local_behaviours(started: datetime) -> dict[str, Behaviour]:
    """The local fleet's misbehaving chargers, relative to when it starts (the others are healthy):

    - OCPPLAB-NORTH-02 (``dep-8b14e5d0``) was in a boot loop from 3 h to 2 h 20 min before the start (a boot
      every 4 minutes), then recovered: a resolved boot_loop alert.
    - OCPPLAB-HARBOUR-02 (``dep-51d6fb38``) has had connector 3 Faulted (GroundFailure) since 2 h before the
      start, for two days: an open connector_faulted alert. Its connector 4 has a session stuck since 23 h
      before the start (no meter progress) that stops 3 h after it: a stuck_session alert opens an hour after
      the start and resolves two hours later."""
    return {
        "dep-8b14e5d0": Behaviour(misbehaviours=(BootLoop(started - timedelta(hours=3), timedelta(minutes=40)),)),
        "dep-51d6fb38": Behaviour(
            misbehaviours=(
                FaultedConnector(started - timedelta(hours=2), timedelta(days=2), connector=3),
                StuckSession(started - timedelta(hours=23), timedelta(hours=26), connector=4),
            )
        ),
    }


def start_local() -> tuple[str, dict[str, str], Callable[[], None]]:
    """Start an OCPPLAB Gateway for ``chargelog local``: the fleet above with a day of traffic ending now that
    goes on live (``LiveTraffic``: new records every minute; records older than two days are forgotten), a few
    chargers misbehaving (``local_behaviours``), one token that sees it. Returns (base URL, {"token": token},
    stop): stop ends the live traffic and the server."""
    simulator = OcpplabSimulator(seed=LOCAL_SEED)
    token = f"ocpplab-local-{secrets.token_urlsafe(24)}"
    simulator.add_token(token, LOCAL_TENANT)
    started = system_clock()
    behaviours = local_behaviours(started)
    for charger_id, identity, name, connectors in LOCAL_FLEET:
        simulator.add_charger(charger_id, LOCAL_TENANT, identity, name)
        behaviour = behaviours.get(charger_id)
        simulator.stream(charger_id, started - LOCAL_HISTORY, connectors=connectors, behaviour=behaviour)
    simulator.retention = LOCAL_RETENTION
    live = LiveTraffic(simulator)
    live.start()
    server = SimulatorServer(simulator.wsgi_app)

    def stop() -> None:
        live.stop()
        server.stop()

    try:
        return server.start(), {"token": token}, stop
    except BaseException:
        live.stop()
        raise
