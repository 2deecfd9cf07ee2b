"""The OCPPLAB Gateway adapter: what it asks for, how it pages, how it reads records, how it fails.

Request details run against httpx.MockTransport (the adapter's HTTP client gets the mock transport and a
recording sleep); paging, filters and auth also run end to end against the in-repo OCPPLAB simulator on
127.0.0.1. The vendor documentation is /work/shared/vendor-docs/ocpplab-charger-logs.txt.
"""

from __future__ import annotations

import copy
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
from chargelog.collectors import ocpplab, vendor_http
from chargelog.collectors.base import Page, VendorConnection, Window
from chargelog.collectors.ocpplab import MAX_LIMIT, OcpplabAdapter
from chargelog.collectors.vendor_http import VendorAuthError, VendorHttpClient, VendorRequestError, VendorResponseError
from chargelog.models.records import LogRecord
from chargelog_simulators.base import ManualClock, SimulatorServer
from chargelog_simulators.ocpplab import OcpplabSimulator
from chargelog_simulators.traffic import CALL, CALLERROR, CALLRESULT, TrafficFrame

TOKEN = "tenant-1-token"
CHARGER = "dep-123"
OTHER_TENANTS = "dep-999"
GATEWAY_URL = "https://gateway.ocpplab.example"
LOGS = f"/ocpp/chargers/{CHARGER}/logs"
DAY = Window(datetime(2026, 4, 9, tzinfo=UTC), datetime(2026, 4, 9, 23, 59, 59, 999999, tzinfo=UTC))
NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)

# The record of the vendor's documentation example.
BOOT_CALL = {
    "direction": "cp_to_csms",
    "action": "BootNotification",
    "message": '[2,"boot-001","BootNotification",{"charge_point_vendor":"OCPPLAB","charge_point_model":"SDK-DC-50"}]',
    "timestamp": "2026-04-09T09:30:00Z",
}
BOOT_RESULT = {
    "direction": "csms_to_cp",
    "action": "BootNotification",
    "message": '[3,"boot-001",{"status":"Accepted","current_time":"2026-04-09T09:30:00.120Z","interval":300}]',
    "timestamp": "2026-04-09T09:30:00.120Z",
}
REMOTE_START_ERROR = {
    "direction": "cp_to_csms",
    "action": "RemoteStartTransaction",
    "message": '[4,"rst-7","NotSupported","Action is recognized but not supported",{"reason":"busy"}]',
    "timestamp": "2026-04-09T10:15:02.500Z",
}
STATUS_CALL = {
    "direction": "cp_to_csms",
    "action": "StatusNotification",
    "message": '[2,"sn-1","StatusNotification",{"connector_id":2,"error_code":"NoError","status":"Charging"}]',
    "timestamp": "2026-04-09T10:00:00Z",
}

MakeAdapter = Callable[..., OcpplabAdapter]


@pytest.fixture(autouse=True)
def fresh_limiters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own per-process limiter registry."""
    monkeypatch.setattr(vendor_http, "_LIMITERS", {})


@pytest.fixture
def make_adapter() -> Iterator[MakeAdapter]:
    """Builds adapters (closed after the test) with a rate limit high enough never to wait."""
    adapters: list[OcpplabAdapter] = []

    def make(base_url: str = GATEWAY_URL, token: str = TOKEN, page_size: int = MAX_LIMIT) -> OcpplabAdapter:
        profile = replace(ocpplab.PROFILE, requests_per_second=1000.0, burst=1000, page_size=page_size)
        connection = VendorConnection("ocpplab", base_url, {"token": token}, profile)
        adapter = OcpplabAdapter(connection, remaining_seconds=lambda: 900.0)
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        adapter.close()


# ---------------------------------------------------------------------------------------------- against a mock
class FakeGateway:
    """OCPPLAB's logs endpoint in memory: limit/offset over ``records``, unless ``answers`` are queued."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.answers: list[httpx.Response] = []
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.answers:
            return self.answers.pop(0)
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        page = self.records[offset : offset + limit]
        return httpx.Response(200, json={"data": page, "total": len(self.records), "limit": limit, "offset": offset})

    @property
    def params(self) -> list[dict[str, str]]:
        return [dict(request.url.params) for request in self.requests]


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> FakeGateway:
    """Adapters built in the test talk to this fake through httpx.MockTransport and never really sleep."""
    fake = FakeGateway()
    client = functools.partial(VendorHttpClient, transport=httpx.MockTransport(fake), sleep=fake.sleeps.append)
    monkeypatch.setattr(ocpplab, "VendorHttpClient", client)
    return fake


def heartbeats(count: int) -> list[dict[str, Any]]:
    start = datetime(2026, 4, 9, 8, 0, tzinfo=UTC)
    return [
        {
            "direction": "cp_to_csms",
            "action": "Heartbeat",
            "message": json.dumps([2, f"hb-{n}", "Heartbeat", {}]),
            "timestamp": (start + timedelta(seconds=n)).isoformat().replace("+00:00", "Z"),
        }
        for n in range(count)
    ]


def test_the_first_page_asks_for_the_inclusive_window_1000_records_from_offset_0(
    gateway: FakeGateway, make_adapter: MakeAdapter
) -> None:
    make_adapter().fetch_page(CHARGER, DAY, None)

    (request,) = gateway.requests
    assert request.method == "GET"
    assert request.url.path == LOGS
    assert dict(request.url.params) == {
        "start_date": "2026-04-09T00:00:00.000000Z",
        "end_date": "2026-04-09T23:59:59.999999Z",
        "limit": "1000",
        "offset": "0",
    }


def test_requests_carry_the_bearer_token_and_accept_json(gateway: FakeGateway, make_adapter: MakeAdapter) -> None:
    make_adapter(token="s3cret").fetch_page(CHARGER, DAY, None)

    (request,) = gateway.requests
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["Accept"] == "application/json"


def test_window_bounds_in_another_offset_are_sent_in_utc(gateway: FakeGateway, make_adapter: MakeAdapter) -> None:
    plus_two = timezone(timedelta(hours=2))
    window = Window(datetime(2026, 4, 9, 4, 0, tzinfo=plus_two), datetime(2026, 4, 9, 5, 0, 0, 500, tzinfo=plus_two))

    make_adapter().fetch_page(CHARGER, window, None)

    params = gateway.params[0]
    assert (params["start_date"], params["end_date"]) == ("2026-04-09T02:00:00.000000Z", "2026-04-09T03:00:00.000500Z")


def test_an_action_is_sent_as_the_event_filter(gateway: FakeGateway, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter()

    adapter.fetch_page(CHARGER, DAY, None, action="BootNotification")
    adapter.fetch_page(CHARGER, DAY, None)

    with_action, without = gateway.params
    assert with_action["event"] == "BootNotification"
    assert "event" not in without


@pytest.mark.parametrize(("page_size", "limit"), [(5000, "1000"), (1000, "1000"), (250, "250"), (0, "1")])
def test_the_limit_is_the_page_size_within_1_to_1000(
    gateway: FakeGateway, make_adapter: MakeAdapter, page_size: int, limit: str
) -> None:
    make_adapter(page_size=page_size).fetch_page(CHARGER, DAY, None)

    assert gateway.params[0]["limit"] == limit


def test_the_charger_id_is_escaped_in_the_path(gateway: FakeGateway, make_adapter: MakeAdapter) -> None:
    make_adapter().fetch_page("dep/1 ?x", DAY, None)

    assert gateway.requests[0].url.raw_path.startswith(b"/ocpp/chargers/dep%2F1%20%3Fx/logs?")


def test_the_cursor_is_the_offset_of_the_next_page(gateway: FakeGateway, make_adapter: MakeAdapter) -> None:
    gateway.records = heartbeats(2500)
    adapter = make_adapter()

    pages: list[Page] = []
    cursor: str | None = None
    while True:
        page = adapter.fetch_page(CHARGER, DAY, cursor)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            break

    assert [params["offset"] for params in gateway.params] == ["0", "1000", "2000"]
    assert [page.next_cursor for page in pages] == ["1000", "2000", None]
    assert [len(page.items) for page in pages] == [1000, 1000, 500]
    assert [page.total for page in pages] == [2500, 2500, 2500]
    assert [item for page in pages for item in page.items] == gateway.records
    assert adapter.requests_made == 3


def test_a_full_page_that_reaches_the_total_is_the_last(gateway: FakeGateway, make_adapter: MakeAdapter) -> None:
    gateway.records = heartbeats(1000)

    page = make_adapter().fetch_page(CHARGER, DAY, None)

    assert (len(page.items), page.total, page.next_cursor) == (1000, 1000, None)


def test_an_empty_window_is_one_page_without_a_next_cursor(gateway: FakeGateway, make_adapter: MakeAdapter) -> None:
    page = make_adapter().fetch_page(CHARGER, DAY, None)

    assert (page.items, page.total, page.next_cursor) == ([], 0, None)


def test_an_empty_page_before_the_total_ends_the_paging(gateway: FakeGateway, make_adapter: MakeAdapter) -> None:
    # Records removed while paging: the vendor still counts them but has nothing at the offset.
    gateway.answers = [httpx.Response(200, json={"data": [], "total": 1500, "limit": 1000, "offset": 1000})]

    page = make_adapter().fetch_page(CHARGER, DAY, "1000")

    assert (page.total, page.next_cursor) == (1500, None)


def test_the_page_keeps_the_request_and_the_whole_body_for_the_archive(
    gateway: FakeGateway, make_adapter: MakeAdapter
) -> None:
    gateway.records = [BOOT_CALL]

    page = make_adapter().fetch_page(CHARGER, DAY, None, action="BootNotification")

    assert page.body == {"data": [BOOT_CALL], "total": 1, "limit": 1000, "offset": 0}
    assert page.items == [BOOT_CALL]
    assert page.request == {
        "path": LOGS,
        "params": {
            "start_date": "2026-04-09T00:00:00.000000Z",
            "end_date": "2026-04-09T23:59:59.999999Z",
            "limit": 1000,
            "offset": 0,
            "event": "BootNotification",
        },
    }


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ([BOOT_CALL], "body: Input should be a valid dictionary"),
        ({"data": [], "limit": 1000, "offset": 0}, "total: Field required"),
        ({"data": [], "total": "3", "limit": 1000, "offset": 0}, "total: Input should be a valid integer"),
        ({"data": {"0": BOOT_CALL}, "total": 1, "limit": 1000, "offset": 0}, "data: Input should be a valid list"),
        ({"detail": "Not Found"}, "data: Field required"),
    ],
)
def test_a_body_that_is_not_the_documented_page_is_a_response_error(
    gateway: FakeGateway, make_adapter: MakeAdapter, body: Any, complaint: str
) -> None:
    gateway.answers = [httpx.Response(200, json=body)]

    with pytest.raises(VendorResponseError) as error:
        make_adapter().fetch_page(CHARGER, DAY, None)

    assert str(error.value).startswith(f"ocpplab GET {LOGS} answered with an unexpected body: ")
    assert complaint in str(error.value)


def test_a_5xx_is_retried_by_the_adapters_client(gateway: FakeGateway, make_adapter: MakeAdapter) -> None:
    gateway.records = [BOOT_CALL]
    gateway.answers = [httpx.Response(503, text="Service Unavailable")]
    adapter = make_adapter()

    page = adapter.fetch_page(CHARGER, DAY, None)

    assert page.items == [BOOT_CALL]
    assert adapter.requests_made == 2
    assert len(gateway.sleeps) == 1


def test_a_401_is_an_auth_error_naming_the_secret(gateway: FakeGateway, make_adapter: MakeAdapter) -> None:
    gateway.answers = [httpx.Response(401, json={"detail": "Not authenticated"})]

    with pytest.raises(VendorAuthError, match=r"refused the credentials \(401\).*check the ocpplab secret"):
        make_adapter().fetch_page(CHARGER, DAY, None)

    assert len(gateway.requests) == 1
    assert gateway.sleeps == []


def test_the_adapter_is_registered_for_ocpplab(make_adapter: MakeAdapter) -> None:
    connection = make_adapter().connection

    adapter = collectors.adapter_for(connection, lambda: 900.0)

    assert collectors.has_adapter("ocpplab")
    assert isinstance(adapter, OcpplabAdapter)
    adapter.close()


# ---------------------------------------------------------------------------------------------- normalize
def normalize(item: Any, source_id: str = CHARGER) -> LogRecord:
    adapter = OcpplabAdapter(
        VendorConnection("ocpplab", GATEWAY_URL, {"token": TOKEN}, ocpplab.PROFILE), remaining_seconds=lambda: 900.0
    )
    try:
        return adapter.normalize(source_id, item)
    finally:
        adapter.close()


def test_normalize_reads_a_call_as_in_the_vendor_docs() -> None:
    record = normalize(BOOT_CALL)

    assert record.vendor == "ocpplab"
    assert (record.source_id, record.charger_id) == (CHARGER, CHARGER)
    assert record.kind == "ocpp"
    assert record.direction == "cp_to_csms"
    assert record.message_type == "CALL"
    assert record.message_id == "boot-001"
    assert record.action == "BootNotification"
    assert record.payload == {"charge_point_vendor": "OCPPLAB", "charge_point_model": "SDK-DC-50"}
    assert (record.result, record.status, record.connector_id) == (None, None, None)
    assert record.timestamp == datetime(2026, 4, 9, 9, 30, tzinfo=UTC)
    assert record.raw == BOOT_CALL
    assert record.record_id.startswith("ocpplab:h:")


def test_normalize_reads_a_callresult_into_result_with_the_calls_action() -> None:
    record = normalize(BOOT_RESULT)

    assert record.direction == "csms_to_cp"
    assert record.message_type == "CALLRESULT"
    assert record.message_id == "boot-001"
    assert record.action == "BootNotification"
    assert record.payload is None
    assert record.result == {"status": "Accepted", "current_time": "2026-04-09T09:30:00.120Z", "interval": 300}
    assert record.timestamp == datetime(2026, 4, 9, 9, 30, 0, 120000, tzinfo=UTC)


def test_a_callresult_without_an_action_field_has_no_action() -> None:
    record = normalize({**BOOT_RESULT, "action": None})

    assert record.action is None
    assert record.message_type == "CALLRESULT"


def test_normalize_reads_a_callerror_into_status_and_result() -> None:
    record = normalize(REMOTE_START_ERROR)

    assert record.message_type == "CALLERROR"
    assert record.message_id == "rst-7"
    assert record.action == "RemoteStartTransaction"
    assert record.status == "NotSupported"
    assert record.result == {
        "errorCode": "NotSupported",
        "errorDescription": "Action is recognized but not supported",
        "errorDetails": {"reason": "busy"},
    }
    assert (record.payload, record.connector_id) == (None, None)


def test_the_connector_comes_from_the_snake_case_payload() -> None:
    assert normalize(STATUS_CALL).connector_id == 2


def test_the_action_field_wins_over_the_frames_action() -> None:
    record = normalize({**BOOT_CALL, "action": "Heartbeat"})

    assert record.action == "Heartbeat"


@pytest.mark.parametrize(
    ("action", "version"),
    [("StartTransaction", "1.6"), ("GetDiagnostics", "1.6"), ("TransactionEvent", "2.0.1"), ("Heartbeat", None)],
)
def test_the_ocpp_version_is_told_by_version_specific_actions(action: str, version: str | None) -> None:
    item = {**BOOT_CALL, "action": action, "message": json.dumps([2, "m-1", action, {}])}

    assert normalize(item).ocpp_version == version


def test_a_timestamp_with_an_offset_is_stored_in_utc() -> None:
    record = normalize({**BOOT_CALL, "timestamp": "2026-04-09T11:30:00+02:00"})

    assert record.timestamp == datetime(2026, 4, 9, 9, 30, tzinfo=UTC)
    assert record.timestamp.utcoffset() == timedelta(0)


def test_the_record_id_is_the_same_when_a_record_is_read_twice() -> None:
    first = normalize(BOOT_CALL).record_id

    assert normalize(copy.deepcopy(BOOT_CALL)).record_id == first
    # The same instant written another way is the same record.
    assert normalize({**BOOT_CALL, "timestamp": "2026-04-09T11:30:00.000+02:00"}).record_id == first


@pytest.mark.parametrize(
    ("change", "source_id"),
    [
        ({"timestamp": "2026-04-09T09:30:00.001Z"}, CHARGER),
        ({"direction": "csms_to_cp"}, CHARGER),
        ({"message": BOOT_CALL["message"].replace("boot-001", "boot-002")}, CHARGER),
        ({}, "dep-124"),
    ],
)
def test_different_records_have_different_record_ids(change: dict[str, str], source_id: str) -> None:
    assert normalize({**BOOT_CALL, **change}, source_id).record_id != normalize(BOOT_CALL).record_id


def test_the_call_and_its_answer_have_different_record_ids() -> None:
    assert normalize(BOOT_CALL).record_id != normalize(BOOT_RESULT).record_id


@pytest.mark.parametrize(
    ("item", "complaint"),
    [
        ({**BOOT_CALL, "message": "not json"}, "malformed OCPP-J frame in message: frame is not valid JSON"),
        ({**BOOT_CALL, "message": '[2,"m-1","Heartbeat"]'}, "CALL needs 4 elements"),
        ({**BOOT_CALL, "message": '[5,"m-1",{}]'}, "unknown message type id 5"),
        ({**BOOT_CALL, "message": '{"action":"Heartbeat"}'}, "frame must be a JSON array"),
        ({**BOOT_CALL, "message": '[2,"m-1","Heartbeat",[]]'}, "payload must be a JSON object"),
        ({**BOOT_CALL, "message": '[3,"",{}]'}, "message id must be a non-empty string"),
        ({k: v for k, v in BOOT_CALL.items() if k != "message"}, "not an OCPPLAB log record: message: Field required"),
        ({**BOOT_CALL, "message": [2, "m-1", "Heartbeat", {}]}, "message: Input should be a valid string"),
        ({**BOOT_CALL, "timestamp": "2026-04-09T09:30:00"}, "timestamp: Input should have timezone info"),
        ({**BOOT_CALL, "timestamp": "yesterday"}, "timestamp: Input should be a valid datetime"),
        ({**BOOT_CALL, "direction": "sideways"}, "direction: Input should be 'cp_to_csms' or 'csms_to_cp'"),
        ("a string", "not an OCPPLAB log record: body: Input should be a valid dictionary"),
        (None, "not an OCPPLAB log record"),
    ],
)
def test_a_record_that_cannot_be_read_raises_value_error(item: Any, complaint: str) -> None:
    # ValueError is what the collection engine quarantines a record for.
    with pytest.raises(ValueError, match=re.escape(complaint)):
        normalize(item)


# ---------------------------------------------------------------------------------------------- the simulator
@pytest.fixture
def simulator() -> OcpplabSimulator:
    simulator = OcpplabSimulator(seed=5, clock=ManualClock(NOW))
    simulator.add_token(TOKEN)
    simulator.add_charger(CHARGER)
    simulator.add_charger(OTHER_TENANTS, tenant="tenant-2")
    return simulator


@pytest.fixture
def server(simulator: OcpplabSimulator) -> Iterator[str]:
    with SimulatorServer(simulator.wsgi_app) as base_url:
        yield base_url


def frame(
    at: datetime, message_id: str, action: str = "Heartbeat", payload: dict[str, Any] | None = None
) -> TrafficFrame:
    return TrafficFrame(at, "cp_to_csms", action, CALL, message_id, payload or {})


def collect(adapter: OcpplabAdapter, window: Window, action: str | None = None) -> tuple[list[Any], list[Page]]:
    pages: list[Page] = []
    cursor: str | None = None
    while True:
        page = adapter.fetch_page(CHARGER, window, cursor, action)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return [item for page in pages for item in page.items], pages


def message_ids(items: list[Any]) -> list[str]:
    return [json.loads(item["message"])[1] for item in items]


def test_paging_the_simulator_collects_every_record_in_the_window_once(
    simulator: OcpplabSimulator, server: str, make_adapter: MakeAdapter
) -> None:
    start = NOW - timedelta(hours=2)
    simulator.insert(CHARGER, [frame(start + timedelta(seconds=n), f"hb-{n}") for n in range(1000)])
    window = Window(start + timedelta(seconds=50), start + timedelta(seconds=949))

    items, pages = collect(make_adapter(server, page_size=400), window)

    assert message_ids(items) == [f"hb-{n}" for n in range(50, 950)]
    assert [page.next_cursor for page in pages] == ["400", "800", None]
    assert [page.total for page in pages] == [900, 900, 900]


def test_both_window_bounds_are_inclusive_against_the_simulator(
    simulator: OcpplabSimulator, server: str, make_adapter: MakeAdapter
) -> None:
    start, end = NOW - timedelta(hours=1), NOW - timedelta(minutes=30)
    ms = timedelta(milliseconds=1)
    simulator.insert(
        CHARGER,
        [frame(start - ms, "before"), frame(start, "first"), frame(end, "last"), frame(end + ms, "after")],
    )

    items, _ = collect(make_adapter(server), Window(start, end))

    assert message_ids(items) == ["first", "last"]


def test_an_action_filter_returns_only_that_action_from_the_simulator(
    simulator: OcpplabSimulator, server: str, make_adapter: MakeAdapter
) -> None:
    start = NOW - timedelta(hours=1)
    simulator.insert(
        CHARGER,
        [
            frame(start, "hb-1"),
            frame(start + timedelta(seconds=1), "sn-1", "StatusNotification", {"connectorId": 1, "status": "Charging"}),
            frame(start + timedelta(seconds=2), "hb-2"),
        ],
    )

    items, pages = collect(make_adapter(server), Window(start, NOW), action="StatusNotification")

    assert message_ids(items) == ["sn-1"]
    assert pages[0].total == 1


def test_records_from_the_simulator_normalize_to_a_conversation(
    simulator: OcpplabSimulator, server: str, make_adapter: MakeAdapter
) -> None:
    at = NOW - timedelta(minutes=10)
    ms = timedelta(milliseconds=1)
    simulator.insert(
        CHARGER,
        [
            TrafficFrame(
                at, "cp_to_csms", "StatusNotification", CALL, "sn-1", {"connectorId": 1, "status": "Charging"}
            ),
            TrafficFrame(at + 40 * ms, "csms_to_cp", "StatusNotification", CALLRESULT, "sn-1", {}),
            TrafficFrame(at + 2000 * ms, "csms_to_cp", "RemoteStopTransaction", CALL, "rs-1", {"transactionId": 9}),
            TrafficFrame(
                at + 2250 * ms,
                "cp_to_csms",
                "RemoteStopTransaction",
                CALLERROR,
                "rs-1",
                {"errorCode": "GenericError", "errorDescription": "busy", "errorDetails": {}},
            ),
        ],
    )
    adapter = make_adapter(server)

    items, _ = collect(adapter, Window(at, NOW))
    records = [adapter.normalize(CHARGER, item) for item in items]
    again = [adapter.normalize(CHARGER, item) for item in collect(adapter, Window(at, NOW))[0]]

    assert [(r.message_type, r.direction, r.action) for r in records] == [
        ("CALL", "cp_to_csms", "StatusNotification"),
        ("CALLRESULT", "csms_to_cp", "StatusNotification"),
        ("CALL", "csms_to_cp", "RemoteStopTransaction"),
        ("CALLERROR", "cp_to_csms", "RemoteStopTransaction"),
    ]
    assert [r.message_id for r in records] == ["sn-1", "sn-1", "rs-1", "rs-1"]
    assert records[0].payload == {"connector_id": 1, "status": "Charging"}  # OCPPLAB serves snake_case
    assert records[0].connector_id == 1
    assert records[2].payload == {"transaction_id": 9}
    assert records[3].status == "GenericError"
    assert [r.timestamp for r in records] == [at, at + 40 * ms, at + 2000 * ms, at + 2250 * ms]
    assert len({r.record_id for r in records}) == 4
    assert [r.record_id for r in again] == [r.record_id for r in records]


def test_a_wrong_token_is_an_auth_error_and_not_retried(
    simulator: OcpplabSimulator, server: str, make_adapter: MakeAdapter
) -> None:
    with pytest.raises(VendorAuthError) as error:
        make_adapter(server, token="expired-token").fetch_page(CHARGER, DAY, None)

    assert str(error.value) == (
        f'ocpplab GET {LOGS} refused the credentials (401): {{"detail":"Not authenticated"}} - check the ocpplab secret'
    )
    assert simulator.counters.requests == 1


def test_a_charger_of_another_tenant_is_an_auth_error(server: str, make_adapter: MakeAdapter) -> None:
    with pytest.raises(VendorAuthError, match=r"refused the credentials \(403\)"):
        make_adapter(server).fetch_page(OTHER_TENANTS, DAY, None)


def test_an_unknown_charger_is_a_request_error(server: str, make_adapter: MakeAdapter) -> None:
    with pytest.raises(VendorRequestError, match=r"refused the request \(404\): .*Charger not found"):
        make_adapter(server).fetch_page("dep-404", DAY, None)


def test_mistyped_fields_from_the_simulator_are_a_response_error(
    simulator: OcpplabSimulator, server: str, make_adapter: MakeAdapter
) -> None:
    simulator.insert(CHARGER, [frame(NOW - timedelta(minutes=1), "hb-1")])
    simulator.faults.bad_response = "wrong_types"

    with pytest.raises(VendorResponseError, match="total: Input should be a valid integer"):
        make_adapter(server).fetch_page(CHARGER, Window(NOW - timedelta(hours=1), NOW), None)
