"""`chargelog alerts` and `chargelog health`: the CLI's main() against the alerts routes over HTTP (the local gateway,
as `chargelog local` serves it). Alerts as a table following cursors up to --limit; a charger's health in lines, with
an exit status scripts can test: 0 without open alerts, 3 with; one-line errors for the API's problems."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chargelog import stores
from chargelog.dal.archive import RawArchive
from chargelog.dal.records import RecordWriter
from chargelog.models.alerts import Alert, alert_id_for
from chargelog.models.records import LogRecord, record_id_for
from chargelog_cli.alerts import OPEN_ALERTS_EXIT, parse_since
from chargelog_cli.main import main
from chargelog_local.provision import LocalStack
from local_api import Api, serve_api

API_KEY = "cli-alerts-test-key-0123456789"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def api(stack: LocalStack, template: dict[str, Any]) -> Iterator[Api]:
    with serve_api(template, API_KEY) as served:
        yield served


def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, api: Api, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("CHARGELOG_API_URL", api.url)
    monkeypatch.setenv("CHARGELOG_API_KEY", API_KEY)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def make_alert(n: int, opened_at: datetime, charger: str = "CP-1", kind: str = "boot_loop", **fields: Any) -> Alert:
    return Alert.model_validate(
        {
            "alert_id": alert_id_for("ocpplab", charger, charger, kind, fields.get("connector_id"), f"rec-{n}"),
            "kind": kind,
            "state": "open",
            "charger_id": charger,
            "vendor": "ocpplab",
            "source_id": charger,
            "opened_at": opened_at,
            "summary": f"alert number {n}",
            **fields,
        }
    )


def opened(*alerts: Alert) -> None:
    for alert in alerts:
        assert stores.alerts().open(alert)


def test_since_is_a_time_ago_or_an_iso_time() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2w", now) == now - timedelta(weeks=2)
    assert parse_since("2026-11-20T08:00:00+01:00") == datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
    for bad in ("yesterday", "7x", "2026-11-20T08:00:00"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_since(bad)


def test_open_alerts_as_a_table_newest_first(
    api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    older = make_alert(1, NOW - timedelta(hours=3), kind="connector_faulted", connector_id=2)
    newer = make_alert(2, NOW - timedelta(hours=1), charger="CP-22")
    gone = make_alert(3, NOW - timedelta(hours=2), kind="offline")
    opened(older, newer, gone)
    stores.alerts().resolve(gone.alert_id, NOW - timedelta(minutes=90), "back", [])

    code, out, err = run_cli(capsys, monkeypatch, api, "alerts")

    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert header.split() == ["OPENED", "(UTC)", "KIND", "CHARGER", "CONN", "SUMMARY", "STATE"]
    assert len(rows) == 2
    assert rows[0].split()[2:] == ["boot_loop", "CP-22", "alert", "number", "2", "open"]
    assert rows[1].split()[2:] == ["connector_faulted", "CP-1", "2", "alert", "number", "1", "open"]
    assert rows[0].startswith((NOW - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M"))
    assert api.queries[-1]["state"] == ["open"]

    code, out, _ = run_cli(capsys, monkeypatch, api, "alerts", "--state", "all")
    resolved_row = out.splitlines()[2]
    assert "offline" in resolved_row
    assert resolved_row.endswith("resolved " + (NOW - timedelta(minutes=90)).strftime("%Y-%m-%d %H:%M"))
    assert "state" not in api.queries[-1]


def test_filters_become_the_query_and_json_prints_the_alerts(
    api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    alert = make_alert(1, NOW - timedelta(hours=1), site_id="S-1")
    opened(alert, make_alert(2, NOW - timedelta(days=3)), make_alert(3, NOW, charger="CP-2"))

    code, out, err = run_cli(
        capsys,
        monkeypatch,
        api,
        "alerts",
        "--charger",
        "CP-1",
        "--site",
        "S-1",
        "--vendor",
        "ocpplab",
        "--kind",
        "boot_loop",
        "--since",
        "2d",
        "--json",
    )

    assert (code, err) == (0, "")
    assert [Alert.model_validate(found) for found in json.loads(out)] == [alert]
    query = api.queries[-1]
    assert {name: query[name] for name in ("state", "charger_id", "site_id", "vendor", "kind")} == {
        "state": ["open"],
        "charger_id": ["CP-1"],
        "site_id": ["S-1"],
        "vendor": ["ocpplab"],
        "kind": ["boot_loop"],
    }
    assert abs(datetime.fromisoformat(query["from"][0]) - (datetime.now(UTC) - timedelta(days=2))) < timedelta(
        minutes=1
    )


def test_cursors_are_followed_up_to_the_limit(
    api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    many = [make_alert(n, NOW - timedelta(minutes=n)) for n in range(12)]
    opened(*many)

    code, out, err = run_cli(capsys, monkeypatch, api, "alerts", "--json", "--limit", "12")
    assert (code, err) == (0, "")
    assert [found["alert_id"] for found in json.loads(out)] == [alert.alert_id for alert in many]

    code, out, err = run_cli(capsys, monkeypatch, api, "alerts", "--limit", "5")
    assert code == 0
    assert len(out.splitlines()) == 1 + 5
    assert "More alerts than --limit 5" in err
    assert api.queries[-1]["limit"] == ["5"]


def test_no_alerts(api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli(capsys, monkeypatch, api, "alerts") == (0, "No open alerts.\n", "")
    assert run_cli(capsys, monkeypatch, api, "alerts", "--state", "all") == (0, "No alerts.\n", "")


# ---------------------------------------------------------------------------------------------- chargelog health


def heartbeat(charger: str, at: datetime) -> LogRecord:
    return LogRecord.model_validate(
        {
            "vendor": "ocpplab",
            "source_id": charger,
            "charger_id": charger,
            "timestamp": at,
            "kind": "ocpp",
            "action": "Heartbeat",
            "direction": "cp_to_csms",
            "message_type": "CALL",
            "message_id": "hb-1",
            "payload": {},
            "record_id": record_id_for("ocpplab", charger, None, at=at, charger=charger),
            "raw": {},
        }
    )


def seed_charger(stack: LocalStack, charger: str, open_alerts: dict[str, str]) -> datetime:
    """A charger whose last record was 4 min 10 s ago, its connectors and its state; returns now."""
    now = datetime.now(UTC).replace(microsecond=0)
    writer = RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), hot_retention_days=400)
    writer.write([heartbeat(charger, now - timedelta(minutes=4, seconds=10))])
    state = {
        "connectors": {
            "1": {"status": "Available", "error_code": "NoError", "at": (now - timedelta(hours=2)).isoformat(),
                  "record_id": "r1"},
            "2": {"status": "Faulted", "error_code": "GroundFailure", "at": (now - timedelta(minutes=30)).isoformat(),
                  "record_id": "r2"},
        },
        "heartbeat_interval_seconds": 300,
        "open_alerts": open_alerts,
    }  # fmt: skip
    stores.charger_health().put("ocpplab", charger, charger, None, json.dumps(state), expected_version=None)
    return now


def test_a_healthy_charger_exits_0(
    stack: LocalStack, api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = seed_charger(stack, "CP-1", {})

    code, out, err = run_cli(capsys, monkeypatch, api, "health", "CP-1")

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "CP-1 (ocpplab CP-1)"
    last = (now - timedelta(minutes=4, seconds=10)).strftime("%Y-%m-%d %H:%M")
    assert lines[1] == f"Last record: {last} UTC (4 min ago)"
    assert lines[2] == "Heartbeat interval: 300 s"
    assert lines[3] == "Connectors:"
    assert lines[4].split()[:4] == ["1", "Available", "since", (now - timedelta(hours=2)).strftime("%Y-%m-%d")]
    assert lines[4].endswith("(for 2 h)")
    assert lines[5].split()[:3] == ["2", "Faulted", "(GroundFailure)"]
    assert lines[5].endswith("(for 30 min)")
    assert lines[6] == "Open alerts: none"


def test_a_charger_with_open_alerts_lists_them_and_exits_3(
    stack: LocalStack, api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    faulted = make_alert(1, NOW - timedelta(minutes=25), kind="connector_faulted", connector_id=2)
    opened(faulted)
    seed_charger(stack, "CP-1", {"connector_faulted:2": faulted.alert_id})

    code, out, err = run_cli(capsys, monkeypatch, api, "health", "CP-1")

    assert (code, err) == (OPEN_ALERTS_EXIT, "")
    assert "Open alerts: 1" in out
    assert out.splitlines()[-1].split()[2:] == ["connector_faulted", "CP-1", "2", "alert", "number", "1", "open"]

    code, out, _ = run_cli(capsys, monkeypatch, api, "health", "CP-1", "--json")
    assert code == OPEN_ALERTS_EXIT
    assert json.loads(out)["open_alerts"][0]["alert_id"] == faulted.alert_id


def test_api_problems_are_one_line_errors(
    api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_cli(capsys, monkeypatch, api, "health", "CP-404")
    assert (code, out) == (1, "")
    assert err == "chargelog: error: HTTP 404 Not Found: No charger 'CP-404' in the collected records.\n"

    code, out, err = run_cli(capsys, monkeypatch, api, "alerts", "--charger", "CP 1")
    assert (code, out) == (1, "")
    assert err.startswith("chargelog: error: HTTP 422 Unprocessable")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["alerts", "--state", "closed"], "argument --state: invalid choice: 'closed'"),
        (["alerts", "--kind", "on_fire"], "argument --kind: invalid choice: 'on_fire'"),
        (["alerts", "--limit", "0"], "argument --limit: '0' is not a positive whole number"),
        (["alerts", "--since", "yesterday"], "argument --since: 'yesterday' is neither a time ago"),
        (["health"], "the following arguments are required: CHARGER"),
    ],
)
def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
