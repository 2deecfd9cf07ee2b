"""The Plugchoice adapter: what it asks for, how it pages (no total), how it reads records, how it fails.

Requests run against httpx.MockTransport (the adapter's HTTP client gets the mock transport and a recording
sleep). The vendor documentation is /work/shared/vendor-docs/plugchoice-charger-logs.txt plus the notes in
/work/shared/vendor-docs/README.md.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from copy import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from chargelog import collectors
from chargelog.collectors import plugchoice, vendor_http
from chargelog.collectors.base import VendorConnection, Window
from chargelog.collectors.plugchoice import PlugchoiceAdapter
from chargelog.collectors.vendor_http import VendorAuthError, VendorHttpClient, VendorResponseError
from chargelog.models.records import LogRecord
from chargelog_local.runner import SIMULATORS
from chargelog_simulators.base import ManualClock, SimulatorServer
from chargelog_simulators.plugchoice import LOCAL_FLEET, PlugchoiceSimulator
from chargelog_simulators.traffic import CALL, CALLRESULT, TrafficFrame

TOKEN = "personal-access-token"
CHARGER = "9a3c1f0e-5b7d-4c2a-8e61-0f2d3b4a5c6d"
API_URL = "https://app.plugchoice.example/api"
LOGS_URL = f"{API_URL}/v3/chargers/{CHARGER}/logs"
WINDOW = Window(datetime(2026, 4, 9, 10, 0, 0, 250000, tzinfo=UTC), datetime(2026, 4, 9, 11, 0, 0, 999999, tzinfo=UTC))

# Shaped like the documented response item.
BOOT_DONE = {
    "id": 481516,
    "charger_id": 2342,
    "status": "done",
    "version": "1.6",
    "method": "BootNotification",
    "destination": "centralsystem",
    "params": {"chargePointVendor": "Alfen BV", "chargePointModel": "NG920-61023"},
    "result": {"status": "Accepted", "currentTime": "2026-04-09T10:15:00.120Z", "interval": 300},
    "created_at": "2026-04-09T10:15:00.000000Z",
    "updated_at": "2026-04-09T10:15:00.000000Z",
}
REMOTE_START_PENDING = {
    "id": 481517,
    "charger_id": 2342,
    "status": "pending",
    "version": "1.6",
    "method": "RemoteStartTransaction",
    "destination": "charger",
    "params": '{"connectorId":2,"idTag":"04A1B2C3D4E5F6"}',
    "result": None,
    "created_at": "2026-04-09T10:16:05.000000Z",
    "updated_at": "2026-04-09T10:16:05.000000Z",
}

MakeAdapter = Callable[..., PlugchoiceAdapter]


@pytest.fixture(autouse=True)
def fresh_limiters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vendor_http, "_LIMITERS", {})


@pytest.fixture
def make_adapter() -> Iterator[MakeAdapter]:
    adapters: list[PlugchoiceAdapter] = []

    def make(base_url: str = API_URL, token: str = TOKEN) -> PlugchoiceAdapter:
        profile = replace(plugchoice.PROFILE, requests_per_second=1000.0, burst=1000)
        adapter = PlugchoiceAdapter(VendorConnection("plugchoice", base_url, {"token": token}, profile), lambda: 900.0)
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        adapter.close()


class FakeApi:
    """The logs endpoint in memory: 25 ``records`` a page with ``links``, unless ``answers`` are queued."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.answers: list[httpx.Response] = []
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.flat = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.answers:
            return self.answers.pop(0)
        page = int(request.url.params.get("page", "1"))
        data = self.records[(page - 1) * 25 : page * 25]
        following = f"{LOGS_URL}?page={page + 1}" if len(self.records) > page * 25 else None
        if self.flat:
            return httpx.Response(200, json={"current_page": page, "data": data, "next_page_url": following})
        links = {"first": f"{LOGS_URL}?page=1", "last": None, "prev": None, "next": following}
        return httpx.Response(200, json={"data": data, "links": links, "meta": {"current_page": page, "per_page": 25}})

    @property
    def params(self) -> list[dict[str, str]]:
        return [dict(request.url.params) for request in self.requests]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()
    client = functools.partial(VendorHttpClient, transport=httpx.MockTransport(fake), sleep=fake.sleeps.append)
    monkeypatch.setattr(plugchoice, "VendorHttpClient", client)
    return fake


def logs(count: int) -> list[dict[str, Any]]:
    start = datetime(2026, 4, 9, 10, 30, tzinfo=UTC)
    return [
        {
            **BOOT_DONE,
            "id": 1000 + n,
            "method": "Heartbeat",
            "params": "[]",
            "result": {"currentTime": "2026-04-09T10:30:00Z"},
            "created_at": (start + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        }
        for n in range(count)
    ]


def page_through(adapter: PlugchoiceAdapter, window: Window = WINDOW) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    while True:
        page = adapter.fetch_page(CHARGER, window, cursor)
        assert page.total is None
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return items


# ---------------------------------------------------------------------------------------------- requests
def test_the_first_page_asks_for_ascending_created_at_within_the_window_in_whole_utc_seconds(
    api: FakeApi, make_adapter: MakeAdapter
) -> None:
    make_adapter().fetch_page(CHARGER, WINDOW, None)
    request = api.requests[0]
    assert request.url.path == f"/api/v3/chargers/{CHARGER}/logs"
    # date_from rounded down, date_to the second after the end's second: neither edge loses a record.
    assert api.params == [
        {
            "sort": "created_at",
            "filter[date_from]": "2026-04-09 10:00:00",
            "filter[date_to]": "2026-04-09 11:00:01",
            "page": "1",
        }
    ]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"


def test_window_bounds_in_another_offset_are_sent_in_utc(api: FakeApi, make_adapter: MakeAdapter) -> None:
    amsterdam = timezone(timedelta(hours=2))
    window = Window(datetime(2026, 4, 9, 12, 0, tzinfo=amsterdam), datetime(2026, 4, 9, 13, 0, tzinfo=amsterdam))
    make_adapter().fetch_page(CHARGER, window, None)
    assert api.params[0]["filter[date_from]"] == "2026-04-09 10:00:00"
    assert api.params[0]["filter[date_to]"] == "2026-04-09 11:00:01"


def test_an_action_is_sent_as_the_method_filter(api: FakeApi, make_adapter: MakeAdapter) -> None:
    make_adapter().fetch_page(CHARGER, WINDOW, None, action="StatusNotification")
    assert api.params[0]["filter[method]"] == "StatusNotification"


@pytest.mark.parametrize("flat", [False, True], ids=["links.next", "next_page_url"])
@pytest.mark.parametrize("count", [0, 1, 25, 26, 51])
def test_paging_follows_the_next_link_until_it_is_null(
    api: FakeApi, make_adapter: MakeAdapter, flat: bool, count: int
) -> None:
    api.flat = flat
    api.records = logs(count)
    items = page_through(make_adapter())
    assert [item["id"] for item in items] == [record["id"] for record in api.records]
    assert [p["page"] for p in api.params] == [str(n) for n in range(1, max(1, -(-count // 25)) + 1)]
    assert {p["filter[date_from]"] for p in api.params} == {"2026-04-09 10:00:00"}  # every page: the same query


def test_the_cursor_is_the_next_links_page_and_the_token_never_follows_the_link_elsewhere(
    api: FakeApi, make_adapter: MakeAdapter
) -> None:
    links = {"next": "https://elsewhere.example/steal?page=7&x=1"}
    api.answers = [httpx.Response(200, json={"data": logs(1), "links": links}), httpx.Response(200, json={"data": []})]
    adapter = make_adapter()
    assert adapter.fetch_page(CHARGER, WINDOW, None).next_cursor == "7"
    adapter.fetch_page(CHARGER, WINDOW, "7")
    assert {r.url.host for r in api.requests} == {"app.plugchoice.example"}
    assert api.params[1]["page"] == "7"


def test_an_empty_page_ends_the_paging_even_with_a_next_link(api: FakeApi, make_adapter: MakeAdapter) -> None:
    api.answers = [httpx.Response(200, json={"data": [], "links": {"next": f"{LOGS_URL}?page=2"}})]
    assert make_adapter().fetch_page(CHARGER, WINDOW, None).next_cursor is None


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"links": {"next": None}}, "data: Field required"),
        ({"data": {}, "links": {"next": None}}, "data: Input should be a valid list"),
        ({"data": logs(1), "links": {"next": 5}}, "links.next"),
        ({"data": logs(1), "links": {"next": f"{LOGS_URL}?cursor=abc"}}, "without a page number"),
        ({"data": logs(1), "links": {"next": f"{LOGS_URL}?page=1"}}, "links back to page 1"),
        ([], "unexpected body"),
    ],
)
def test_a_body_that_is_not_the_documented_page_is_a_response_error(
    api: FakeApi, make_adapter: MakeAdapter, body: Any, complaint: str
) -> None:
    api.answers = [httpx.Response(200, json=body)]
    with pytest.raises(VendorResponseError, match="plugchoice") as raised:
        make_adapter().fetch_page(CHARGER, WINDOW, None)
    assert complaint in str(raised.value)


def test_a_429_waits_the_retry_after_seconds_then_retries(api: FakeApi, make_adapter: MakeAdapter) -> None:
    headers = {"Retry-After": "17", "X-RateLimit-Limit": "500", "X-RateLimit-Remaining": "0"}
    api.answers = [httpx.Response(429, json={"message": "Too Many Attempts."}, headers=headers)]
    api.records = logs(3)
    adapter = make_adapter()
    assert len(adapter.fetch_page(CHARGER, WINDOW, None).items) == 3
    assert api.sleeps == [17.0]
    assert adapter.requests_made == 2


def test_a_401_is_an_auth_error_without_the_token(api: FakeApi, make_adapter: MakeAdapter) -> None:
    api.answers = [httpx.Response(401, json={"message": "Unauthenticated."})]
    with pytest.raises(VendorAuthError, match="check the plugchoice secret") as raised:
        make_adapter().fetch_page(CHARGER, WINDOW, None)
    assert TOKEN not in str(raised.value)
    assert len(api.requests) == 1


def test_the_adapter_is_registered_with_the_vendors_rate_limit() -> None:
    assert collectors.has_adapter("plugchoice")
    profile, factory = collectors._ADAPTERS["plugchoice"]
    assert factory is PlugchoiceAdapter
    # 500 a minute for the user, shared by at most two workers.
    assert profile.requests_per_second * 2 * 60 <= 500
    assert profile.page_size == 25


# ---------------------------------------------------------------------------------------------- records
def normalize(item: Any) -> LogRecord:
    adapter = PlugchoiceAdapter(
        VendorConnection("plugchoice", API_URL, {"token": TOKEN}, plugchoice.PROFILE), lambda: 9.0
    )
    try:
        return adapter.normalize(CHARGER, item)
    finally:
        adapter.close()


def test_a_done_log_is_a_call_with_its_result() -> None:
    record = normalize(BOOT_DONE)
    assert record.vendor == "plugchoice"
    assert record.source_id == record.charger_id == CHARGER
    assert record.kind == "ocpp"
    assert record.action == "BootNotification"
    assert record.direction == "cp_to_csms"
    assert record.status == "done"
    assert record.payload == BOOT_DONE["params"]
    assert record.result == BOOT_DONE["result"]
    assert record.ocpp_version == "1.6"
    assert record.timestamp == datetime(2026, 4, 9, 10, 15, tzinfo=UTC)
    assert record.record_id == "plugchoice:481516"
    assert record.raw == BOOT_DONE


def test_a_pending_log_to_the_charger_with_params_as_a_json_string() -> None:
    record = normalize(REMOTE_START_PENDING)
    assert record.direction == "csms_to_cp"
    assert record.status == "pending"
    assert record.payload == {"connectorId": 2, "idTag": "04A1B2C3D4E5F6"}
    assert record.connector_id == 2
    assert record.result is None


def test_a_pending_log_updated_to_done_keeps_its_id_and_timestamp() -> None:
    done = {
        **REMOTE_START_PENDING,
        "status": "done",
        "result": '{"status":"Accepted"}',
        "updated_at": "2026-04-09T10:16:06.000000Z",
    }
    pending_record, done_record = normalize(REMOTE_START_PENDING), normalize(done)
    assert (done_record.record_id, done_record.timestamp) == (pending_record.record_id, pending_record.timestamp)
    assert (done_record.status, done_record.result) == ("done", {"status": "Accepted"})


@pytest.mark.parametrize("empty", ["[]", [], "{}", {}])
def test_empty_params_in_every_form_are_an_empty_payload(empty: Any) -> None:
    assert normalize({**BOOT_DONE, "method": "Heartbeat", "params": empty}).payload == {}


@pytest.mark.parametrize(
    ("version", "expected"), [("1.6", "1.6"), ("ocpp1.6", "1.6"), ("OCPP 2.0.1", "2.0.1"), (None, None), ("?", None)]
)
def test_the_ocpp_version_is_read_from_the_version_field(version: str | None, expected: str | None) -> None:
    assert normalize({**BOOT_DONE, "version": version}).ocpp_version == expected


def test_a_created_at_with_an_offset_or_none_is_utc() -> None:
    assert normalize({**BOOT_DONE, "created_at": "2026-04-09T12:15:00+02:00"}).timestamp == datetime(
        2026, 4, 9, 10, 15, tzinfo=UTC
    )
    assert normalize({**BOOT_DONE, "created_at": "2026-04-09 10:15:00"}).timestamp == datetime(
        2026, 4, 9, 10, 15, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("item", "complaint"),
    [
        ("not a record", "not a Plugchoice log record"),
        ({**BOOT_DONE, "id": "481516"}, "id"),
        ({**BOOT_DONE, "destination": "elsewhere"}, "destination"),
        ({**BOOT_DONE, "created_at": "yesterday"}, "created_at"),
        ({**BOOT_DONE, "params": "{not json"}, "params is a string but not JSON"),
        ({**BOOT_DONE, "params": [1, 2]}, "params is a list, not an object"),
        ({**BOOT_DONE, "result": '"Accepted"'}, "result is a str, not an object"),
    ],
)
def test_a_record_that_cannot_be_read_raises_value_error(item: Any, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        normalize(item)


def test_records_are_json_round_trippable() -> None:
    record = normalize(REMOTE_START_PENDING)
    assert LogRecord.model_validate_json(record.model_dump_json()) == record
    assert json.loads(record.model_dump_json())["raw"] == REMOTE_START_PENDING


# ---------------------------------------------------------------------------------------------- against the simulator
SIM_NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def simulator() -> PlugchoiceSimulator:
    simulator = PlugchoiceSimulator(seed=9, clock=ManualClock(SIM_NOW))
    simulator.add_token(TOKEN)
    simulator.add_charger(CHARGER)
    simulator.seed(CHARGER, SIM_NOW - timedelta(hours=6), SIM_NOW)
    return simulator


@pytest.fixture
def simulator_url(simulator: PlugchoiceSimulator) -> Iterator[str]:
    with SimulatorServer(simulator.wsgi_app) as base_url:
        yield f"{base_url}/api"


def in_window(item: dict[str, Any], window: Window) -> bool:
    created = datetime.fromisoformat(item["created_at"])
    return window.start <= created <= window.end


def test_paging_the_simulator_collects_every_record_in_the_window(
    simulator: PlugchoiceSimulator, simulator_url: str, make_adapter: MakeAdapter
) -> None:
    window = Window(SIM_NOW - timedelta(hours=4, microseconds=1), SIM_NOW - timedelta(hours=1, microseconds=-1))
    items = page_through(make_adapter(simulator_url), window)
    expected = [item for item in simulator.visible_records(CHARGER) if in_window(item, window)]
    assert len(expected) > 100
    assert [i for i in items if in_window(i, window)] == expected
    assert len(items) == len({i["id"] for i in items})


def test_records_at_the_windows_edge_seconds_are_read(
    simulator: PlugchoiceSimulator, simulator_url: str, make_adapter: MakeAdapter
) -> None:
    quiet = SIM_NOW + timedelta(hours=1)  # nothing seeded there
    frames = []
    for n, at in enumerate((quiet, quiet + timedelta(seconds=10))):
        frames.append(TrafficFrame(at, "cp_to_csms", "Heartbeat", CALL, f"edge-{n}", {}))
        frames.append(TrafficFrame(at, "csms_to_cp", "Heartbeat", CALLRESULT, f"edge-{n}", {"currentTime": "x"}))
    simulator.insert(CHARGER, frames)
    simulator.clock.advance(7200)  # type: ignore[attr-defined]
    # The window starts mid-second before the first record's second and ends mid-second in the last one's.
    window = Window(quiet + timedelta(milliseconds=400), quiet + timedelta(seconds=10, milliseconds=1))
    assert [item["created_at"] for item in page_through(make_adapter(simulator_url), window)] == [
        "2026-04-10T13:00:00.000000Z",
        "2026-04-10T13:00:10.000000Z",
    ]


def test_a_wrong_token_against_the_simulator_is_an_auth_error(simulator_url: str, make_adapter: MakeAdapter) -> None:
    with pytest.raises(VendorAuthError, match="401"):
        make_adapter(simulator_url, token="wrong").fetch_page(CHARGER, WINDOW, None)


def test_the_local_stacks_simulator_serves_the_adapter(make_adapter: MakeAdapter) -> None:
    base_url, credentials, stop = SIMULATORS["plugchoice"]()
    try:
        adapter = make_adapter(base_url, credentials["token"])
        now = datetime.now(UTC)
        charger = LOCAL_FLEET[0][0]
        page = adapter.fetch_page(charger, Window(now - timedelta(days=2), now), None)
        assert page.next_cursor == "2"
        record = adapter.normalize(charger, page.items[0])
        assert (record.action, record.direction, record.status) == ("BootNotification", "cp_to_csms", "done")
    finally:
        stop()
