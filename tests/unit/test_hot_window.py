"""The table's hot window: a record item lives HotRetentionDays from its time or its writing (whichever is later),
the TTL is not part of the item's digest (a re-read does not rewrite a record only because its TTL moved), backfills
reach back as far as the record archive keeps records, and the settings and template carry both windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chargelog import aws, stores
from chargelog.dal.archive import RawArchive
from chargelog.dal.records import DIGEST_FIELD, RecordWriter, charger_items
from chargelog.logic import sources
from chargelog.logic.backfills import InvalidBackfillError, queue_backfill
from chargelog.models.records import LogRecord, record_id_for
from chargelog.models.sources import SourceCreate
from chargelog.settings import Settings, get_settings
from chargelog_local.provision import LocalStack

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
HOT_DAYS = 30


def record(at: datetime, n: int = 1) -> LogRecord:
    return LogRecord(
        vendor="ocpplab",
        source_id="cp-1",
        charger_id="cp-1",
        timestamp=at,
        kind="ocpp",
        action="Heartbeat",
        direction="cp_to_csms",
        message_type="CALL",
        message_id=f"m-{n}",
        payload={},
        record_id=record_id_for("ocpplab", "cp-1", None, n=n),
        raw={"n": n},
    )


def writer(stack: LocalStack, now: datetime) -> RecordWriter:
    return RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), HOT_DAYS, now=lambda: now)


def test_a_record_expires_the_hot_window_after_its_writing_or_its_time_if_later(stack: LocalStack) -> None:
    recent, ahead = NOW - timedelta(hours=3), NOW + timedelta(minutes=10)  # ahead: a charger's clock running fast
    store = writer(stack, NOW)
    assert store.item_for(record(recent))["expires_at"] == int((NOW + timedelta(days=HOT_DAYS)).timestamp())
    assert store.item_for(record(ahead))["expires_at"] == int((ahead + timedelta(days=HOT_DAYS)).timestamp())


def test_a_backfilled_old_record_lives_the_hot_window_after_its_writing(stack: LocalStack) -> None:
    old = NOW - timedelta(days=200)
    item = writer(stack, NOW).item_for(record(old))
    assert item["expires_at"] == int((NOW + timedelta(days=HOT_DAYS)).timestamp())
    assert item["expires_at"] > NOW.timestamp()  # not expired as soon as it is stored


def test_the_ttl_is_not_digested_so_a_re_read_does_not_rewrite_an_unchanged_record(stack: LocalStack) -> None:
    old = record(NOW - timedelta(days=100))
    first, later = writer(stack, NOW), writer(stack, NOW + timedelta(days=3))
    item, again = first.item_for(old), later.item_for(old)
    assert item["expires_at"] != again["expires_at"]
    assert item[DIGEST_FIELD] == again[DIGEST_FIELD]

    assert first.write([old]) == 1
    assert later.write([old], compare_through=NOW + timedelta(days=3)) == 0  # unchanged: not written again
    (stored,) = charger_items(stack.refs["Table"], "cp-1")
    assert int(stored["expires_at"]) == item["expires_at"]

    changed = record(old.timestamp).model_copy(update={"status": "Accepted"})
    assert later.write([changed], compare_through=NOW + timedelta(days=3)) == 1  # what it says changed: written


def test_settings_read_both_windows_from_the_environment() -> None:
    base = {str(field.alias): "x" for field in Settings.model_fields.values() if field.is_required()}
    settings = Settings.model_validate(
        base | {"CHARGELOG_HOT_RETENTION_DAYS": "7", "CHARGELOG_ARCHIVE_RETENTION_DAYS": "365"}
    )
    assert (settings.hot_retention_days, settings.archive_retention_days) == (7, 365)
    defaults = Settings.model_validate(base)
    assert (defaults.hot_retention_days, defaults.archive_retention_days) == (30, 400)
    with pytest.raises(ValueError, match=r"CHARGELOG_HOT_RETENTION_DAYS"):
        Settings.model_validate(base | {"CHARGELOG_HOT_RETENTION_DAYS": "0"})


def test_the_template_passes_both_windows_and_the_table_keeps_no_longer_than_the_hot_one(
    template: dict[str, Any],
) -> None:
    parameters = template["Parameters"]
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert parameters["HotRetentionDays"]["Default"] == 30
    assert variables["CHARGELOG_HOT_RETENTION_DAYS"] == {"Ref": "HotRetentionDays"}
    assert variables["CHARGELOG_ARCHIVE_RETENTION_DAYS"] == {"Ref": "ArchiveRetentionDays"}
    assert "RetentionDays" not in parameters
    assert "CHARGELOG_RETENTION_DAYS" not in variables
    raw_rules = template["Resources"]["RawBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert [rule["ExpirationInDays"] for rule in raw_rules if "ExpirationInDays" in rule] == [
        {"Ref": "RawRetentionDays"}
    ]
    assert parameters["RawRetentionDays"]["Default"] >= parameters["HotRetentionDays"]["Default"]


def test_the_stack_writes_items_with_the_hot_window(stack: LocalStack) -> None:
    assert get_settings().hot_retention_days == HOT_DAYS
    before = datetime.now(UTC)
    stores.record_writer().write([record(before - timedelta(days=90))])
    (stored,) = charger_items(stack.refs["Table"], "cp-1")
    lives = int(stored["expires_at"]) - before.timestamp()
    assert (
        timedelta(days=HOT_DAYS) - timedelta(minutes=1)
        <= timedelta(seconds=lives)
        <= timedelta(days=HOT_DAYS, minutes=1)
    )


@pytest.mark.parametrize(
    ("days_back", "queued"),
    [(HOT_DAYS + 10, True), (399, True), (401, False)],
    ids=["older-than-the-hot-window", "within-the-archive", "older-than-the-archive"],
)
def test_a_backfill_is_bounded_by_the_archive_not_the_hot_window(
    stack: LocalStack, days_back: int, queued: bool
) -> None:
    sources.create_source(
        SourceCreate.model_validate({"vendor": "ocpplab", "source_id": "dep-1"}), store=stores.sources()
    )
    now = datetime.now(UTC)
    start = now - timedelta(days=days_back)

    def backfill() -> Any:
        return queue_backfill(
            "ocpplab",
            "dep-1",
            start,
            start + timedelta(hours=1),
            now=now,
            sources=stores.sources(),
            queues=stores.work_queues(),
        )

    messages = aws.client("sqs").receive_message
    if queued:
        job = backfill()
        assert job.window_start == start
        (message,) = messages(QueueUrl=stack.refs["OcpplabWorkQueue"]).get("Messages", [])
        assert job.job_id in message["Body"]
    else:
        with pytest.raises(InvalidBackfillError, match="400 days") as refused:
            backfill()
        assert refused.value.status == 400
        assert not messages(QueueUrl=stack.refs["OcpplabWorkQueue"]).get("Messages")
