"""The Plugchoice API v3 simulator: its charger-log and charger-list endpoints, as documented, quirks included.

Served under ``/api`` (the vendor's base URL is ``https://app.plugchoice.com/api``):

- ``GET /api/v3/chargers/{uuid}/logs``: ``filter[method]``, ``filter[status]`` (pending, done, failed),
  ``filter[destination]`` (centralsystem, charger), ``filter[hide_insignificant]`` (1 hides MeterValues and
  SetChargingProfile), ``filter[date_from]`` / ``filter[date_to]`` (``Y-m-d`` or ``Y-m-d H:i:s``, UTC, both
  inclusive: a date alone means its whole day; ``date_to`` before ``date_from`` is a 422), ``sort``
  (``created_at`` ascending, ``-created_at`` descending, the default; ties by id), ``page`` (Laravel reads
  anything that is not an integer >= 1 as page 1).
- Laravel's simple paginator, 25 a page: ``{data, links: {first, last: null, prev, next}, meta: {current_page,
  from, path, per_page, to}, filter_options: {methods}}``; no total. Links carry the request's query with
  the page changed. ``flat_paging=True`` gives the flat form (``next_page_url`` ... beside ``data``).
- One log per OCPP exchange: ``params`` is the CALL's payload and ``result`` its answer. A log is created
  ``pending`` (result null) when the CALL is sent and updated to ``done`` (or ``failed``, with the CALLERROR
  as the result) when the answer comes; ``updated_at`` moves then, ``created_at`` never. ``created_at`` is
  whole seconds (a MySQL timestamp). ``params`` comes as a JSON string now and then (``string_params_rate``),
  as ``"[]"`` when empty, as seen on the live API.
- Errors are Laravel's: 401 ``{"message": "Unauthenticated."}``, 403 ``{"message": "This action is
  unauthorized."}`` (another user's charger), 404 for an unknown charger or route, 422 ``{"message",
  "errors": {field: [..]}}``. Every answer carries ``X-RateLimit-Limit`` / ``X-RateLimit-Remaining``; over
  ``rate_limit_per_minute`` requests of one token in a minute (wall clock) it answers 429 ``{"message": "Too
  Many Attempts."}`` with ``Retry-After`` (counted in ``counters.rate_limited``), as it does for the
  ``throttle_rate`` fault. ``rate_window_seconds`` shrinks the minute for tests (the limit is then per that
  window); ``max_in_window`` is the most requests one token sent in any rolling window of that length, the
  strictest reading of the limit.
- Faults (``base.Faults``): 5xx, 429, slow answers, records inserted into the requested range while a client
  pages (timed at most ``late_seconds`` before now), late records (visible ``late_seconds`` after their
  ``created_at``), broken bodies. Besides:
  ``slow_answer_rate`` / ``slow_answer_seconds``: that share of logs stays pending that long.
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
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any
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
from chargelog_simulators.traffic import (
    CALL,
    CALLERROR,
    Behaviour,
    Density,
    ErrorBurst,
    FirmwareFailure,
    Silent,
    TrafficFeed,
    TrafficFrame,
    from_ms,
    generate_heartbeats,
    iter_traffic,
    to_ms,
)

DEFAULT_USER = "user-1"
PER_PAGE = 25
RATE_LIMIT_PER_MINUTE = 500
INSIGNIFICANT = frozenset({"MeterValues", "SetChargingProfile"})
STATUSES = ("pending", "done", "failed")
DESTINATIONS = {"cp_to_csms": "centralsystem", "csms_to_cp": "charger"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_INTEGER = re.compile(r"[0-9]+")


def laravel_time(seconds: int) -> str:
    """A model timestamp as Laravel serializes it: ``2026-04-09T10:15:00.000000Z``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


@dataclass
class _Log:
    """One log row. Before ``answered_ms`` it is pending; ``visible_ms`` is when it can be read."""

    id: int
    created_s: int
    visible_ms: int
    answered_ms: int
    method: str
    destination: str
    params: Any
    final_status: str = "pending"
    final_result: dict[str, Any] | None = None

    def item(self, charger_number: int, now_ms: int) -> dict[str, Any]:
        answered = now_ms >= self.answered_ms
        return {
            "id": self.id,
            "charger_id": charger_number,
            "status": self.final_status if answered else "pending",
            "version": "1.6",
            "method": self.method,
            "destination": self.destination,
            "params": self.params,
            "result": self.final_result if answered else None,
            "created_at": laravel_time(self.created_s),
            "updated_at": laravel_time(max(self.created_s, self.answered_ms // 1000) if answered else self.created_s),
        }

    def status_at(self, now_ms: int) -> str:
        return self.final_status if now_ms >= self.answered_ms else "pending"


@dataclass
class _Charger:
    uuid: str
    number: int
    identity: str
    user: str
    logs: list[_Log] = field(default_factory=list)  # by (created_s, id)


class _Invalid(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


class PlugchoiceSimulator(VendorSimulator):
    """Plugchoice with its users' tokens, their chargers and the chargers' OCPP logs."""

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Clock = system_clock,
        faults: Faults | None = None,
        flat_paging: bool = False,
        rate_limit_per_minute: int | None = RATE_LIMIT_PER_MINUTE,
        rate_window_seconds: float = 60.0,
        string_params_rate: float = 0.1,
        slow_answer_rate: float = 0.0,
        slow_answer_seconds: float = 120.0,
    ) -> None:
        super().__init__(seed=seed, clock=clock, faults=faults)
        self.flat_paging = flat_paging
        self.rate_limit_per_minute = rate_limit_per_minute
        self.rate_window_seconds = rate_window_seconds
        self.max_in_window = 0  # the most requests of one token in any rolling window (rate_window_seconds)
        self._recent: dict[str, deque[float]] = {}  # token -> its requests' times (monotonic) in the last window
        self.string_params_rate = string_params_rate
        self.slow_answer_rate = slow_answer_rate
        self.slow_answer_seconds = slow_answer_seconds
        self._tokens: dict[str, str] = {}
        self._chargers: dict[str, _Charger] = {}
        self._next_id = 1
        self._minute: dict[str, tuple[int, int]] = {}  # token -> (wall-clock window, requests in it)
        self._routes = Map(
            [
                Rule("/api/v3/chargers", endpoint="chargers", methods=["GET"]),
                Rule("/api/v3/chargers/<charger>/logs", endpoint="logs", methods=["GET"]),
            ]
        )

    # ------------------------------------------------------------------ set-up
    def add_token(self, token: str, user: str = DEFAULT_USER) -> None:
        """Accept ``Authorization: Bearer <token>`` (a personal access token) for the chargers of ``user``."""
        with self.lock:
            self._tokens[token] = user

    def add_charger(self, uuid: str, user: str = DEFAULT_USER, identity: str | None = None) -> None:
        with self.lock:
            if uuid in self._chargers:
                raise ValueError(f"charger {uuid!r} exists already")
            number = len(self._chargers) + 1001
            self._chargers[uuid] = _Charger(uuid, number, identity or f"PC-{number}", user)

    def seed(
        self,
        uuid: str,
        start: datetime,
        end: datetime,
        *,
        density: Density | None = None,
        connectors: int = 2,
        boot: bool | None = None,
        behaviour: Behaviour | None = None,
    ) -> int:
        """Add the charger's generated OCPP traffic for [start, end] as logs; returns how many were added.
        ``boot`` defaults to whether the charger has no logs yet; ``behaviour`` is healthy by default."""
        with self.lock:
            charger = self._charger(uuid)
            rng = Random(self.rng.getrandbits(64))  # noqa: S311 - reproducible simulation, not security
            booting = not charger.logs if boot is None else boot
            frames = iter_traffic(uuid, start, end, rng, connectors, density, booting, behaviour=behaviour)
            return self._add(charger, frames)

    def stream(
        self,
        uuid: str,
        start: datetime,
        *,
        density: Density | None = None,
        connectors: int = 2,
        boot: bool | None = None,
        behaviour: Behaviour | None = None,
    ) -> int:
        """The charger's traffic from ``start`` on, without an end: what is due by the clock's now is added at
        once, the rest by ``catch_up`` as the clock moves (``base.LiveTraffic`` calls it), whole exchanges at a
        time. ``boot`` and ``behaviour`` as for ``seed``; returns how many logs were added now."""
        with self.lock:
            charger = self._charger(uuid)
            rng = Random(self.rng.getrandbits(64))  # noqa: S311 - reproducible simulation, not security
            booting = not charger.logs if boot is None else boot
            feed = TrafficFeed(iter_traffic(uuid, start, None, rng, connectors, density, booting, behaviour=behaviour))
            return self.add_feed(lambda moment: self._add(charger, feed.until(moment)))

    def forget_before(self, moment: datetime) -> int:
        with self.lock:
            cutoff = to_ms(moment) // 1000
            dropped = 0
            for charger in self._chargers.values():
                index = bisect_left(charger.logs, cutoff, key=lambda log: log.created_s)
                del charger.logs[:index]
                dropped += index
            return dropped

    def insert(self, uuid: str, frames: Iterable[TrafficFrame]) -> int:
        """Add these frames (CALLs and their answers) as the charger's logs; returns how many logs were added."""
        with self.lock:
            return self._add(self._charger(uuid), frames)

    def visible_records(self, uuid: str) -> list[dict[str, Any]]:
        """Every log of the charger visible now, oldest first, as served now: what a complete collection holds."""
        with self.lock:
            charger = self._charger(uuid)
            now = to_ms(self.clock())
            return [log.item(charger.number, now) for log in charger.logs if log.visible_ms <= now]

    def _charger(self, uuid: str) -> _Charger:
        try:
            return self._chargers[uuid]
        except KeyError:
            raise KeyError(f"no charger {uuid!r}: add_charger() it first") from None

    def _add(self, charger: _Charger, frames: Iterable[TrafficFrame]) -> int:
        """One log per CALL, completed by its answer (which may be slowed, per ``slow_answer_rate``)."""
        open_calls: dict[str, _Log] = {}
        added = 0
        for frame in frames:
            if frame.message_type_id == CALL:
                log = self._new_log(frame)
                open_calls[frame.message_id] = log
                charger.logs.append(log)
                added += 1
                continue
            log_or_none = open_calls.pop(frame.message_id, None)
            if log_or_none is None:
                continue  # an answer without its CALL in these frames
            log = log_or_none
            log.answered_ms = to_ms(frame.timestamp)
            if self.slow_answer_rate > 0 and self.rng.random() < self.slow_answer_rate:
                log.answered_ms += int(self.slow_answer_seconds * 1000)
            if frame.message_type_id == CALLERROR:
                log.final_status, log.final_result = "failed", dict(frame.payload)
            else:
                log.final_status, log.final_result = "done", dict(frame.payload)
        if added:
            charger.logs.sort(key=lambda log: (log.created_s, log.id))
        return added

    def _new_log(self, frame: TrafficFrame) -> _Log:
        at_ms = to_ms(frame.timestamp)
        visible_ms = at_ms
        if self.faults.late_rate > 0 and self.rng.random() < self.faults.late_rate:
            visible_ms += int(self.faults.late_seconds * 1000)
            self.counters.late_records += 1
        params: Any = frame.payload
        if not params:
            params = "[]"  # PHP's empty array, JSON-encoded into the column
        elif self.string_params_rate > 0 and self.rng.random() < self.string_params_rate:
            params = json.dumps(params, separators=(",", ":"))
        log = _Log(
            id=self._next_id,
            created_s=at_ms // 1000,
            visible_ms=visible_ms,
            answered_ms=2**62,  # pending until its answer is added
            method=frame.action,
            destination=DESTINATIONS[frame.direction],
            params=params,
        )
        self._next_id += 1
        return log

    # ------------------------------------------------------------------ HTTP
    def handle(self, request: Request) -> Response:
        try:
            endpoint, arguments = self._routes.bind_to_environ(request.environ).match()
        except NotFound:
            return json_response({"message": "Not Found"}, 404)
        except MethodNotAllowed:
            return json_response({"message": f"The {request.method} method is not supported for route."}, 405)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        with self.lock:
            user = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if user is None:
            return json_response({"message": "Unauthenticated."}, 401)
        limited, remaining = self._count(token)
        if limited:
            with self.lock:
                self.counters.rate_limited += 1
            window = self.rate_window_seconds
            response = self.throttled_response(max(1, math.ceil(window - time.time() % window)))
        else:
            response = self.transport_fault() or self._route(request, user, endpoint, arguments)
        response.headers["X-RateLimit-Limit"] = str(self.rate_limit_per_minute or RATE_LIMIT_PER_MINUTE)
        response.headers["X-RateLimit-Remaining"] = str(remaining)
        return response

    def _count(self, token: str) -> tuple[bool, int]:
        """Count the request against the token's minute (its wall-clock window) and its rolling window; returns (over
        the limit, requests left)."""
        limit = self.rate_limit_per_minute
        minute = int(time.time() // self.rate_window_seconds)
        at = time.monotonic()
        with self.lock:
            current, used = self._minute.get(token, (minute, 0))
            used = used + 1 if current == minute else 1
            self._minute[token] = (minute, used)
            recent = self._recent.setdefault(token, deque())
            recent.append(at)
            while recent[0] <= at - self.rate_window_seconds:
                recent.popleft()
            self.max_in_window = max(self.max_in_window, len(recent))
        if limit is None:
            return False, RATE_LIMIT_PER_MINUTE
        return used > limit, max(0, limit - used)

    def _route(self, request: Request, user: str, endpoint: str, arguments: Mapping[str, Any]) -> Response:
        try:
            if endpoint == "chargers":
                return self._list_chargers(request, user)
            return self._logs(request, user, arguments["charger"])
        except _Invalid as invalid:
            first = next(iter(invalid.errors.values()))[0]
            more = sum(len(messages) for messages in invalid.errors.values()) - 1
            message = first + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")
            return json_response({"message": message, "errors": invalid.errors}, 422)

    def throttled_response(self, retry_after_seconds: int) -> Response:
        return json_response({"message": "Too Many Attempts."}, 429, {"Retry-After": str(retry_after_seconds)})

    def error_response(self, status: int) -> Response:
        if status == 500:
            return json_response({"message": "Server Error"}, 500)
        return super().error_response(status)

    def wrong_types(self, body: Any) -> Any:
        """``data`` as an object keyed by position (PHP's array with holes) and the next link as a page number."""
        broken = {**body, "data": {str(n): item for n, item in enumerate(body["data"])}}
        if "links" in broken:
            broken["links"] = {**broken["links"], "next": body["meta"]["current_page"] + 1}
        return broken

    def _page_number(self, request: Request) -> int:
        raw = request.args.get("page", "1")
        return int(raw) if _INTEGER.fullmatch(raw) and int(raw) >= 1 else 1

    def _paginate(self, request: Request, rows: list[Any], extra: dict[str, Any] | None = None) -> Response:
        page = self._page_number(request)
        window = rows[(page - 1) * PER_PAGE : page * PER_PAGE + 1]  # one more: is there a next page?
        data, more = window[:PER_PAGE], len(window) > PER_PAGE
        path = request.base_url

        def url(number: int) -> str:
            query = [(k, v) for k, v in request.args.items(multi=True) if k != "page"] + [("page", str(number))]
            return f"{path}?{urlencode(query)}"

        first_index = (page - 1) * PER_PAGE + 1 if data else None
        last_index = first_index + len(data) - 1 if first_index is not None else None
        next_url = url(page + 1) if more else None
        prev_url = url(page - 1) if page > 1 else None
        if self.flat_paging:
            body: dict[str, Any] = {
                "current_page": page,
                "data": data,
                "first_page_url": url(1),
                "from": first_index,
                "next_page_url": next_url,
                "path": path,
                "per_page": PER_PAGE,
                "prev_page_url": prev_url,
                "to": last_index,
            }
        else:
            body = {
                "data": data,
                "links": {"first": url(1), "last": None, "prev": prev_url, "next": next_url},
                "meta": {
                    "current_page": page,
                    "from": first_index,
                    "path": path,
                    "per_page": PER_PAGE,
                    "to": last_index,
                },
            }
        return self.ok(body | (extra or {}))

    def _list_chargers(self, request: Request, user: str) -> Response:
        with self.lock:
            owned = [charger for charger in self._chargers.values() if charger.user == user]
        rows = [{"id": c.number, "uuid": c.uuid, "identity": c.identity} for c in owned]
        return self._paginate(request, rows)

    def _logs(self, request: Request, user: str, uuid: str) -> Response:
        low, high = self._date_range(request)
        args = request.args
        errors: dict[str, list[str]] = {}
        status = args.get("filter[status]")
        if status is not None and status not in STATUSES:
            errors["filter.status"] = ["The selected filter.status is invalid."]
        destination = args.get("filter[destination]")
        if destination is not None and destination not in DESTINATIONS.values():
            errors["filter.destination"] = ["The selected filter.destination is invalid."]
        sort = args.get("sort", "-created_at")
        if sort not in ("created_at", "-created_at"):
            errors["sort"] = [f"Requested sort(s) `{sort}` is not allowed. Allowed sort(s) are `created_at`."]
        if errors:
            raise _Invalid(errors)
        method = args.get("filter[method]") or None
        hide = args.get("filter[hide_insignificant]") == "1"
        with self.lock:
            charger = self._chargers.get(uuid)
            if charger is None:
                return json_response({"message": "No query results for model [App\\Models\\Charger]."}, 404)
            if charger.user != user:
                return json_response({"message": "This action is unauthorized."}, 403)
            if self.chance(self.faults.insert_while_paging_rate):
                self._insert_while_paging(charger, low, high)
            now = to_ms(self.clock())
            keys = [(log.created_s, log.id) for log in charger.logs]
            first = 0 if low is None else bisect_left(keys, (low, -1))
            last = len(keys) if high is None else bisect_right(keys, (high, 2**62))
            rows = [
                log.item(charger.number, now)
                for log in charger.logs[first:last]
                if log.visible_ms <= now
                and (method is None or log.method == method)
                and (status is None or log.status_at(now) == status)
                and (destination is None or log.destination == destination)
                and not (hide and log.method in INSIGNIFICANT)
            ]
            methods = sorted({log.method for log in charger.logs})
        if sort == "-created_at":
            rows.reverse()
        return self._paginate(request, rows, {"filter_options": {"methods": methods}})

    def _date_range(self, request: Request) -> tuple[int | None, int | None]:
        """The inclusive bounds in whole seconds of ``filter[date_from]`` / ``filter[date_to]``."""
        errors: dict[str, list[str]] = {}
        bounds: list[int | None] = []
        for name, whole_day_end in (("date_from", False), ("date_to", True)):
            raw = request.args.get(f"filter[{name}]")
            if raw is None or raw == "":
                bounds.append(None)
                continue
            if _DATE_TIME.fullmatch(raw):
                text = raw
            elif _DATE.fullmatch(raw):
                text = f"{raw} {'23:59:59' if whole_day_end else '00:00:00'}"
            else:
                errors[f"filter.{name}"] = [
                    f"The filter.{name.replace('_', ' ')} field must match the format Y-m-d or Y-m-d H:i:s."
                ]
                bounds.append(None)
                continue
            try:
                moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            except ValueError:
                errors[f"filter.{name}"] = [f"The filter.{name.replace('_', ' ')} field must be a valid date."]
                bounds.append(None)
                continue
            bounds.append(int(moment.timestamp()))
        low, high = bounds
        if low is not None and high is not None and high < low:
            errors["filter.date_to"] = ["The filter.date to field must be a date after or equal to filter.date from."]
        if errors:
            raise _Invalid(errors)
        return low, high

    def _insert_while_paging(self, charger: _Charger, low: int | None, high: int | None) -> None:
        """Add ``insert_count`` Heartbeat logs timed within the requested range, not after now and at most
        ``late_seconds`` before it.

        Plugchoice stamps ``created_at`` when it stores a log, so a log stored while a client pages is the
        newest; one with an older ``created_at`` is a late one, and late logs are at most ``late_seconds`` late
        here. (A log inserted behind a client's page cannot be read in that pass: with no total the client
        cannot notice; its next run's lookback re-reads it, if the lookback spans ``late_seconds``.)"""
        now_s = to_ms(self.clock()) // 1000
        high = now_s if high is None else min(high, now_s)
        earliest = now_s - int(self.faults.late_seconds)
        low = earliest if low is None else max(low, earliest)
        if low > high:
            return
        frames = generate_heartbeats(from_ms(low * 1000), from_ms(high * 1000), self.rng, 2 * self.faults.insert_count)
        self._add(charger, frames)
        self.counters.inserts_while_paging += 1


# ---------------------------------------------------------------------------------------------- local stack
LOCAL_SEED = 5
LOCAL_USER = "local"
LOCAL_HISTORY = timedelta(days=1)
LOCAL_RETENTION = timedelta(days=2)
# (charger UUID, identity, connectors)
LOCAL_FLEET = (
    ("6f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8", "PC-OFFICE-01", 2),
    ("0b9a8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d", "PC-OFFICE-02", 2),
    ("c4d5e6f7-a8b9-4c0d-8e1f-2a3b4c5d6e7f", "PC-HOME-01", 1),
)


def local_behaviours(started: datetime) -> dict[str, Behaviour]:
    """The local fleet's misbehaving chargers, relative to when it starts (the others are healthy):

    - PC-OFFICE-02 had a firmware update fail (InstallationFailed) 6 h before the start and one succeed 3 h
      later (a resolved firmware_failed alert), and a burst of 8 CALLERRORs in 5 minutes an hour before the
      start (a resolved error_burst alert).
    - PC-HOME-01 went silent 90 minutes before the start and boots again 90 minutes after it: an offline alert,
      open at the start, resolved by the boot."""
    return {
        "0b9a8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d": Behaviour(
            misbehaviours=(
                FirmwareFailure(started - timedelta(hours=6), timedelta(hours=3), failure="InstallationFailed"),
                ErrorBurst(started - timedelta(hours=1)),
            )
        ),
        "c4d5e6f7-a8b9-4c0d-8e1f-2a3b4c5d6e7f": Behaviour(
            misbehaviours=(Silent(started - timedelta(minutes=90), timedelta(hours=3)),)
        ),
    }


def start_local() -> tuple[str, dict[str, str], Callable[[], None]]:
    """Start Plugchoice for ``chargelog local``: three chargers with a day of traffic ending now that goes on
    live (``LiveTraffic``: new logs every minute; logs older than two days are forgotten), two of them
    misbehaving (``local_behaviours``), one token that sees them. Returns (base URL ending in ``/api``,
    {"token": token}, stop): stop ends the live traffic and the server."""
    simulator = PlugchoiceSimulator(seed=LOCAL_SEED)
    token = f"plugchoice-local-{secrets.token_urlsafe(24)}"
    simulator.add_token(token, LOCAL_USER)
    started = system_clock()
    behaviours = local_behaviours(started)
    for uuid, identity, connectors in LOCAL_FLEET:
        simulator.add_charger(uuid, LOCAL_USER, identity)
        simulator.stream(uuid, started - LOCAL_HISTORY, connectors=connectors, behaviour=behaviours.get(uuid))
    simulator.retention = LOCAL_RETENTION
    live = LiveTraffic(simulator)
    live.start()
    server = SimulatorServer(simulator.wsgi_app)

    def stop() -> None:
        live.stop()
        server.stop()

    try:
        return f"{server.start()}/api", {"token": token}, stop
    except BaseException:
        live.stop()
        raise
