"""`chargelog exports create|show`: the CLI's main() against the API over HTTP (the local gateway, as `chargelog
local` serves it); the export function runs what the API queued. Both commands print which tier answered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import export_handler
from chargelog import aws
from chargelog.dal.archive import RawArchive
from chargelog.dal.record_archive import RecordArchive
from chargelog.dal.records import RecordWriter
from chargelog.models.records import LogRecord, record_id_for
from chargelog_cli import exports as cli_exports
from chargelog_cli.main import main
from chargelog_local.lambdas import LocalLambdaContext
from chargelog_local.provision import LocalStack
from chargelog_local.triggers import sqs_event
from conftest import REGION
from local_api import Api, serve_api

API_KEY = "cli-exports-test-key-0123456789"
NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=90)  # before the hot window (30 days)


def record(n: int, at: datetime) -> LogRecord:
    return LogRecord(
        vendor="ocpplab",
        source_id="CP-0001",
        charger_id="CP-0001",
        timestamp=at,
        kind="ocpp",
        action="Heartbeat",
        direction="cp_to_csms",
        message_type="CALL",
        payload={"n": n},
        record_id=record_id_for("ocpplab", "CP-0001", None, n=n),
        raw={"n": n},
    )


@pytest.fixture
def api(stack: LocalStack, template: dict[str, Any]) -> Iterator[Api]:
    with serve_api(template, API_KEY) as served:
        yield served


@pytest.fixture
def stored(stack: LocalStack) -> list[LogRecord]:
    """Two old records (in the archive only: the table has forgotten them) and one recent (in both)."""
    old = [record(n, OLD + timedelta(minutes=n)) for n in range(2)]
    recent = record(9, NOW - timedelta(days=1))
    RecordArchive(stack.refs["RecordArchiveBucket"]).put_page([*old, recent])
    RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), 30).write([recent])
    return [*old, recent]


def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, api: Api, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("CHARGELOG_API_URL", api.url)
    monkeypatch.setenv("CHARGELOG_API_KEY", API_KEY)
    code = main(["exports", *args])
    out, err = capsys.readouterr()
    return code, out, err


def run_queued_export(stack: LocalStack) -> None:
    """What Lambda's SQS event source does with the export queue's message."""
    sqs = aws.client("sqs")
    messages = sqs.receive_message(QueueUrl=stack.refs["ExportQueue"], AttributeNames=["All"]).get("Messages", [])
    assert len(messages) == 1
    context = LocalLambdaContext(
        function_name="ExportFunction", memory_limit_in_mb=1024, timeout_seconds=900, region=REGION
    )
    event = sqs_event(messages, stack.attributes[("ExportQueue", "Arn")], REGION)
    assert export_handler.lambda_handler(event, context) == {"batchItemFailures": []}
    sqs.delete_message(QueueUrl=stack.refs["ExportQueue"], ReceiptHandle=messages[0]["ReceiptHandle"])


def export_id(out: str) -> str:
    return out.split()[1].rstrip(":")


@pytest.mark.parametrize(("days_back", "tier", "records"), [(100, "archive", 3), (2, "hot", 1)], ids=["archive", "hot"])
def test_create_then_show_print_the_tier_that_answered(
    api: Api,
    stack: LocalStack,
    stored: list[LogRecord],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    days_back: int,
    tier: str,
    records: int,
) -> None:
    start = (NOW - timedelta(days=days_back)).isoformat()
    code, out, err = run_cli(capsys, monkeypatch, api, "create", "CP-0001", "--from", start, "--format", "csv")
    assert code == 0, err
    assert ": queued (csv)" in out
    assert f"tier: {tier} - read from {cli_exports.TIERS[tier]}" in out

    run_queued_export(stack)
    code, out, err = run_cli(capsys, monkeypatch, api, "show", export_id(out))
    assert code == 0, err
    assert ": done (csv)" in out
    assert f"tier: {tier}" in out
    assert f"records: {records}," in out
    assert "download (until" in out

    code, out, _ = run_cli(capsys, monkeypatch, api, "show", export_id(out), "--json")
    shown = json.loads(out)
    assert (shown["tier"], shown["records"], shown["state"]) == (tier, records, "done")


def test_filters_reach_the_request(
    api: Api, stack: LocalStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_cli(
        capsys,
        monkeypatch,
        api,
        "create",
        "--fleet",
        "--action",
        "Heartbeat",
        "--action",
        "BootNotification",
        "--from",
        "2026-10-01T00:00:00+02:00",
        "--to",
        "2026-10-02T00:00:00Z",
        "--vendor",
        "ocpplab",
        "--connector-status",
        "Faulted",
        "--order",
        "desc",
        "--json",
    )
    assert code == 0, err
    export = json.loads(out)
    assert export["request"] == export["request"] | {
        "actions": ["Heartbeat", "BootNotification"],
        "from": "2026-10-01T00:00:00+02:00",
        "to": "2026-10-02T00:00:00Z",
        "vendor": "ocpplab",
        "connector_status": "Faulted",
        "order": "desc",
        "charger_id": None,
        "site_id": None,
    }
    assert export["tier"] == "archive"


def test_wait_polls_until_done(
    api: Api,
    stack: LocalStack,
    stored: list[LogRecord],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    polls: list[float] = []

    def sleep(seconds: float) -> None:  # the export function runs while the CLI waits
        polls.append(seconds)
        if len(polls) == 1:
            run_queued_export(stack)

    monkeypatch.setattr(cli_exports, "_pause", sleep)
    code, out, err = run_cli(capsys, monkeypatch, api, "create", "CP-0001", "--from", OLD.isoformat(), "--wait")
    assert code == 0, err
    assert "queued (tier: archive); waiting" in err
    assert ": done (ndjson)" in out
    assert "records: 3," in out  # no --to: the two old records and the recent one
    assert len(polls) == 1


def test_an_unknown_export_is_an_error(
    api: Api, stack: LocalStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_cli(capsys, monkeypatch, api, "show", "nope")
    assert code == 1
    assert out == ""
    assert "HTTP 404" in err
