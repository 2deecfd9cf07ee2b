"""The ev.energy API v2 simulator: its token endpoint and EVSE status logs, as documented, quirks included.

- ``POST /o/token`` (form-encoded, ``grant_type=client_credentials`` with ``client_id`` / ``client_secret`` in
  the form or HTTP Basic): ``{"access_token", "token_type": "Bearer", "expires_in", "scope"}``. Django OAuth
  Toolkit's errors: 401 ``{"error": "invalid_client"}``, 400 ``{"error": "unsupported_grant_type"}``.
- ``GET /v2/evses/{evse_id}/status_logs``: ``sampled_at__gte`` / ``sampled_at__lte`` (inclusive, ISO 8601),
  ``page_size`` (1..100, default 25), ``page_after`` / ``page_before`` (opaque ids from the Link header).
  Records ascend by ``sampled_at`` (unique per EVSE: the record's ``url`` is made from it). The body is a
  bare JSON array; paging is the RFC 8288 ``Link`` header, ``<...>; rel="previous", <...>; rel="next"``, with
  ``about:blank`` at either end. ``GET /v2/evses`` lists the client's EVSEs the same way.
- Every API call needs a live bearer token (401 otherwise: missing, unknown or expired) and
  ``EvEnergy-Version: 2`` (400 when missing or another value); responses echo ``EvEnergy-Version``. An
  ``Accept`` that rules out JSON is a 406.
- 1000 requests a rolling hour per client: ``x-ratelimit-limit`` / ``x-ratelimit-remaining`` on every API
  response; over it, 429 with ``retry-after``. All errors are ``application/problem+json``
  (``type, status, title, detail``), except the 502/503 pages of the proxy in front.
- A record is visible once *logged*: ``logged_at`` is a few seconds after ``sampled_at``, or ``late_seconds``
  after it for a record added late. Records inserted while a client pages are late-logged records: sampled
  within the requested range and the last ``late_seconds``, logged now.
- Samples: ``seed`` adds an EVSE's status samples for a span, ``stream`` from a time on without an end
  (``catch_up``, called by ``base.LiveTraffic``, adds them as the clock moves). ev.energy has no OCPP, so of
  the traffic's misbehaviours only ``Silent`` applies (``behaviour``): no sample is taken in its span, the EVSE
  looks offline. ``start_local`` serves a day of history, live samples, and the silent EVSE
  ``local_behaviours`` names.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from random import Random
from typing import Any, NamedTuple
from urllib.parse import urlencode

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
from chargelog_simulators.traffic import Behaviour, Silent

API_VERSION = "2"
PUBLIC_BASE = "https://api.ev.energy/v2"  # where records' urls point, as the real API's do
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
RATE_LIMIT = 1000
RATE_WINDOW = timedelta(hours=1)
TOKEN_SECONDS = 3600
PROBLEM_JSON = "application/problem+json"
_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_AT = attrgetter("at_us")


def iso_us(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ``, as the vendor's examples write times."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    body = {"type": f"{PUBLIC_BASE}/problems/{title.lower().replace(' ', '-')}/", "status": status}
    body |= {"title": title, "detail": detail}
    response = json_response(body, status, headers)
    response.content_type = PROBLEM_JSON
    return response


class _Sample(NamedTuple):
    at_us: int
    plugged: bool
    charging: bool
    rate: int
    unknown: bool  # the integration could not tell: every field null


class _StatusLog(NamedTuple):
    at_us: int  # sampled_at, microseconds since the epoch
    logged_us: int
    item: dict[str, Any]


@dataclass
class _Evse:
    evse_id: str
    client_id: str
    records: list[_StatusLog] = field(default_factory=list)  # by sampled_at


@dataclass
class _Client:
    secret: str
    requests: deque[datetime] = field(default_factory=deque)  # API calls in the rolling hour


def _to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // _US


def _from_us(us: int) -> datetime:
    return _EPOCH + us * _US


def _page_id(at_us: int) -> str:
    """An opaque page id (``stlg...``) for the record sampled at ``at_us``."""
    return "stlg" + base64.b32encode(at_us.to_bytes(8, "big")).decode().rstrip("=").lower()


def _page_id_us(page_id: str) -> int | None:
    if not page_id.startswith("stlg"):
        return None
    text = page_id[4:].upper()
    try:
        return int.from_bytes(base64.b32decode(text + "=" * (-len(text) % 8)), "big")
    except (binascii.Error, ValueError):
        return None


def _silences(behaviour: Behaviour | None) -> list[tuple[int, int]]:
    """The ``Silent`` spans of a behaviour, in microseconds; any other misbehaviour is an error (no OCPP here)."""
    spans = []
    for misbehaviour in behaviour.misbehaviours if behaviour is not None else ():
        if not isinstance(misbehaviour, Silent):
            raise ValueError(f"ev.energy has no OCPP traffic: only Silent misbehaviours apply, got {misbehaviour!r}")
        spans.append((_to_us(misbehaviour.at), _to_us(misbehaviour.until)))
    return spans


def _samples(
    rng: Random, low: int, high: int | None, interval_seconds: float, silences: list[tuple[int, int]]
) -> Iterator[_Sample]:
    """An EVSE's status samples about every ``interval_seconds`` from ``low`` to ``high`` (None: endless), outside
    the silent spans, as it plugs in, charges and is left; times in microseconds."""
    step = int(interval_seconds * 1_000_000)
    at = low + rng.randrange(max(1, step // 2))
    plugged, charging = False, False
    while high is None or at <= high:
        roll = rng.random()
        if not plugged and roll < 0.15:
            plugged, charging = True, True
        elif plugged and charging and roll < 0.2:
            charging = False
        elif plugged and not charging and roll < 0.4:
            plugged = False
        unknown = rng.random() < 0.03  # the integration could not tell
        rate = rng.choice((3680, 7360, 11040)) if charging else 0
        if not any(start <= at <= end for start, end in silences):
            yield _Sample(at, plugged, charging, rate, unknown)
        at += step + rng.randrange(-step // 10, step // 10 + 1)


class EvEnergySimulator(VendorSimulator):
    """ev.energy with its OAuth clients, their EVSEs and the EVSEs' status logs."""

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Clock = system_clock,
        faults: Faults | None = None,
        rate_limit: int = RATE_LIMIT,
        token_seconds: int = TOKEN_SECONDS,
        log_delay_seconds: float = 5.0,
    ) -> None:
        super().__init__(seed=seed, clock=clock, faults=faults)
        self.rate_limit = rate_limit
        self.token_seconds = token_seconds
        self.log_delay_seconds = log_delay_seconds  # logged_at - sampled_at, normally
        self.tokens_issued = 0
        self._clients: dict[str, _Client] = {}
        self._tokens: dict[str, tuple[str, datetime]] = {}  # token -> (client id, expiry)
        self._evses: dict[str, _Evse] = {}
        self._routes = Map(
            [
                Rule("/o/token", endpoint="token", methods=["POST"]),
                Rule("/v2/evses", endpoint="evses", methods=["GET"]),
                Rule("/v2/evses/<evse_id>/status_logs", endpoint="status_logs", methods=["GET"]),
            ]
        )

    # ------------------------------------------------------------------ set-up
    def add_client(self, client_id: str, client_secret: str) -> None:
        with self.lock:
            self._clients[client_id] = _Client(client_secret)

    def add_evse(self, evse_id: str, client_id: str) -> None:
        with self.lock:
            if evse_id in self._evses:
                raise ValueError(f"EVSE {evse_id!r} exists already")
            self._evses[evse_id] = _Evse(evse_id, client_id)

    def revoke_tokens(self) -> None:
        """Every issued token stops working (as after a key rotation)."""
        with self.lock:
            self._tokens.clear()

    def seed(
        self,
        evse_id: str,
        start: datetime,
        end: datetime,
        *,
        interval_seconds: float = 300.0,
        behaviour: Behaviour | None = None,
    ) -> int:
        """Status samples about every ``interval_seconds`` in [start, end] (sessions of plugging in, charging
        and leaving), none within ``behaviour``'s ``Silent`` spans; returns how many were added."""
        with self.lock:
            evse = self._evse(evse_id)
            samples = _samples(self.rng, _to_us(start), _to_us(end), interval_seconds, _silences(behaviour))
            return sum(self._add(evse, *sample) for sample in samples)

    def stream(
        self,
        evse_id: str,
        start: datetime,
        *,
        interval_seconds: float = 300.0,
        behaviour: Behaviour | None = None,
    ) -> int:
        """The EVSE's status samples from ``start`` on, without an end: those due by the clock's now are added at
        once, the rest by ``catch_up`` as the clock moves (``base.LiveTraffic`` calls it). ``behaviour`` as for
        ``seed``; returns how many were added now."""
        with self.lock:
            evse = self._evse(evse_id)
            rng = Random(self.rng.getrandbits(64))  # noqa: S311 - reproducible simulation, not security
            samples = _samples(rng, _to_us(start), None, interval_seconds, _silences(behaviour))
            pending: list[_Sample] = []

            def feed(moment: datetime) -> int:
                high, added = _to_us(moment), 0
                while True:
                    sample = pending.pop() if pending else next(samples)
                    if sample.at_us > high:
                        pending.append(sample)
                        return added
                    added += self._add(evse, *sample)

            return self.add_feed(feed)

    def forget_before(self, moment: datetime) -> int:
        with self.lock:
            cutoff = _to_us(moment)
            dropped = 0
            for evse in self._evses.values():
                index = bisect_left(evse.records, cutoff, key=_AT)
                del evse.records[:index]
                dropped += index
            return dropped

    def add_status(
        self,
        evse_id: str,
        sampled_at: datetime,
        *,
        is_plugged_in: bool | None,
        is_charging: bool | None,
        charge_rate_watts: int | None,
        logged_at: datetime | None = None,
    ) -> bool:
        """One status log (False when the EVSE has one sampled at that instant already)."""
        with self.lock:
            evse = self._evse(evse_id)
            at = _to_us(sampled_at)
            logged = None if logged_at is None else _to_us(logged_at)
            return bool(self._add(evse, at, is_plugged_in, is_charging, charge_rate_watts, False, logged))

    def visible_records(self, evse_id: str) -> list[dict[str, Any]]:
        """Every status log of the EVSE logged by now, in the API's order: what a complete collection holds."""
        with self.lock:
            now = _to_us(self.clock())
            return [dict(r.item) for r in self._evse(evse_id).records if r.logged_us <= now]

    def _evse(self, evse_id: str) -> _Evse:
        try:
            return self._evses[evse_id]
        except KeyError:
            raise KeyError(f"no EVSE {evse_id!r}: add_evse() it first") from None

    def _add(
        self,
        evse: _Evse,
        at_us: int,
        plugged: bool | None,
        charging: bool | None,
        rate: int | None,
        unknown: bool,
        logged_us: int | None = None,
    ) -> int:
        index = bisect_left(evse.records, at_us, key=_AT)
        if index < len(evse.records) and evse.records[index].at_us == at_us:
            return 0  # one sample per instant: the url is made from sampled_at
        if logged_us is None:
            logged_us = at_us + int(self.log_delay_seconds * 1_000_000 * (0.5 + self.rng.random()))
            if self.chance(self.faults.late_rate):
                logged_us = at_us + int(self.faults.late_seconds * 1_000_000)
                self.counters.late_records += 1
        sampled = iso_us(_from_us(at_us))
        item = {
            "url": f"{PUBLIC_BASE}/evse/{evse.evse_id}/status_logs/{sampled}/",
            "sampled_at": sampled,
            "logged_at": iso_us(_from_us(logged_us)),
            "evse": f"{PUBLIC_BASE}/evses/{evse.evse_id}/",
            "is_plugged_in": None if unknown else plugged,
            "is_charging": None if unknown else charging,
            "charge_rate_watts": None if unknown else rate,
        }
        insort(evse.records, _StatusLog(at_us, logged_us, item), key=_AT)
        return 1

    # ------------------------------------------------------------------ HTTP
    def handle(self, request: Request) -> Response:
        try:
            endpoint, arguments = self._routes.bind_to_environ(request.environ).match()
        except NotFound:
            return problem(404, "Not found", "Resource does not exist or cannot be accessed.")
        except MethodNotAllowed:
            return problem(405, "Method not allowed", f'Method "{request.method}" not allowed.')
        if endpoint == "token":
            return self._token(request)
        client_id = self._authenticated(request)
        if client_id is None:
            return problem(401, "Unauthorized", "Authentication credentials were not provided.")
        limits = self._count_request(client_id)
        if isinstance(limits, Response):
            return limits
        response = self._api(request, endpoint, arguments, client_id)
        response.headers.update(limits)
        response.headers["EvEnergy-Version"] = API_VERSION
        return response

    def _api(self, request: Request, endpoint: str, arguments: Mapping[str, Any], client_id: str) -> Response:
        version = request.headers.get("EvEnergy-Version")
        if version is None or version.strip() not in ("2", "2.0"):
            return problem(400, "Invalid version", f"Unsupported or missing EvEnergy-Version: {version!r}; use 2.")
        if request.accept_mimetypes and request.accept_mimetypes.best_match(["application/json"]) is None:
            return problem(406, "Not Acceptable", "Could not satisfy the request Accept header.")
        fault = self.transport_fault()
        if fault is not None:
            return fault
        if endpoint == "evses":
            return self._list_evses(request, client_id)
        return self._status_logs(request, client_id, arguments["evse_id"])

    def throttled_response(self, retry_after_seconds: int) -> Response:
        detail = f"Request was throttled. Expected available in {retry_after_seconds} seconds."
        return problem(429, "Throttled", detail, {"retry-after": str(retry_after_seconds)})

    def error_response(self, status: int) -> Response:
        if status == 500:
            return problem(500, "Server error", "A server error occurred.")
        return super().error_response(status)

    def wrong_types(self, body: Any) -> Any:
        """``sampled_at`` as Unix seconds and ``charge_rate_watts`` as a string."""
        return [
            {
                **item,
                "sampled_at": datetime.fromisoformat(item["sampled_at"]).timestamp(),
                "charge_rate_watts": str(item["charge_rate_watts"]),
            }
            if "sampled_at" in item
            else item
            for item in body
        ]

    def _token(self, request: Request) -> Response:
        form = request.form
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if request.authorization is not None and request.authorization.type == "basic":
            client_id = request.authorization.username or ""
            client_secret = request.authorization.password or ""
        with self.lock:
            client = self._clients.get(client_id)
            if client is None or not secrets.compare_digest(client.secret, client_secret):
                return json_response({"error": "invalid_client"}, 401)
            if form.get("grant_type") != "client_credentials":
                return json_response({"error": "unsupported_grant_type"}, 400)
            token = secrets.token_urlsafe(24)
            self._tokens[token] = (client_id, self.clock() + timedelta(seconds=self.token_seconds))
            self.tokens_issued += 1
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.token_seconds, "scope": "read"}
        return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _authenticated(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self.lock:
            grant = self._tokens.get(token.strip())
            if grant is None:
                return None
            client_id, expires = grant
            if self.clock() >= expires:
                del self._tokens[token.strip()]
                return None
            return client_id

    def _count_request(self, client_id: str) -> dict[str, str] | Response:
        """The rate-limit headers for this call, or the 429 when the client's hour is used up."""
        with self.lock:
            now = self.clock()
            window = self._clients[client_id].requests
            while window and window[0] <= now - RATE_WINDOW:
                window.popleft()
            if len(window) >= self.rate_limit:
                wait = max(1, int((window[0] + RATE_WINDOW - now).total_seconds()) + 1)
                self.counters.throttled += 1
                headers = {"x-ratelimit-limit": str(self.rate_limit), "x-ratelimit-remaining": "0"}
                response = self.throttled_response(wait)
                response.headers.update(headers)
                return response
            window.append(now)
            return {
                "x-ratelimit-limit": str(self.rate_limit),
                "x-ratelimit-remaining": str(self.rate_limit - len(window)),
            }

    def _page_size(self, request: Request) -> int | Response:
        raw = request.args.get("page_size")
        if raw is None:
            return DEFAULT_PAGE_SIZE
        try:
            size = int(raw)
        except ValueError:
            return problem(400, "Invalid parameter", f"page_size: A valid integer is required, not {raw!r}.")
        if not 1 <= size <= MAX_PAGE_SIZE:
            return problem(400, "Invalid parameter", f"page_size: must be between 1 and {MAX_PAGE_SIZE}.")
        return size

    def _links(self, request: Request, previous: str | None, following: str | None) -> str:
        def link(param: str, page_id: str | None) -> str:
            if page_id is None:
                return "about:blank"
            args = request.args.copy()
            args.pop("page_after", None)
            args.pop("page_before", None)
            args[param] = page_id
            return f"{request.base_url}?{urlencode(list(args.items(multi=True)))}"

        return f'<{link("page_before", previous)}>; rel="previous", <{link("page_after", following)}>; rel="next"'

    def _status_logs(self, request: Request, client_id: str, evse_id: str) -> Response:
        size = self._page_size(request)
        if isinstance(size, Response):
            return size
        bounds: dict[str, int | None] = {}
        for name in ("sampled_at__gte", "sampled_at__lte"):
            raw = request.args.get(name)
            try:
                moment = None if raw is None else datetime.fromisoformat(raw.strip())
            except ValueError:
                return problem(400, "Invalid parameter", f"{name}: Enter a valid date/time.")
            if moment is not None and moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            bounds[name] = None if moment is None else _to_us(moment)
        cursors: dict[str, int] = {}
        for name in ("page_after", "page_before"):
            raw = request.args.get(name)
            if raw is not None:
                decoded = _page_id_us(raw)
                if decoded is None:
                    return problem(400, "Invalid cursor", f"{name}: {raw!r} is not a valid page id.")
                cursors[name] = decoded
        with self.lock:
            evse = self._evses.get(evse_id)
            if evse is None:
                return problem(404, "Not found", "Resource does not exist or cannot be accessed.")
            if evse.client_id != client_id:
                return problem(403, "Forbidden", "You do not have permission to perform this action.")
            if self.chance(self.faults.insert_while_paging_rate):
                self._insert_while_paging(evse, bounds["sampled_at__gte"], bounds["sampled_at__lte"])
            now = _to_us(self.clock())
            records = evse.records
            first = 0 if bounds["sampled_at__gte"] is None else bisect_left(records, bounds["sampled_at__gte"], key=_AT)
            last = (
                len(records)
                if bounds["sampled_at__lte"] is None
                else bisect_right(records, bounds["sampled_at__lte"], key=_AT)
            )
            matching = [r for r in records[first:last] if r.logged_us <= now]
        keys = [r.at_us for r in matching]
        if "page_after" in cursors:
            start = bisect_right(keys, cursors["page_after"])
            page = matching[start : start + size]
        elif "page_before" in cursors:
            stop = bisect_left(keys, cursors["page_before"])
            start = max(0, stop - size)
            page = matching[start:stop]
        else:
            start = 0
            page = matching[:size]
        end = start + len(page)
        previous = _page_id(page[0].at_us) if page and start > 0 else None
        following = _page_id(page[-1].at_us) if page and end < len(matching) else None
        response = self.ok([dict(r.item) for r in page])
        response.headers["Link"] = self._links(request, previous, following)
        return response

    def _insert_while_paging(self, evse: _Evse, low: int | None, high: int | None) -> None:
        """Records logged now that were sampled within the range and the last ``late_seconds``."""
        now = _to_us(self.clock())
        earliest = now - int(self.faults.late_seconds * 1_000_000)
        low = earliest if low is None else max(low, earliest)
        high = now if high is None else min(high, now)
        if low > high:
            return
        for _ in range(self.faults.insert_count):
            at = self.rng.randint(low, high)
            self._add(evse, at, True, True, 7360, False, logged_us=now)
        self.counters.inserts_while_paging += 1

    def _list_evses(self, request: Request, client_id: str) -> Response:
        size = self._page_size(request)
        if isinstance(size, Response):
            return size
        with self.lock:
            owned = sorted(e.evse_id for e in self._evses.values() if e.client_id == client_id)
        after = request.args.get("page_after")
        start = 0 if after is None else bisect_right(owned, after)
        page = owned[start : start + size]
        following = page[-1] if page and start + size < len(owned) else None
        previous = page[0] if page and start > 0 else None
        response = self.ok([{"id": e, "url": f"{PUBLIC_BASE}/evses/{e}/"} for e in page])
        response.headers["Link"] = self._links(request, previous, following)
        return response


# ---------------------------------------------------------------------------------------------- local stack
LOCAL_SEED = 25
LOCAL_CLIENT_ID = "chargelog-local"
LOCAL_HISTORY = timedelta(days=1)
LOCAL_RETENTION = timedelta(days=2)
LOCAL_EVSES = ("evse01HSH04KDEWF6Z4DB2J77J74K5", "evse01HSH0B1Q9N4W7V3XKD2PZ6TMA", "evse01HSH0C8R2F5T1Y6ZMB4QG7NWE")


def local_behaviours(started: datetime) -> dict[str, Behaviour]:
    """The local EVSEs' misbehaving one, relative to when they start: evse01HSH0C8R2F5T1Y6ZMB4QG7NWE takes no
    status sample from 45 minutes before the start to 75 minutes after it (an offline alert, open at the start,
    resolved by its next sample)."""
    return {
        "evse01HSH0C8R2F5T1Y6ZMB4QG7NWE": Behaviour(
            misbehaviours=(Silent(started - timedelta(minutes=45), timedelta(hours=2)),)
        ),
    }


def start_local() -> tuple[str, dict[str, str], Callable[[], None]]:
    """Start ev.energy for ``chargelog local``: three EVSEs with a day of status logs ending now that go on live
    (``LiveTraffic``: new samples every minute; samples older than two days are forgotten), one of them silent
    for a while (``local_behaviours``), one OAuth client that sees them. Returns (base URL ``.../v2``,
    {"client_id", "client_secret"}, stop): stop ends the live traffic and the server."""
    simulator = EvEnergySimulator(seed=LOCAL_SEED)
    client_secret = secrets.token_urlsafe(24)
    simulator.add_client(LOCAL_CLIENT_ID, client_secret)
    started = system_clock()
    behaviours = local_behaviours(started)
    for evse_id in LOCAL_EVSES:
        simulator.add_evse(evse_id, LOCAL_CLIENT_ID)
        simulator.stream(evse_id, started - LOCAL_HISTORY, behaviour=behaviours.get(evse_id))
    simulator.retention = LOCAL_RETENTION
    live = LiveTraffic(simulator)
    live.start()
    server = SimulatorServer(simulator.wsgi_app)

    def stop() -> None:
        live.stop()
        server.stop()

    try:
        base = server.start()
    except BaseException:
        live.stop()
        raise
    return f"{base}/v2", {"client_id": LOCAL_CLIENT_ID, "client_secret": client_secret}, stop
