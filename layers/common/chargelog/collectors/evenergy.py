"""ev.energy API v2: ``GET /evses/{evse_id}/status_logs``, the status an EVSE reported at each sample.

- Auth: OAuth2 client credentials at ``POST <origin>/o/token`` (form-encoded), unless the secret names a
  ``token_url``. The token is cached (per process) until shortly before it expires; a 401 on a call gets one
  fresh token and one retry (``ClientCredentialsAuth``). ``EvEnergy-Version: 2`` goes on every call.
- Paging: the body is a bare JSON array; the next page is the RFC 8288 ``Link`` header's ``rel="next"``
  (``about:blank`` on the last page). There is no total. The cursor the engine checkpoints is that URL.
- Windows: ``sampled_at__gte`` / ``sampled_at__lte``. A record is *logged* after it is *sampled* - how much
  later "depends on the integration" - so a record can appear in a window already read: the lookback re-reads
  the last ``LOOKBACK`` of sample time on every run (the docs state no bound; tune ``lookback_seconds`` in
  the secret for integrations that log later).
- Limits: 1000 requests a rolling hour per app and user, counted by the vendor for every worker together and
  reported on every answer (``x-ratelimit-remaining``). A worker paces at the whole share of the limit while at
  least half the hour's budget is left, at its split share with the queue's other workers below that, and slower
  still as the budget nears 0 (``RateBudgetPacer``); a 429's ``retry-after`` is honoured by the HTTP client's
  retries.
  Errors are ``application/problem+json``: their title and detail are in the raised error's message.
- Records are kind ``status``; the record's ``url`` identifies it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Generator, Iterator
from datetime import timedelta
from typing import Any, Final
from urllib.parse import quote

import httpx
from pydantic import (
    AwareDatetime,
    ConfigDict,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from chargelog import collectors
from chargelog.collectors.base import (
    DiscoveredSource,
    HttpAdapter,
    Page,
    RateLimit,
    VendorConnection,
    VendorProfile,
    Window,
)
from chargelog.collectors.paging import HeaderLinkPaginator
from chargelog.collectors.vendor_http import (
    DEADLINE_MARGIN_SECONDS,
    VendorAuthError,
    VendorHttpClient,
    VendorResponseError,
    VendorUnavailableError,
    describe_validation_error,
    iso_utc,
    limiter_for,
    parsed_body,
    problem_summary,
    retry_after_seconds,
)
from chargelog.models.base import Model
from chargelog.models.records import LogRecord, record_id_for

VENDOR: Final = "evenergy"
API_VERSION: Final = "2"
TOKEN_PATH: Final = "/o/token"  # noqa: S105 - a path, not a password
MAX_PAGE_SIZE = 100
LOOKBACK = timedelta(hours=6)
PROFILE = VendorProfile(
    lookback=LOOKBACK,
    settle_delay=timedelta(seconds=60),
    # 1000 requests a rolling hour per app and user (the vendor's docs), shared by the queue's concurrent workers:
    # each paces at its share (VendorProfile.pacing; with the template's two workers 0.13 a second, bursts of 5),
    # or at the whole share (0.26 a second) while the vendor's count says the budget is plentiful (RateBudgetPacer).
    requests_per_second=0.25,
    burst=5,
    page_size=MAX_PAGE_SIZE,
    rate_limit=RateLimit(1000, timedelta(hours=1)),
)
# A token is renewed this long before the expiry its response announced.
TOKEN_EXPIRY_MARGIN_SECONDS = 60.0
# Pace calls once the hour's remaining budget falls below this many requests: the pause before each call grows
# from 0 to MAX_PACE_SECONDS as the budget nears 0 (a rolling hour of 1000 gives one back every 3.6 s).
PACE_BELOW_REMAINING = 50
MAX_PACE_SECONDS = 60.0
# While the vendor's count says at least this part of the hour's budget is left, a worker paces at the whole share
# of the limit (VendorProfile.pacing(1)) instead of its split share with the queue's other workers: the vendor counts
# every worker's calls, so a worker alone does not leave half the budget unused (one job in flight is the common
# case), and workers that all find it plentiful spend it at most W times as fast only until the count they each
# read on every answer says half is gone. The scheduler plans no more than the share an hour either way.
LONE_PACE_WHILE_LEFT = 0.5


# ---------------------------------------------------------------------------------------------- auth
class ClientCredentialsAuth(httpx.Auth):
    """OAuth2 client credentials: a cached bearer token, fetched when missing or expired, and fetched again
    (once) when a call answers 401 - the token may have been revoked or expired early."""

    requires_response_body = True  # the token response's body is read here

    def __init__(
        self, token_url: str, client_id: str, client_secret: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return f"ClientCredentialsAuth({self.token_url!r}, client_id={self._client_id!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        token = self._cached()
        if token is None:
            token = self._keep((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            self._forget(token)
            token = self._keep((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def _cached(self) -> str | None:
        with self._lock:
            return self._token if self._token is not None and self._clock() < self._expires_at else None

    def _forget(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def _token_request(self) -> httpx.Request:
        return httpx.Request(
            "POST",
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
            headers={"Accept": "application/json", "EvEnergy-Version": API_VERSION},
        )

    def _keep(self, response: httpx.Response) -> str:
        """The token from the token endpoint's response (cached), or the error to raise."""
        what = f"{VENDOR} POST {self.token_url}"
        status = response.status_code
        detail = _oauth_error(response)
        if status == 429 or status >= 500:
            raise VendorUnavailableError(
                f"{what} answered {status}: {detail}",
                retry_after_seconds(response),
                failure_class="throttles" if status == 429 else "server_errors",
            )
        if status >= 400:
            raise VendorAuthError(
                f"{what} refused the client credentials ({status}): {detail} - check the {VENDOR} secret"
            )
        try:
            body = response.json()
            token = body["access_token"]
            expires_in = float(body.get("expires_in") or 0)
        except (ValueError, KeyError, TypeError) as error:
            raise VendorResponseError(f"{what} answered {status} without an access_token") from error
        if not isinstance(token, str) or not token:
            raise VendorResponseError(f"{what} answered {status} without an access_token")
        lifetime = max(0.0, expires_in - min(TOKEN_EXPIRY_MARGIN_SECONDS, expires_in / 10))
        with self._lock:
            self._token, self._expires_at = token, self._clock() + lifetime
            self.tokens_fetched += 1
        return token


def _oauth_error(response: httpx.Response) -> str:
    """An OAuth2 error (``error``, ``error_description``) or problem, else the status phrase."""
    problem = problem_summary(response)
    if problem:
        return problem
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("error_description")
        return body["error"] + (f": {description}" if isinstance(description, str) else "")
    return response.reason_phrase or "no detail"


_AUTHS: dict[tuple[str, str, str], ClientCredentialsAuth] = {}
_AUTHS_LOCK = threading.Lock()


def auth_for(token_url: str, client_id: str, client_secret: str) -> ClientCredentialsAuth:
    """One token cache per token URL and client per process, so warm workers reuse a token across jobs."""
    key = (token_url, client_id, hashlib.sha256(client_secret.encode()).hexdigest())
    with _AUTHS_LOCK:
        auth = _AUTHS.get(key)
        if auth is None:
            auth = _AUTHS[key] = ClientCredentialsAuth(token_url, client_id, client_secret)
        return auth


def token_url_for(base_url: str) -> str:
    """The token endpoint at the API's origin: ``https://api.ev.energy/v2`` -> ``https://api.ev.energy/o/token``."""
    return str(httpx.URL(base_url).copy_with(path=TOKEN_PATH, query=None, fragment=None))


# ---------------------------------------------------------------------------------------------- pacing
class RateBudgetPacer:
    """Paces calls by the vendor's own count of the hour's budget (``x-ratelimit-limit`` and
    ``x-ratelimit-remaining`` on every answer), which every worker of the app and user spends together.

    - ``plentiful``: at least ``LONE_PACE_WHILE_LEFT`` of the limit is left, so a worker may pace at the whole
      share rather than its split one. Unknown (no answer yet in this process) is not plentiful.
    - ``pause_seconds``: below ``PACE_BELOW_REMAINING`` left, each call first waits in proportion to how little is
      left (up to ``MAX_PACE_SECONDS``), so the rolling hour refills the budget instead of the calls ending in
      429s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.remaining: int | None = None
        self.limit: int | None = None

    def observe(self, response: httpx.Response) -> None:
        try:
            remaining = int(response.headers["x-ratelimit-remaining"])
        except (KeyError, ValueError):
            return
        try:
            limit: int | None = int(response.headers["x-ratelimit-limit"])
        except (KeyError, ValueError):
            limit = None
        with self._lock:
            self.remaining = max(0, remaining)
            self.limit = limit

    def plentiful(self) -> bool:
        with self._lock:
            remaining, limit = self.remaining, self.limit
        return remaining is not None and limit is not None and remaining >= limit * LONE_PACE_WHILE_LEFT

    def pause_seconds(self) -> float:
        with self._lock:
            remaining = self.remaining
        if remaining is None or remaining >= PACE_BELOW_REMAINING:
            return 0.0
        return MAX_PACE_SECONDS * (1 - remaining / PACE_BELOW_REMAINING)


_PACERS: dict[str, RateBudgetPacer] = {}
_PACERS_LOCK = threading.Lock()


def pacer_for(client_id: str) -> RateBudgetPacer:
    """The budget is per app and user: one pacer per client per process."""
    with _PACERS_LOCK:
        return _PACERS.setdefault(client_id, RateBudgetPacer())


# ---------------------------------------------------------------------------------------------- records
class _StatusLog(Model):
    model_config = ConfigDict(extra="allow")

    url: StrictStr
    sampled_at: AwareDatetime
    logged_at: AwareDatetime
    is_plugged_in: StrictBool | None = None
    is_charging: StrictBool | None = None
    charge_rate_watts: StrictInt | None = None

    @field_validator("sampled_at", "logged_at", mode="before")
    @classmethod
    def _iso_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("expected an ISO 8601 date-time string")  # pydantic would read numbers as Unix time
        return value


class _Evse(Model):
    model_config = ConfigDict(extra="allow")

    id: StrictStr
    url: StrictStr | None = None
    name: StrictStr | None = None


class EvenergyAdapter(HttpAdapter):
    def __init__(
        self,
        connection: VendorConnection,
        remaining_seconds: Callable[[], float],
        *,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.connection = connection
        credentials = connection.credentials
        profile = connection.profile
        self._page_size = min(MAX_PAGE_SIZE, max(1, profile.page_size))
        self._base = httpx.URL(connection.base_url.rstrip("/") + "/")
        client_id = credentials.get("client_id", "")
        token_url = credentials.get("token_url") or token_url_for(connection.base_url)
        self._remaining = remaining_seconds
        self._sleep = sleep
        self._pacer = pacer_for(client_id)
        self._shared_pace = connection.pacing()  # this worker's share with the queue's other workers
        self._lone_pace = connection.profile.pacing(1)  # the whole share, while the budget is plentiful
        self._limiter = limiter_for(VENDOR, *self._shared_pace)
        self._http = VendorHttpClient(
            VENDOR,
            str(self._base),
            headers={"Accept": "application/json", "EvEnergy-Version": API_VERSION},
            auth=auth_for(token_url, client_id, credentials.get("client_secret", "")),
            rate_limiter=self._limiter,
            remaining_seconds=remaining_seconds,
            sleep=sleep,
            transport=transport,
        )

    def fetch_page(self, source_id: str, window: Window, cursor: str | None, action: str | None = None) -> Page:
        if action:
            raise ValueError(f"{VENDOR} status logs have no OCPP action to filter by ({action!r})")
        # A log page is the last only when it links nowhere: an empty page may still link on.
        pages = HeaderLinkPaginator(VENDOR, origin=self._base, stop_on_empty=False).resume(cursor)
        target, params = pages.request(
            f"evses/{quote(source_id, safe='')}/status_logs",
            {
                "sampled_at__gte": iso_utc(window.start),
                "sampled_at__lte": iso_utc(window.end),
                "page_size": self._page_size,
            },
        )
        if params is not None:
            path = str(self._base.join(target).path)
            request: dict[str, Any] = {"path": path, "params": params}
        else:  # the vendor's next link carries the filters and the position
            url = httpx.URL(target)
            path = url.path
            request = {"path": path, "params": dict(url.params)}
        body, response = self._get_list(target, params, path)
        pages.advance(response, len(body))
        return Page(items=body, body=body, request=request, next_cursor=pages.cursor, total=None, items_at="")

    def discover(self) -> Iterator[DiscoveredSource]:
        """``GET /evses``: the client's EVSEs, a bare array a page, following the ``Link`` header's next; an empty
        page ends the paging even if a link says otherwise."""
        pages = HeaderLinkPaginator(VENDOR, origin=self._base)
        path = str(self._base.join("evses").path)
        while pages.has_next:
            target, params = pages.request("evses", {"page_size": self._page_size})
            body, response = self._get_list(target, params, path)
            evses = parsed_body(VENDOR, path, body, lambda items: [_Evse.model_validate(item) for item in items])
            for evse in evses:
                yield DiscoveredSource(
                    source_id=evse.id, kind="evse", name=evse.name, details={"url": evse.url} if evse.url else {}
                )
            pages.advance(response, len(evses))

    def _get_list(self, target: str, params: dict[str, Any] | None, path: str) -> tuple[list[Any], httpx.Response]:
        """One page of a list (paced to the hour's budget): a bare JSON array of objects, and the response."""
        self._pace()
        body, response = self._http.get_json(target, params)
        self._pacer.observe(response)
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise VendorResponseError(
                f"{VENDOR} GET {path} answered with an unexpected body: expected a JSON array of objects"
            )
        return body, response

    def _pace(self) -> None:
        self._limiter.set_pace(*(self._lone_pace if self._pacer.plentiful() else self._shared_pace))
        pause = min(self._pacer.pause_seconds(), self._remaining() - DEADLINE_MARGIN_SECONDS)
        if pause > 0:
            self._sleep(pause)

    @staticmethod
    def normalize(source_id: str, item: Any) -> LogRecord:
        """Pure: no HTTP and no adapter state, so a replay re-normalizes archived pages with it."""
        try:
            entry = _StatusLog.model_validate(item)
        except ValidationError as error:
            raise ValueError(f"not an ev.energy status log: {describe_validation_error(error)}") from error
        return LogRecord(
            vendor=VENDOR,
            source_id=source_id,
            charger_id=source_id,
            timestamp=entry.sampled_at,
            kind="status",
            payload={
                "is_plugged_in": entry.is_plugged_in,
                "is_charging": entry.is_charging,
                "charge_rate_watts": entry.charge_rate_watts,
                "sampled_at": iso_utc(entry.sampled_at),
                "logged_at": iso_utc(entry.logged_at),
            },
            record_id=record_id_for(VENDOR, source_id, None, url=entry.url),
            raw=item,
        )


collectors.register(
    VENDOR,
    PROFILE,
    EvenergyAdapter,
    required_credentials=("client_id", "client_secret"),
    normalizer=EvenergyAdapter.normalize,
)
