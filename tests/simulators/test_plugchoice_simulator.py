"""The Plugchoice simulator over real HTTP on 127.0.0.1, against the vendor's documentation and notes.

Covers the documented envelope and paging (no total; links; the flat form), filters, auth and validation
errors, rate-limit headers, the fault knobs, pending logs turning done, and the payloads themselves: every
log's params and result validate against the OCPP 1.6 JSON schemas shipped with the ``ocpp`` package.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import ocpp
import pytest
from jsonschema import Draft4Validator

from chargelog_simulators.base import Faults, ManualClock, SimulatorServer
from chargelog_simulators.plugchoice import PER_PAGE, PlugchoiceSimulator, start_local
from chargelog_simulators.traffic import CALL, CALLERROR, CALLRESULT, TrafficFrame

NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
TOKEN = "user-1-token"
OTHER_TOKEN = "user-2-token"
CHARGER = "9a3c1f0e-5b7d-4c2a-8e61-0f2d3b4a5c6d"  # a day of traffic ending NOW
EMPTY = "11111111-2222-4333-8444-555555555555"
OTHER_USERS = "99999999-2222-4333-8444-555555555555"
SCHEMAS = Path(ocpp.__file__).parent / "v16" / "schemas"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def simulator(clock: ManualClock) -> PlugchoiceSimulator:
    simulator = PlugchoiceSimulator(seed=3, clock=clock)
    simulator.add_token(TOKEN)
    simulator.add_token(OTHER_TOKEN, "user-2")
    simulator.add_charger(CHARGER)
    simulator.add_charger(EMPTY)
    simulator.add_charger(OTHER_USERS, "user-2")
    simulator.seed(CHARGER, NOW - timedelta(days=1), NOW)
    return simulator


@pytest.fixture
def server(simulator: PlugchoiceSimulator) -> Iterator[str]:
    with SimulatorServer(simulator.wsgi_app) as base_url:
        yield base_url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server}/api", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as http:
        yield http


def logs(client: httpx.Client, charger: str = CHARGER, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v3/chargers/{charger}/logs", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def every_page(client: httpx.Client, charger: str = CHARGER, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Follow links.next from the first page; returns the items and the number of pages."""
    body = logs(client, charger, **params)
    items, pages = list(body["data"]), 1
    while body["links"]["next"]:
        response = client.get(body["links"]["next"])
        assert response.status_code == 200
        body = response.json()
        items += body["data"]
        pages += 1
    return items, pages


def heartbeat_logs(simulator: PlugchoiceSimulator, charger: str, times: list[datetime]) -> None:
    frames = []
    for n, at in enumerate(times):
        frames.append(TrafficFrame(at, "cp_to_csms", "Heartbeat", CALL, f"hb-{n}", {}))
        reply = {"currentTime": "2026-04-10T00:00:00.000Z"}
        frames.append(
            TrafficFrame(at + timedelta(milliseconds=100), "csms_to_cp", "Heartbeat", CALLRESULT, f"hb-{n}", reply)
        )
    simulator.insert(charger, frames)


@cache
def schema(action: str, response: bool) -> Draft4Validator:
    path = SCHEMAS / f"{action}{'Response' if response else ''}.json"
    return Draft4Validator(json.loads(path.read_text("utf-8-sig")), format_checker=Draft4Validator.FORMAT_CHECKER)


# ---------------------------------------------------------------------------------------------- envelope, paging
def test_a_page_is_laravels_simple_paginator_without_a_total(client: httpx.Client) -> None:
    response = client.get(f"/v3/chargers/{CHARGER}/logs", params={"sort": "created_at"})
    body = response.json()
    assert set(body) == {"data", "links", "meta", "filter_options"}
    assert set(body["links"]) == {"first", "last", "prev", "next"}
    assert body["links"]["last"] is None
    assert body["links"]["prev"] is None
    assert set(body["meta"]) == {"current_page", "from", "path", "per_page", "to"}
    assert (body["meta"]["current_page"], body["meta"]["from"], body["meta"]["to"]) == (1, 1, 25)
    assert body["meta"]["per_page"] == PER_PAGE == len(body["data"])
    assert "sort=created_at" in body["links"]["next"]
    assert "page=2" in body["links"]["next"]
    assert "BootNotification" in body["filter_options"]["methods"]
    item = body["data"][0]
    assert set(item) == {
        "id", "charger_id", "status", "version", "method", "destination", "params", "result", "created_at", "updated_at"
    }  # fmt: skip
    assert item["method"] == "BootNotification"
    assert item["destination"] == "centralsystem"
    assert response.headers["X-RateLimit-Limit"] == "500"
    assert int(response.headers["X-RateLimit-Remaining"]) < 500


def test_following_next_links_reads_every_log_once_in_ascending_order(
    client: httpx.Client, simulator: PlugchoiceSimulator
) -> None:
    items, pages = every_page(client, sort="created_at")
    expected = simulator.visible_records(CHARGER)
    assert items == expected
    assert pages == -(-len(expected) // PER_PAGE)
    assert [(i["created_at"], i["id"]) for i in items] == sorted((i["created_at"], i["id"]) for i in items)


def test_the_default_sort_is_newest_first(client: httpx.Client, simulator: PlugchoiceSimulator) -> None:
    assert logs(client)["data"] == simulator.visible_records(CHARGER)[::-1][:PER_PAGE]


def test_the_flat_form_has_next_page_url_beside_the_data(client: httpx.Client, simulator: PlugchoiceSimulator) -> None:
    simulator.flat_paging = True
    body = logs(client, sort="created_at")
    assert "links" not in body
    assert "meta" not in body
    assert body["current_page"] == 1
    assert "page=2" in body["next_page_url"]
    assert body["prev_page_url"] is None


def test_an_empty_range_is_one_empty_page(client: httpx.Client) -> None:
    body = logs(client, **{"filter[date_from]": "2020-01-01", "filter[date_to]": "2020-01-02"})
    assert body["data"] == []
    assert body["links"]["next"] is None
    assert (body["meta"]["from"], body["meta"]["to"]) == (None, None)
    assert logs(client, EMPTY)["data"] == []


def test_exactly_one_full_page_has_no_next_link(client: httpx.Client, simulator: PlugchoiceSimulator) -> None:
    heartbeat_logs(simulator, EMPTY, [NOW - timedelta(minutes=30 - n) for n in range(PER_PAGE)])
    items, pages = every_page(client, EMPTY, sort="created_at")
    assert (len(items), pages) == (PER_PAGE, 1)


def test_a_last_page_of_one_record(client: httpx.Client, simulator: PlugchoiceSimulator) -> None:
    heartbeat_logs(simulator, EMPTY, [NOW - timedelta(minutes=30 - n) for n in range(PER_PAGE + 1)])
    body = logs(client, EMPTY, sort="created_at", page=2)
    assert len(body["data"]) == 1
    assert body["links"]["next"] is None
    assert body["meta"]["from"] == PER_PAGE + 1
    assert "page=1" in body["links"]["prev"]


@pytest.mark.parametrize("page", ["0", "-3", "abc", ""])
def test_a_page_that_is_not_a_positive_integer_is_page_1(client: httpx.Client, page: str) -> None:
    assert logs(client, sort="created_at", page=page)["meta"]["current_page"] == 1


def test_a_page_past_the_end_is_empty(client: httpx.Client) -> None:
    body = logs(client, sort="created_at", page=10_000)
    assert body["data"] == []
    assert body["links"]["next"] is None


# ---------------------------------------------------------------------------------------------- filters
def test_date_bounds_are_inclusive_at_whole_seconds(client: httpx.Client, simulator: PlugchoiceSimulator) -> None:
    base = datetime(2026, 4, 10, 9, 0, 0, tzinfo=UTC)
    heartbeat_logs(simulator, EMPTY, [base, base + timedelta(seconds=1, milliseconds=999), base + timedelta(seconds=2)])
    window = {
        "filter[date_from]": "2026-04-10 09:00:00",
        "filter[date_to]": "2026-04-10 09:00:01",
        "sort": "created_at",
    }
    items = logs(client, EMPTY, **window)["data"]
    assert [i["created_at"] for i in items] == ["2026-04-10T09:00:00.000000Z", "2026-04-10T09:00:01.000000Z"]
    whole_day = logs(client, EMPTY, **{"filter[date_from]": "2026-04-10", "filter[date_to]": "2026-04-10"})
    assert len(whole_day["data"]) == 3


def test_method_status_destination_and_insignificant_filters(
    client: httpx.Client, simulator: PlugchoiceSimulator
) -> None:
    assert {i["method"] for i in every_page(client, **{"filter[method]": "Heartbeat"})[0]} == {"Heartbeat"}
    assert {i["destination"] for i in logs(client, **{"filter[destination]": "charger"})["data"]} == {"charger"}
    at = NOW - timedelta(minutes=1)
    error = {
        "errorCode": "NotSupported",
        "errorDescription": "Action is recognized but not supported",
        "errorDetails": {},
    }
    simulator.insert(
        EMPTY,
        [
            TrafficFrame(at, "csms_to_cp", "GetDiagnostics", CALL, "gd-1", {"location": "https://x.example/"}),
            TrafficFrame(at + timedelta(seconds=1), "cp_to_csms", "GetDiagnostics", CALLERROR, "gd-1", error),
        ],
    )
    heartbeat_logs(simulator, EMPTY, [at])
    failed = logs(client, EMPTY, **{"filter[status]": "failed"})["data"]
    assert [(i["method"], i["destination"], i["result"]) for i in failed] == [("GetDiagnostics", "charger", error)]
    shown = {i["method"] for i in every_page(client)[0]}
    hidden = {i["method"] for i in every_page(client, **{"filter[hide_insignificant]": "1"})[0]}
    assert "MeterValues" in shown
    assert "MeterValues" not in hidden


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"filter[date_from]": "2026-04-10T09:00:00Z"}, "filter.date_from"),
        ({"filter[date_to]": "10/04/2026"}, "filter.date_to"),
        ({"filter[date_from]": "2026-04-10 10:00:00", "filter[date_to]": "2026-04-10 09:59:59"}, "filter.date_to"),
        ({"filter[date_from]": "2026-02-30"}, "filter.date_from"),
        ({"filter[status]": "success"}, "filter.status"),
        ({"filter[destination]": "cloud"}, "filter.destination"),
        ({"sort": "id"}, "sort"),
    ],
)
def test_invalid_filters_are_laravel_422s(client: httpx.Client, params: dict[str, str], field: str) -> None:
    response = client.get(f"/v3/chargers/{CHARGER}/logs", params=params)
    assert response.status_code == 422
    body = response.json()
    assert field in body["errors"]
    assert body["message"] == body["errors"][field][0]


# ---------------------------------------------------------------------------------------------- auth, errors
def test_missing_or_unknown_tokens_are_401s(server: str) -> None:
    url = f"{server}/api/v3/chargers/{CHARGER}/logs"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthenticated."}


def test_another_users_charger_is_403_and_an_unknown_one_404(client: httpx.Client, server: str) -> None:
    assert client.get(f"/v3/chargers/{OTHER_USERS}/logs").status_code == 403
    own = httpx.get(f"{server}/api/v3/chargers/{OTHER_USERS}/logs", headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
    assert own.status_code == 200
    assert client.get("/v3/chargers/nope/logs").status_code == 404
    assert client.get("/v3/logs").status_code == 404


def test_the_charger_list_pages_the_tokens_chargers(client: httpx.Client) -> None:
    body = client.get("/v3/chargers").json()
    assert [c["uuid"] for c in body["data"]] == [CHARGER, EMPTY]
    assert body["links"]["next"] is None


def test_over_500_requests_a_minute_is_a_429_with_retry_after(
    client: httpx.Client, simulator: PlugchoiceSimulator
) -> None:
    simulator.rate_limit_per_minute = 3
    statuses = [client.get("/v3/chargers") for _ in range(6)]
    throttled = [r for r in statuses if r.status_code == 429]
    assert throttled  # a minute boundary can reset the count once, not twice in 6 quick requests
    assert throttled[0].json() == {"message": "Too Many Attempts."}
    assert 0 < int(throttled[0].headers["Retry-After"]) <= 60
    assert throttled[0].headers["X-RateLimit-Remaining"] == "0"


def test_the_rolling_window_counts_the_most_requests_of_one_token_and_429s_are_counted(
    client: httpx.Client, simulator: PlugchoiceSimulator
) -> None:
    simulator.rate_limit_per_minute, simulator.rate_window_seconds = None, 0.5
    for _ in range(3):
        client.get("/v3/chargers")
    assert (simulator.max_in_window, simulator.counters.rate_limited) == (3, 0)
    time.sleep(0.6)  # the rolling window has moved past them
    client.get("/v3/chargers")
    assert simulator.max_in_window == 3
    simulator.rate_limit_per_minute = 2  # 8 quick requests: one wall-clock window of two holds 4 or more
    statuses = [client.get("/v3/chargers").status_code for _ in range(8)]
    assert simulator.max_in_window >= 5
    assert simulator.counters.rate_limited == statuses.count(429) > 0
    assert simulator.counters.throttled == 0  # the throttle fault's count is apart


# ---------------------------------------------------------------------------------------------- faults
def test_throttle_and_error_faults(client: httpx.Client, simulator: PlugchoiceSimulator) -> None:
    simulator.faults = Faults(throttle_rate=1.0, retry_after_seconds=7)
    response = client.get("/v3/chargers")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    simulator.faults = Faults(error_rate=1.0)
    assert client.get("/v3/chargers").status_code in (500, 502, 503)
    assert (simulator.counters.throttled, simulator.counters.errors) == (1, 1)


@pytest.mark.parametrize("kind", ["html", "truncated", "wrong_types"])
def test_bad_response_faults(client: httpx.Client, simulator: PlugchoiceSimulator, kind: str) -> None:
    simulator.faults = Faults(bad_response=kind)  # type: ignore[arg-type]
    response = client.get(f"/v3/chargers/{CHARGER}/logs")
    if kind == "html":
        assert response.status_code == 502
        assert "text/html" in response.headers["content-type"]
    elif kind == "truncated":
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.content)
    else:
        assert isinstance(response.json()["data"], dict)
    assert logs(client)["data"]  # only the one response was broken


def test_inserts_while_paging_land_within_the_range_and_only_repeat_records(
    client: httpx.Client, simulator: PlugchoiceSimulator
) -> None:
    window = {
        "filter[date_from]": "2026-04-10 06:00:00",
        "filter[date_to]": "2026-04-10 08:00:00",
        "sort": "created_at",
    }
    before = {i["id"] for i in every_page(client, **window)[0]}
    # Inserted logs are at most late_seconds old: here, from 06:00 on.
    simulator.faults = Faults(insert_while_paging_rate=1.0, insert_count=2, late_seconds=6 * 3600)
    items, _ = every_page(client, **window)
    simulator.faults = Faults()
    after = every_page(client, **window)[0]
    assert simulator.counters.inserts_while_paging > 0
    assert len(after) > len(before)
    assert before <= {i["id"] for i in items}  # nothing that existed was skipped, however the pages shifted
    assert all("2026-04-10T06" <= i["created_at"] < "2026-04-10T08:00:01" for i in after)


def test_logs_inserted_while_paging_are_never_older_than_late_seconds(
    client: httpx.Client, simulator: PlugchoiceSimulator
) -> None:
    simulator.faults = Faults(insert_while_paging_rate=1.0, insert_count=3, late_seconds=60)
    logs(client, EMPTY, **{"filter[date_from]": "2026-04-01 00:00:00"})
    simulator.faults = Faults()
    inserted = logs(client, EMPTY, sort="created_at")["data"]
    assert len(inserted) == 3
    assert all("2026-04-10T11:59:00" <= i["created_at"] <= "2026-04-10T12:00:00.000000Z" for i in inserted)


def test_late_logs_are_invisible_until_late_seconds_after_created_at(
    client: httpx.Client, simulator: PlugchoiceSimulator, clock: ManualClock
) -> None:
    simulator.faults = Faults(late_rate=1.0, late_seconds=300)
    heartbeat_logs(simulator, EMPTY, [NOW - timedelta(seconds=10)])
    assert logs(client, EMPTY)["data"] == []
    clock.advance(300)
    assert len(logs(client, EMPTY)["data"]) == 1
    assert simulator.counters.late_records == 1


def test_a_pending_log_becomes_done_in_place(
    client: httpx.Client, simulator: PlugchoiceSimulator, clock: ManualClock
) -> None:
    simulator.slow_answer_rate, simulator.slow_answer_seconds = 1.0, 120
    heartbeat_logs(simulator, EMPTY, [NOW - timedelta(seconds=5)])
    pending = logs(client, EMPTY)["data"]
    assert [(i["status"], i["result"]) for i in pending] == [("pending", None)]
    assert logs(client, EMPTY, **{"filter[status]": "pending"})["data"] == pending
    clock.advance(120)
    done = logs(client, EMPTY)["data"]
    assert [(i["id"], i["created_at"], i["status"]) for i in done] == [
        (pending[0]["id"], pending[0]["created_at"], "done")
    ]
    assert done[0]["result"] == {"currentTime": "2026-04-10T00:00:00.000Z"}
    assert done[0]["updated_at"] > pending[0]["updated_at"]


def test_a_seed_reproduces_the_same_logs(clock: ManualClock) -> None:
    def made(seed: int) -> list[dict[str, Any]]:
        simulator = PlugchoiceSimulator(seed=seed, clock=clock)
        simulator.add_charger(CHARGER)
        simulator.seed(CHARGER, NOW - timedelta(hours=6), NOW)
        return simulator.visible_records(CHARGER)

    assert made(1) == made(1) != made(2)


# ---------------------------------------------------------------------------------------------- payloads
def test_every_params_and_result_validates_against_the_ocpp16_schemas(simulator: PlugchoiceSimulator) -> None:
    items = simulator.visible_records(CHARGER)
    assert len(items) > 500
    as_strings = 0
    for item in items:
        params = item["params"]
        if isinstance(params, str):
            as_strings += 1
            params = json.loads(params)
        params = params or {}  # "[]": PHP's empty array
        schema(item["method"], response=False).validate(params)
        if item["status"] == "done":
            schema(item["method"], response=True).validate(item["result"])
        else:
            assert item["status"] == "failed"
            assert set(item["result"]) == {
                "errorCode",
                "errorDescription",
                "errorDetails",
            }
    assert as_strings > 0
    assert {i["status"] for i in items} <= {"done", "failed"}
    assert {i["destination"] for i in items} == {"centralsystem", "charger"}


def test_start_local_serves_a_fleet_under_api() -> None:
    base_url, credentials, stop = start_local()
    try:
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/api")
        headers = {"Authorization": f"Bearer {credentials['token']}"}
        chargers = httpx.get(f"{base_url}/v3/chargers", headers=headers).json()["data"]
        assert len(chargers) == 3
        assert httpx.get(f"{base_url}/v3/chargers/{chargers[0]['uuid']}/logs", headers=headers).json()["data"]
    finally:
        stop()
