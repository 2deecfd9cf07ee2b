"""Exports older than the hot window read the record archive: a record the table has forgotten (its TTL passed) is
still in an export of its range, with tier "archive", and in the documented Athena queries (run with DuckDB); the
archive's answer is the table's for the same records (same format, fields, order, filters), one line per record."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import export_handler
from api_calls import get_json, post_json
from athena_duckdb import documented_queries, download_archive, duckdb_over
from chargelog import aws
from chargelog.dal.archive import RawArchive
from chargelog.dal.exports import ExportFiles
from chargelog.dal.record_archive import RecordArchive, RecordArchiveReader, by_object
from chargelog.dal.records import RecordWriter
from chargelog.logic import exports
from chargelog.models.keys import timestamp_key
from chargelog.models.records import LogRecord, record_id_for
from chargelog.settings import get_settings
from chargelog_local.lambdas import LocalLambdaContext
from chargelog_local.provision import LocalStack
from chargelog_local.triggers import sqs_event
from conftest import REGION

PLUS_TWO = timezone(timedelta(hours=2))
NOW = datetime.now(UTC).replace(microsecond=0)
# A UTC midnight 60 days back: older than the hot window (30 days), well within the archive's (400).
OLD_DAY = datetime(NOW.year, NOW.month, NOW.day, tzinfo=UTC) - timedelta(days=60)


def log_record(n: int, at: datetime, charger: str = "CP-1", **fields: Any) -> LogRecord:
    values: dict[str, Any] = {
        "vendor": "ocpplab",
        "source_id": "depot-1",
        "site_id": "depot-1",
        "charger_id": charger,
        "connector_id": 1,
        "timestamp": at,
        "kind": "ocpp",
        "action": "Heartbeat",
        "direction": "cp_to_csms",
        "message_type": "CALL",
        "message_id": f"m-{n}",
        "payload": {"n": n},
        "record_id": record_id_for("ocpplab", "depot-1", None, n=n),
        "raw": {"n": n},
    }
    return LogRecord(**(values | fields))


def store(stack: LocalStack, *pages: list[LogRecord]) -> None:
    """Write pages as the worker does: the archive before the table."""
    writer = RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), get_settings().hot_retention_days)
    archive = RecordArchive(stack.refs["RecordArchiveBucket"])
    for page in pages:
        writer.write(page, before_writing=archive.put_page)


def forget_records(stack: LocalStack) -> int:
    """What the table's TTL does to records past the hot window: delete every record item (charger partitions)."""
    table = aws.table(stack.refs["Table"])
    items = [item for item in table.scan()["Items"] if str(item["pk"]).startswith("CHARGER#")]
    for item in items:
        table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
    return len(items)


def export_context() -> LocalLambdaContext:
    return LocalLambdaContext(
        function_name="ExportFunction", memory_limit_in_mb=1024, timeout_seconds=900, region=REGION
    )


def run_export(stack: LocalStack, lambda_context: Any, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """POST /exports, run the export function on what it queued, GET the export: (the export, the file's text)."""
    status, _, queued = post_json(lambda_context, "/exports", body)
    assert status == 202, queued
    messages = (
        aws.client("sqs")
        .receive_message(QueueUrl=stack.refs["ExportQueue"], MaxNumberOfMessages=10, AttributeNames=["All"])
        .get("Messages", [])
    )
    assert len(messages) == 1
    event = sqs_event(messages, stack.attributes[("ExportQueue", "Arn")], REGION)
    assert export_handler.lambda_handler(event, export_context()) == {"batchItemFailures": []}
    aws.client("sqs").delete_message(QueueUrl=stack.refs["ExportQueue"], ReceiptHandle=messages[0]["ReceiptHandle"])
    status, _, done = get_json(lambda_context, f"/exports/{queued['id']}")
    assert status == 200
    assert done["state"] == "done", done
    assert done["tier"] == queued["tier"]
    key = ExportFiles.key(done["id"], body.get("format", "ndjson"))
    text = aws.client("s3").get_object(Bucket=stack.refs["ExportsBucket"], Key=key)["Body"].read().decode()
    return done, text


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def hot_days(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    def set_days(days: int) -> None:
        monkeypatch.setenv("CHARGELOG_HOT_RETENTION_DAYS", str(days))
        get_settings.cache_clear()

    yield set_days
    get_settings.cache_clear()


# ---------------------------------------------------------------------------------------------- the tier


def test_a_record_the_table_forgot_is_still_in_an_export_of_its_range(stack: LocalStack, lambda_context: Any) -> None:
    old = [log_record(n, OLD_DAY + timedelta(hours=10, minutes=n)) for n in range(3)]
    recent = [log_record(10, NOW - timedelta(days=2))]
    store(stack, old, recent)
    assert forget_records(stack) == 4  # the TTL passed (the recent one too: the archive answers for old ranges)

    body = {
        "charger_id": "CP-1",
        "from": (OLD_DAY + timedelta(hours=9)).isoformat(),
        "to": (OLD_DAY + timedelta(hours=11)).isoformat(),
    }
    done, text = run_export(stack, lambda_context, body)
    assert done["tier"] == "archive"
    assert done["records"] == 3
    assert [line["record_id"] for line in ndjson(text)] == [record.record_id for record in old]
    item = aws.table(stack.refs["Table"]).get_item(Key={"pk": "EXPORT", "sk": done["id"]})["Item"]
    assert item["tier"] == "archive"


def test_a_range_within_the_hot_window_reads_the_table(stack: LocalStack, lambda_context: Any) -> None:
    recent = [log_record(n, NOW - timedelta(days=2, minutes=n)) for n in range(3)]
    store(stack, recent)
    # The archive holds them too, but is not read: emptied, the export still finds them.
    aws.client("s3").delete_objects(
        Bucket=stack.refs["RecordArchiveBucket"],
        Delete={
            "Objects": [
                {"Key": o["Key"]}
                for o in aws.client("s3").list_objects_v2(Bucket=stack.refs["RecordArchiveBucket"])["Contents"]
            ]
        },
    )
    done, _ = run_export(stack, lambda_context, {"charger_id": "CP-1", "from": (NOW - timedelta(days=3)).isoformat()})
    assert done["tier"] == "hot"
    assert done["records"] == 3


@pytest.mark.parametrize(
    ("start_days_back", "tier"),
    [(None, "archive"), (29, "hot"), (31, "archive")],
    ids=["no-start", "inside-the-window", "before-the-window"],
)
def test_the_tier_is_decided_by_where_the_range_starts(
    stack: LocalStack, lambda_context: Any, start_days_back: int | None, tier: str
) -> None:
    body: dict[str, Any] = {"charger_id": "CP-1"}
    if start_days_back is not None:
        body["from"] = (NOW - timedelta(days=start_days_back)).isoformat()
    status, _, export = post_json(lambda_context, "/exports", body)
    assert status == 202, export
    assert export["tier"] == tier


def test_an_export_stored_before_tiers_reads_as_hot() -> None:
    stored = {
        "id": "x",
        "state": "done",
        "request": {"charger_id": "CP-1"},
        "created_at": NOW.isoformat(),
        "expires_at": 0,
    }
    assert exports.Export.model_validate(stored).tier == "hot"


# ---------------------------------------------------------------------------------------------- same answer


SAME_ANSWER = {
    "charger": {"charger_id": "CP-1"},
    "charger-actions-desc": {
        "charger_id": "CP-1",
        "actions": ["StatusNotification", "BootNotification"],
        "order": "desc",
    },
    "site-filtered": {"site_id": "depot-1", "direction": "csms_to_cp"},
    "fleet": {"actions": ["StatusNotification"], "connector_status": "Faulted"},
    "vendor-and-transaction": {"charger_id": "CP-2", "vendor": "ocpplab", "transaction_id": "tx-7"},
    "csv": {"site_id": "depot-1", "format": "csv"},
}


def varied_records(day: datetime) -> list[LogRecord]:
    """Records over a UTC midnight, of two chargers on the site and one elsewhere, with actions, directions,
    statuses and transactions to filter on."""
    actions = ("Heartbeat", "StatusNotification", "BootNotification", "StartTransaction")
    records = []
    for n in range(40):
        action = actions[n % 4]
        payload: dict[str, Any] = {"n": n}
        if action == "StatusNotification":
            payload = {"connectorId": 1, "status": "Faulted" if n % 3 else "Available", "errorCode": "NoError"}
        records.append(
            log_record(
                n,
                day - timedelta(hours=2) + timedelta(minutes=7 * n),
                charger=("CP-1", "CP-2", "CP-9")[n % 3],
                site_id=None if n % 3 == 2 else "depot-1",
                action=action,
                direction="cp_to_csms" if n % 5 else "csms_to_cp",
                payload=payload,
                result={"transactionId": "tx-7"} if action == "StartTransaction" else None,
                message_type="CALL",
            )
        )
    return records


@pytest.mark.parametrize("name", list(SAME_ANSWER))
def test_the_archive_answers_as_the_table_does(
    stack: LocalStack, lambda_context: Any, hot_days: Callable[[int], None], name: str
) -> None:
    day = datetime(NOW.year, NOW.month, NOW.day, tzinfo=UTC) - timedelta(days=5)
    records = varied_records(day)
    store(stack, records[:25], records[15:])  # the second page repeats some: they are in two objects
    # The range in +02:00, so its local dates are not its UTC days.
    body = SAME_ANSWER[name] | {
        "from": (day - timedelta(hours=1)).astimezone(PLUS_TWO).isoformat(),
        "to": (day + timedelta(hours=2)).astimezone(PLUS_TWO).isoformat(),
    }

    hot, hot_text = run_export(stack, lambda_context, body)
    hot_days(3)  # the range now starts before the hot window
    archived, archived_text = run_export(stack, lambda_context, body)

    assert (hot["tier"], archived["tier"]) == ("hot", "archive")
    assert archived_text == hot_text
    assert archived["records"] == hot["records"] > 0


def test_a_record_in_several_objects_is_exported_once(stack: LocalStack, lambda_context: Any) -> None:
    records = [log_record(n, OLD_DAY + timedelta(minutes=n)) for n in range(6)]
    store(stack, records[:4])
    RecordArchive(stack.refs["RecordArchiveBucket"]).put_page(records[2:])  # a later read splits them otherwise
    reader = RecordArchiveReader(stack.refs["RecordArchiveBucket"])
    assert len(reader.day_keys("ocpplab", OLD_DAY.date())) == 2
    done, text = run_export(stack, lambda_context, {"charger_id": "CP-1", "from": OLD_DAY.isoformat()})
    assert done["tier"] == "archive"
    assert [line["record_id"] for line in ndjson(text)] == [record.record_id for record in records]


def test_a_record_changed_in_place_is_exported_as_it_is_now(stack: LocalStack, lambda_context: Any) -> None:
    at = OLD_DAY + timedelta(hours=1)
    first, changed = log_record(1, at, status="Pending"), log_record(1, at, status="Accepted")
    # Read first with another record (another object), then alone once changed; the other record chosen so that
    # by name the newer object sorts first: only the order of writing tells which version is current.
    other = next(
        log_record(n, at + timedelta(minutes=1))
        for n in range(2, 200)
        if next(iter(by_object([changed]))) < next(iter(by_object([first, log_record(n, at + timedelta(minutes=1))])))
    )
    store(stack, [first, other])
    time.sleep(1.1)  # S3's LastModified has one-second resolution
    store(stack, [changed])
    keys = RecordArchiveReader(stack.refs["RecordArchiveBucket"]).day_keys("ocpplab", OLD_DAY.date())
    assert keys == [*by_object([first, other]), *by_object([changed])]  # oldest written first
    done, text = run_export(stack, lambda_context, {"charger_id": "CP-1", "from": OLD_DAY.isoformat()})
    assert done["tier"] == "archive"
    assert [(line["record_id"], line.get("status")) for line in ndjson(text)] == [
        (changed.record_id, "Accepted"),
        (other.record_id, None),
    ]


def test_an_archive_export_that_runs_out_of_time_fails_for_good(
    stack: LocalStack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store(stack, [log_record(n, OLD_DAY + timedelta(minutes=n)) for n in range(3)])
    status, _, queued = post_json(lambda_context, "/exports", {"charger_id": "CP-1", "from": OLD_DAY.isoformat()})
    assert status == 202
    assert queued["tier"] == "archive"
    monkeypatch.setattr(exports, "TIME_RESERVE_SECONDS", 10_000.0)
    messages = (
        aws.client("sqs")
        .receive_message(QueueUrl=stack.refs["ExportQueue"], AttributeNames=["All"])
        .get("Messages", [])
    )
    event = sqs_event(messages, stack.attributes[("ExportQueue", "Arn")], REGION)
    assert export_handler.lambda_handler(event, export_context()) == {"batchItemFailures": []}
    _, _, failed = get_json(lambda_context, f"/exports/{queued['id']}")
    assert failed["state"] == "failed"
    assert "split it" in failed["error"]


# ---------------------------------------------------------------------------------------------- Athena


def test_a_record_the_table_forgot_is_in_the_documented_athena_query(stack: LocalStack, tmp_path: Path) -> None:
    old = [log_record(n, OLD_DAY + timedelta(hours=23, minutes=50 + n)) for n in range(3)]  # 2 days: 23:50 to 00:02
    old.append(log_record(3, OLD_DAY + timedelta(days=1, minutes=2)))
    store(stack, old)
    forget_records(stack)
    download_archive(stack, tmp_path)
    db = duckdb_over(tmp_path)
    first, last = OLD_DAY.date().isoformat(), (OLD_DAY + timedelta(days=1)).date().isoformat()
    rows = db.execute(
        documented_queries()["charger_messages"],
        (first, last, "CP-1", timestamp_key(OLD_DAY), timestamp_key(OLD_DAY + timedelta(days=2))),
    ).fetchall()
    assert [row[1] for row in rows] == [record.record_id for record in old]
    assert [row[0] for row in rows] == [timestamp_key(record.timestamp) for record in old]
