"""The framework every fake vendor server is built on.

- ``SimulatorServer`` serves any WSGI application on 127.0.0.1 in a daemon thread (a context manager).
- ``VendorSimulator`` is the base of each vendor's simulator: a seeded ``random.Random`` that drives every
  random choice (so a seed reproduces a run), a replaceable ``Clock``, the ``Faults`` to inject and the
  ``Counters`` of what was served. A subclass routes requests in ``handle`` and calls
  ``transport_fault`` (after its auth check) and ``ok`` (for a 200 JSON body) so the faults apply.
- ``Faults`` are plain mutable settings, all off by default: a test or benchmark changes them at any time,
  between or during requests.
- Live traffic: a simulator's ``stream(...)`` (each vendor's) registers a charger's endless generated traffic;
  ``catch_up`` adds what is due by the simulator's clock (plus a lead: a record shows only from its own time
  on) and forgets records older than ``retention``; ``LiveTraffic`` is the daemon thread that calls it every
  minute or so, so a charger keeps talking as time passes (``chargelog local``'s fleets).
"""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# What "now" is for a simulator: an aware UTC datetime.
Clock = Callable[[], datetime]
BadResponse = Literal["html", "truncated", "wrong_types"]
SHUTDOWN_POLL_SECONDS = 0.02
LIVE_INTERVAL_SECONDS = 60.0
# Adds the records of a streamed source up to a moment that it has not added yet; returns how many it added.
Feed = Callable[[datetime], int]
logger = logging.getLogger(__name__)


def system_clock() -> datetime:
    """The real time: the clock simulators use unless told otherwise."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to, for tests of time-dependent behaviour (late records)."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self.now = now.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward and return the new time."""
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class Faults:
    """What a simulator does wrong, and how often. Rates are probabilities (0..1) per request."""

    error_rate: float = 0.0  # answer 500, 502 or 503
    throttle_rate: float = 0.0  # answer 429 with a Retry-After header
    retry_after_seconds: int = 1
    slow_rate: float = 0.0  # wait slow_seconds before answering
    slow_seconds: float = 2.0
    insert_while_paging_rate: float = 0.0  # per log-page request: first add insert_count records within its range
    insert_count: int = 3
    late_rate: float = 0.0  # per record added: it becomes visible only late_seconds after its timestamp
    late_seconds: float = 300.0
    # The next bad_response_count 200 responses are broken this way: "html", a text/html 502 page;
    # "truncated", half of the JSON body; "wrong_types", the body with mistyped fields. The count goes down
    # as they are served; when it reaches 0, bad_response goes back to None and the count back to 1.
    bad_response: BadResponse | None = None
    bad_response_count: int = 1

    def take_bad_response(self) -> BadResponse | None:
        """The kind of breakage for the response being built now, if any (counting it down)."""
        kind = self.bad_response
        if kind is None or self.bad_response_count <= 0:
            return None
        self.bad_response_count -= 1
        if self.bad_response_count == 0:
            self.bad_response, self.bad_response_count = None, 1
        return kind


@dataclass
class Counters:
    """How many requests a simulator served and how many of each fault it injected."""

    requests: int = 0
    errors: int = 0  # 500/502/503 from error_rate
    throttled: int = 0  # 429 from throttle_rate
    rate_limited: int = 0  # 429 because a client went over the vendor's rate limit (the simulators that keep one)
    slowed: int = 0
    inserts_while_paging: int = 0  # requests before which records were inserted
    late_records: int = 0  # records added late
    bad_responses: int = 0


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A compact JSON response, as FastAPI and most frameworks send them."""
    return Response(_dumps(body), status, headers=dict(headers or {}), content_type="application/json")


def html_error(status: int) -> Response:
    """The error page a reverse proxy (nginx) answers with when the application behind it fails."""
    title = f"{status} {HTTPStatus(status).phrase}"
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
        "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(page, status, content_type="text/html")


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


class VendorSimulator:
    """The base of a vendor simulator, and its WSGI application (``wsgi_app``).

    Subclasses implement ``handle`` and ``wrong_types``; they hold ``lock`` while touching their data, which
    requests on the server's threads share.
    """

    def __init__(self, *, seed: int = 0, clock: Clock = system_clock, faults: Faults | None = None) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible simulation, not security
        self.clock = clock
        self.faults = faults if faults is not None else Faults()
        self.counters = Counters()
        self.lock = threading.RLock()
        # catch_up forgets records sampled before now - retention (None: it keeps every record).
        self.retention: timedelta | None = None
        self._feeds: list[Feed] = []

    # ------------------------------------------------------------------ live traffic
    def add_feed(self, feed: Feed) -> int:
        """Register a streamed source's feed for ``catch_up`` and add what it has up to now; returns how many
        records that was. The vendors' ``stream`` methods build the feeds."""
        with self.lock:
            self._feeds.append(feed)
            return feed(self.clock())

    def catch_up(self, ahead: timedelta = timedelta(0)) -> int:
        """Add the streamed sources' records up to the clock's now plus ``ahead`` (each still shows only from its
        own time on, so a lead makes them there in time) and forget the records older than ``retention``;
        returns how many records were added."""
        with self.lock:
            now = self.clock()
            added = sum(feed(now + ahead) for feed in self._feeds)
            if self.retention is not None:
                self.forget_before(now - self.retention)
            return added

    def forget_before(self, moment: datetime) -> int:
        """Drop every record timed before ``moment``; returns how many were dropped."""
        raise NotImplementedError

    # ------------------------------------------------------------------ HTTP
    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI entry point: give it to ``SimulatorServer`` (or werkzeug's test client)."""
        with self.lock:
            self.counters.requests += 1
        response = self.handle(Request(environ))
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        """The vendor's API: route and answer one request."""
        raise NotImplementedError

    def wrong_types(self, body: Any) -> Any:
        """A copy of a 200 body with some fields of the wrong JSON type (for ``bad_response="wrong_types"``)."""
        raise NotImplementedError

    def chance(self, rate: float) -> bool:
        """True with probability ``rate``. A rate of 0 leaves the RNG untouched, so faults that are off do not
        change what a seed produces."""
        if rate <= 0:
            return False
        with self.lock:
            return self.rng.random() < rate

    def transport_fault(self) -> Response | None:
        """Inject the request-level faults: maybe wait, then maybe a 429 or a 5xx response to send instead."""
        faults = self.faults
        if self.chance(faults.slow_rate):
            with self.lock:
                self.counters.slowed += 1
            time.sleep(faults.slow_seconds)
        if self.chance(faults.throttle_rate):
            with self.lock:
                self.counters.throttled += 1
            return self.throttled_response(faults.retry_after_seconds)
        if self.chance(faults.error_rate):
            with self.lock:
                self.counters.errors += 1
                status = self.rng.choice((500, 502, 503))
            return self.error_response(status)
        return None

    def throttled_response(self, retry_after_seconds: int) -> Response:
        """The vendor's 429."""
        headers = {"Retry-After": str(retry_after_seconds)}
        return Response("Too Many Requests", 429, headers=headers, content_type="text/plain")

    def error_response(self, status: int) -> Response:
        """The vendor's 5xx: the application's own 500, or its proxy's page for 502/503."""
        if status == 500:
            return Response("Internal Server Error", 500, content_type="text/plain")
        return html_error(status)

    def ok(self, body: Any) -> Response:
        """A 200 with this JSON body, unless the faults ask for a broken response instead."""
        with self.lock:
            kind = self.faults.take_bad_response()
            if kind is not None:
                self.counters.bad_responses += 1
        if kind == "html":
            return html_error(502)
        if kind == "truncated":
            text = _dumps(body)
            return Response(text[: len(text) // 2], 200, content_type="application/json")
        if kind == "wrong_types":
            return json_response(self.wrong_types(body))
        return json_response(body)


class LiveTraffic:
    """Keeps a simulator's streamed sources talking as its clock moves: a daemon thread that calls
    ``simulator.catch_up`` at once and then every ``interval_seconds`` of wall-clock time, with a lead of two
    intervals and 5 s, so a record is stored before the simulator's clock reaches its time. ``stop()`` ends it
    and waits for it; so does leaving ``with LiveTraffic(...)``. A failing pass is logged and the next one tried.

    Memory stays bounded: a streamed charger's generator holds one frame ahead per stream (station, CSMS, each
    connector, each episode), and the simulator forgets records older than its ``retention`` on each pass (when
    set)."""

    def __init__(self, simulator: VendorSimulator, interval_seconds: float = LIVE_INTERVAL_SECONDS) -> None:
        if interval_seconds <= 0:
            raise ValueError(f"interval_seconds must be positive, got {interval_seconds!r}")
        self.simulator = simulator
        self.interval_seconds = interval_seconds
        self.ahead = timedelta(seconds=2 * interval_seconds + 5)
        self.passes = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("live traffic runs already")
        self._thread = threading.Thread(target=self._run, name=f"live-traffic:{type(self.simulator).__name__}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it; does nothing when not running."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        thread.join()
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            try:
                self.simulator.catch_up(self.ahead)
            except Exception:
                logger.exception("live traffic: a pass of %s failed", type(self.simulator).__name__)
            self.passes += 1
            if self._stopping.wait(self.interval_seconds):
                return

    def __enter__(self) -> LiveTraffic:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


class _QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's handler without the access-log line per request (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class SimulatorServer:
    """A WSGI application served on 127.0.0.1 from a daemon thread.

    ``start()`` returns the base URL; ``with SimulatorServer(app) as base_url:`` starts and stops it.
    Port 0 (the default) picks a free port.
    """

    def __init__(self, app: WSGIApplication, port: int = 0) -> None:
        self.app = app
        self.port = port
        self.base_url = ""
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        if self._server is not None:
            raise RuntimeError(f"already serving at {self.base_url}")
        server = make_server("127.0.0.1", self.port, self.app, threaded=True, request_handler=_QuietRequestHandler)
        self._server = server
        # A short poll interval: stop() waits up to one interval for the serving loop to notice.
        serve = functools.partial(server.serve_forever, poll_interval=SHUTDOWN_POLL_SECONDS)
        self._thread = threading.Thread(target=serve, name=f"simulator:{server.port}", daemon=True)
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{server.port}"
        return self.base_url

    def stop(self) -> None:
        """Stop serving and free the port; does nothing when not started."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
