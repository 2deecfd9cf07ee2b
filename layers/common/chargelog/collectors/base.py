"""The one small interface every vendor adapter implements, and what it needs to connect."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from copy import replace
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

from chargelog import json_pointer

if TYPE_CHECKING:  # the HTTP client (httpx) and the record model load with the adapters, not with this interface
    from chargelog.collectors.vendor_http import VendorHttpClient
    from chargelog.models.records import LogRecord
from chargelog.vendors import SourceKind

# How a vendor call failed: the classes the vendor error metrics count (chargelog.metric_names).
FailureClass = Literal["server_errors", "throttles", "client_errors", "timeouts", "bad_bodies"]


class VendorError(Exception):
    """A vendor call failed; the message is what an operator needs to read at 2 a.m. Its subclasses (what
    chargelog.collectors.vendor_http raises) say whether it is worth retrying."""

    retryable = False
    failure_class: FailureClass = "client_errors"  # what VendorCalls counts it as
    tallied = False  # counted by a VendorCalls already


@dataclass
class VendorCalls:
    """What a client's calls to a vendor came to: requests sent, retries, and failed calls by class."""

    requests: int = 0
    retries: int = 0
    server_errors: int = 0  # 5xx
    throttles: int = 0  # 429
    client_errors: int = 0  # other 4xx (401 and 403 among them)
    timeouts: int = 0  # timeouts and connection errors
    bad_bodies: int = 0  # a 2xx whose body does not parse or is not the documented one

    @property
    def errors(self) -> int:
        return self.server_errors + self.throttles + self.client_errors + self.timeouts + self.bad_bodies

    def record(self, error: BaseException) -> None:
        """Count a failed call, once: a vendor error (``VendorError``: it names its ``failure_class``) already
        counted (by the client, before it reached the caller) or any other exception is left alone."""
        failure_class = getattr(error, "failure_class", None)
        if failure_class is not None and not getattr(error, "tallied", False):
            error.tallied = True  # type: ignore[attr-defined]
            setattr(self, failure_class, getattr(self, failure_class) + 1)

    def add(self, other: VendorCalls) -> None:
        for tally in fields(self):
            setattr(self, tally.name, getattr(self, tally.name) + getattr(other, tally.name))


class Window(NamedTuple):
    """A time range, inclusive at both ends."""

    start: datetime
    end: datetime


@dataclass
class Page:
    """One response of a vendor's log API."""

    items: list[Any]  # the vendor's records, as received
    body: Any  # the whole decoded body, for the raw archive
    request: dict[str, Any]  # what was asked, for the raw archive
    next_cursor: str | None  # where the next page starts; None when this was the last
    total: int | None  # the vendor's count of records matching the query, when it gives one
    # Where ``items`` sit in ``body``: a JSON pointer (RFC 6901; "" when the body is the list). The archive keeps it
    # with the page, so a stored record points at its raw form there (page and index) instead of holding a copy.
    # None: the items are not found as such in the body, and each record keeps its raw form in the table.
    items_at: str | None = None

    def __post_init__(self) -> None:
        if self.items_at is not None and json_pointer.resolve(self.body, self.items_at) != self.items:
            raise ValueError(f"the page's items are not at {self.items_at!r} in its body")


class DiscoveredSource(NamedTuple):
    """One charger, site or EVSE a vendor's credentials can see: what a source would be registered as."""

    source_id: str  # the id the vendor's log API is addressed by
    kind: SourceKind
    name: str | None = None  # the vendor's display name, if it gives one
    details: Mapping[str, str] = MappingProxyType({})  # what else helps a person: OCPP identity, site...


@dataclass(frozen=True)
class RateLimit:
    """A vendor's documented request limit: at most ``requests`` in any ``window`` (per user or app: one vendor
    secret is one budget, shared by every worker of the vendor's queue)."""

    requests: int
    window: timedelta

    def __post_init__(self) -> None:
        if self.requests < 1 or self.window <= timedelta(0):
            raise ValueError(f"a rate limit needs requests >= 1 and a positive window, got {self!r}")

    @property
    def per_second(self) -> float:
        return self.requests / self.window.total_seconds()


# Of a documented limit the workers together plan to use at most this share. A token bucket lets a worker make at
# most ``burst + rate * window`` requests in any window, and the pacing below keeps the workers' sum of that to this
# share; the rest absorbs a worker container replaced within a window (a new one starts with a full bucket), the
# vendor's window and ours not lining up, and a few requests a process makes outside a job (discovery's list).
RATE_LIMIT_SHARE = 0.95
# How many workers share a vendor's budget when nothing says: the vendor queues' MaximumConcurrency in the template.
DEFAULT_WORKERS = 2


class VendorProfile(NamedTuple):
    """How to collect from a vendor. Every field can be tuned per deployment in the vendor's secret (`tuned`)."""

    lookback: timedelta  # re-read this much before the high-water mark, to catch late records
    settle_delay: timedelta  # do not read closer to now than this
    # Per worker, for a vendor without a documented limit; with one (``rate_limit``), the pace is derived from the
    # limit and the number of workers (`pacing`) unless the secret sets ``requests_per_second`` itself.
    requests_per_second: float
    burst: int
    page_size: int
    rate_limit: RateLimit | None = None  # the vendor's documented limit (docs: ../shared/vendor-docs/README.md)
    # The longest a source may go unpolled under the adaptive scheduler; None: the deployment's
    # MaxPollIntervalMinutes (chargelog.logic.scheduling).
    max_poll_interval: timedelta | None = None
    rate_set: bool = False  # requests_per_second came from the secret: it is the pace, whatever the limit

    def tuned(self, secret: dict[str, Any]) -> VendorProfile:
        changes: dict[str, Any] = {}
        if "lookback_seconds" in secret:
            changes["lookback"] = timedelta(seconds=float(secret["lookback_seconds"]))
        if "settle_seconds" in secret:
            changes["settle_delay"] = timedelta(seconds=float(secret["settle_seconds"]))
        if "requests_per_second" in secret:
            changes["requests_per_second"] = float(secret["requests_per_second"])
            changes["rate_set"] = True
        if "burst" in secret:
            changes["burst"] = int(secret["burst"])
        if "page_size" in secret:
            changes["page_size"] = int(secret["page_size"])
        if "rate_limit_requests" in secret or "rate_limit_window_seconds" in secret:
            base = self.rate_limit or RateLimit(1, timedelta(seconds=60))
            changes["rate_limit"] = RateLimit(
                int(secret.get("rate_limit_requests", base.requests)),
                timedelta(seconds=float(secret.get("rate_limit_window_seconds", base.window.total_seconds()))),
            )
        return replace(self, **changes)

    def pacing(self, workers: int = DEFAULT_WORKERS) -> tuple[float, int]:
        """(requests a second, burst) for one worker's token bucket, when ``workers`` run at once.

        With a documented limit of L requests in a window of w seconds, each of W workers gets a bucket of burst b
        and rate r = (L * RATE_LIMIT_SHARE / W - b) / w: in any window one worker makes at most b + r * w =
        L * share / W requests, so all of them together at most L * share. The burst is cut so the rate stays
        positive (at most a quarter of a worker's share)."""
        limit = self.rate_limit
        if limit is None or self.rate_set:
            return self.requests_per_second, self.burst
        share = limit.requests * RATE_LIMIT_SHARE / max(1, workers)
        burst = max(1, min(self.burst, int(share / 4)))
        return max(share - burst, share / 2) / limit.window.total_seconds(), burst

    def capacity_per_second(self, workers: int = DEFAULT_WORKERS) -> float:
        """Requests a second the vendor's workers make together at most, paced (`pacing`)."""
        rate, _ = self.pacing(workers)
        return rate * max(1, workers)


@dataclass(frozen=True)
class VendorConnection:
    """The vendor's secret: base URL and credentials (never logged), plus optional tuning; and how many workers
    share the vendor's rate limit (the queue's MaximumConcurrency), which sets each one's pace."""

    vendor: str
    base_url: str
    credentials: dict[str, str] = field(repr=False)
    profile: VendorProfile
    workers: int = DEFAULT_WORKERS

    def pacing(self) -> tuple[float, int]:
        """This worker's token bucket: (requests a second, burst)."""
        return self.profile.pacing(self.workers)


class VendorAdapter(Protocol):
    """Pages through one source's logs and turns each vendor record into a LogRecord."""

    connection: VendorConnection

    @property
    def calls(self) -> VendorCalls:
        """Requests, retries and failed calls so far (``VendorCalls.record`` adds a failure found after a call)."""
        ...

    def fetch_page(self, source_id: str, window: Window, cursor: str | None, action: str | None = None) -> Page:
        """The page at ``cursor`` (None: the first) of the source's records in ``window`` (of one OCPP
        ``action`` only, if given; an adapter whose vendor cannot filter by action raises ValueError)."""
        ...

    def normalize(self, source_id: str, item: Any) -> LogRecord:
        """One vendor record as a LogRecord; raises ValueError when it cannot be parsed."""
        ...

    def discover(self) -> Iterator[DiscoveredSource]:
        """Every source the credentials can see, paging through the vendor's list as its docs say; raises a
        ``VendorError`` when the vendor refuses or fails."""
        ...

    def close(self) -> None: ...


class HttpAdapter:
    """What every adapter over a `VendorHttpClient` (``self._http``) shares: its request count, and closing it."""

    _http: VendorHttpClient

    @property
    def requests_made(self) -> int:
        return self._http.requests_made

    @property
    def calls(self) -> VendorCalls:
        return self._http.calls

    def close(self) -> None:
        self._http.close()


AdapterFactory = Callable[[VendorConnection, Callable[[], float]], VendorAdapter]
