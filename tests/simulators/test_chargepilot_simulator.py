"""The ChargePilot simulator behaves as the vendor documents (chargepilot-ocpp-logs.txt and the README notes):
signed requests or 401, required ``from``/``to``, ``take``/``skip`` paging with ``count``, multi-charger sites,
and payloads that validate against the OCPP 1.6 JSON schemas shipped with the ``ocpp`` package."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import ocpp
import pytest
from jsonschema import Draft4Validator

from chargelog.collectors.chargepilot import ChargepilotSignature, signature
from chargelog_simulators.base import Faults, ManualClock, SimulatorServer
from chargelog_simulators.chargepilot import ACTIONS, ChargepilotSimulator, start_local
from chargelog_simulators.traffic import generate_heartbeats

API_KEY, API_SECRET = "key-1", "secret-1"
OTHER_KEY, OTHER_SECRET = "key-2", "secret-2"
SITE, OTHER_SITE = "site-1", "site-9"
CHARGERS = ("CP-1", "CP-2", "CP-3")
NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
SCHEMAS = Path(ocpp.__file__).parent / "v16" / "schemas"
DOCUMENTED_FIELDS = {
    "occurrence_time",
    "action",
    "payload",
    "site_id",
    "site_name",
    "charger_id",
    "connector_id",
    "request_timestamp",
    "request_info",
    "request_status",
    "request_reason",
    "request_id_tag",
    "request_transaction_id",
    "request_vendor_id",
    "request_error_code",
    "request_vendor_error_code",
    "request_meter_stop",
    "req_cs_profile_sched_charging_rate_unit",
    "req_cs_profile_sched_duration",
    "req_cs_profile_sched_start_schedule",
    "req_cs_profile_sched_min_charging_rate",
    "req_cs_profile_sched_schedule_period",
    "response_id_tag_info_status",
    *(f"extracted_{q}{s}" for q in ("voltage", "current", "power") for s in ("", "_phase1", "_phase2", "_phase3")),
    "extracted_state_of_charge",
}
FULL_DAY = {"from": "2026-04-09T12:00:00Z", "to": "2026-04-10T12:00:00Z"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def simulator(clock: ManualClock) -> ChargepilotSimulator:
    simulator = ChargepilotSimulator(seed=3, clock=clock)
    simulator.add_api_key(API_KEY, API_SECRET)
    simulator.add_api_key(OTHER_KEY, OTHER_SECRET)
    simulator.add_site(SITE, API_KEY, "Riverside depot")
    simulator.add_site(OTHER_SITE, OTHER_KEY)
    for charger in CHARGERS:
        simulator.add_charger(SITE, charger, 2)
    simulator.add_charger(OTHER_SITE, "CP-X", 1)
    simulator.seed(SITE, NOW - timedelta(hours=24), NOW)
    return simulator


@pytest.fixture
def base_url(simulator: ChargepilotSimulator) -> Iterator[str]:
    with SimulatorServer(simulator.wsgi_app) as url:
        yield url + "/rest/v1"


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, auth=ChargepilotSignature(API_KEY, API_SECRET)) as client:
        yield client


def logs(client: httpx.Client, site: str = SITE, **params: Any) -> httpx.Response:
    return client.get(f"/ocpp-logs/site/{site}", params={**FULL_DAY, "sort_order": "asc", **params})


@cache
def _schema(action: str) -> Draft4Validator:
    path = SCHEMAS / f"{action}.json"
    return Draft4Validator(json.loads(path.read_text("utf-8-sig")), format_checker=Draft4Validator.FORMAT_CHECKER)


# ---------------------------------------------------------------------------------------------- auth
def _signed_get(base_url: str, path_with_query: str, *, timestamp: int, secret: str = API_SECRET) -> httpx.Response:
    full_path = "/rest/v1" + path_with_query
    headers = {
        "x-api-key": API_KEY,
        "x-req-timestamp": str(timestamp),
        "x-signature": signature(secret, "GET", full_path, str(timestamp)),
    }
    return httpx.get(base_url.removesuffix("/rest/v1") + full_path, headers=headers)


def test_a_correctly_signed_request_is_answered(base_url: str) -> None:
    now = int(datetime.now(UTC).timestamp())
    response = _signed_get(
        base_url, f"/ocpp-logs/site/{SITE}?from=2026-04-10T11:00:00Z&to=2026-04-10T12:00:00Z", timestamp=now
    )
    assert response.status_code == 200, response.text


AUTH_NOW = 1_775_822_400  # the simulator's pinned auth clock in the skew tests: exact boundaries, no wall-clock race


@pytest.mark.parametrize("skew", [-301, 301, -3600])
def test_a_stale_or_future_timestamp_is_401(simulator: ChargepilotSimulator, base_url: str, skew: int) -> None:
    simulator.auth_clock = lambda: AUTH_NOW
    response = _signed_get(base_url, "/sites", timestamp=AUTH_NOW + skew)
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": "Unauthorized"}


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_a_timestamp_within_the_allowed_skew_is_accepted(
    simulator: ChargepilotSimulator, base_url: str, skew: int
) -> None:
    simulator.auth_clock = lambda: AUTH_NOW
    assert _signed_get(base_url, "/sites", timestamp=AUTH_NOW + skew).status_code == 200


def test_a_wrong_signature_is_401(base_url: str) -> None:
    now = int(datetime.now(UTC).timestamp())
    assert _signed_get(base_url, "/sites", timestamp=now, secret="wrong").status_code == 401
    # Signed for one query, sent with another.
    headers = {
        "x-api-key": API_KEY,
        "x-req-timestamp": str(now),
        "x-signature": signature(API_SECRET, "GET", "/rest/v1/sites?take=1", str(now)),
    }
    assert httpx.get(base_url + "/sites?take=2", headers=headers).status_code == 401


def test_missing_headers_and_unknown_keys_are_401(base_url: str) -> None:
    assert httpx.get(base_url + "/sites").status_code == 401
    assert httpx.get(base_url + "/sites", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 401
    with httpx.Client(base_url=base_url, auth=ChargepilotSignature("nobody", API_SECRET)) as unknown:
        assert unknown.get("/sites").status_code == 401


def test_sites_lists_the_keys_sites(client: httpx.Client) -> None:
    response = client.get("/sites")
    assert response.status_code == 200
    assert response.json() == [{"id": SITE, "name": "Riverside depot"}]


def test_another_keys_site_is_403_and_an_unknown_site_404(client: httpx.Client) -> None:
    assert logs(client, OTHER_SITE).status_code == 403
    response = logs(client, "site-nope")
    assert response.status_code == 404
    assert response.json()["statusCode"] == 404


# ---------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("missing", ["from", "to"])
def test_from_and_to_are_required(client: httpx.Client, missing: str) -> None:
    params = {k: v for k, v in FULL_DAY.items() if k != missing}
    response = client.get(f"/ocpp-logs/site/{SITE}", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400
    assert body["error"] == "Bad Request"
    assert f"{missing} must be a valid ISO 8601 date string" in body["message"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"take": "1001"}, "take must not be greater than 1000"),
        ({"take": "0"}, "take must not be less than 1"),
        ({"skip": "-1"}, "skip must not be less than 0"),
        ({"skip": "x"}, "skip must be an integer number"),
        ({"sort_order": "up"}, "sort_order must be one of the following values: asc, desc"),
        ({"from": "yesterday"}, "from must be a valid ISO 8601 date string"),
    ],
)
def test_invalid_parameters_are_400(client: httpx.Client, params: dict[str, str], message: str) -> None:
    response = logs(client, **params)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_an_unknown_action_is_400_and_known_ones_filter(client: httpx.Client) -> None:
    assert logs(client, actions="Teleport").status_code == 400
    body = logs(client, actions="Heartbeat,MeterValues", take=1000).json()
    assert body["count"] > 0
    assert {e["action"] for e in body["ocpp_logs"]} == {"Heartbeat", "MeterValues"}
    assert len(ACTIONS) == 39


# ---------------------------------------------------------------------------------------------- paging
def test_the_envelope_and_every_documented_field(client: httpx.Client, simulator: ChargepilotSimulator) -> None:
    body = logs(client, take=50).json()
    assert set(body) == {"ocpp_logs", "count"}
    assert body["count"] == len(simulator.visible_records(SITE))
    assert len(body["ocpp_logs"]) == 50
    for entry in body["ocpp_logs"]:
        assert set(entry) == DOCUMENTED_FIELDS
        assert entry["site_id"] == SITE
        assert entry["site_name"] == "Riverside depot"
        assert entry["occurrence_time"].endswith("Z")


def test_a_site_log_holds_every_charger_and_its_connectors(simulator: ChargepilotSimulator) -> None:
    entries = simulator.visible_records(SITE)
    assert {e["charger_id"] for e in entries} == set(CHARGERS)
    assert {e["connector_id"] for e in entries} == {None, 0, 1, 2}


def test_default_order_is_newest_first_and_asc_oldest_first(client: httpx.Client) -> None:
    newest = client.get(f"/ocpp-logs/site/{SITE}", params={**FULL_DAY, "take": 5}).json()["ocpp_logs"]
    oldest = logs(client, take=5).json()["ocpp_logs"]
    assert [e["occurrence_time"] for e in newest] == sorted((e["occurrence_time"] for e in newest), reverse=True)
    assert [e["occurrence_time"] for e in oldest] == sorted(e["occurrence_time"] for e in oldest)
    assert newest[0]["occurrence_time"] > oldest[-1]["occurrence_time"]


def test_an_empty_range_is_an_empty_page(client: httpx.Client) -> None:
    body = logs(client, **{"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"}).json()
    assert body == {"ocpp_logs": [], "count": 0}


def test_exactly_one_full_page(client: httpx.Client, simulator: ChargepilotSimulator) -> None:
    entries = simulator.visible_records(SITE)[:10]
    window = {"from": entries[0]["occurrence_time"], "to": entries[-1]["occurrence_time"]}  # both inclusive
    first = logs(client, take=10, **window).json()
    assert first == {"ocpp_logs": entries, "count": 10}
    assert logs(client, take=10, skip=10, **window).json() == {"ocpp_logs": [], "count": 10}


def test_a_last_page_of_one_record(client: httpx.Client, simulator: ChargepilotSimulator) -> None:
    entries = simulator.visible_records(SITE)[:11]
    window = {"from": entries[0]["occurrence_time"], "to": entries[-1]["occurrence_time"]}
    assert logs(client, take=10, **window).json()["ocpp_logs"] == entries[:10]
    last = logs(client, take=10, skip=10, **window).json()
    assert last == {"ocpp_logs": entries[10:], "count": 11}


def test_bounds_are_inclusive_at_millisecond_precision(client: httpx.Client, simulator: ChargepilotSimulator) -> None:
    entry = simulator.visible_records(SITE)[7]
    at = datetime.fromisoformat(entry["occurrence_time"])
    just = {"from": at.isoformat(), "to": at.isoformat()}
    assert entry in logs(client, **just).json()["ocpp_logs"]
    after = {"from": (at + timedelta(microseconds=1)).isoformat(), "to": (at + timedelta(microseconds=999)).isoformat()}
    assert entry not in logs(client, **after).json()["ocpp_logs"]


# ---------------------------------------------------------------------------------------------- payloads
def test_every_payload_validates_against_the_ocpp16_schemas(simulator: ChargepilotSimulator) -> None:
    entries = simulator.visible_records(SITE)
    assert len(entries) > 500
    assert len({e["action"] for e in entries}) >= 10
    for entry in entries:
        assert entry["action"] in ACTIONS
        errors = list(_schema(entry["action"]).iter_errors(entry["payload"]))
        assert not errors, f"{entry['action']}: {errors[0].message}"


def test_extracted_fields_match_the_payload(simulator: ChargepilotSimulator) -> None:
    entries = simulator.visible_records(SITE)
    meter = next(e for e in entries if e["action"] == "MeterValues")
    sampled = meter["payload"]["meterValue"][0]["sampledValue"]
    power = next(float(s["value"]) for s in sampled if s.get("measurand") == "Power.Active.Import")
    currents = [float(s["value"]) for s in sampled if s.get("measurand") == "Current.Import"]
    assert meter["extracted_power"] == power
    assert [meter[f"extracted_current_phase{n}"] for n in (1, 2, 3)] == currents
    assert meter["request_transaction_id"] == meter["payload"]["transactionId"]
    stop = next(e for e in entries if e["action"] == "StopTransaction")
    assert stop["request_meter_stop"] == str(stop["payload"]["meterStop"])
    authorize = next(e for e in entries if e["action"] == "Authorize")
    assert authorize["request_id_tag"] == authorize["payload"]["idTag"]
    assert authorize["response_id_tag_info_status"] in {"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"}


# ---------------------------------------------------------------------------------------------- faults
def test_records_inserted_while_paging_shift_the_pages(client: httpx.Client, simulator: ChargepilotSimulator) -> None:
    before = logs(client, take=10).json()["count"]
    simulator.faults = Faults(insert_while_paging_rate=1.0, insert_count=3)
    after = logs(client, take=10).json()["count"]
    assert after == before + 3
    assert simulator.counters.inserts_while_paging == 1


def test_late_records_are_hidden_until_visible(clock: ManualClock, simulator: ChargepilotSimulator) -> None:
    simulator.faults = Faults(late_rate=1.0, late_seconds=600)
    frames = generate_heartbeats(NOW - timedelta(seconds=60), NOW - timedelta(seconds=30), simulator.rng, 4)
    before = len(simulator.visible_records(SITE))
    assert simulator.insert(SITE, "CP-2", frames) == 2
    assert len(simulator.visible_records(SITE)) == before
    clock.advance(600)
    assert len(simulator.visible_records(SITE)) == before + 2


def test_throttling_and_errors_come_after_auth(client: httpx.Client, simulator: ChargepilotSimulator) -> None:
    simulator.faults = Faults(throttle_rate=1.0, retry_after_seconds=7)
    assert httpx.get(str(client.base_url).rstrip("/") + "/sites").status_code == 401
    assert client.get("/nowhere").status_code == 404  # routing comes before auth and faults
    assert client.get("/nowhere").json() == {
        "statusCode": 404,
        "message": "Cannot GET /rest/v1/nowhere",
        "error": "Not Found",
    }
    simulator.faults = Faults(throttle_rate=1.0, retry_after_seconds=7)
    response = client.get("/sites")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    simulator.faults = Faults(error_rate=1.0)
    assert logs(client).status_code in {500, 502, 503}


def test_wrong_types_breaks_count_and_occurrence_time(client: httpx.Client, simulator: ChargepilotSimulator) -> None:
    simulator.faults = Faults(bad_response="wrong_types")
    body = logs(client, take=2).json()
    assert isinstance(body["count"], str)
    assert all(isinstance(e["occurrence_time"], float) for e in body["ocpp_logs"])


def test_start_local_serves_signed_site_logs() -> None:
    base_url, credentials, stop = start_local()
    try:
        assert base_url.endswith("/rest/v1")
        auth = ChargepilotSignature(credentials["api_key"], credentials["api_secret"])
        with httpx.Client(base_url=base_url, auth=auth) as local:
            sites = local.get("/sites").json()
            assert len(sites) == 2
            now = datetime.now(UTC)
            body = local.get(
                f"/ocpp-logs/site/{sites[0]['id']}",
                params={"from": (now - timedelta(hours=2)).isoformat(), "to": now.isoformat(), "take": 1000},
            ).json()
            assert body["count"] > 0
            assert len({e["charger_id"] for e in body["ocpp_logs"]}) > 1
    finally:
        stop()
