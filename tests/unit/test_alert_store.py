"""Where alerts and charger health state live (chargelog.dal.alerts), on the template's table in moto: an alert opened
once per episode and resolved once, each state's alerts listed newest first page by page (no duplicates, no gaps, both
partitions merged), a notification claimed once, a charger's state written with optimistic concurrency."""

from __future__ import annotations

import base64
import os
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chargelog import aws, stores
from chargelog.dal.alerts import AlertStore, HealthStore, StoredHealth, alert_key
from chargelog.dal.record_queries import ChargerIndexEntry, RecordStore
from chargelog.dal.records import RecordWriter
from chargelog.models.alerts import Alert, alert_id_for
from chargelog.models.records import LogRecord, record_id_for
from chargelog_local.provision import LocalStack

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
RETENTION_DAYS = 400


@pytest.fixture
def alerts(stack: LocalStack) -> AlertStore:
    return AlertStore(stack.refs["Table"], alert_retention_days=RETENTION_DAYS)


@pytest.fixture
def health(stack: LocalStack) -> HealthStore:
    return HealthStore(stack.refs["Table"])


def make_alert(
    n: int,
    opened_at: datetime,
    *,
    charger: str = "CP-1",
    kind: str = "boot_loop",
    vendor: str = "ocpplab",
    site: str | None = None,
    connector: int | None = None,
    **fields: Any,
) -> Alert:
    return Alert.model_validate(
        {
            "alert_id": alert_id_for(vendor, charger, charger, kind, connector, f"rec-{n}"),
            "kind": kind,
            "state": "open",
            "charger_id": charger,
            "vendor": vendor,
            "source_id": charger,
            "site_id": site,
            "connector_id": connector,
            "opened_at": opened_at,
            "summary": f"alert {n}",
            "evidence": [f"ocpplab:rec-{n}"],
            **fields,
        }
    )


def item(stack: LocalStack, alert_id: str) -> dict[str, Any]:
    return dict(aws.table(stack.refs["Table"]).get_item(Key=alert_key(alert_id))["Item"])


# ---------------------------------------------------------------------------------------------- open, resolve, get


def test_an_alert_is_opened_once_and_stored_under_its_state(alerts: AlertStore, stack: LocalStack) -> None:
    alert = make_alert(1, T0, connector=2, kind="connector_faulted", site="S-1")

    assert alerts.open(alert) is True
    assert alerts.open(alert) is False  # the same episode read again
    assert alerts.open(alert.model_copy(update={"summary": "another reading"})) is False

    stored = item(stack, alert.alert_id)
    assert stored["pk"] == f"ALERT#{alert.alert_id}"
    assert stored["sk"] == "ALERT"
    assert stored["gsi2pk"] == "ALERTS#open"
    assert stored["gsi2sk"] == f"2026-11-20T08:00:00.000000Z#{alert.alert_id}"
    assert stored["opened_at"] == "2026-11-20T08:00:00+00:00"
    assert not {"resolved_at", "resolution", "resolution_evidence"} & stored.keys()
    assert "expires_at" not in stored  # an open alert stays until it resolves
    assert alerts.get(alert.alert_id) == alert


def test_an_alert_resolves_once_moves_to_the_resolved_partition_and_expires(
    alerts: AlertStore, stack: LocalStack
) -> None:
    alert = make_alert(1, T0)
    alerts.open(alert)
    resolved_at = T0 + timedelta(hours=2)

    resolved = alerts.resolve(alert.alert_id, resolved_at, "No boot for 30 min", ["ocpplab:r-1", "ocpplab:r-2"])

    assert resolved == alert.model_copy(
        update={
            "state": "resolved",
            "resolved_at": resolved_at,
            "resolution": "No boot for 30 min",
            "resolution_evidence": ["ocpplab:r-1", "ocpplab:r-2"],
        }
    )
    stored = item(stack, alert.alert_id)
    assert stored["gsi2pk"] == "ALERTS#resolved"
    assert stored["gsi2sk"] == f"2026-11-20T08:00:00.000000Z#{alert.alert_id}"  # still in the order it opened
    assert stored["expires_at"] == int((resolved_at + timedelta(days=RETENTION_DAYS)).timestamp())
    assert alerts.get(alert.alert_id) == resolved
    # Once: a second resolution (a replay of the records that ended it) changes nothing.
    assert alerts.resolve(alert.alert_id, resolved_at + timedelta(hours=1), "again", []) is None
    assert alerts.get(alert.alert_id) == resolved
    # And a resolved episode is not opened again.
    assert alerts.open(alert) is False
    assert alerts.get(alert.alert_id) == resolved


def test_resolving_an_unknown_alert_writes_nothing(alerts: AlertStore, stack: LocalStack) -> None:
    unknown = make_alert(9, T0).alert_id
    assert alerts.resolve(unknown, T0, "gone", []) is None
    assert alerts.get(unknown) is None
    assert "Item" not in aws.table(stack.refs["Table"]).get_item(Key=alert_key(unknown))


def test_resolution_evidence_keeps_the_first_records(alerts: AlertStore) -> None:
    alert = make_alert(1, T0)
    alerts.open(alert)
    resolved = alerts.resolve(alert.alert_id, T0, "over", [f"r-{n}" for n in range(30)])
    assert resolved is not None
    assert resolved.resolution_evidence == [f"r-{n}" for n in range(20)]


def test_get_many_returns_the_alerts_that_exist_in_the_order_asked(alerts: AlertStore) -> None:
    opened = [make_alert(n, T0 + timedelta(minutes=n)) for n in range(5)]
    for alert in opened:
        alerts.open(alert)
    missing = make_alert(99, T0).alert_id
    ids = [opened[3].alert_id, missing, opened[0].alert_id, opened[3].alert_id]

    assert alerts.get_many(ids) == [opened[3], opened[0]]
    assert alerts.get_many([]) == []


# ---------------------------------------------------------------------------------------------- list


def seed(alerts: AlertStore, count: int) -> list[Alert]:
    """``count`` alerts a minute apart (some pairs at the same instant), every third resolved, varied chargers,
    sites, vendors and kinds."""
    kinds = ("boot_loop", "offline", "error_burst")
    vendors = ("ocpplab", "plugchoice")
    made = []
    for n in range(count):
        alert = make_alert(
            n,
            T0 + timedelta(minutes=n // 2 * 2),  # two alerts per instant
            charger=f"CP-{n % 4}",
            site=f"S-{n % 2}",
            kind=kinds[n % 3],
            vendor=vendors[n % 5 % 2],
        )
        alerts.open(alert)
        if n % 3 == 0:
            resolved = alerts.resolve(alert.alert_id, alert.opened_at + timedelta(minutes=5), "over", [])
            assert resolved is not None
            alert = resolved
        made.append(alert)
    return made


def newest_first(alerts: list[Alert]) -> list[str]:
    return [
        alert.alert_id for alert in sorted(alerts, key=lambda alert: (alert.opened_at, alert.alert_id), reverse=True)
    ]


def every_page(alerts: AlertStore, limit: int, after: str | None = None, **filters: Any) -> tuple[list[str], int]:
    """Every alert over every page (from ``after``), and how many pages it took."""
    found: list[str] = []
    pages = 0
    while True:
        page, after = alerts.list(limit=limit, after=after, **filters)
        pages += 1
        assert len(page) <= limit
        found += [alert.alert_id for alert in page]
        if after is None:
            return found, pages
        assert pages < 100, "the pages do not end"


def test_both_states_merge_newest_first_page_by_page_without_duplicates_or_gaps(alerts: AlertStore) -> None:
    made = seed(alerts, 41)
    expected = newest_first(made)
    for limit in (1, 3, 7, 40, 41, 100):
        found, pages = every_page(alerts, limit)
        assert found == expected, limit
        assert pages <= len(made) // limit + 2


def test_one_state_is_its_own_partition(alerts: AlertStore) -> None:
    made = seed(alerts, 30)
    for state in ("open", "resolved"):
        found, _ = every_page(alerts, 4, state=state)
        assert found == newest_first([alert for alert in made if alert.state == state])
    first, _ = alerts.list(state="open", limit=100)
    assert all(alert.state == "open" for alert in first)


@pytest.mark.parametrize(
    "filters",
    [
        {"charger_id": "CP-1"},
        {"site_id": "S-0"},
        {"vendor": "plugchoice"},
        {"kind": "offline"},
        {"kind": "offline", "charger_id": "CP-2", "state": "open"},
        {"charger_id": "CP-unknown"},
    ],
)
def test_filters_keep_their_alerts_across_pages(alerts: AlertStore, filters: dict[str, Any]) -> None:
    made = seed(alerts, 36)
    wanted = {"charger_id": "charger_id", "site_id": "site_id", "vendor": "vendor", "kind": "kind", "state": "state"}
    expected = newest_first(
        [alert for alert in made if all(getattr(alert, wanted[name]) == value for name, value in filters.items())]
    )
    found, _ = every_page(alerts, 2, **filters)
    assert found == expected


def test_a_time_range_takes_the_alerts_opened_in_it_both_ends_included(alerts: AlertStore) -> None:
    made = seed(alerts, 30)
    start, end = T0 + timedelta(minutes=6), T0 + timedelta(minutes=14)
    expected = newest_first([alert for alert in made if start <= alert.opened_at <= end])
    assert len(expected) == 10
    for limit in (1, 3, 100):
        assert every_page(alerts, limit, opened_from=start, opened_to=end)[0] == expected
    assert every_page(alerts, 2, opened_from=start)[0] == newest_first([a for a in made if a.opened_at >= start])
    assert every_page(alerts, 2, opened_to=end)[0] == newest_first([a for a in made if a.opened_at <= end])
    assert alerts.list(opened_from=end, opened_to=start) == ([], None)


def test_an_alert_that_resolves_between_pages_is_listed_once(alerts: AlertStore) -> None:
    made = seed(alerts, 12)
    expected = newest_first(made)
    first, after = alerts.list(limit=5)
    assert [alert.alert_id for alert in first] == expected[:5]
    # One already listed and one not yet listed move from the open partition to the resolved one.
    for alert_id in (expected[1], expected[8]):
        if alerts.get(alert_id).state == "open":  # type: ignore[union-attr]
            alerts.resolve(alert_id, T0 + timedelta(hours=1), "over", [])
    rest, _ = every_page(alerts, 5, after=after)
    assert [alert.alert_id for alert in first] + rest == expected


def test_a_page_that_reads_too_much_ends_early_and_the_next_goes_on_from_there(alerts: AlertStore) -> None:
    made = seed(alerts, 40)
    expected = newest_first([alert for alert in made if alert.charger_id == "CP-3"])
    found: list[str] = []
    after = None
    pages = 0
    while True:
        page, after = alerts.list(charger_id="CP-3", limit=5, after=after, read_budget=6)
        found += [alert.alert_id for alert in page]
        pages += 1
        if after is None:
            break
        assert pages < 60
    assert found == expected
    assert pages > 2  # some pages ended short of 5: the budget stopped them


# ---------------------------------------------------------------------------------------------- notifications


def test_a_notification_is_claimed_once_per_state_and_released_when_its_send_failed(
    alerts: AlertStore, stack: LocalStack
) -> None:
    alert = make_alert(1, T0)
    alerts.open(alert)

    assert alerts.claim_notification(alert.alert_id, "open") is True
    assert alerts.claim_notification(alert.alert_id, "open") is False
    assert alerts.claim_notification(alert.alert_id, "resolved") is True
    assert item(stack, alert.alert_id)["notified"] == {"open", "resolved"}

    alerts.release_notification(alert.alert_id, "resolved")  # its send failed
    assert item(stack, alert.alert_id)["notified"] == {"open"}
    assert alerts.claim_notification(alert.alert_id, "resolved") is True
    assert alerts.get(alert.alert_id) == alert  # the bookkeeping is not part of the alert


def test_claims_on_an_unknown_alert_write_nothing(alerts: AlertStore, stack: LocalStack) -> None:
    unknown = make_alert(7, T0).alert_id
    assert alerts.claim_notification(unknown, "open") is False
    alerts.release_notification(unknown, "open")
    assert "Item" not in aws.table(stack.refs["Table"]).get_item(Key=alert_key(unknown))


# ---------------------------------------------------------------------------------------------- health state


def test_a_charger_state_is_written_with_optimistic_concurrency(health: HealthStore) -> None:
    assert health.get("ocpplab", "CP-1", "CP-1") is None
    assert health.put("ocpplab", "CP-1", "CP-1", None, '{"connectors": {}}', expected_version=None) == 1
    assert health.put("ocpplab", "CP-1", "CP-1", None, '{"lost": 1}', expected_version=None) is None  # exists
    assert health.put("ocpplab", "CP-1", "CP-1", None, '{"a": 2}', expected_version=1) == 2
    assert health.put("ocpplab", "CP-1", "CP-1", None, '{"stale": 1}', expected_version=1) is None  # another wrote
    assert health.get("ocpplab", "CP-1", "CP-1") == StoredHealth("CP-1", "ocpplab", "CP-1", None, '{"a": 2}', 2)
    assert health.put("ocpplab", "CP-9", "CP-9", None, "{}", expected_version=3) is None  # no state yet
    assert health.get("ocpplab", "CP-9", "CP-9") is None


def test_a_long_state_is_stored_compressed_and_read_back_as_written(health: HealthStore, stack: LocalStack) -> None:
    short = '{"connectors": {"1": {"status": "Available"}}}'
    long = '{"boots": [' + ",".join(f'"ocpplab:h:{os.urandom(16).hex()}"' for _ in range(20)) + "]}"
    health.put("ocpplab", "CP-1", "CP-1", "S-1", short, expected_version=None)
    health.put("ocpplab", "CP-2", "CP-2", None, long, expected_version=None)
    table = aws.table(stack.refs["Table"])
    stored_short = table.get_item(Key={"pk": "HEALTH", "sk": "CP-1#ocpplab#CP-1"})["Item"]
    stored_long = table.get_item(Key={"pk": "HEALTH", "sk": "CP-2#ocpplab#CP-2"})["Item"]
    assert stored_short["state"] == short
    assert stored_short["site_id"] == "S-1"
    assert zlib.decompress(bytes(stored_long["state"].value)).decode() == long
    assert len(stored_long["state"].value) < len(long)
    assert health.get("ocpplab", "CP-2", "CP-2").state_json == long  # type: ignore[union-attr]


def test_a_chargers_states_and_every_state(health: HealthStore) -> None:
    health.put("ocpplab", "CP-1", "CP-1", None, "{}", expected_version=None)
    health.put("chargepilot", "SITE-1", "CP-1", "SITE-1", '{"x": 1}', expected_version=None)
    health.put("ocpplab", "CP-1#2", "CP-1#2", None, "{}", expected_version=None)  # starts with "CP-1#"
    health.put("ocpplab", "CP-10", "CP-10", None, "{}", expected_version=None)

    mine = health.for_charger("CP-1")
    assert sorted((state.vendor, state.source_id, state.site_id) for state in mine) == [
        ("chargepilot", "SITE-1", "SITE-1"),
        ("ocpplab", "CP-1", None),
    ]
    assert health.for_charger("CP-404") == []
    assert sorted(state.charger_id for state in health.all()) == ["CP-1", "CP-1", "CP-1#2", "CP-10"]


def test_every_state_is_read_over_every_page(health: HealthStore) -> None:
    # ~1.5 KB a state even compressed: 800 of them are more than the 1 MB one Query page holds.
    for n in range(800):
        padding = base64.b64encode(os.urandom(1_500)).decode()
        health.put("ocpplab", f"CP-{n}", f"CP-{n}", None, f'"{padding}"', expected_version=None)
    assert sum(1 for _ in health.all()) == 800


# ---------------------------------------------------------------------------------------------- charger index


def test_a_chargers_index_entries_and_every_entry(stack: LocalStack) -> None:
    writer = RecordWriter(stack.refs["Table"], stores.raw_archive(), hot_retention_days=400)

    def record(charger: str, vendor: str, source: str, at: datetime, site: str | None = None) -> LogRecord:
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
                "message_id": f"m-{at.timestamp()}",
                "payload": {},
                "record_id": record_id_for(vendor, source, None, at=at.isoformat(), charger=charger),
                "raw": {},
            }
        )

    writer.write(
        [
            record("CP-1", "ocpplab", "CP-1", T0),
            record("CP-1", "ocpplab", "CP-1", T0 + timedelta(hours=1)),
            record("CP-1", "chargepilot", "SITE-1", T0 + timedelta(hours=2), site="SITE-1"),
            record("CP-1#2", "chargepilot", "SITE-2", T0),
            record("CP-2", "ocpplab", "CP-2", T0),
        ]
    )
    store = RecordStore(stack.refs["Table"])
    assert sorted(store.charger_entries("CP-1"), key=lambda entry: entry.vendor) == [
        ChargerIndexEntry("CP-1", "chargepilot", "SITE-1", "SITE-1", T0 + timedelta(hours=2), T0 + timedelta(hours=2)),
        ChargerIndexEntry("CP-1", "ocpplab", "CP-1", None, T0, T0 + timedelta(hours=1)),
    ]
    assert store.charger_entries("CP-3") == []
    assert sorted(entry.charger_id for entry in store.charger_index()) == ["CP-1", "CP-1", "CP-1#2", "CP-2"]
