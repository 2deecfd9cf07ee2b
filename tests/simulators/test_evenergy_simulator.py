"""The ev.energy simulator behaves as the vendor's docs say: OAuth2 client credentials with expiring tokens,
the version header, bare arrays paged by the Link header, problem+json errors, the hourly rate limit, records
visible once logged. Plus the adapter end to end against it over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from copy import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from chargelog.collectors import evenergy, vendor_http
from chargelog.collectors.base import VendorConnection, Window
from chargelog.collectors.evenergy import EvenergyAdapter
from chargelog_simulators.base import Faults, ManualClock, SimulatorServer
from chargelog_simulators.evenergy import EvEnergySimulator, start_local

CLIENT_ID, CLIENT_SECRET = "app-1", "app-1-secret"
EVSE, OTHER_CLIENTS_EVSE = "evse01A", "evse99Z"
START = datetime(2026, 4, 9, 8, tzinfo=UTC)
NOW = datetime(2026, 4, 9, 12, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def simulator(clock: ManualClock) -> EvEnergySimulator:
    simulator = EvEnergySimulator(seed=3, clock=clock, token_seconds=600)
    simulator.add_client(CLIENT_ID, CLIENT_SECRET)
    simulator.add_client("app-2", "app-2-secret")
    simulator.add_evse(EVSE, CLIENT_ID)
    simulator.add_evse(OTHER_CLIENTS_EVSE, "app-2")
    return simulator


@pytest.fixture
def api(simulator: EvEnergySimulator) -> Iterator[httpx.Client]:
    with SimulatorServer(simulator.wsgi_app) as base, httpx.Client(base_url=base) as client:
        yield client


def token(api: httpx.Client, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    response = api.post(
        "/o/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def logs(
    api: httpx.Client, bearer: str | None, evse: str = EVSE, version: str | None = "2", **params: Any
) -> httpx.Response:
    headers = {} if version is None else {"EvEnergy-Version": version}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    return api.get(f"/v2/evses/{evse}/status_logs", params=params, headers=headers)


def add(simulator: EvEnergySimulator, count: int, start: datetime = START) -> None:
    for i in range(count):
        simulator.add_status(
            EVSE, start + timedelta(minutes=i), is_plugged_in=True, is_charging=False, charge_rate_watts=0
        )


def assert_problem(response: httpx.Response, status: int, title: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["title"] == title
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return dict(body)


# ---------------------------------------------------------------------------------------------- auth
def test_the_token_endpoint_issues_expiring_bearer_tokens(api: httpx.Client) -> None:
    response = api.post(
        "/o/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    )
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert response.headers["cache-control"] == "no-store"
    basic = api.post("/o/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET))
    assert basic.status_code == 200


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "wrong"}, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": CLIENT_SECRET},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
            400,
            "unsupported_grant_type",
        ),
    ],
)
def test_the_token_endpoint_refuses_bad_requests(
    api: httpx.Client, form: dict[str, str], status: int, error: str
) -> None:
    response = api.post("/o/token", data=form)
    assert response.status_code == status
    assert response.json() == {"error": error}


def test_calls_without_a_live_token_are_401_problems(
    api: httpx.Client, simulator: EvEnergySimulator, clock: ManualClock
) -> None:
    assert_problem(logs(api, None), 401, "Unauthorized")
    assert_problem(logs(api, "made-up"), 401, "Unauthorized")
    bearer = token(api)
    assert logs(api, bearer).status_code == 200
    clock.advance(600)  # expired
    assert_problem(logs(api, bearer), 401, "Unauthorized")
    bearer = token(api)
    simulator.revoke_tokens()
    assert_problem(logs(api, bearer), 401, "Unauthorized")


def test_the_version_header_is_required_and_echoed(api: httpx.Client) -> None:
    bearer = token(api)
    assert_problem(logs(api, bearer, version=None), 400, "Invalid version")
    assert_problem(logs(api, bearer, version="1"), 400, "Invalid version")
    assert logs(api, bearer).headers["EvEnergy-Version"] == "2"


def test_other_errors_are_problems(api: httpx.Client) -> None:
    bearer = token(api)
    assert_problem(logs(api, bearer, evse="evse-none"), 404, "Not found")
    assert_problem(logs(api, bearer, evse=OTHER_CLIENTS_EVSE), 403, "Forbidden")
    assert_problem(logs(api, bearer, page_size=101), 400, "Invalid parameter")
    assert_problem(logs(api, bearer, page_size="x"), 400, "Invalid parameter")
    assert_problem(logs(api, bearer, sampled_at__gte="yesterday"), 400, "Invalid parameter")
    assert_problem(logs(api, bearer, page_after="nonsense"), 400, "Invalid cursor")
    response = api.get(
        f"/v2/evses/{EVSE}/status_logs",
        headers={"Authorization": f"Bearer {bearer}", "EvEnergy-Version": "2", "Accept": "text/html"},
    )
    assert_problem(response, 406, "Not Acceptable")


# ---------------------------------------------------------------------------------------------- paging
def follow(api: httpx.Client, bearer: str, **params: Any) -> list[list[dict[str, Any]]]:
    pages = []
    response = logs(api, bearer, **params)
    while True:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert isinstance(response.json(), list)
        pages.append(response.json())
        assert set(response.links) == {"previous", "next"}
        following = response.links["next"]["url"]
        if following == "about:blank":
            return pages
        response = api.get(following, headers={"Authorization": f"Bearer {bearer}", "EvEnergy-Version": "2"})


def test_an_empty_range_is_one_empty_page_blank_at_both_ends(api: httpx.Client, simulator: EvEnergySimulator) -> None:
    add(simulator, 5)
    response = logs(api, token(api), sampled_at__gte="2026-04-09T09:00:00Z", sampled_at__lte="2026-04-09T10:00:00Z")
    assert response.json() == []
    assert response.headers["link"] == '<about:blank>; rel="previous", <about:blank>; rel="next"'


def test_exactly_one_full_page_is_the_last(api: httpx.Client, simulator: EvEnergySimulator) -> None:
    add(simulator, 10)
    assert [len(p) for p in follow(api, token(api), page_size=10)] == [10]


def test_a_last_page_of_one_record(api: httpx.Client, simulator: EvEnergySimulator) -> None:
    add(simulator, 11)
    pages = follow(api, token(api), page_size=5, sampled_at__gte="2026-04-09T08:00:00Z")
    assert [len(p) for p in pages] == [5, 5, 1]
    assert [r for p in pages for r in p] == simulator.visible_records(EVSE)


def test_ranges_are_inclusive_and_pages_go_back_with_the_previous_link(
    api: httpx.Client, simulator: EvEnergySimulator
) -> None:
    add(simulator, 10)
    bearer = token(api)
    first = logs(
        api,
        bearer,
        page_size=4,
        sampled_at__gte=START.isoformat(),
        sampled_at__lte=(START + timedelta(minutes=8)).isoformat(),
    )
    assert first.json()[0]["sampled_at"] == "2026-04-09T08:00:00.000000Z"
    second = api.get(first.links["next"]["url"], headers={"Authorization": f"Bearer {bearer}", "EvEnergy-Version": "2"})
    third = api.get(second.links["next"]["url"], headers={"Authorization": f"Bearer {bearer}", "EvEnergy-Version": "2"})
    assert [r["sampled_at"][11:16] for r in third.json()] == ["08:08"]
    back = api.get(
        second.links["previous"]["url"], headers={"Authorization": f"Bearer {bearer}", "EvEnergy-Version": "2"}
    )
    assert back.json() == first.json()
    assert "page_size=4" in second.links["next"]["url"]


def test_the_default_page_size_is_25(api: httpx.Client, simulator: EvEnergySimulator) -> None:
    add(simulator, 30)
    assert [len(p) for p in follow(api, token(api))] == [25, 5]


def test_the_evses_list_is_the_clients(api: httpx.Client) -> None:
    response = api.get("/v2/evses", headers={"Authorization": f"Bearer {token(api)}", "EvEnergy-Version": "2"})
    assert [e["id"] for e in response.json()] == [EVSE]


# ---------------------------------------------------------------------------------------------- records
def test_seeded_status_logs_are_documented_records(simulator: EvEnergySimulator) -> None:
    assert simulator.seed(EVSE, START, NOW - timedelta(minutes=10), interval_seconds=60) > 200
    records = simulator.visible_records(EVSE)
    assert {tuple(sorted(r)) for r in records} == {
        ("charge_rate_watts", "evse", "is_charging", "is_plugged_in", "logged_at", "sampled_at", "url")
    }
    sampled = [r["sampled_at"] for r in records]
    assert sampled == sorted(sampled)
    assert len(set(r["url"] for r in records)) == len(records)
    assert all(r["logged_at"] > r["sampled_at"] for r in records)
    assert {r["is_charging"] for r in records} == {True, False, None}
    assert all(r["charge_rate_watts"] > 0 for r in records if r["is_charging"])
    assert all(r["url"] == f"https://api.ev.energy/v2/evse/{EVSE}/status_logs/{r['sampled_at']}/" for r in records)


def test_a_record_is_visible_once_logged(simulator: EvEnergySimulator, clock: ManualClock) -> None:
    simulator.faults = Faults(late_rate=1.0, late_seconds=900)
    simulator.add_status(EVSE, NOW - timedelta(minutes=1), is_plugged_in=False, is_charging=False, charge_rate_watts=0)
    simulator.seed(EVSE, NOW - timedelta(minutes=5), NOW, interval_seconds=60)
    assert simulator.visible_records(EVSE) == []
    assert simulator.counters.late_records >= 5
    clock.advance(900)
    assert len(simulator.visible_records(EVSE)) == simulator.counters.late_records


# ---------------------------------------------------------------------------------------------- limits and faults
def test_the_hourly_rate_limit(api: httpx.Client, simulator: EvEnergySimulator, clock: ManualClock) -> None:
    simulator.rate_limit = 3
    bearer = token(api)
    assert [logs(api, bearer).headers["x-ratelimit-remaining"] for _ in range(3)] == ["2", "1", "0"]
    throttled = logs(api, bearer)
    assert_problem(throttled, 429, "Throttled")
    assert throttled.headers["x-ratelimit-limit"] == "3"
    assert int(throttled.headers["retry-after"]) == 3601
    clock.advance(3600)  # the rolling hour has passed the first calls
    assert logs(api, token(api)).headers["x-ratelimit-remaining"] == "2"


def test_fault_knobs(api: httpx.Client, simulator: EvEnergySimulator) -> None:
    add(simulator, 3, start=NOW - timedelta(minutes=10))
    bearer = token(api)
    simulator.faults = Faults(throttle_rate=1.0, retry_after_seconds=7)
    throttled = logs(api, bearer)
    assert_problem(throttled, 429, "Throttled")
    assert throttled.headers["retry-after"] == "7"
    simulator.faults = Faults(error_rate=1.0)
    assert logs(api, bearer).status_code in (500, 502, 503)
    simulator.faults = Faults(bad_response="wrong_types")
    assert all(isinstance(r["sampled_at"], float) for r in logs(api, bearer).json())
    before = {r["url"] for r in simulator.visible_records(EVSE)}
    simulator.faults = Faults(insert_while_paging_rate=1.0, insert_count=2, late_seconds=300)
    assert len(logs(api, bearer).json()) == 5
    inserted = [r for r in simulator.visible_records(EVSE) if r["url"] not in before]
    assert len(inserted) == 2
    # late-logged records: sampled in the last late_seconds, logged now
    assert all(r["sampled_at"] >= "2026-04-09T11:55" for r in inserted)
    assert {r["logged_at"] for r in inserted} == {"2026-04-09T12:00:00.000000Z"}


# ---------------------------------------------------------------------------------------------- the adapter end to end
def test_the_adapter_reads_everything_through_expiring_tokens(
    simulator: EvEnergySimulator, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vendor_http, "_LIMITERS", {})
    monkeypatch.setattr(evenergy, "_AUTHS", {})
    simulator.seed(EVSE, START, NOW - timedelta(minutes=5), interval_seconds=60)
    with SimulatorServer(simulator.wsgi_app) as base:
        profile = replace(evenergy.PROFILE, requests_per_second=1000.0, burst=1000, page_size=40)
        connection = VendorConnection(
            "evenergy", f"{base}/v2", {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, profile
        )
        adapter = EvenergyAdapter(connection, lambda: 900.0)
        items, cursor = [], None
        while True:
            page = adapter.fetch_page(EVSE, Window(START, NOW), cursor)
            items += page.items
            simulator.revoke_tokens()  # every next page needs a fresh token
            cursor = page.next_cursor
            if cursor is None:
                break
        adapter.close()
    assert items == simulator.visible_records(EVSE)
    assert simulator.tokens_issued == -(-len(items) // 40)
    assert len({adapter.normalize(EVSE, item).record_id for item in items}) == len(items)


def test_start_local_serves_seeded_evses() -> None:
    base, credentials, stop = start_local()
    try:
        assert base.endswith("/v2")
        assert set(credentials) == {"client_id", "client_secret"}
        with httpx.Client() as client:
            grant = client.post(
                base.removesuffix("/v2") + "/o/token", data={"grant_type": "client_credentials", **credentials}
            )
            headers = {"Authorization": f"Bearer {grant.json()['access_token']}", "EvEnergy-Version": "2"}
            evses = client.get(f"{base}/evses", headers=headers).json()
            assert len(evses) == 3
            page = client.get(f"{base}/evses/{evses[0]['id']}/status_logs", headers=headers)
            assert len(page.json()) == 25
    finally:
        stop()
