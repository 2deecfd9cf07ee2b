"""The vendor HTTP client against httpx.MockTransport: retries, Retry-After, the deadline, errors, the rate limiter.

No network and no real sleeping: every client gets a fake ``sleep`` that records the waits, and rate limiters
get a fake clock that those waits advance.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import tenacity.wait

from chargelog.collectors import vendor_http
from chargelog.collectors.vendor_http import (
    DEADLINE_MARGIN_SECONDS,
    RateLimiter,
    VendorAuthError,
    VendorError,
    VendorHttpClient,
    VendorRequestError,
    VendorResponseError,
    VendorUnavailableError,
    limiter_for,
    retry_after_seconds,
)

BASE_URL = "https://vendor.example"
PATH = "/ocpp/chargers/dep-1/logs"
PLENTY_OF_TIME = 900.0  # seconds the Lambda has left, unless a test says otherwise
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

# What the fake vendor answers to one request: a response, or an exception the transport raises.
Answer = Callable[[httpx.Request], httpx.Response]


def ok(decoded: Any = None, content_type: str = "application/json") -> Answer:
    """A 200 with this JSON body (by default an empty page)."""
    return body(json.dumps({"data": [], "total": 0} if decoded is None else decoded), content_type)


def status(code: int, text: str = "", **headers: str) -> Answer:
    return lambda _request: httpx.Response(code, text=text, headers=headers)


def body(text: str, content_type: str | None = "application/json") -> Answer:
    headers = {"Content-Type": content_type} if content_type else {}
    return lambda _request: httpx.Response(200, content=text.encode(), headers=headers)


def raises(error: type[httpx.TransportError]) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        raise error(f"simulated {error.__name__}", request=request)

    return answer


class FakeVendor:
    """Answers requests from a script; the last answer repeats. Records every request."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request)


class FakeClock:
    """Monotonic seconds that only move when something sleeps; records the sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client_for(
    vendor: FakeVendor,
    clock: FakeClock,
    *,
    time_left: float = PLENTY_OF_TIME,
    rate_limiter: RateLimiter | None = None,
    **options: Any,
) -> VendorHttpClient:
    return VendorHttpClient(
        "ocpplab",
        BASE_URL,
        rate_limiter=rate_limiter or RateLimiter(1000.0, 1000, clock=clock.time, sleep=clock.sleep),
        remaining_seconds=lambda: time_left,
        sleep=clock.sleep,
        transport=httpx.MockTransport(vendor),
        **options,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def fresh_limiters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own per-process limiter registry."""
    monkeypatch.setattr(vendor_http, "_LIMITERS", {})


# ---------------------------------------------------------------------------------------------- success
def test_a_json_body_is_returned_on_the_first_try(clock: FakeClock) -> None:
    vendor = FakeVendor(ok({"data": [{"id": 1}], "total": 1}))
    client = client_for(vendor, clock, headers={"Authorization": "Bearer secret"})

    decoded, response = client.get_json(PATH, {"limit": 1000, "offset": 0})

    assert decoded == {"data": [{"id": 1}], "total": 1}
    assert response.status_code == 200
    assert client.requests_made == 1
    assert clock.sleeps == []
    (request,) = vendor.requests
    assert request.method == "GET"
    assert str(request.url) == f"{BASE_URL}{PATH}?limit=1000&offset=0"
    assert request.headers["Authorization"] == "Bearer secret"


def test_requests_carry_the_connect_and_read_timeouts(clock: FakeClock) -> None:
    vendor = FakeVendor(ok())

    client_for(vendor, clock, connect_timeout=2.0, read_timeout=12.0).get_json(PATH)
    client_for(vendor, clock).get_json(PATH)

    configured, default = (request.extensions["timeout"] for request in vendor.requests)
    assert configured == {"connect": 2.0, "read": 12.0, "write": 12.0, "pool": 12.0}
    assert default == {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.api+json"])
def test_any_json_content_type_is_accepted(clock: FakeClock, content_type: str) -> None:
    decoded, _ = client_for(FakeVendor(ok({"total": 3}, content_type)), clock).get_json(PATH)

    assert decoded == {"total": 3}


def test_json_that_is_not_an_object_is_returned_as_decoded(clock: FakeClock) -> None:
    # The client decodes any JSON; checking the body's shape is the adapter's job.
    decoded, _ = client_for(FakeVendor(body("[1, 2]")), clock).get_json(PATH)

    assert decoded == [1, 2]


# ---------------------------------------------------------------------------------------------- retries
@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_a_5xx_is_retried_and_the_next_success_returned(clock: FakeClock, code: int) -> None:
    vendor = FakeVendor(status(code, "try later"), ok({"total": 7}))
    client = client_for(vendor, clock)

    decoded, _ = client.get_json(PATH)

    assert decoded == {"total": 7}
    assert len(vendor.requests) == client.requests_made == 2
    assert len(clock.sleeps) == 1


def test_a_429_waits_as_long_as_retry_after_says(clock: FakeClock) -> None:
    vendor = FakeVendor(status(429, "slow down", **{"Retry-After": "2"}), ok())

    client_for(vendor, clock).get_json(PATH)

    assert clock.sleeps == [2.0]
    assert len(vendor.requests) == 2


def test_retry_after_on_a_503_sets_the_wait_too(clock: FakeClock) -> None:
    vendor = FakeVendor(status(503, "maintenance", **{"Retry-After": "7"}), ok())

    client_for(vendor, clock).get_json(PATH)

    assert clock.sleeps == [7.0]


def test_a_429_without_retry_after_backs_off(clock: FakeClock) -> None:
    vendor = FakeVendor(status(429), ok())

    client_for(vendor, clock, initial_backoff=1.0, max_backoff=30.0).get_json(PATH)

    (wait,) = clock.sleeps
    assert 1.0 <= wait <= 2.0  # initial backoff plus up to a second of jitter


def test_backoff_doubles_with_jitter_up_to_the_maximum(clock: FakeClock) -> None:
    vendor = FakeVendor(*[status(503)] * 5, ok())

    client_for(vendor, clock, initial_backoff=1.0, max_backoff=5.0, max_attempts=6).get_json(PATH)

    assert len(clock.sleeps) == 5
    for wait, (low, high) in zip(clock.sleeps, [(1, 2), (2, 3), (4, 5), (5, 5), (5, 5)], strict=True):
        assert low <= wait <= high


def test_the_module_constants_are_the_default_backoff(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vendor_http, "INITIAL_BACKOFF_SECONDS", 0.0)
    monkeypatch.setattr(vendor_http, "MAX_BACKOFF_SECONDS", 0.0)
    vendor = FakeVendor(status(503), status(503), ok())

    client_for(vendor, clock).get_json(PATH)

    assert clock.sleeps == [0.0, 0.0]


def test_retries_give_up_after_max_attempts_with_an_error_naming_the_status(clock: FakeClock) -> None:
    vendor = FakeVendor(status(503, "Service Unavailable"))
    client = client_for(vendor, clock, max_attempts=3)

    with pytest.raises(VendorUnavailableError, match=r"ocpplab GET /ocpp/chargers/dep-1/logs answered 503") as error:
        client.get_json(PATH)

    assert "Service Unavailable" in str(error.value)
    assert error.value.retryable
    assert len(vendor.requests) == client.requests_made == 3
    assert len(clock.sleeps) == 2


def test_a_5xx_error_shows_a_one_line_excerpt_of_the_page(clock: FakeClock) -> None:
    client = client_for(FakeVendor(status(502, HTML_502)), clock, max_attempts=1)

    with pytest.raises(VendorUnavailableError) as error:
        client.get_json(PATH)

    message = str(error.value)
    assert message.startswith("ocpplab GET /ocpp/chargers/dep-1/logs answered 502: <html> <head><title>502 Bad Gateway")
    assert "\n" not in message
    assert "\r" not in message


def test_a_long_body_is_cut_short_in_the_error(clock: FakeClock) -> None:
    client = client_for(FakeVendor(status(500, "x" * 5000)), clock, max_attempts=1)

    with pytest.raises(VendorUnavailableError) as error:
        client.get_json(PATH)

    assert str(error.value).endswith("x" * 160 + "…")


@pytest.mark.parametrize("timeout", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.PoolTimeout])
def test_timeouts_are_retried(clock: FakeClock, timeout: type[httpx.TimeoutException]) -> None:
    vendor = FakeVendor(raises(timeout), ok({"total": 1}))

    decoded, _ = client_for(vendor, clock).get_json(PATH)

    assert decoded == {"total": 1}
    assert len(vendor.requests) == 2
    assert len(clock.sleeps) == 1


def test_a_timeout_on_every_attempt_raises_an_error_naming_it(clock: FakeClock) -> None:
    vendor = FakeVendor(raises(httpx.ReadTimeout))

    with pytest.raises(
        VendorUnavailableError, match=r"ocpplab GET /ocpp/chargers/dep-1/logs timed out \(ReadTimeout\)"
    ):
        client_for(vendor, clock, max_attempts=2).get_json(PATH)

    assert len(vendor.requests) == 2


def test_connection_errors_are_retried_and_named(clock: FakeClock) -> None:
    vendor = FakeVendor(raises(httpx.ConnectError), raises(httpx.ConnectError), ok())

    client_for(vendor, clock).get_json(PATH)
    with pytest.raises(VendorUnavailableError, match=r"failed to connect: simulated ConnectError"):
        client_for(FakeVendor(raises(httpx.ConnectError)), clock, max_attempts=1).get_json(PATH)

    assert len(vendor.requests) == 3


# ---------------------------------------------------------------------------------------------- the deadline
def test_a_retry_after_past_the_lambda_deadline_raises_instead_of_waiting(clock: FakeClock) -> None:
    vendor = FakeVendor(status(429, **{"Retry-After": "2"}), ok())
    client = client_for(vendor, clock, time_left=DEADLINE_MARGIN_SECONDS + 1.9)

    with pytest.raises(VendorUnavailableError, match=r"rate limited \(429\)") as error:
        client.get_json(PATH)

    assert error.value.retry_after == 2.0
    assert clock.sleeps == []
    assert len(vendor.requests) == 1


def test_a_retry_after_that_fits_the_time_left_is_waited(clock: FakeClock) -> None:
    vendor = FakeVendor(status(429, **{"Retry-After": "2"}), ok())

    client_for(vendor, clock, time_left=DEADLINE_MARGIN_SECONDS + 2.0).get_json(PATH)

    assert clock.sleeps == [2.0]
    assert len(vendor.requests) == 2


def test_with_less_than_the_margin_left_a_failure_is_not_retried(clock: FakeClock) -> None:
    vendor = FakeVendor(status(503, **{"Retry-After": "0"}), ok())

    with pytest.raises(VendorUnavailableError, match="answered 503"):
        client_for(vendor, clock, time_left=DEADLINE_MARGIN_SECONDS - 1).get_json(PATH)

    assert len(vendor.requests) == 1


def test_the_deadline_is_read_again_before_every_wait(clock: FakeClock) -> None:
    vendor = FakeVendor(status(429, **{"Retry-After": "5"}))
    time_left = iter([DEADLINE_MARGIN_SECONDS + 60, DEADLINE_MARGIN_SECONDS + 6, DEADLINE_MARGIN_SECONDS + 4])
    client = VendorHttpClient(
        "ocpplab",
        BASE_URL,
        rate_limiter=RateLimiter(1000.0, 1000, clock=clock.time, sleep=clock.sleep),
        remaining_seconds=lambda: next(time_left),
        sleep=clock.sleep,
        transport=httpx.MockTransport(vendor),
    )

    with pytest.raises(VendorUnavailableError, match="429"):
        client.get_json(PATH)

    assert clock.sleeps == [5.0, 5.0]
    assert len(vendor.requests) == 3


def draw_jitters(monkeypatch: pytest.MonkeyPatch, *values: float) -> None:
    """Make tenacity's backoff jitter draw these values in turn (then 0)."""
    jitters = list(values)
    monkeypatch.setattr(
        tenacity.wait, "random", SimpleNamespace(uniform=lambda _a, _b: jitters.pop(0) if jitters else 0)
    )


def test_the_backoff_checked_against_the_deadline_is_the_backoff_slept(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Jitter is random, so each computation of "the next wait" may differ. Draw 0.9 s first, then 0.0 s.
    draw_jitters(monkeypatch, 0.9, 0.0)
    vendor = FakeVendor(status(503), ok())
    time_left = 1.5  # beyond the margin: a 1.0 s wait fits, a 1.9 s one does not
    client = client_for(vendor, clock, time_left=DEADLINE_MARGIN_SECONDS + time_left, initial_backoff=1.0)

    with contextlib.suppress(VendorUnavailableError):
        client.get_json(PATH)

    assert all(wait <= time_left for wait in clock.sleeps), (
        f"slept {clock.sleeps} s with only {time_left} s left before the margin"
    )


class RecordingLogger:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, message: str, *, extra: dict[str, Any]) -> None:
        self.warnings.append((message, extra))


def test_each_retry_is_logged_with_the_attempt_and_the_wait(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    log = RecordingLogger()
    monkeypatch.setattr(vendor_http, "logger", log)
    vendor = FakeVendor(status(429, **{"Retry-After": "3"}), ok())

    client_for(vendor, clock).get_json(PATH)

    ((message, extra),) = log.warnings
    assert message == "Vendor call failed; retrying"
    assert extra == {
        "vendor": "ocpplab",
        "attempt": 1,
        "error": "ocpplab GET /ocpp/chargers/dep-1/logs was rate limited (429)",
        "wait_seconds": 3.0,
    }


def test_the_logged_backoff_is_the_backoff_slept(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    log = RecordingLogger()
    monkeypatch.setattr(vendor_http, "logger", log)
    draw_jitters(monkeypatch, 0.25, 0.5, 0.75)
    vendor = FakeVendor(status(503), ok())

    client_for(vendor, clock, initial_backoff=1.0).get_json(PATH)

    ((_, extra),) = log.warnings
    assert [extra["wait_seconds"]] == [round(wait, 2) for wait in clock.sleeps]


# ---------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("code", [401, 403])
def test_refused_credentials_are_an_auth_error_and_not_retried(clock: FakeClock, code: int) -> None:
    vendor = FakeVendor(status(code, '{"detail":"Not authenticated"}'), ok())
    client = client_for(vendor, clock)

    with pytest.raises(VendorAuthError) as error:
        client.get_json(PATH)

    assert str(error.value) == (
        f"ocpplab GET /ocpp/chargers/dep-1/logs refused the credentials ({code}): "
        '{"detail":"Not authenticated"} - check the ocpplab secret'
    )
    assert not error.value.retryable
    assert len(vendor.requests) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("code", [400, 404, 405, 422])
def test_other_4xx_are_a_request_error_and_not_retried(clock: FakeClock, code: int) -> None:
    vendor = FakeVendor(status(code, '{"detail":"limit: Input should be less than or equal to 1000"}'), ok())

    with pytest.raises(VendorRequestError, match=rf"refused the request \({code}\): .*less than or equal to 1000"):
        client_for(vendor, clock).get_json(PATH)

    assert len(vendor.requests) == 1
    assert clock.sleeps == []


def test_error_types_all_derive_from_vendor_error() -> None:
    for error_type in (VendorAuthError, VendorRequestError, VendorUnavailableError, VendorResponseError):
        assert issubclass(error_type, VendorError)
    assert [t.retryable for t in (VendorAuthError, VendorRequestError)] == [False, False]
    assert [t.retryable for t in (VendorUnavailableError, VendorResponseError)] == [True, True]


# ---------------------------------------------------------------------------------------------- bad bodies
def test_an_html_page_with_200_is_a_response_error_that_is_retried(clock: FakeClock) -> None:
    vendor = FakeVendor(body("<html><body>Login</body></html>", "text/html"), ok({"total": 2}))

    decoded, _ = client_for(vendor, clock).get_json(PATH)
    with pytest.raises(VendorResponseError, match=r"answered 200 with text/html, not JSON: <html><body>Login"):
        client_for(FakeVendor(body("<html><body>Login</body></html>", "text/html")), clock, max_attempts=1).get_json(
            PATH
        )

    assert decoded == {"total": 2}
    assert len(vendor.requests) == 2


def test_a_body_without_a_content_type_is_a_response_error(clock: FakeClock) -> None:
    with pytest.raises(VendorResponseError, match=r"answered 200 with no content type, not JSON"):
        client_for(FakeVendor(body('{"total": 1}', None)), clock, max_attempts=1).get_json(PATH)


def test_truncated_json_is_a_response_error_naming_the_size(clock: FakeClock) -> None:
    truncated = '{"data":[{"direction":"cp_to_csms","mess'

    with pytest.raises(VendorResponseError, match=rf"answered 200 with invalid JSON \(.+\) in {len(truncated)} bytes"):
        client_for(FakeVendor(body(truncated)), clock, max_attempts=1).get_json(PATH)


def test_truncated_json_is_retried(clock: FakeClock) -> None:
    vendor = FakeVendor(body('{"data":['), ok({"total": 0}))

    decoded, _ = client_for(vendor, clock).get_json(PATH)

    assert decoded == {"total": 0}
    assert len(vendor.requests) == 2


# ---------------------------------------------------------------------------------------------- Retry-After
@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), ("0", 0.0), ("1.5", 1.5), ("-3", 0.0), ("soon", None), ("", None)],
)
def test_retry_after_seconds_reads_delay_seconds(header: str, seconds: float | None) -> None:
    response = httpx.Response(429, headers={"Retry-After": header})

    assert retry_after_seconds(response) == seconds


def test_retry_after_seconds_is_none_without_the_header() -> None:
    assert retry_after_seconds(httpx.Response(429)) is None


def test_retry_after_seconds_reads_an_http_date() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=120), usegmt=True)

    seconds = retry_after_seconds(httpx.Response(503, headers={"Retry-After": later}))

    assert seconds is not None
    assert 115 <= seconds <= 120
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": earlier})) == 0.0


# ---------------------------------------------------------------------------------------------- rate limiter
def test_the_rate_limiter_allows_a_burst_then_spaces_requests(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock.time, sleep=clock.sleep)
    started = []

    for _ in range(6):
        limiter.acquire()
        started.append(clock.now)

    assert started == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]
    assert clock.sleeps == [0.5, 0.5, 0.5]


def test_the_rate_limiter_refills_while_idle_but_never_beyond_the_burst(clock: FakeClock) -> None:
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock.time, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()

    clock.now += 60.0  # idle for a minute: 120 tokens' worth, but the bucket holds 3
    waits = [limiter.acquire() for _ in range(4)]

    assert waits == [0.0, 0.0, 0.0, 0.5]


def test_the_client_takes_a_token_before_every_attempt(clock: FakeClock) -> None:
    seen_at: list[float] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        seen_at.append(clock.now)
        return httpx.Response(503, headers={"Retry-After": "0"}) if len(seen_at) < 3 else httpx.Response(200, json={})

    limiter = RateLimiter(rate=1.0, burst=1, clock=clock.time, sleep=clock.sleep)
    client = VendorHttpClient(
        "ocpplab",
        BASE_URL,
        rate_limiter=limiter,
        remaining_seconds=lambda: PLENTY_OF_TIME,
        sleep=clock.sleep,
        transport=httpx.MockTransport(vendor),
    )

    client.get_json(PATH)  # two retries
    client.get_json(PATH)

    assert seen_at == [0.0, 1.0, 2.0, 3.0]


def test_limiter_for_gives_one_limiter_per_vendor() -> None:
    first = limiter_for("ocpplab", 5.0, 5)

    assert limiter_for("ocpplab", 5.0, 5) is first
    assert limiter_for("plugchoice", 5.0, 5) is not first
    assert (first.rate, first.burst) == (5.0, 5)


def test_limiter_for_replaces_a_limiter_whose_settings_changed() -> None:
    first = limiter_for("ocpplab", 5.0, 5)

    tuned = limiter_for("ocpplab", 2.0, 1)

    assert tuned is not first
    assert (tuned.rate, tuned.burst) == (2.0, 1)
    assert limiter_for("ocpplab", 2.0, 1) is tuned


def test_a_limiter_set_to_another_pace_keeps_what_it_earned_and_limiter_for_keeps_it() -> None:
    now = [0.0]
    slept: list[float] = []
    limiter = RateLimiter(1.0, 1, clock=lambda: now[0], sleep=slept.append)
    limiter.acquire()  # the burst's token
    now[0] = 0.5  # half a token earned at 1 a second
    limiter.set_pace(0.25, 4)

    assert limiter.acquire() == pytest.approx(2.0)  # the other half at the new pace: 0.5 / 0.25
    assert (limiter.rate, limiter.burst, limiter.configured) == (0.25, 4, (1.0, 1))

    paced = limiter_for("evenergy", 1.0, 1)
    paced.set_pace(2.0, 5)
    assert limiter_for("evenergy", 1.0, 1) is paced  # moved by set_pace, not re-tuned: the same limiter
    assert limiter_for("evenergy", 3.0, 1) is not paced
