"""`chargelog logs`: the CLI's main() against the API over HTTP, as `chargelog local` serves it.

The template's ApiFunction runs behind the local API Gateway on 127.0.0.1, on moto in this process.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chargelog import aws
from chargelog.dal.archive import RawArchive
from chargelog.dal.records import RecordWriter
from chargelog.dal.sources import source_item
from chargelog.models.records import LogRecord, record_id_for
from chargelog.models.sources import Source
from chargelog_cli.logs import Page, Progress, TableWriter, summarize
from chargelog_cli.main import main
from chargelog_local.provision import LocalStack
from local_api import Api, serve_api

API_KEY = "cli-logs-test-key-0123456789"
START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
ACTIONS = ("Heartbeat", "StatusNotification", "BootNotification")


def record(n: int, charger: str = "CP-0001", site: str | None = None, **fields: Any) -> LogRecord:
    action = fields.pop("action", ACTIONS[n % len(ACTIONS)])
    return LogRecord(
        vendor="ocpplab",
        source_id=site or charger,
        site_id=site,
        charger_id=charger,
        connector_id=1,
        timestamp=fields.pop("at", START + timedelta(seconds=10 * n)),
        kind="ocpp",
        action=action,
        direction=fields.pop("direction", "cp_to_csms"),
        message_type=fields.pop("message_type", "CALL"),
        message_id=f"m-{n}",
        payload=fields.pop("payload", {"n": n}),
        record_id=record_id_for("ocpplab", charger, None, n=n, charger=charger),
        raw={"n": n},
        **fields,
    )


@pytest.fixture
def api(stack: LocalStack, template: dict[str, Any]) -> Iterator[Api]:
    """The template's API function behind the local gateway, on 127.0.0.1; it notes each request's query."""
    with serve_api(template, API_KEY) as served:
        yield served


@pytest.fixture
def write(stack: LocalStack) -> Any:
    writer = RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), hot_retention_days=400)
    return writer.write


def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, api: Api, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("CHARGELOG_API_URL", api.url)
    monkeypatch.setenv("CHARGELOG_API_KEY", API_KEY)
    code = main(["logs", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_json_follows_every_cursor_and_prints_one_array(
    api: Api, write: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    write([record(n) for n in range(23)])
    code, out, err = run(capsys, monkeypatch, api, "CP-0001", "--format", "json", "--page-size", "5", "--order", order)
    assert code == 0, err
    records = json.loads(out)
    assert [r["payload"]["n"] for r in records] == sorted(range(23), reverse=order == "desc")
    assert len(api.queries) == 5  # ceil(23 / 5) pages
    assert [q.get("cursor") is None for q in api.queries] == [True, False, False, False, False]
    assert err == ""  # no progress when stderr is not a terminal


def test_filters_and_time_range_reach_the_api(
    api: Api, write: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write([record(n) for n in range(30)])
    write([record(100, direction="csms_to_cp", message_type="CALLRESULT", action="BootNotification")])
    window = ("--from", "2026-11-20T08:01:00Z", "--to", "2026-11-20T09:02:30+01:00")  # n = 6 .. 15
    code, out, err = run(capsys, monkeypatch, api, "CP-0001", *window, "--format", "ndjson")
    assert code == 0, err
    assert [json.loads(line)["payload"]["n"] for line in out.splitlines()] == list(range(6, 16))
    code, out, _ = run(
        capsys, monkeypatch, api, "CP-0001", "--action", "BootNotification", "--action", "Heartbeat", "--format", "json"
    )
    assert [r["payload"]["n"] for r in json.loads(out)] == [n for n in range(30) if n % 3 != 1] + [100]
    code, out, _ = run(capsys, monkeypatch, api, "CP-0001", "--direction", "csms_to_cp", "--format", "json")
    assert [r["message_type"] for r in json.loads(out)] == ["CALLRESULT"]
    code, out, _ = run(capsys, monkeypatch, api, "CP-0001", "--message-type", "CALLRESULT", "--format", "json")
    assert [r["payload"]["n"] for r in json.loads(out)] == [100]


def test_ndjson_stops_at_the_limit_across_pages(
    api: Api, write: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write([record(n) for n in range(40)])
    code, out, err = run(capsys, monkeypatch, api, "CP-0001", "--format", "ndjson", "--page-size", "4", "--limit", "10")
    assert code == 0, err
    assert [json.loads(line)["payload"]["n"] for line in out.splitlines()] == list(range(10))
    assert [q["limit"] for q in api.queries] == [["4"], ["4"], ["2"]]  # the last page asks only for what is left


def test_csv_has_one_header_over_several_pages(
    api: Api, write: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write([record(n, payload={"n": n, "note": "a, b\nc"}) for n in range(12)])
    code, out, err = run(capsys, monkeypatch, api, "CP-0001", "--format", "csv", "--page-size", "5")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [json.loads(row["payload"])["n"] for row in rows] == list(range(12))
    assert out.count("timestamp") == 1
    assert len(api.queries) == 3


def test_table_shows_time_direction_type_action_message_id_and_payload(
    api: Api, write: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        [
            record(1, action="StatusNotification", payload={"connectorId": 1, "status": "Available"}),
            record(
                2,
                action="StatusNotification",
                direction="csms_to_cp",
                message_type="CALLERROR",
                payload=None,
                result={"errorCode": "InternalError", "errorDescription": "out of order"},
                status="InternalError",
            ),
        ]
    )
    code, out, err = run(capsys, monkeypatch, api, "CP-0001")
    assert code == 0, err
    header, first, second = out.splitlines()
    assert header.split() == ["TIME", "(UTC)", "CONN", "DIR", "TYPE", "ACTION", "MESSAGE", "ID", "STATUS", "PAYLOAD"]
    assert first.startswith("2026-11-20 08:00:10.000  1")
    assert "→ CSMS  CALL" in first
    assert "StatusNotification" in first
    assert " m-1 " in first
    assert first.endswith("connectorId=1 status=Available")
    assert "← CSMS  CALLERROR" in second
    assert "InternalError" in second
    assert second.endswith('errorCode=InternalError errorDescription="out of order"')
    assert first.index("CALL") == second.index("CALLERROR") == header.index("TYPE")  # aligned
    assert first.index("m-1") == second.index("m-2") == header.index("MESSAGE ID")


def test_site_and_fleet_scopes_show_the_charger(
    api: Api, write: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    write([record(n, charger=f"CP-{n % 2}", site="SITE-1", at=now - timedelta(minutes=n)) for n in range(6)])
    write([record(9, charger="CP-9", action="BootNotification", at=now - timedelta(hours=1))])
    code, out, err = run(capsys, monkeypatch, api, "--site", "SITE-1", "--order", "desc")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[2] == "CHARGER"
    assert [line.split()[2] for line in lines[1:]] == ["CP-0", "CP-1", "CP-0", "CP-1", "CP-0", "CP-1"]
    code, out, err = run(capsys, monkeypatch, api, "--fleet", "--action", "BootNotification", "--format", "json")
    assert code == 0, err
    assert sorted((r["charger_id"], r["payload"]["n"]) for r in json.loads(out)) == [
        ("CP-0", 2),
        ("CP-1", 5),
        ("CP-9", 9),
    ]


def test_nothing_found_says_so(api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(capsys, monkeypatch, api, "CP-none")[:2] == (0, "No records.\n")
    assert run(capsys, monkeypatch, api, "CP-none", "--format", "json")[:2] == (0, "[]\n")


def test_an_api_problem_is_one_line_on_stderr_and_exit_1(
    api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(
        capsys, monkeypatch, api, "CP-0001", "--from", "2026-11-21T00:00Z", "--to", "2026-11-20T00:00Z"
    )
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("chargelog: error: HTTP 400 ")
    assert "is after 'to'" in err
    code, _, err = run(capsys, monkeypatch, api, "CP-0001", "--api-key", "wrong")
    assert code == 1
    assert err.startswith("chargelog: error: HTTP 403 Forbidden")
    with pytest.raises(SystemExit, match="--fleet needs at least one --action"):
        run(capsys, monkeypatch, api, "--fleet")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11-20T08:00:00", "has no UTC offset: add Z"),
        ("2026-11-20", "has no UTC offset"),
        ("last tuesday", "is not an ISO 8601 time"),
    ],
)
def test_a_time_without_an_offset_or_not_a_time_is_refused(
    capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["logs", "CP-0001", "--from", value, "--api-url", "http://127.0.0.1:9", "--api-key", "k"])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_progress_goes_to_stderr_and_rows_fit_the_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    out, err = Terminal(), Terminal()
    record_fields = {"timestamp": "2026-11-20T08:00:00Z", "message_id": "m-1", "direction": "cp_to_csms"}
    payload = {"meterValue": [{"sampledValue": [{"value": str(v)} for v in range(50)]}]}
    page = Page(records=[record_fields | {"payload": payload}] * 3, text="", count=3, next_cursor=None)
    table, progress = TableWriter(out, with_charger=False), Progress(err, limit=None)
    for _ in range(2):
        table.page(page)
        progress.add(page.count)
    progress.end()
    lines = out.getvalue().splitlines()
    assert len(lines) == 7
    assert all(len(line) <= 100 for line in lines)
    assert lines[1].endswith("…")
    assert lines[1].endswith(" meterValue=[{sampledValue=…")
    assert summarize(payload) == "meterValue=[{sampledValue=[{value=0}, {value=1}, …+48]}]"
    assert err.getvalue() == "\r\x1b[K3 records…\r\x1b[K6 records…\r\x1b[K"
    not_a_terminal = io.StringIO()
    quiet = Progress(not_a_terminal, limit=None)
    quiet.add(3)
    quiet.end()
    assert not_a_terminal.getvalue() == ""


def test_normalized_field_filters_reach_the_api(
    api: Api, write: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write([record(n, action="MeterValues", payload={"connectorId": 1, "transactionId": 7 + n % 2}) for n in range(6)])
    write([record(50, action="StatusNotification", payload={"connectorId": 1, "status": "Faulted", "errorCode": "X"})])
    code, out, err = run(capsys, monkeypatch, api, "CP-0001", "--transaction-id", "8", "--format", "json")
    assert code == 0, err
    assert [r["extracted"]["transaction_id"] for r in json.loads(out)] == ["8", "8", "8"]
    assert api.queries[-1]["transaction_id"] == ["8"]
    code, out, _ = run(
        capsys, monkeypatch, api, "CP-0001", "--connector-status", "Faulted", "--kind", "ocpp", "--format", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(row["connector_status"], row["kind"]) for row in rows] == [("Faulted", "ocpp")]
    assert api.queries[-1]["kind"] == ["ocpp"]


def test_status_prints_the_timeline(
    api: Api, write: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    statuses = ("Available", "Charging", "Faulted")
    write(
        [
            record(
                n,
                action="StatusNotification",
                payload={
                    "connectorId": 1 + n % 2,
                    "status": statuses[n % 3],
                    "errorCode": "NoError" if n % 3 < 2 else "GroundFailure",
                },
            )
            for n in range(7)
        ]
    )
    monkeypatch.setenv("CHARGELOG_API_URL", api.url)
    monkeypatch.setenv("CHARGELOG_API_KEY", API_KEY)
    assert main(["status", "CP-0001", "--format", "json", "--limit", "5"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["connector_status"] for e in entries] == [statuses[n % 3] for n in range(5)]
    assert main(["status", "CP-0001", "--order", "desc"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TIME", "(UTC)", "VENDOR", "CONN", "STATUS"]
    assert lines[1].split()[1:] == ["ocpplab", "1", "Available"]  # n = 6, newest first
    assert lines[2].split()[-2:] == ["Faulted", "(GroundFailure)"]
    assert main(["status", "CP-0001", "--from", "2026-11-21T00:00:00Z", "--to", "2026-11-20T00:00:00Z"]) == 1
    assert "after" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["logs", "sources"])
def test_a_reader_that_goes_away_stops_the_command_quietly(
    api: Api, write: Any, stack: LocalStack, command: str
) -> None:
    if command == "logs":
        write([record(n) for n in range(2000)])
        arguments = ["logs", "CP-0001", "--format", "ndjson", "--page-size", "50"]
    else:
        now = datetime(2026, 11, 21, tzinfo=UTC)
        with aws.table(stack.refs["Table"]).batch_writer() as batch:
            for n in range(1200):
                source = Source(
                    vendor="ocpplab",
                    source_id=f"dep-{n:05d}",
                    kind="charger",
                    name=f"Depot {n} " + "x" * 60,
                    enabled=True,
                    created_at=now,
                    updated_at=now,
                )
                batch.put_item(Item=source_item(source))
        arguments = ["sources", "list"]
    environment = {**os.environ, "CHARGELOG_API_URL": api.url, "CHARGELOG_API_KEY": API_KEY}
    # `chargelog ... | head -n 1`: the reader closes the pipe after the first line, with more output to come
    # than the pipe holds.
    writer = subprocess.Popen(
        [sys.executable, "-m", "chargelog_cli.main", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline()
    writer.stdout.close()
    _, err = writer.communicate(timeout=120)
    assert err == b""  # no traceback, no "Exception ignored ... BrokenPipeError"
    assert writer.returncode == 0
