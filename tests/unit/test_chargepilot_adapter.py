"""The ChargePilot adapter: how it signs, what it asks for, how it pages, how it reads entries, how it fails.

Request details run against httpx.MockTransport; paging and auth also run end to end against the in-repo
ChargePilot simulator on 127.0.0.1. The vendor documentation is
/work/shared/vendor-docs/chargepilot-ocpp-logs.txt (auth: the notes in its README).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from copy import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from chargelog import collectors
from chargelog.collectors import chargepilot, vendor_http
from chargelog.collectors.base import VendorConnection, Window
from chargelog.collectors.chargepilot import ChargepilotAdapter, ChargepilotSignature, signature, signing_key
from chargelog.collectors.vendor_http import VendorAuthError, VendorRequestError, VendorResponseError
from chargelog_simulators.base import ManualClock, SimulatorServer
from chargelog_simulators.chargepilot import ChargepilotSimulator

API_KEY = "cp-key-1"
API_SECRET = "my-api-secret"
SITE = "site-42"
BASE_URL = "https://chargepilot-api.example/rest/v1"
DAY = Window(datetime(2026, 4, 9, tzinfo=UTC), datetime(2026, 4, 9, 23, 59, 59, 999999, tzinfo=UTC))

STATUS_ENTRY: dict[str, Any] = {
    "occurrence_time": "2026-04-09T09:30:00.120Z",
    "action": "StatusNotification",
    "payload": {"connectorId": 2, "errorCode": "NoError", "status": "Charging"},
    "site_id": SITE,
    "site_name": "Riverside depot",
    "charger_id": "CP-RIV-01",
    "connector_id": 2,
    "request_status": "Charging",
    "request_error_code": "NoError",
    "extracted_power": None,
}
HEARTBEAT_ENTRY: dict[str, Any] = {
    "occurrence_time": "2026-04-09T09:31:00Z",
    "action": "Heartbeat",
    "payload": {},
    "site_id": SITE,
    "site_name": "Riverside depot",
    "charger_id": "CP-RIV-02",
    "connector_id": None,
}


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vendor_http, "INITIAL_BACKOFF_SECONDS", 0.001)
    monkeypatch.setattr(vendor_http, "MAX_BACKOFF_SECONDS", 0.01)


def connection(base_url: str = BASE_URL, page_size: int = 1000, secret: str = API_SECRET) -> VendorConnection:
    profile = replace(chargepilot.PROFILE, requests_per_second=1000.0, burst=1000, page_size=page_size)
    return VendorConnection("chargepilot", base_url, {"api_key": API_KEY, "api_secret": secret}, profile)


def mock_adapter(handler: Callable[[httpx.Request], httpx.Response], page_size: int = 1000) -> ChargepilotAdapter:
    return ChargepilotAdapter(connection(page_size=page_size), lambda: 900.0, transport=httpx.MockTransport(handler))


def body(entries: list[dict[str, Any]], count: int) -> httpx.Response:
    return httpx.Response(200, json={"ocpp_logs": entries, "count": count})


def verify(request: httpx.Request) -> bool:
    """What the vendor does with a request: recompute the signature from the documented recipe."""
    key = hashlib.sha256(API_SECRET.encode()).hexdigest().encode()
    message = f"{request.method}:{request.url.raw_path.decode()}:{request.headers['x-req-timestamp']}:"
    expected = hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
    return request.headers["x-signature"] == expected


# ---------------------------------------------------------------------------------------------- signing
def test_signature_known_answer() -> None:
    # The doc has no worked example; this answer comes from openssl, independently of Python:
    #   KEY=$(printf %s my-api-secret | openssl dgst -sha256 -r | cut -d' ' -f1)
    #   printf %s 'GET:<path>:1775779200:' | openssl dgst -sha256 -hmac "$KEY"
    path = (
        "/rest/v1/ocpp-logs/site/site-42?from=2026-04-09T00%3A00%3A00.000000Z"
        "&to=2026-04-09T23%3A59%3A59.999999Z&sort_order=asc&take=1000&skip=0"
    )
    assert signing_key(API_SECRET) == b"1bfa3f998f91cba91bfe9cfb7bcda8d5409df71ada08b6dd669967787b66bed2"
    assert signature(API_SECRET, "GET", path, "1775779200") == (
        "1fecd3b6c66ae623c021f7c8be0bf8beea7f6fdbc48c1353307443211c5989b9"
    )


def test_every_request_is_signed_with_a_fresh_timestamp() -> None:
    seen: list[httpx.Request] = []
    ticks = iter([1_775_779_200.7, 1_775_779_263.2])
    auth = ChargepilotSignature(API_KEY, API_SECRET, clock=lambda: next(ticks))

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    with httpx.Client(base_url=BASE_URL, auth=auth, transport=httpx.MockTransport(handler)) as client:
        client.get("/ocpp-logs/site/site-42", params={"from": "2026-04-09T00:00:00Z", "take": 5})
        client.get("/sites")
    assert [r.headers["x-req-timestamp"] for r in seen] == ["1775779200", "1775779263"]
    assert all(r.headers["x-api-key"] == API_KEY for r in seen)
    assert all(verify(r) for r in seen)
    assert seen[0].url.raw_path.decode().startswith("/rest/v1/ocpp-logs/site/site-42?from=")
    assert "Authorization" not in seen[0].headers
    assert API_SECRET not in repr(auth)


def test_signature_covers_the_body_of_a_request_that_has_one() -> None:
    seen: list[httpx.Request] = []
    auth = ChargepilotSignature(API_KEY, API_SECRET, clock=lambda: 100.0)
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(204))
    with httpx.Client(base_url=BASE_URL, auth=auth, transport=transport) as client:
        client.post("/things", content=b'{"a":1}')
    assert seen[0].headers["x-signature"] == signature(API_SECRET, "POST", "/rest/v1/things", "100", '{"a":1}')


# ---------------------------------------------------------------------------------------------- requests
def test_first_page_asks_for_the_window_oldest_first_with_the_largest_take() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return body([STATUS_ENTRY, HEARTBEAT_ENTRY], 2)

    page = mock_adapter(handler).fetch_page(SITE, DAY, None)
    (request,) = seen
    assert request.url.path == f"/rest/v1/ocpp-logs/site/{SITE}"
    assert parse_qs(urlsplit(str(request.url)).query) == {
        "from": ["2026-04-09T00:00:00.000000Z"],
        "to": ["2026-04-09T23:59:59.999999Z"],
        "sort_order": ["asc"],
        "take": ["1000"],
        "skip": ["0"],
    }
    assert verify(request)
    assert page.items == [STATUS_ENTRY, HEARTBEAT_ENTRY]
    assert page.total == 2
    assert page.next_cursor is None
    assert page.request["params"]["from"] == "2026-04-09T00:00:00.000000Z"


def test_skip_pages_until_count_is_reached() -> None:
    skips: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        skips.append(str(skip))
        return body([STATUS_ENTRY] * min(2, 5 - skip), 5)

    adapter = mock_adapter(handler, page_size=2)
    cursor: str | None = None
    read = 0
    while True:
        page = adapter.fetch_page(SITE, DAY, cursor)
        read += len(page.items)
        assert page.total == 5
        cursor = page.next_cursor
        if cursor is None:
            break
    assert skips == ["0", "2", "4"]
    assert read == 5
    assert adapter.requests_made == 3


def test_an_empty_page_ends_paging_even_if_count_says_more() -> None:
    page = mock_adapter(lambda r: body([], 3)).fetch_page(SITE, DAY, "3")
    assert page.next_cursor is None
    assert page.total == 3


def test_an_action_filter_uses_the_actions_parameter() -> None:
    seen: list[httpx.Request] = []
    mock_adapter(lambda r: seen.append(r) or body([], 0)).fetch_page(SITE, DAY, None, action="MeterValues")
    assert seen[0].url.params["actions"] == "MeterValues"


def test_a_site_id_is_escaped_in_the_path() -> None:
    seen: list[httpx.Request] = []
    mock_adapter(lambda r: seen.append(r) or body([], 0)).fetch_page("a/b c", DAY, None)
    assert seen[0].url.raw_path.decode().startswith("/rest/v1/ocpp-logs/site/a%2Fb%20c?")
    assert verify(seen[0])


@pytest.mark.parametrize(
    "response_body",
    [
        {"ocpp_logs": [], "count": "0"},
        {"ocpp_logs": {}, "count": 0},
        {"data": [], "total": 0},
        [],
    ],
)
def test_an_unexpected_body_is_a_clear_error(response_body: Any) -> None:
    adapter = mock_adapter(lambda r: httpx.Response(200, json=response_body))
    with pytest.raises(
        VendorResponseError, match="chargepilot GET /ocpp-logs/site/site-42 answered with an unexpected"
    ):
        adapter.fetch_page(SITE, DAY, None)


def test_refused_credentials_and_requests_are_clear_errors_without_secrets() -> None:
    unauthorized = mock_adapter(lambda r: httpx.Response(401, json={"statusCode": 401, "message": "Unauthorized"}))
    with pytest.raises(VendorAuthError, match=r"refused the credentials \(401\).*check the chargepilot secret") as err:
        unauthorized.fetch_page(SITE, DAY, None)
    assert API_SECRET not in str(err.value)
    assert signing_key(API_SECRET).decode() not in str(err.value)
    bad = mock_adapter(lambda r: httpx.Response(400, json={"statusCode": 400, "message": ["from must be ..."]}))
    with pytest.raises(VendorRequestError, match=r"refused the request \(400\)"):
        bad.fetch_page(SITE, DAY, None)


def test_retried_requests_are_signed_again() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503, text="busy") if len(seen) < 3 else body([], 0)

    mock_adapter(handler).fetch_page(SITE, DAY, None)
    assert len(seen) == 3
    assert all(verify(r) for r in seen)


# ---------------------------------------------------------------------------------------------- records
def test_an_entry_is_filed_under_its_charger_connector_and_the_site() -> None:
    record = mock_adapter(lambda r: body([], 0)).normalize(SITE, STATUS_ENTRY)
    assert record.vendor == "chargepilot"
    assert record.source_id == SITE
    assert record.site_id == SITE
    assert record.charger_id == "CP-RIV-01"
    assert record.connector_id == 2
    assert record.timestamp == datetime(2026, 4, 9, 9, 30, 0, 120000, tzinfo=UTC)
    assert record.kind == "ocpp"
    assert record.action == "StatusNotification"
    assert record.direction == "cp_to_csms"
    assert record.message_type == "CALL"
    assert record.payload == STATUS_ENTRY["payload"]
    assert record.raw == STATUS_ENTRY  # extracted request and meter fields kept
    assert record.record_id.startswith("chargepilot:h:")


def test_a_null_connector_falls_back_to_the_payload_and_then_to_none() -> None:
    adapter = mock_adapter(lambda r: body([], 0))
    assert adapter.normalize(SITE, {**STATUS_ENTRY, "connector_id": None}).connector_id == 2
    assert adapter.normalize(SITE, HEARTBEAT_ENTRY).connector_id is None


def test_csms_actions_are_sent_by_the_central_system() -> None:
    adapter = mock_adapter(lambda r: body([], 0))
    remote = {**HEARTBEAT_ENTRY, "action": "RemoteStartTransaction", "payload": {"idTag": "A1", "connectorId": 1}}
    assert adapter.normalize(SITE, remote).direction == "csms_to_cp"
    assert adapter.normalize(SITE, {**HEARTBEAT_ENTRY, "action": "DataTransfer"}).direction is None


def test_record_ids_are_stable_and_tell_entries_apart() -> None:
    adapter = mock_adapter(lambda r: body([], 0))
    first = adapter.normalize(SITE, STATUS_ENTRY).record_id
    assert adapter.normalize(SITE, json.loads(json.dumps(STATUS_ENTRY))).record_id == first
    same_instant = {**STATUS_ENTRY, "occurrence_time": "2026-04-09T11:30:00.120+02:00"}
    assert adapter.normalize(SITE, same_instant).record_id == first
    others = [
        {**STATUS_ENTRY, "charger_id": "CP-RIV-02"},
        {**STATUS_ENTRY, "connector_id": 1},
        {**STATUS_ENTRY, "occurrence_time": "2026-04-09T09:30:00.121Z"},
        {**STATUS_ENTRY, "payload": {**STATUS_ENTRY["payload"], "status": "Finishing"}},
    ]
    ids = {adapter.normalize(SITE, other).record_id for other in others}
    assert len(ids) == 4
    assert first not in ids
    assert adapter.normalize("site-43", {**STATUS_ENTRY, "site_id": "site-43"}).record_id != first


@pytest.mark.parametrize(
    "entry",
    [
        {**STATUS_ENTRY, "occurrence_time": "2026-04-09T09:30:00"},  # no offset
        {**STATUS_ENTRY, "occurrence_time": 1775727000},
        {k: v for k, v in STATUS_ENTRY.items() if k != "charger_id"},
        {**STATUS_ENTRY, "connector_id": "2"},
        {**STATUS_ENTRY, "connector_id": -1},
        {**STATUS_ENTRY, "site_id": "site-other"},
        "not an object",
    ],
)
def test_entries_that_cannot_be_read_are_value_errors(entry: Any) -> None:
    with pytest.raises(ValueError, match=r"ChargePilot|site"):
        mock_adapter(lambda r: body([], 0)).normalize(SITE, entry)


def test_the_adapter_is_registered() -> None:
    assert collectors.has_adapter("chargepilot")


# ---------------------------------------------------------------------------------------------- end to end
@pytest.fixture
def simulated() -> Iterator[tuple[ChargepilotSimulator, str]]:
    clock = ManualClock(datetime(2026, 4, 10, 12, 0, tzinfo=UTC))
    simulator = ChargepilotSimulator(seed=5, clock=clock)
    simulator.add_api_key(API_KEY, API_SECRET)
    simulator.add_site(SITE, API_KEY, "Riverside depot")
    for charger in ("CP-A", "CP-B", "CP-C"):
        simulator.add_charger(SITE, charger, 2)
    simulator.seed(SITE, clock() - timedelta(hours=4), clock())
    with SimulatorServer(simulator.wsgi_app) as url:
        yield simulator, url + "/rest/v1"


def test_pages_through_a_sites_log_against_the_simulator(simulated: tuple[ChargepilotSimulator, str]) -> None:
    simulator, base_url = simulated
    adapter = ChargepilotAdapter(connection(base_url, page_size=100), lambda: 900.0)
    window = Window(datetime(2026, 4, 10, tzinfo=UTC), datetime(2026, 4, 10, 12, 0, tzinfo=UTC))
    items: list[Any] = []
    cursor: str | None = None
    while True:
        page = adapter.fetch_page(SITE, window, cursor)
        items.extend(page.items)
        if (cursor := page.next_cursor) is None:
            break
    expected = simulator.visible_records(SITE)
    assert items == expected
    assert adapter.requests_made == -(-len(expected) // 100)
    records = [adapter.normalize(SITE, item) for item in items]
    assert {r.charger_id for r in records} == {"CP-A", "CP-B", "CP-C"}
    assert len({r.record_id for r in records}) == len(records)


def test_a_wrong_secret_is_refused_by_the_simulator(simulated: tuple[ChargepilotSimulator, str]) -> None:
    _, base_url = simulated
    adapter = ChargepilotAdapter(connection(base_url, secret="not-the-secret"), lambda: 900.0)
    with pytest.raises(VendorAuthError, match="401"):
        adapter.fetch_page(SITE, DAY, None)
