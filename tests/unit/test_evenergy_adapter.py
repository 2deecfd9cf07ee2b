"""The ev.energy adapter against httpx.MockTransport: the token (cached, refreshed once on a 401), the version
header, Link paging, problem+json errors, pacing by x-ratelimit-remaining, and how status logs are stored.

The vendor documentation is /work/shared/vendor-docs/evenergy-status-logs.txt (and its notes in README.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from copy import replace
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from chargelog import collectors
from chargelog.collectors import evenergy, vendor_http
from chargelog.collectors.base import VendorConnection, Window
from chargelog.collectors.evenergy import ClientCredentialsAuth, EvenergyAdapter, token_url_for
from chargelog.collectors.vendor_http import (
    VendorAuthError,
    VendorHttpClient,
    VendorRequestError,
    VendorResponseError,
    VendorUnavailableError,
    problem_summary,
)

BASE_URL = "https://api.ev.energy/v2"
TOKEN_URL = "https://api.ev.energy/o/token"
EVSE = "evse01HSH04KDEWF6Z4DB2J77J74K5"
LOGS = f"/v2/evses/{EVSE}/status_logs"
CLIENT_ID, CLIENT_SECRET = "app-1", "s3cret-value"
DAY = Window(datetime(2024, 4, 17, tzinfo=UTC), datetime(2024, 4, 17, 23, 59, 59, 999999, tzinfo=UTC))
PROBLEM = "application/problem+json"


def status_log(second: int, **fields: Any) -> dict[str, Any]:
    sampled = f"2024-04-17T09:39:{second:02d}.984584Z"
    return {
        "url": f"https://api.ev.energy/v2/evse/{EVSE}/status_logs/{sampled}/",
        "sampled_at": sampled,
        "logged_at": f"2024-04-17T09:45:{second:02d}Z",
        "evse": f"https://api.ev.energy/v2/evses/{EVSE}/",
        "is_plugged_in": True,
        "is_charging": second % 2 == 0,
        "charge_rate_watts": 7200 if second % 2 == 0 else 0,
    } | fields


def problem(status: int, title: str, detail: str, **headers: str) -> httpx.Response:
    body = {"type": "https://api.ev.energy/v2/problems/x/", "status": status, "title": title, "detail": detail}
    return httpx.Response(status, json=body, headers={"Content-Type": PROBLEM, **headers})


@dataclass
class FakeEvEnergy:
    """The token endpoint and the status-log list in memory: pages of ``page_size`` over ``records``, linked by
    ``page_after``; ``answers`` queued for the logs route are served first."""

    records: list[dict[str, Any]] = field(default_factory=list)
    answers: list[httpx.Response] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    tokens_issued: int = 0
    valid_tokens: set[str] = field(default_factory=set)
    expires_in: int = 3600
    remaining: int = 999
    sleeps: list[float] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)  # as sent (httpx reuses a retried request)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path != "/o/token":
            self.authorizations.append(request.headers.get("Authorization"))
        if request.url.path == "/o/token":
            form = parse_qs(request.content.decode())
            if form != {
                "grant_type": ["client_credentials"],
                "client_id": [CLIENT_ID],
                "client_secret": [CLIENT_SECRET],
            }:
                return httpx.Response(401, json={"error": "invalid_client"})
            self.tokens_issued += 1
            token = f"token-{self.tokens_issued}"
            self.valid_tokens.add(token)
            return httpx.Response(
                200, json={"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
            )
        headers = {"x-ratelimit-limit": "1000", "x-ratelimit-remaining": str(self.remaining)}
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.valid_tokens:
            return problem(401, "Unauthorized", "Authentication credentials were not provided.")
        if self.answers:
            return self.answers.pop(0)
        size = int(request.url.params["page_size"])
        after = int(request.url.params.get("page_after", "0"))
        page = self.records[after : after + size]
        more = after + size < len(self.records)
        next_url = request.url.copy_set_param("page_after", str(after + size)) if more else "about:blank"
        previous = "about:blank"
        headers["Link"] = f'<{previous}>; rel="previous", <{next_url}>; rel="next"'
        return httpx.Response(200, json=page, headers=headers)

    @property
    def log_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != "/o/token"]


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own limiter, token cache and pacer, as a new Lambda container would."""
    monkeypatch.setattr(vendor_http, "_LIMITERS", {})
    monkeypatch.setattr(evenergy, "_AUTHS", {})
    monkeypatch.setattr(evenergy, "_PACERS", {})


@pytest.fixture
def vendor() -> FakeEvEnergy:
    return FakeEvEnergy()


MakeAdapter = Callable[..., EvenergyAdapter]


@pytest.fixture
def make_adapter(vendor: FakeEvEnergy) -> Iterator[MakeAdapter]:
    adapters: list[EvenergyAdapter] = []

    def make(page_size: int = 100, remaining_seconds: float = 900.0, **credentials: str) -> EvenergyAdapter:
        profile = replace(evenergy.PROFILE, requests_per_second=1000.0, burst=1000, page_size=page_size)
        secret = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET} | credentials
        connection = VendorConnection("evenergy", BASE_URL, secret, profile)
        adapter = EvenergyAdapter(
            connection,
            lambda: remaining_seconds,
            sleep=vendor.sleeps.append,
            transport=httpx.MockTransport(vendor),
        )
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        adapter.close()


def read_all(adapter: EvenergyAdapter, window: Window = DAY) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        page = adapter.fetch_page(EVSE, window, cursor)
        assert page.total is None
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return pages


# ---------------------------------------------------------------------------------------------- requests
def test_the_first_request_asks_for_the_window_with_the_version_header_and_a_bearer_token(
    vendor: FakeEvEnergy, make_adapter: MakeAdapter
) -> None:
    vendor.records = [status_log(1)]
    page = make_adapter(page_size=25).fetch_page(EVSE, DAY, None)
    token_request, logs_request = vendor.requests
    assert token_request.method == "POST"
    assert str(token_request.url) == TOKEN_URL
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert logs_request.url.path == LOGS
    assert dict(logs_request.url.params) == {
        "sampled_at__gte": "2024-04-17T00:00:00.000000Z",
        "sampled_at__lte": "2024-04-17T23:59:59.999999Z",
        "page_size": "25",
    }
    assert logs_request.headers["EvEnergy-Version"] == "2"
    assert logs_request.headers["Authorization"] == "Bearer token-1"
    assert page.items == [status_log(1)]
    assert page.request == {"path": LOGS, "params": dict(logs_request.url.params) | {"page_size": 25}}
    assert page.next_cursor is None


def test_the_token_url_derives_from_the_base_url_unless_the_secret_names_one(
    vendor: FakeEvEnergy, make_adapter: MakeAdapter
) -> None:
    assert token_url_for("https://api.ev.energy/v2") == TOKEN_URL
    assert token_url_for("http://127.0.0.1:8123/v2/") == "http://127.0.0.1:8123/o/token"
    make_adapter(token_url="https://auth.ev.energy/o/token").fetch_page(EVSE, DAY, None)
    assert str(vendor.requests[0].url) == "https://auth.ev.energy/o/token"


def test_a_page_size_above_the_maximum_is_capped(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    make_adapter(page_size=5000).fetch_page(EVSE, DAY, None)
    assert vendor.log_requests[0].url.params["page_size"] == str(evenergy.MAX_PAGE_SIZE)


def test_an_action_filter_is_refused(make_adapter: MakeAdapter) -> None:
    with pytest.raises(ValueError, match="no OCPP action"):
        make_adapter().fetch_page(EVSE, DAY, None, action="StatusNotification")


# ---------------------------------------------------------------------------------------------- the token
def test_the_token_is_cached_across_requests_and_adapters(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    vendor.records = [status_log(s) for s in range(10)]
    assert len(read_all(make_adapter(page_size=3))) == 4
    make_adapter().fetch_page(EVSE, DAY, None)  # the next job in the same warm container
    assert vendor.tokens_issued == 1
    assert set(vendor.authorizations) == {"Bearer token-1"}


def test_a_401_gets_one_fresh_token_and_one_retry(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    vendor.records = [status_log(1)]
    adapter = make_adapter()
    adapter.fetch_page(EVSE, DAY, None)
    vendor.valid_tokens.clear()  # revoked, or expired before its announced time
    page = adapter.fetch_page(EVSE, DAY, None)
    assert page.items == [status_log(1)]
    assert vendor.tokens_issued == 2
    assert vendor.authorizations == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
    ]


def test_a_401_after_the_refresh_is_an_auth_error_with_the_problem_and_no_secret(
    vendor: FakeEvEnergy, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter()
    vendor.answers = [problem(401, "Unauthorized", "Token scope does not cover this EVSE.")] * 2
    with pytest.raises(VendorAuthError) as raised:
        adapter.fetch_page(EVSE, DAY, None)
    message = str(raised.value)
    assert "refused the credentials (401): Unauthorized: Token scope does not cover this EVSE." in message
    assert "check the evenergy secret" in message
    assert CLIENT_SECRET not in message
    assert "token-" not in message
    assert vendor.tokens_issued == 2  # one refresh, not a loop
    assert len(vendor.log_requests) == 2


def test_wrong_client_credentials_are_an_auth_error(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    with pytest.raises(
        VendorAuthError,
        match=r"POST https://api.ev.energy/o/token refused the client credentials "
        r"\(401\): invalid_client - check the evenergy secret",
    ) as raised:
        make_adapter(client_secret="wrong").fetch_page(EVSE, DAY, None)
    assert "wrong" not in str(raised.value)
    assert vendor.log_requests == []


def test_a_token_is_fetched_again_shortly_before_it_expires(vendor: FakeEvEnergy) -> None:
    now = [0.0]
    auth = ClientCredentialsAuth(TOKEN_URL, CLIENT_ID, CLIENT_SECRET, clock=lambda: now[0])
    vendor.expires_in = 3600
    with httpx.Client(transport=httpx.MockTransport(vendor), auth=auth) as client:
        client.get(f"{BASE_URL}/evses/{EVSE}/status_logs", params={"page_size": 1})
        now[0] = 3600 - evenergy.TOKEN_EXPIRY_MARGIN_SECONDS - 1
        client.get(f"{BASE_URL}/evses/{EVSE}/status_logs", params={"page_size": 1})
        assert auth.tokens_fetched == 1
        now[0] = 3600 - evenergy.TOKEN_EXPIRY_MARGIN_SECONDS
        client.get(f"{BASE_URL}/evses/{EVSE}/status_logs", params={"page_size": 1})
    assert auth.tokens_fetched == 2
    assert CLIENT_SECRET not in repr(auth)


def test_a_token_endpoint_outage_is_retried(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    real = vendor.__call__
    failures = [httpx.Response(503, text="busy")]

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/o/token" and failures:
            vendor.requests.append(request)
            return failures.pop()
        return real(request)

    profile = replace(evenergy.PROFILE, requests_per_second=1000.0, burst=1000)
    connection = VendorConnection(
        "evenergy", BASE_URL, {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, profile
    )
    adapter = EvenergyAdapter(
        connection, lambda: 900.0, sleep=vendor.sleeps.append, transport=httpx.MockTransport(flaky)
    )
    try:
        assert adapter.fetch_page(EVSE, DAY, None).items == []
    finally:
        adapter.close()
    assert len(vendor.sleeps) == 1  # one backoff, then the token and the page


# ---------------------------------------------------------------------------------------------- paging
def test_pages_follow_the_link_header_until_about_blank(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    vendor.records = [status_log(s) for s in range(7)]
    pages = read_all(make_adapter(page_size=3))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [item for p in pages for item in p] == vendor.records
    # Later pages are the vendor's next links as given: the window and size are still on them.
    second = vendor.log_requests[1].url.params
    assert second["page_after"] == "3"
    assert second["sampled_at__gte"] == "2024-04-17T00:00:00.000000Z"


def test_a_last_full_page_ends_with_about_blank_and_no_extra_request(
    vendor: FakeEvEnergy, make_adapter: MakeAdapter
) -> None:
    vendor.records = [status_log(s) for s in range(6)]
    assert [len(p) for p in read_all(make_adapter(page_size=3))] == [3, 3]
    assert len(vendor.log_requests) == 2


def test_a_page_without_a_link_header_is_the_last(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    vendor.answers = [httpx.Response(200, json=[status_log(1)])]
    assert make_adapter().fetch_page(EVSE, DAY, None).next_cursor is None


def test_a_relative_next_link_resolves_against_the_api(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    link = '</v2/evses/x/status_logs?page_after=abc>; rel="next", <about:blank>; rel="previous"'
    vendor.answers = [httpx.Response(200, json=[], headers={"Link": link})]
    cursor = make_adapter().fetch_page(EVSE, DAY, None).next_cursor
    assert cursor == "https://api.ev.energy/v2/evses/x/status_logs?page_after=abc"


def test_a_next_link_off_the_apis_origin_is_refused(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    link = '<https://elsewhere.example/v2/evses?page_after=abc>; rel="next"'
    vendor.answers = [httpx.Response(200, json=[], headers={"Link": link})]
    with pytest.raises(VendorResponseError, match="off its origin"):
        make_adapter().fetch_page(EVSE, DAY, None)


def test_a_body_that_is_not_an_array_is_a_response_error(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    vendor.answers = [httpx.Response(200, json={"results": []})] * 6
    with pytest.raises(VendorResponseError, match="expected a JSON array of objects"):
        make_adapter().fetch_page(EVSE, DAY, None)


# ---------------------------------------------------------------------------------------------- errors and limits
def test_problem_json_errors_carry_their_title_and_detail(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    vendor.answers = [problem(404, "Not found", "Resource does not exist or cannot be accessed.")]
    with pytest.raises(VendorRequestError) as raised:
        make_adapter().fetch_page(EVSE, DAY, None)
    assert str(raised.value) == (
        f"evenergy GET evses/{EVSE}/status_logs refused the request (404): "
        "Not found: Resource does not exist or cannot be accessed."
    )


def test_a_429_waits_its_retry_after_and_says_why(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    vendor.answers = [problem(429, "Throttled", "Request was throttled.", **{"retry-after": "17"})]
    assert make_adapter().fetch_page(EVSE, DAY, None).items == []
    assert vendor.sleeps == [17.0]


def test_a_429_message_names_the_problem(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    vendor.answers = [problem(429, "Throttled", "Expected available in 900 seconds.", **{"retry-after": "900"})]
    with pytest.raises(VendorUnavailableError, match=r"rate limited \(429\): Throttled: Expected available in 900"):
        make_adapter(remaining_seconds=100.0).fetch_page(EVSE, DAY, None)


def test_calls_are_paced_as_the_hourly_budget_runs_low(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    vendor.records = [status_log(s) for s in range(4)]
    adapter = make_adapter(page_size=1)
    adapter.fetch_page(EVSE, DAY, None)
    adapter.fetch_page(EVSE, DAY, None)
    assert vendor.sleeps == []  # plenty left: no pause
    vendor.remaining = evenergy.PACE_BELOW_REMAINING
    adapter.fetch_page(EVSE, DAY, None)
    adapter.fetch_page(EVSE, DAY, None)
    assert vendor.sleeps == []  # not yet low
    vendor.remaining = evenergy.PACE_BELOW_REMAINING // 2
    adapter.fetch_page(EVSE, DAY, None)  # this answer says half the threshold is left
    adapter.fetch_page(EVSE, DAY, None)
    assert vendor.sleeps == [evenergy.MAX_PACE_SECONDS / 2]
    vendor.remaining = 0
    adapter.fetch_page(EVSE, DAY, None)
    adapter.fetch_page(EVSE, DAY, None)
    assert vendor.sleeps[-1] == evenergy.MAX_PACE_SECONDS


def test_a_worker_paces_at_the_whole_share_while_the_vendors_count_says_the_budget_is_plentiful(
    vendor: FakeEvEnergy, make_adapter: MakeAdapter
) -> None:
    vendor.records = [status_log(s) for s in range(6)]
    adapter = make_adapter(page_size=1)
    profile = adapter.connection.profile
    limiter = vendor_http._LIMITERS["evenergy"]
    shared, lone = profile.pacing(2), profile.pacing(1)
    assert lone[0] > 1.9 * shared[0]  # a worker alone goes about twice as fast

    adapter.fetch_page(EVSE, DAY, None)
    assert (limiter.rate, limiter.burst) == shared  # no count seen yet: its share with the queue's other worker
    adapter.fetch_page(EVSE, DAY, None)
    assert (limiter.rate, limiter.burst) == lone  # 999 of 1000 left
    vendor.remaining = int(1000 * evenergy.LONE_PACE_WHILE_LEFT)
    adapter.fetch_page(EVSE, DAY, None)
    adapter.fetch_page(EVSE, DAY, None)
    assert (limiter.rate, limiter.burst) == lone  # half left: still plentiful
    vendor.remaining -= 1
    adapter.fetch_page(EVSE, DAY, None)
    adapter.fetch_page(EVSE, DAY, None)
    assert (limiter.rate, limiter.burst) == shared  # less than half: back to its share
    assert vendor.sleeps == []


def test_pacing_never_waits_past_the_lambdas_time(vendor: FakeEvEnergy, make_adapter: MakeAdapter) -> None:
    vendor.remaining = 0
    adapter = make_adapter(remaining_seconds=vendor_http.DEADLINE_MARGIN_SECONDS + 5)
    adapter.fetch_page(EVSE, DAY, None)
    adapter.fetch_page(EVSE, DAY, None)
    assert vendor.sleeps == [5.0]


def test_problem_summary_reads_only_problem_json() -> None:
    assert problem_summary(problem(400, "Bad", "Very bad.")) == "Bad: Very bad."
    assert problem_summary(httpx.Response(400, json={"title": "Bad", "detail": "x"})) is None
    broken = httpx.Response(400, content=b"{", headers={"Content-Type": PROBLEM})
    assert problem_summary(broken) is None
    only_title = httpx.Response(400, json={"title": "Bad"}, headers={"Content-Type": f"{PROBLEM}; charset=utf-8"})
    assert problem_summary(only_title) == "Bad"
    assert len(problem_summary(problem(400, "T", "d" * 1000)) or "") == 301


def test_other_vendors_error_bodies_are_still_excerpted() -> None:
    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "Charger not found"})

    client = VendorHttpClient(
        "ocpplab",
        "https://x.example",
        rate_limiter=vendor_http.RateLimiter(1000, 1000),
        remaining_seconds=lambda: 900.0,
        transport=httpx.MockTransport(answer),
    )
    with pytest.raises(VendorRequestError, match=r'\(404\): \{"detail":"Charger not found"\}'):
        client.get_json("/x")
    client.close()


# ---------------------------------------------------------------------------------------------- records
def test_a_status_log_is_a_status_record_identified_by_its_url(make_adapter: MakeAdapter) -> None:
    item = status_log(4)
    record = make_adapter().normalize(EVSE, item)
    assert record.kind == "status"
    assert record.vendor == "evenergy"
    assert record.source_id == record.charger_id == EVSE
    assert record.timestamp == datetime(2024, 4, 17, 9, 39, 4, 984584, tzinfo=UTC)
    assert record.action is None
    assert record.direction is None
    assert record.message_type is None
    assert record.payload == {
        "is_plugged_in": True,
        "is_charging": True,
        "charge_rate_watts": 7200,
        "sampled_at": "2024-04-17T09:39:04.984584Z",
        "logged_at": "2024-04-17T09:45:04.000000Z",
    }
    assert record.raw == item
    assert record.record_id.startswith("evenergy:h:")
    assert "/" not in record.record_id
    # The same url is the same record, whatever else the vendor changed about it; another url another record.
    assert make_adapter().normalize(EVSE, item | {"is_charging": False}).record_id == record.record_id
    assert make_adapter().normalize(EVSE, status_log(5)).record_id != record.record_id


def test_unknown_states_are_null(make_adapter: MakeAdapter) -> None:
    record = make_adapter().normalize(
        EVSE, status_log(1, is_plugged_in=None, is_charging=None, charge_rate_watts=None, evse={"id": EVSE})
    )
    assert record.payload is not None
    assert (record.payload["is_plugged_in"], record.payload["is_charging"], record.payload["charge_rate_watts"]) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"url": None},
        {"sampled_at": 1713346785},
        {"sampled_at": "2024-04-17T09:39:45"},  # no offset
        {"logged_at": "yesterday"},
        {"is_charging": "true"},
        {"charge_rate_watts": "7200"},
    ],
)
def test_malformed_status_logs_are_value_errors(make_adapter: MakeAdapter, change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"not an ev\.energy status log"):
        make_adapter().normalize(EVSE, status_log(1) | change)


def test_the_adapter_is_registered() -> None:
    assert collectors.has_adapter("evenergy")
