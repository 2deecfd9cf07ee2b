"""HTTP to vendor APIs: timeouts, a client-side rate limiter, retries that honour Retry-After, clear errors.

Retries (tenacity) cover timeouts, connection errors, 5xx and 429, with exponential backoff and jitter;
a ``Retry-After`` header sets the wait instead. No wait runs past the time the Lambda has left: when the
next wait would, the last error is raised and the job is retried from its checkpoint.

Each client tallies its calls (``VendorCalls``): requests, retries, and failures by class (5xx, 429, other 4xx,
timeouts and connection errors, bad bodies). A failure found after the client returned (an adapter finding the body
is not the documented one) is tallied by whoever catches it (``VendorCalls.record``); each error counts once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

# VendorError lives with the adapters' interface (no httpx there), so code that catches it need not load the client.
from chargelog.collectors.base import FailureClass, VendorCalls, VendorError
from chargelog.observability import logger

# Leave this much of the Lambda's time for writing the page and the checkpoint.
DEADLINE_MARGIN_SECONDS = 20.0
# Backoff between attempts (seconds), unless the vendor says how long with Retry-After.
INITIAL_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0


class VendorAuthError(VendorError):
    """The vendor refused the credentials (401/403): fix the vendor's secret."""


class VendorRequestError(VendorError):
    """The vendor refused the request (other 4xx)."""


class VendorUnavailableError(VendorError):
    """Timeouts, connection errors, 5xx, 429: worth retrying."""

    retryable = True

    def __init__(
        self, message: str, retry_after: float | None = None, failure_class: FailureClass = "server_errors"
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.failure_class = failure_class


class VendorResponseError(VendorError):
    """The vendor answered 2xx with something that is not the documented body (HTML, broken JSON...)."""

    retryable = True
    failure_class: FailureClass = "bad_bodies"


def iso_utc(moment: datetime) -> str:
    """A date-time query parameter: ISO 8601 in UTC, to the microsecond, with a ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def describe_validation_error(error: ValidationError) -> str:
    """The first three problems pydantic found, as ``where: what``, for one-line error messages."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors(include_url=False)[:3]
    )


def parsed_body[Parsed](vendor: str, path: str, body: Any, parse: Callable[[Any], Parsed]) -> Parsed:
    """A vendor's response body parsed (e.g. by a pydantic model's ``model_validate``); VendorResponseError, naming
    the vendor, the path and what was wrong, when it does not have the documented shape."""
    try:
        return parse(body)
    except ValidationError as error:
        raise VendorResponseError(
            f"{vendor} GET {path} answered with an unexpected body: {describe_validation_error(error)}"
        ) from error


class RateLimiter:
    """A token bucket: at most ``rate`` requests a second on average, bursts of ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.configured = (rate, burst)  # what it was made with; `set_pace` may change rate and burst since
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def set_pace(self, rate: float, burst: int) -> None:
        """Go on at another pace: the tokens earned so far at the old rate stay (up to the new burst)."""
        with self._lock:
            if (rate, burst) == (self.rate, self.burst):
                return
            now = self._clock()
            self._tokens = min(burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self.rate, self.burst = rate, burst

    def acquire(self) -> float:
        """Wait for a token; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            self._tokens -= 1
        if wait:
            self._sleep(wait)
        return wait


_LIMITERS: dict[str, RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(vendor: str, rate: float, burst: int) -> RateLimiter:
    """One limiter per vendor per process, shared by every job the process runs; a new one when the pace asked
    for changed (the secret was tuned), not when the limiter's own `set_pace` moved it."""
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(vendor)
        if limiter is None or limiter.configured != (rate, burst):
            limiter = _LIMITERS[vendor] = RateLimiter(rate, burst)
        return limiter


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header: either delay-seconds or an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _excerpt(response: httpx.Response, limit: int = 160) -> str:
    text = " ".join(response.text[:limit].split())
    return text + ("…" if len(response.text) > limit else "")


def problem_summary(response: httpx.Response, limit: int = 300) -> str | None:
    """``title: detail`` of an RFC 9457 ``application/problem+json`` error body, or None for any other body."""
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/problem+json":
        return None
    try:
        problem = json.loads(response.content)
    except ValueError:
        return None
    if not isinstance(problem, dict):
        return None
    parts = [str(problem[key]) for key in ("title", "detail") if isinstance(problem.get(key), str) and problem[key]]
    if not parts:
        return None
    text = " ".join(": ".join(parts).split())
    return text[:limit] + ("…" if len(text) > limit else "")


def _error_text(response: httpx.Response) -> str:
    """What an error response says: a problem's title and detail, else the start of the body."""
    return problem_summary(response) or _excerpt(response)


class VendorHttpClient:
    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        rate_limiter: RateLimiter,
        remaining_seconds: Callable[[], float],
        max_attempts: int = 6,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        initial_backoff: float | None = None,
        max_backoff: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.vendor = vendor
        self._http = httpx.Client(
            base_url=base_url,
            headers=dict(headers or {}),
            auth=auth,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            transport=transport,
        )
        self._limiter = rate_limiter
        self._remaining = remaining_seconds
        self._max_attempts = max_attempts
        self._backoff = wait_exponential_jitter(
            multiplier=INITIAL_BACKOFF_SECONDS if initial_backoff is None else initial_backoff,
            max=MAX_BACKOFF_SECONDS if max_backoff is None else max_backoff,
        )
        self._sleep = sleep
        self.calls = VendorCalls()

    @property
    def requests_made(self) -> int:
        return self.calls.requests

    def close(self) -> None:
        self._http.close()

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        return float(retry_after) if retry_after is not None else float(self._backoff(state))

    def _stop(self, state: RetryCallState) -> bool:
        if stop_after_attempt(self._max_attempts)(state):
            return True
        # Stop when the next wait would run past the Lambda's remaining time. Tenacity has already drawn that wait
        # (jitter included) into upcoming_sleep: check the very wait that would be slept.
        return state.upcoming_sleep > self._remaining() - DEADLINE_MARGIN_SECONDS

    def _log_retry(self, state: RetryCallState) -> None:
        self.calls.retries += 1
        error = state.outcome.exception() if state.outcome else None
        logger.warning(
            "Vendor call failed; retrying",
            extra={
                "vendor": self.vendor,
                "attempt": state.attempt_number,
                "error": str(error),
                "wait_seconds": round(state.upcoming_sleep, 2),
            },
        )

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> tuple[Any, httpx.Response]:
        """GET and decode a JSON body, retrying what is worth retrying."""
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, VendorError) and e.retryable),
            wait=self._wait,
            stop=self._stop,
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(self._get_json_counted, path, params)

    def _get_json_counted(self, path: str, params: Mapping[str, Any] | None) -> tuple[Any, httpx.Response]:
        self._limiter.acquire()
        self.calls.requests += 1
        try:
            return self._get_json_once(path, params)
        except VendorError as error:  # an OAuth token request (evenergy) fails inside the call too
            self.calls.record(error)
            raise

    def _get_json_once(self, path: str, params: Mapping[str, Any] | None) -> tuple[Any, httpx.Response]:
        what = f"{self.vendor} GET {path}"
        try:
            response = self._http.get(path, params=params)
        except httpx.TimeoutException as error:
            raise VendorUnavailableError(
                f"{what} timed out ({type(error).__name__})", failure_class="timeouts"
            ) from error
        except httpx.TransportError as error:
            raise VendorUnavailableError(f"{what} failed to connect: {error}", failure_class="timeouts") from error
        status = response.status_code
        if status == 429:
            problem = problem_summary(response)
            raise VendorUnavailableError(
                f"{what} was rate limited (429)" + (f": {problem}" if problem else ""),
                retry_after_seconds(response),
                failure_class="throttles",
            )
        if status >= 500:
            raise VendorUnavailableError(
                f"{what} answered {status}: {_error_text(response)}", retry_after_seconds(response)
            )
        if status in (401, 403):
            raise VendorAuthError(
                f"{what} refused the credentials ({status}): {_error_text(response)} - check the {self.vendor} secret"
            )
        if status >= 400:
            raise VendorRequestError(f"{what} refused the request ({status}): {_error_text(response)}")
        content_type = response.headers.get("content-type", "")
        if "json" not in content_type:
            raise VendorResponseError(
                f"{what} answered {status} with {content_type or 'no content type'}, not JSON: {_excerpt(response)}"
            )
        try:
            return json.loads(response.content), response
        except ValueError as error:
            raise VendorResponseError(
                f"{what} answered {status} with invalid JSON ({error}) in {len(response.content)} bytes"
            ) from error
