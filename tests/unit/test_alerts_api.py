"""GET /alerts, GET /alerts/{alert_id} and GET /chargers/{charger_id}/health through the API function's handler, on
the template's table in moto: alerts newest opened first with signed cursors, one alert, and a charger's health from
its index entries, its detectors' state and its open alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import api_calls
from chargelog import stores
from chargelog.dal.alerts import AlertStore, HealthStore
from chargelog.dal.archive import RawArchive
from chargelog.dal.records import RecordWriter
from chargelog.models.alerts import Alert, alert_id_for
from chargelog.models.records import LogRecord, record_id_for
from chargelog_local.provision import LocalStack

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def make_alert(n: int, opened_at: datetime, charger: str = "CP-1", kind: str = "boot_loop", **fields: Any) -> Alert:
    vendor = fields.pop("vendor", "ocpplab")
    return Alert.model_validate(
        {
            "alert_id": alert_id_for(vendor, charger, charger, kind, fields.get("connector_id"), f"rec-{n}"),
            "kind": kind,
            "state": "open",
            "charger_id": charger,
            "vendor": vendor,
            "source_id": charger,
            "opened_at": opened_at,
            "summary": f"alert {n}",
            "evidence": [f"ocpplab:rec-{n}"],
            **fields,
        }
    )


@pytest.fixture
def alerts(stack: LocalStack) -> AlertStore:
    return stores.alerts()


@pytest.fixture
def health(stack: LocalStack) -> HealthStore:
    return stores.charger_health()


def seed(alerts: AlertStore, count: int) -> list[Alert]:
    made = []
    for n in range(count):
        alert = make_alert(
            n,
            T0 + timedelta(minutes=n),
            charger=f"CP-{n % 3}",
            kind=("boot_loop", "offline")[n % 2],
            vendor=("ocpplab", "plugchoice")[n % 4 // 3],
            site_id=f"S-{n % 2}",
        )
        alerts.open(alert)
        if n % 4 == 0:
            alert = alerts.resolve(alert.alert_id, alert.opened_at + timedelta(minutes=3), "over", []) or alert
        made.append(alert)
    return made


def ids_newest_first(alerts: list[Alert]) -> list[str]:
    return [alert.alert_id for alert in sorted(alerts, key=lambda alert: alert.opened_at, reverse=True)]


def listed(context: Any, query: dict[str, str]) -> list[str]:
    return [alert["alert_id"] for alert in api_calls.follow(context, "/alerts", query, key="alerts")]


# ---------------------------------------------------------------------------------------------- GET /alerts


def test_alerts_are_listed_newest_first_page_by_page(alerts: AlertStore, lambda_context: Any) -> None:
    made = seed(alerts, 25)

    status, headers, body = api_calls.get_json(lambda_context, "/alerts", {"limit": "10"})
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    assert [alert["alert_id"] for alert in body["alerts"]] == ids_newest_first(made)[:10]
    assert body["next_cursor"]
    first = body["alerts"][0]
    assert Alert.model_validate(first) == max(made, key=lambda alert: alert.opened_at)

    assert listed(lambda_context, {"limit": "7"}) == ids_newest_first(made)
    assert listed(lambda_context, {"state": "open", "limit": "4"}) == ids_newest_first(
        [alert for alert in made if alert.state == "open"]
    )
    assert listed(lambda_context, {"state": "resolved", "limit": "4"}) == ids_newest_first(
        [alert for alert in made if alert.state == "resolved"]
    )


@pytest.mark.parametrize(
    ("query", "keep"),
    [
        ({"charger_id": "CP-1"}, lambda alert: alert.charger_id == "CP-1"),
        ({"site_id": "S-0"}, lambda alert: alert.site_id == "S-0"),
        ({"vendor": "plugchoice"}, lambda alert: alert.vendor == "plugchoice"),
        ({"kind": "offline", "state": "open"}, lambda alert: alert.kind == "offline" and alert.state == "open"),
        (
            {"from": z(T0 + timedelta(minutes=5)), "to": z(T0 + timedelta(minutes=12))},
            lambda alert: T0 + timedelta(minutes=5) <= alert.opened_at <= T0 + timedelta(minutes=12),
        ),
        (
            {"from": "2026-11-20T09:05:00+01:00"},  # an offset: 08:05 UTC
            lambda alert: alert.opened_at >= T0 + timedelta(minutes=5),
        ),
    ],
)
def test_filters_choose_the_alerts(alerts: AlertStore, lambda_context: Any, query: dict[str, str], keep: Any) -> None:
    made = seed(alerts, 25)
    expected = ids_newest_first([alert for alert in made if keep(alert)])
    assert expected
    assert listed(lambda_context, {**query, "limit": "3"}) == expected


def test_a_cursor_continues_only_its_own_query(alerts: AlertStore, lambda_context: Any) -> None:
    seed(alerts, 10)
    _, _, body = api_calls.get_json(lambda_context, "/alerts", {"state": "open", "limit": "2"})
    cursor = body["next_cursor"]
    assert api_calls.get_json(lambda_context, "/alerts", {"state": "open", "limit": "5", "cursor": cursor})[0] == 200
    for query in ({"state": "resolved"}, {}, {"charger_id": "CP-1", "state": "open"}, {"cursor": "forged"}):
        status, headers, problem = api_calls.get_json(lambda_context, "/alerts", {"cursor": cursor, **query})
        assert status == 400, query
        assert headers["content-type"] == "application/problem+json"
        assert problem["status"] == 400
        assert "cursor" in problem["detail"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, 400),
        ({"state": "closed"}, 422),
        ({"state": "all"}, 422),
        ({"kind": "on_fire"}, 422),
        ({"vendor": "acme"}, 422),
        ({"limit": "0"}, 422),
        ({"limit": "501"}, 422),
        ({"from": "yesterday"}, 422),
        ({"from": "2026-11-20T00:00:00"}, 422),  # no offset
        ({"charger_id": "CP 1"}, 422),
    ],
)
def test_bad_queries_are_problems_whose_status_is_the_http_status(
    stack: LocalStack, lambda_context: Any, query: dict[str, str], expected: int
) -> None:
    status, headers, problem = api_calls.get_json(lambda_context, "/alerts", query)
    assert status == expected, problem
    assert headers["content-type"] == "application/problem+json"
    assert problem["status"] == expected


def test_no_alerts_is_an_empty_page(stack: LocalStack, lambda_context: Any) -> None:
    status, _, body = api_calls.get_json(lambda_context, "/alerts")
    assert (status, body) == (200, {"alerts": [], "next_cursor": None})


# ---------------------------------------------------------------------------------------------- GET /alerts/{id}


def test_one_alert_by_its_id(alerts: AlertStore, lambda_context: Any) -> None:
    alert = make_alert(1, T0, kind="connector_faulted", connector_id=2, site_id="S-1")
    alerts.open(alert)
    resolved = alerts.resolve(alert.alert_id, T0 + timedelta(minutes=9), "Available again", ["ocpplab:r-9"])

    status, _, body = api_calls.get_json(lambda_context, f"/alerts/{alert.alert_id}")

    assert status == 200, body
    assert Alert.model_validate(body) == resolved
    assert body["resolved_at"] == "2026-11-20T08:09:00Z"
    assert body["connector_id"] == 2


@pytest.mark.parametrize(
    ("alert_id", "expected"),
    [
        ("alert_" + "0" * 24, 404),
        ("alert_" + "A" * 24, 400),
        ("alert_123", 400),
        ("nope", 400),
        ("x" * 65, 422),
    ],
)
def test_an_unknown_or_malformed_alert_id(stack: LocalStack, lambda_context: Any, alert_id: str, expected: int) -> None:
    status, headers, problem = api_calls.get_json(lambda_context, f"/alerts/{alert_id}")
    assert status == expected, problem
    assert headers["content-type"] == "application/problem+json"
    assert problem["status"] == expected


# ---------------------------------------------------------------------------------------------- a charger's health


def heartbeat(charger: str, vendor: str, source: str, at: datetime, site: str | None = None) -> LogRecord:
    return LogRecord.model_validate(
        {
            "vendor": vendor,
            "source_id": source,
            "charger_id": charger,
            "site_id": site,
            "timestamp": at,
            "kind": "ocpp",
            "action": "Heartbeat",
            "direction": "cp_to_csms",
            "message_type": "CALL",
            "message_id": f"hb-{at.timestamp()}",
            "payload": {},
            "record_id": record_id_for(vendor, source, None, at=at, charger=charger),
            "raw": {},
        }
    )


def write(stack: LocalStack, records: list[LogRecord]) -> None:
    RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), hot_retention_days=400).write(records)


def state_json(connectors: dict[str, Any], interval: int | None, open_alerts: dict[str, str], **extra: Any) -> str:
    return json.dumps(
        {"connectors": connectors, "heartbeat_interval_seconds": interval, "open_alerts": open_alerts, **extra}
    )


def test_a_chargers_health_names_its_last_record_connectors_and_open_alerts(
    stack: LocalStack, alerts: AlertStore, health: HealthStore, lambda_context: Any
) -> None:
    write(
        stack,
        [
            heartbeat("CP-1", "ocpplab", "CP-1", T0),
            heartbeat("CP-1", "chargepilot", "SITE-1", T0 + timedelta(hours=2), site="SITE-1"),
        ],
    )
    faulted = make_alert(1, T0 + timedelta(minutes=30), kind="connector_faulted", connector_id=2)
    booting = make_alert(2, T0 + timedelta(minutes=50))
    over = make_alert(3, T0 + timedelta(minutes=10), kind="error_burst")
    for alert in (faulted, booting, over):
        alerts.open(alert)
    alerts.resolve(over.alert_id, T0 + timedelta(minutes=20), "quiet", [])  # the state has not caught up
    health.put(
        "chargepilot",
        "SITE-1",
        "CP-1",
        "SITE-1",
        state_json(
            {
                "1": {"status": "Available", "error_code": "NoError", "at": z(T0), "record_id": "r1", "seen": 4},
                "2": {
                    "status": "Faulted",
                    "error_code": "GroundFailure",
                    "at": z(T0 + timedelta(minutes=25)),
                    "record_id": "r2",
                },
                "0": {"status": "Available", "at": z(T0 - timedelta(days=1)), "record_id": "r0"},
                "x": {"status": "odd key"},
                "3": {"status": "Unavailable"},  # no time nor record: left out
            },
            300,
            {"boot_loop": booting.alert_id, "connector_faulted:2": faulted.alert_id, "error_burst": over.alert_id},
            boots=["a", "b"],
        ),
        expected_version=None,
    )
    health.put(
        "ocpplab",
        "CP-1",
        "CP-1",
        None,
        state_json(
            {"1": {"status": "Charging", "at": z(T0 - timedelta(hours=1)), "record_id": "old"}},  # older than above
            60,
            {},
        ),
        expected_version=None,
    )

    status, _, body = api_calls.get_json(lambda_context, "/chargers/CP-1/health")

    assert status == 200, body
    assert body["charger_id"] == "CP-1"
    assert (body["vendor"], body["source_id"], body["site_id"]) == ("chargepilot", "SITE-1", "SITE-1")  # latest
    assert body["last_record_at"] == "2026-11-20T10:00:00Z"
    assert body["heartbeat_interval_seconds"] == 300  # the latest source's
    assert body["connectors"] == [
        {"connector_id": 0, "status": "Available", "error_code": None, "since": "2026-11-19T08:00:00Z",
         "record_id": "r0"},
        {"connector_id": 1, "status": "Available", "error_code": "NoError", "since": "2026-11-20T08:00:00Z",
         "record_id": "r1"},
        {"connector_id": 2, "status": "Faulted", "error_code": "GroundFailure", "since": "2026-11-20T08:25:00Z",
         "record_id": "r2"},
    ]  # fmt: skip
    assert [alert["alert_id"] for alert in body["open_alerts"]] == [booting.alert_id, faulted.alert_id]
    assert Alert.model_validate(body["open_alerts"][1]) == faulted


def test_a_charger_with_records_but_no_state_yet(stack: LocalStack, lambda_context: Any) -> None:
    write(stack, [heartbeat("CP-7", "ocpplab", "CP-7", T0)])
    status, _, body = api_calls.get_json(lambda_context, "/chargers/CP-7/health")
    assert status == 200, body
    assert body == {
        "charger_id": "CP-7",
        "vendor": "ocpplab",
        "source_id": "CP-7",
        "site_id": None,
        "last_record_at": "2026-11-20T08:00:00Z",
        "heartbeat_interval_seconds": None,
        "connectors": [],
        "open_alerts": [],
    }


def test_a_state_the_route_cannot_read_is_left_out(stack: LocalStack, health: HealthStore, lambda_context: Any) -> None:
    write(stack, [heartbeat("CP-8", "ocpplab", "CP-8", T0)])
    health.put("ocpplab", "CP-8", "CP-8", None, '{"connectors": "not a map"', expected_version=None)
    status, _, body = api_calls.get_json(lambda_context, "/chargers/CP-8/health")
    assert status == 200, body
    assert body["connectors"] == []
    assert body["last_record_at"] == "2026-11-20T08:00:00Z"


def test_an_unknown_charger_is_404(stack: LocalStack, health: HealthStore, lambda_context: Any) -> None:
    write(stack, [heartbeat("CP-1#2", "chargepilot", "SITE-2", T0)])  # another charger, whose id starts with CP-1
    status, headers, problem = api_calls.get_json(lambda_context, "/chargers/CP-1/health")
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert problem["status"] == 404
    # A state alone (its charger index entry not written yet) is enough.
    health.put("ocpplab", "CP-1", "CP-1", None, state_json({}, 120, {}), expected_version=None)
    status, _, body = api_calls.get_json(lambda_context, "/chargers/CP-1/health")
    assert status == 200, body
    assert (body["vendor"], body["last_record_at"], body["heartbeat_interval_seconds"]) == ("ocpplab", None, 120)
