"""The OCPPLAB Gateway simulator over real HTTP on 127.0.0.1, against the vendor's documentation.

Covers every documented parameter and error, each fault knob (through its counters and what a client
sees), reproducibility from a seed, and the generated traffic itself: every CALL and CALLRESULT payload
validates against the OCPP 1.6 JSON schemas shipped with the ``ocpp`` package, and the snake_case payloads
OCPPLAB serves turn back into them with ``ocpp.charge_point.snake_to_camel_case``.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from random import Random
from typing import Any

import httpx
import ocpp
import pytest
from jsonschema import Draft4Validator
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case

from chargelog_simulators.base import ManualClock, SimulatorServer
from chargelog_simulators.ocpplab import OcpplabSimulator, snake_case_keys, start_local
from chargelog_simulators.traffic import CALL, CALLERROR, CALLRESULT, Density, TrafficFrame, generate_traffic

NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
TOKEN = "tenant-1-token"
OTHER_TOKEN = "tenant-2-token"
CHARGER = "dep-123"  # seeded: a day of traffic ending NOW
EMPTY = "dep-200"  # no records until a test inserts some
OTHER_TENANTS = "dep-999"
LOGS = f"/ocpp/chargers/{CHARGER}/logs"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")
SCHEMAS = Path(ocpp.__file__).parent / "v16" / "schemas"
# OCPP-J 1.6 section 4.2.3: the error codes a CALLERROR may carry.
CALL_ERROR_CODES = {
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
    "FormationViolation",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "GenericError",
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def simulator(clock: ManualClock) -> OcpplabSimulator:
    return _simulator(seed=7, clock=clock)


@pytest.fixture
def server(simulator: OcpplabSimulator) -> Iterator[str]:
    with SimulatorServer(simulator.wsgi_app) as base_url:
        yield base_url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as http:
        yield http


def _simulator(seed: int, clock: ManualClock) -> OcpplabSimulator:
    simulator = OcpplabSimulator(seed=seed, clock=clock)
    simulator.add_token(TOKEN)
    simulator.add_token(OTHER_TOKEN, "tenant-2")
    simulator.add_charger(CHARGER, identity="CP-123", name="Depot bay 1")
    simulator.add_charger(EMPTY, identity="CP-200")
    simulator.add_charger(OTHER_TENANTS, tenant="tenant-2")
    simulator.seed(CHARGER, NOW - timedelta(days=1), NOW)
    return simulator


def _heartbeat(at: datetime, message_id: str) -> TrafficFrame:
    return TrafficFrame(at, "cp_to_csms", "Heartbeat", CALL, message_id, {})


def _logs(client: httpx.Client, charger: str = CHARGER, **params: Any) -> dict[str, Any]:
    response = client.get(f"/ocpp/chargers/{charger}/logs", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def _message_ids(items: list[dict[str, str]]) -> list[str]:
    return [json.loads(item["message"])[1] for item in items]


@cache
def _schema(action: str, response: bool) -> Draft4Validator:
    """The OCPP 1.6 schema of a request or response, as ``ocpp.messages.get_validator`` loads it (Draft 4),
    plus format checks so ``date-time`` strings are checked too."""
    path = SCHEMAS / f"{action}{'Response' if response else ''}.json"
    return Draft4Validator(json.loads(path.read_text("utf-8-sig")), format_checker=Draft4Validator.FORMAT_CHECKER)


# ---------------------------------------------------------------------------------------------- the logs API
def test_a_page_has_the_documented_shape(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    body = _logs(client, limit=5)

    assert set(body) == {"data", "total", "limit", "offset"}
    assert (body["limit"], body["offset"], body["total"]) == (5, 0, len(simulator.visible_records(CHARGER)))
    for item in body["data"]:
        assert set(item) == {"direction", "action", "message", "timestamp"}
        assert item["direction"] in {"cp_to_csms", "csms_to_cp"}
        assert isinstance(item["message"], str)  # the raw OCPP-J frame as a JSON string
        assert TIMESTAMP.match(item["timestamp"])
    assert _logs(client)["limit"] == 1000  # the default


def test_boot_notification_looks_like_the_docs_example(client: httpx.Client) -> None:
    body = _logs(client, event="BootNotification")

    assert body["total"] == 2
    call, result = (json.loads(item["message"]) for item in body["data"])
    assert [item["direction"] for item in body["data"]] == ["cp_to_csms", "csms_to_cp"]
    assert [item["action"] for item in body["data"]] == ["BootNotification", "BootNotification"]
    assert call[0] == CALL
    assert call[2] == "BootNotification"
    assert {"charge_point_vendor", "charge_point_model"} <= set(call[3])  # snake_case, as in the docs
    assert result[:2] == [CALLRESULT, call[1]]
    assert set(result[2]) == {"status", "current_time", "interval"}


def test_limit_and_offset_page_through_every_record_once(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    expected = simulator.visible_records(CHARGER)
    pages, offset = [], 0
    while True:
        body = _logs(client, limit=250, offset=offset)
        assert body["total"] == len(expected)
        assert (body["limit"], body["offset"]) == (250, offset)
        if not body["data"]:
            break
        pages.extend(body["data"])
        offset += len(body["data"])

    assert pages == expected
    assert len(expected) > 2000
    assert [_at(item["timestamp"]) for item in pages] == sorted(_at(item["timestamp"]) for item in pages)


def test_exactly_one_full_page(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    simulator.insert(EMPTY, [_heartbeat(NOW - timedelta(seconds=n), f"hb-{n}") for n in range(1, 1001)])

    first = _logs(client, EMPTY)
    after = _logs(client, EMPTY, offset=1000)

    assert (len(first["data"]), first["total"]) == (1000, 1000)
    assert (after["data"], after["total"], after["offset"]) == ([], 1000, 1000)


def test_a_last_page_of_one_record(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    simulator.insert(EMPTY, [_heartbeat(NOW - timedelta(seconds=n), f"hb-{n}") for n in range(1, 2002)])

    pages = [_logs(client, EMPTY, offset=offset) for offset in (0, 1000, 2000)]

    assert [len(page["data"]) for page in pages] == [1000, 1000, 1]
    assert {page["total"] for page in pages} == {2001}
    assert _message_ids(pages[2]["data"]) == ["hb-1"]  # the newest: ascending order


def test_offset_past_the_end_is_an_empty_page(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    body = _logs(client, offset=10**6)

    assert body["data"] == []
    assert body["total"] == len(simulator.visible_records(CHARGER))


def test_ties_keep_the_order_records_were_added(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    at = NOW - timedelta(minutes=5)
    simulator.insert(EMPTY, [_heartbeat(at, "b"), _heartbeat(at, "a"), _heartbeat(at - timedelta(seconds=1), "first")])
    simulator.insert(EMPTY, [_heartbeat(at, "c")])

    assert _message_ids(_logs(client, EMPTY)["data"]) == ["first", "b", "a", "c"]
    assert _message_ids(_logs(client, EMPTY, limit=2, offset=1)["data"]) == ["b", "a"]


@pytest.mark.parametrize(
    ("start_date", "end_date", "expected"),
    [
        ("2026-04-10T10:00:00Z", "2026-04-10T10:00:01Z", ["at-start", "between", "at-end"]),
        ("2026-04-10T12:00:00+02:00", "2026-04-10T12:00:01+02:00", ["at-start", "between", "at-end"]),
        ("2026-04-10T10:00:00.001Z", "2026-04-10T10:00:01Z", ["between", "at-end"]),
        ("2026-04-10T10:00:00Z", "2026-04-10T10:00:00.999999Z", ["at-start", "between"]),
        ("2026-04-10T10:00:00.500Z", "2026-04-10T10:00:00.500Z", ["between"]),
        ("2026-04-10T10:00:01Z", "2026-04-10T10:00:01Z", ["at-end"]),
        ("2026-04-10", "2026-04-10T10:00:00Z", ["before", "at-start"]),  # a date means its midnight
        ("2026-04-10T10:00:00", None, ["at-start", "between", "at-end", "after"]),  # no zone means UTC
        (None, "2026-04-10T09:59:59.999Z", ["before"]),
    ],
)
def test_start_and_end_dates_are_inclusive(
    client: httpx.Client, simulator: OcpplabSimulator, start_date: str | None, end_date: str | None, expected: list[str]
) -> None:
    boundary = datetime(2026, 4, 10, 10, 0, tzinfo=UTC)
    simulator.insert(
        EMPTY,
        [
            _heartbeat(boundary - timedelta(milliseconds=1), "before"),
            _heartbeat(boundary, "at-start"),
            _heartbeat(boundary + timedelta(milliseconds=500), "between"),
            _heartbeat(boundary + timedelta(seconds=1), "at-end"),
            _heartbeat(boundary + timedelta(seconds=1, milliseconds=1), "after"),
        ],
    )
    params = {name: value for name, value in (("start_date", start_date), ("end_date", end_date)) if value}

    body = _logs(client, EMPTY, **params)

    assert _message_ids(body["data"]) == expected
    assert body["total"] == len(expected)


def test_timestamps_show_milliseconds_only_when_there_are_some(
    client: httpx.Client, simulator: OcpplabSimulator
) -> None:
    simulator.insert(
        EMPTY, [_heartbeat(NOW - timedelta(seconds=2), "whole"), _heartbeat(NOW - timedelta(seconds=1.25), "ms")]
    )

    assert [item["timestamp"] for item in _logs(client, EMPTY)["data"]] == [
        "2026-04-10T11:59:58Z",
        "2026-04-10T11:59:58.750Z",
    ]


def test_an_empty_range_and_a_start_after_the_end_return_nothing(client: httpx.Client) -> None:
    before_any = _logs(client, start_date="2020-01-01T00:00:00Z", end_date="2020-01-02T00:00:00Z")
    reversed_range = _logs(client, start_date="2026-04-10T11:00:00Z", end_date="2026-04-10T10:00:00Z")

    assert before_any == {"data": [], "total": 0, "limit": 1000, "offset": 0}
    assert reversed_range == {"data": [], "total": 0, "limit": 1000, "offset": 0}


def test_event_filters_by_exact_action(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    expected = [item for item in simulator.visible_records(CHARGER) if item["action"] == "StartTransaction"]

    body = _logs(client, event="StartTransaction")

    assert body["data"] == expected
    assert body["total"] == len(expected) > 0
    assert _logs(client, event="starttransaction")["total"] == 0
    assert _logs(client, event="Start")["total"] == 0
    assert _logs(client, event="")["total"] == len(simulator.visible_records(CHARGER))  # empty: no filter


def test_event_and_dates_combine(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    start, end = "2026-04-10T00:00:00Z", "2026-04-10T06:00:00Z"
    expected = [
        item
        for item in simulator.visible_records(CHARGER)
        if item["action"] == "Heartbeat" and _at(start) <= _at(item["timestamp"]) <= _at(end)
    ]

    body = _logs(client, start_date=start, end_date=end, event="Heartbeat", limit=10, offset=5)

    assert body["total"] == len(expected) > 100
    assert body["data"] == expected[5:15]


def test_seeding_a_later_span_continues_the_traffic(
    client: httpx.Client, simulator: OcpplabSimulator, clock: ManualClock
) -> None:
    added = simulator.seed(CHARGER, NOW, NOW + timedelta(hours=2))
    clock.advance(2 * 3600)

    assert _logs(client, start_date="2026-04-10T12:00:00Z")["total"] >= added > 0
    assert _logs(client, event="BootNotification")["total"] == 2  # still the one boot of the first span
    simulator.seed(CHARGER, clock(), clock() + timedelta(minutes=1), boot=True)
    clock.advance(60)
    assert _logs(client, event="BootNotification")["total"] == 4


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "authorization", [None, "Bearer unknown-token", f"Basic {TOKEN}", "Bearer", f"Token {TOKEN}", TOKEN]
)
def test_missing_or_unknown_tokens_are_401(server: str, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}

    response = httpx.get(f"{server}{LOGS}", headers=headers)

    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_bearer_scheme_is_case_insensitive(server: str) -> None:
    assert httpx.get(f"{server}{LOGS}", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_another_tenants_charger_is_403(client: httpx.Client, server: str) -> None:
    response = client.get(f"/ocpp/chargers/{OTHER_TENANTS}/logs")
    own = httpx.get(f"{server}/ocpp/chargers/{OTHER_TENANTS}/logs", headers={"Authorization": f"Bearer {OTHER_TOKEN}"})

    assert (response.status_code, response.json()) == (403, {"detail": "Forbidden"})
    assert own.status_code == 200


def test_an_unknown_charger_is_404_and_unknown_routes_are_fastapis_404(client: httpx.Client) -> None:
    unknown = client.get("/ocpp/chargers/dep-nope/logs")
    route = client.get("/ocpp/logs")
    method = client.post(LOGS)

    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Charger not found"})
    assert (route.status_code, route.json()) == (404, {"detail": "Not Found"})
    assert (method.status_code, method.json()) == (405, {"detail": "Method Not Allowed"})


@pytest.mark.parametrize(
    ("params", "error_type", "name", "ctx"),
    [
        ({"limit": "0"}, "greater_than_equal", "limit", {"ge": 1}),
        ({"limit": "1001"}, "less_than_equal", "limit", {"le": 1000}),
        ({"limit": "abc"}, "int_parsing", "limit", None),
        ({"limit": "1.5"}, "int_parsing", "limit", None),
        ({"offset": "-1"}, "greater_than_equal", "offset", {"ge": 0}),
        ({"offset": ""}, "int_parsing", "offset", None),
        ({"start_date": "yesterday"}, "datetime_from_date_parsing", "start_date", None),
        ({"end_date": "2026-13-01T00:00:00Z"}, "datetime_from_date_parsing", "end_date", None),
    ],
)
def test_invalid_parameters_are_422_in_fastapis_shape(
    client: httpx.Client, params: dict[str, str], error_type: str, name: str, ctx: dict[str, int] | None
) -> None:
    response = client.get(LOGS, params=params)

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["type"] == error_type
    assert error["loc"] == ["query", name]
    assert error["input"] == params[name]
    assert isinstance(error["msg"], str)
    assert error["msg"]
    if ctx is not None:
        assert error["ctx"] == ctx


def test_every_invalid_parameter_is_reported_at_once(client: httpx.Client) -> None:
    response = client.get(LOGS, params={"start_date": "x", "limit": "0", "offset": "-1"})

    assert response.status_code == 422
    assert [error["loc"][1] for error in response.json()["detail"]] == ["start_date", "limit", "offset"]


def test_limits_at_the_edges_are_accepted(client: httpx.Client) -> None:
    assert len(_logs(client, limit=1)["data"]) == 1
    assert len(_logs(client, limit=1000)["data"]) == 1000


def test_validation_comes_before_the_charger_lookup(client: httpx.Client) -> None:
    assert client.get("/ocpp/chargers/dep-nope/logs", params={"limit": 0}).status_code == 422


# ---------------------------------------------------------------------------------------------- discovery
def test_the_charger_list_pages_the_tokens_chargers(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    for n in range(23):
        simulator.add_charger(f"dep-{300 + n}", identity=f"CP-{300 + n}", name=f"Bay {n}")
    simulator.add_charger("dep-elsewhere", tenant="tenant-2")

    first = client.get("/ocpp/chargers").json()
    second = client.get("/ocpp/chargers", params={"page": 2}).json()
    small = client.get("/ocpp/chargers", params={"page": 3, "limit": 10}).json()

    assert (first["total"], first["page"], first["limit"], len(first["data"])) == (25, 1, 20, 20)
    assert first["data"][0] == {"id": CHARGER, "identity": "CP-123", "name": "Depot bay 1"}
    assert first["data"][1] == {"id": EMPTY, "identity": "CP-200", "name": "CP-200"}
    assert (second["page"], len(second["data"])) == (2, 5)
    assert (small["page"], small["limit"], [c["id"] for c in small["data"]]) == (
        3,
        10,
        ["dep-318", "dep-319", "dep-320", "dep-321", "dep-322"],
    )
    ids = [c["id"] for c in first["data"] + second["data"]]
    assert len(set(ids)) == 25
    assert OTHER_TENANTS not in ids
    assert "dep-elsewhere" not in ids


@pytest.mark.parametrize(
    ("params", "name"), [({"limit": "101"}, "limit"), ({"limit": "0"}, "limit"), ({"page": "0"}, "page")]
)
def test_the_charger_list_validates_page_and_limit(client: httpx.Client, params: dict[str, str], name: str) -> None:
    response = client.get("/ocpp/chargers", params=params)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", name]


def test_the_charger_list_needs_a_token(server: str) -> None:
    assert httpx.get(f"{server}/ocpp/chargers").status_code == 401


# ---------------------------------------------------------------------------------------------- faults
def test_error_rate_answers_5xx(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    simulator.faults.error_rate = 1.0

    statuses = [client.get(LOGS).status_code for _ in range(12)]

    assert set(statuses) <= {500, 502, 503}
    assert len(set(statuses)) > 1
    assert simulator.counters.errors == 12
    assert simulator.counters.requests == 12


def test_auth_comes_before_faults_and_faults_before_validation(
    client: httpx.Client, server: str, simulator: OcpplabSimulator
) -> None:
    simulator.faults.error_rate = 1.0

    assert httpx.get(f"{server}{LOGS}").status_code == 401
    assert client.get(LOGS, params={"limit": 0}).status_code in {500, 502, 503}
    assert simulator.counters.errors == 1


def test_throttle_rate_answers_429_with_retry_after(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    simulator.faults.throttle_rate = 1.0
    simulator.faults.retry_after_seconds = 7

    response = client.get(LOGS)
    simulator.faults.throttle_rate = 0.0

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert simulator.counters.throttled == 1
    assert client.get(LOGS).status_code == 200


def test_slow_rate_delays_the_answer(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    simulator.faults.slow_rate = 1.0
    simulator.faults.slow_seconds = 0.3

    began = time.perf_counter()
    response = client.get(LOGS, params={"limit": 1})
    elapsed = time.perf_counter() - began

    assert response.status_code == 200
    assert elapsed >= 0.3
    assert simulator.counters.slowed == 1


def test_insert_while_paging_shifts_offsets_under_a_paging_client(
    client: httpx.Client, simulator: OcpplabSimulator
) -> None:
    window = {"start_date": "2026-04-10T08:00:00Z", "end_date": "2026-04-10T09:00:00Z"}
    before = _logs(client, **window)
    existing = set(_message_ids(simulator.visible_records(CHARGER)))
    simulator.faults.insert_while_paging_rate = 1.0

    first = _logs(client, **window, limit=50)
    second = _logs(client, **window, limit=50, offset=50)

    assert (first["total"], second["total"]) == (before["total"] + 3, before["total"] + 6)
    assert simulator.counters.inserts_while_paging == 2
    inserted = [item for item in simulator.visible_records(CHARGER) if json.loads(item["message"])[1] not in existing]
    assert len(inserted) == 6
    for item in inserted:
        assert _at(window["start_date"]) <= _at(item["timestamp"]) <= _at(window["end_date"])
    # The records moved under the client (with this seed, some inserts land within its first two pages).
    assert first["data"] + second["data"] != before["data"][:100]


def test_insert_while_paging_keeps_inside_the_requested_range(
    client: httpx.Client, simulator: OcpplabSimulator
) -> None:
    simulator.faults.insert_while_paging_rate = 1.0
    simulator.faults.insert_count = 5
    window = {"start_date": "2026-04-10T10:00:00Z", "end_date": "2026-04-10T10:00:02Z"}

    body = _logs(client, EMPTY, **window)
    after_now = _logs(client, EMPTY, start_date="2026-04-11T00:00:00Z")  # no record can exist there yet

    assert body["total"] == 5
    assert all(_at(window["start_date"]) <= _at(item["timestamp"]) <= _at(window["end_date"]) for item in body["data"])
    assert [item["action"] for item in body["data"]] == ["Heartbeat"] * 5
    assert after_now["total"] == 0
    assert simulator.counters.inserts_while_paging == 1


def test_late_records_stay_hidden_until_the_clock_reaches_them(
    client: httpx.Client, simulator: OcpplabSimulator, clock: ManualClock
) -> None:
    simulator.faults.late_rate = 1.0
    simulator.faults.late_seconds = 600
    simulator.insert(
        EMPTY, [_heartbeat(NOW - timedelta(seconds=10), "late-1"), _heartbeat(NOW - timedelta(seconds=5), "late-2")]
    )

    hidden = _logs(client, EMPTY)
    clock.advance(589)
    still_hidden = _logs(client, EMPTY)
    clock.advance(1)
    one = _logs(client, EMPTY)
    clock.advance(5)
    both = _logs(client, EMPTY)

    assert simulator.counters.late_records == 2
    assert [page["total"] for page in (hidden, still_hidden, one, both)] == [0, 0, 1, 2]
    assert _message_ids(both["data"]) == ["late-1", "late-2"]  # served at their own timestamps
    assert both["data"][0]["timestamp"] == "2026-04-10T11:59:50Z"


def test_records_from_the_future_appear_at_their_time(
    client: httpx.Client, simulator: OcpplabSimulator, clock: ManualClock
) -> None:
    simulator.insert(EMPTY, [_heartbeat(NOW + timedelta(seconds=30), "next")])

    assert _logs(client, EMPTY)["total"] == 0
    assert simulator.visible_records(EMPTY) == []
    clock.advance(30)
    assert _message_ids(_logs(client, EMPTY)["data"]) == ["next"]
    assert simulator.counters.late_records == 0


def test_bad_response_html_is_a_text_html_502(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    simulator.faults.bad_response = "html"

    response = client.get(LOGS)

    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html>" in response.text
    assert simulator.counters.bad_responses == 1
    assert simulator.faults.bad_response is None  # one by default, then off again
    assert client.get(LOGS).status_code == 200


def test_bad_response_truncated_is_a_200_with_broken_json(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    simulator.faults.bad_response = "truncated"
    simulator.faults.bad_response_count = 2

    responses = [client.get(LOGS, params={"limit": 3}) for _ in range(3)]

    for response in responses[:2]:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.text)
    assert responses[2].json()["limit"] == 3
    assert simulator.counters.bad_responses == 2
    assert (simulator.faults.bad_response, simulator.faults.bad_response_count) == (None, 1)


def test_bad_response_wrong_types(client: httpx.Client, simulator: OcpplabSimulator) -> None:
    good = _logs(client, limit=2)
    simulator.faults.bad_response = "wrong_types"

    response = client.get(LOGS, params={"limit": 2})
    body = response.json()

    assert response.status_code == 200
    assert body["total"] == str(good["total"])
    assert all(isinstance(item["timestamp"], float) for item in body["data"])
    first = datetime.fromtimestamp(body["data"][0]["timestamp"], UTC)
    assert first == datetime.fromisoformat(good["data"][0]["timestamp"])
    assert simulator.counters.bad_responses == 1


def test_faults_that_are_off_leave_the_random_stream_alone(
    client: httpx.Client, simulator: OcpplabSimulator, clock: ManualClock
) -> None:
    for _ in range(5):
        _logs(client, limit=1)

    assert simulator.rng.getstate() == _simulator(7, clock).rng.getstate()


# ---------------------------------------------------------------------------------------------- reproducibility
def test_the_same_seed_reproduces_records_and_faults(clock: ManualClock) -> None:
    runs = []
    for _ in range(2):
        simulator = _simulator(11, clock)
        simulator.faults.error_rate = 0.5
        simulator.faults.insert_while_paging_rate = 0.5
        with (
            SimulatorServer(simulator.wsgi_app) as base_url,
            httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http,
        ):
            statuses = [http.get(LOGS, params={"limit": 1}).status_code for _ in range(20)]
        runs.append((simulator.visible_records(CHARGER), statuses, simulator.counters))

    assert runs[0] == runs[1]
    assert {500, 502, 503} & set(runs[0][1])
    assert 200 in runs[0][1]


def test_another_seed_gives_other_traffic(clock: ManualClock) -> None:
    assert _simulator(1, clock).visible_records(CHARGER) != _simulator(2, clock).visible_records(CHARGER)


# ---------------------------------------------------------------------------------------------- the traffic
@pytest.fixture(scope="module")
def traffic() -> list[TrafficFrame]:
    """Two busy days on three connectors, with CSMS operations often enough to see every kind."""
    density = Density(session_gap_seconds=3600, meter_interval_seconds=300, csms_call_gap_seconds=900)
    rng = Random(5)  # noqa: S311 - reproducible test data
    return generate_traffic("dep-schema", NOW - timedelta(days=2), NOW, rng, connectors=3, density=density)


def test_traffic_has_every_kind_of_frame(traffic: list[TrafficFrame]) -> None:
    actions = Counter(frame.action for frame in traffic)
    statuses = {
        frame.payload["status"]
        for frame in traffic
        if frame.action == "StatusNotification" and frame.message_type_id == CALL
    }
    measurands = {
        (sampled.get("measurand"), sampled.get("phase"))
        for frame in traffic
        if frame.action == "MeterValues" and frame.message_type_id == CALL
        for sampled in frame.payload["meterValue"][0]["sampledValue"]
    }

    assert set(actions) >= {
        "BootNotification",
        "StatusNotification",
        "Heartbeat",
        "Authorize",
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "GetDiagnostics",
        "TriggerMessage",
        "ChangeConfiguration",
        "UpdateFirmware",
    }
    assert {"Available", "Preparing", "Charging", "Finishing", "Faulted"} <= statuses
    assert {
        ("Energy.Active.Import.Register", None),
        ("Power.Active.Import", None),
        ("Current.Import", "L1"),
        ("Current.Import", "L2"),
        ("Current.Import", "L3"),
        ("Voltage", "L1-N"),
        ("SoC", None),
    } <= measurands
    assert any(frame.message_type_id == CALLERROR for frame in traffic)


def test_every_call_is_answered_once_by_the_other_side_within_a_second(traffic: list[TrafficFrame]) -> None:
    calls = {frame.message_id: frame for frame in traffic if frame.message_type_id == CALL}
    answers = [frame for frame in traffic if frame.message_type_id != CALL]

    assert len(calls) == len(answers) == len(traffic) / 2  # message ids are unique across the traffic
    assert len({answer.message_id for answer in answers}) == len(answers)
    for answer in answers:
        call = calls[answer.message_id]
        assert answer.action == call.action
        assert answer.direction != call.direction
        assert timedelta(0) < answer.timestamp - call.timestamp <= timedelta(seconds=1)
    directions = Counter(frame.direction for frame in calls.values())
    assert directions["csms_to_cp"] > 0
    assert directions["cp_to_csms"] > directions["csms_to_cp"]


def test_traffic_is_in_time_order_within_the_span(traffic: list[TrafficFrame]) -> None:
    times = [frame.timestamp for frame in traffic]

    assert times == sorted(times)
    assert NOW - timedelta(days=2) <= times[0]
    assert times[-1] <= NOW
    assert all(moment.microsecond % 1000 == 0 and moment.tzinfo is UTC for moment in times)


def test_every_payload_validates_against_the_ocpp16_schemas(traffic: list[TrafficFrame]) -> None:
    for frame in traffic:
        if frame.message_type_id == CALLERROR:
            code, description, details = frame.ocpp_j()[2:]
            assert code in CALL_ERROR_CODES
            assert isinstance(description, str)
            assert details == {}
            continue
        errors = list(_schema(frame.action, frame.message_type_id == CALLRESULT).iter_errors(frame.payload))
        assert not errors, (frame, errors[0].message)


def test_served_messages_are_snake_case_and_round_trip_to_the_ocpp_payloads(
    client: httpx.Client, simulator: OcpplabSimulator, traffic: list[TrafficFrame]
) -> None:
    frames = traffic[:4000]
    simulator.insert(EMPTY, frames)
    served = [item for offset in range(0, len(frames), 1000) for item in _logs(client, EMPTY, offset=offset)["data"]]

    assert len(served) == len(frames)
    for frame, item in zip(frames, served, strict=True):
        wire = json.loads(item["message"])
        assert wire[:2] == frame.ocpp_j()[:2]
        assert (item["direction"], item["action"]) == (frame.direction, frame.action)
        assert wire[-1] == camel_to_snake_case(frame.ocpp_j()[-1])  # the ocpp library's own conversion
        assert snake_to_camel_case(wire[-1]) == frame.ocpp_j()[-1]
        if frame.message_type_id != CALLERROR:
            assert not list(
                _schema(frame.action, frame.message_type_id == CALLRESULT).iter_errors(snake_to_camel_case(wire[-1]))
            )


def test_snake_case_keys_follows_the_ocpp_librarys_rules(traffic: list[TrafficFrame]) -> None:
    payloads = [frame.payload for frame in traffic]
    samples = [{"chargePointVendor": 1, "idTagInfo": {"parentIdTag": "x"}, "meterValue": [{"sampledValue": []}]}]

    for payload in payloads + samples:
        assert snake_case_keys(payload) == camel_to_snake_case(payload)
        assert snake_to_camel_case(snake_case_keys(payload)) == payload


# ---------------------------------------------------------------------------------------------- framework
def test_the_server_stops_and_frees_its_port(simulator: OcpplabSimulator) -> None:
    server = SimulatorServer(simulator.wsgi_app)
    base_url = server.start()
    assert httpx.get(f"{base_url}/ocpp/chargers").status_code == 401
    server.stop()
    server.stop()  # a second stop does nothing

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/ocpp/chargers", timeout=2)


def test_start_local_serves_a_fleet_with_a_day_of_traffic() -> None:
    base_url, credentials, stop = start_local()
    try:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {credentials['token']}"}) as http:
            chargers = http.get("/ocpp/chargers").json()
            assert chargers["total"] == 4
            for charger in chargers["data"]:
                logs = http.get(f"/ocpp/chargers/{charger['id']}/logs", params={"limit": 1}).json()
                assert logs["total"] > 500
                first = datetime.fromisoformat(logs["data"][0]["timestamp"])
                assert timedelta(hours=23) < datetime.now(UTC) - first < timedelta(hours=25)
    finally:
        stop()
