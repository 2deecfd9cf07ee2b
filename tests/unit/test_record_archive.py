"""The normalized record archive: keys named by the records they hold, the lines, and the worker writing it before
its checkpoint moves."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_collection_engine import NOW, VENDOR, FakeVendor, add_source, run, scheduled, stored, vendor  # noqa: F401

from chargelog import aws, stores
from chargelog.dal.record_archive import RECORDS_PREFIX, RecordArchive, ndjson_gz, object_key
from chargelog.dal.records import record_from_item
from chargelog.dal.state import CollectorStateStore
from chargelog.models.jobs import CollectionJob
from chargelog.models.keys import timestamp_key
from chargelog.models.records import LogRecord, record_id_for
from chargelog_local.provision import LocalStack

MIDNIGHT = datetime(2026, 11, 22, tzinfo=UTC)


def record(n: int, at: datetime, source: str = "cp-1", **fields: Any) -> LogRecord:
    return LogRecord(
        vendor="ocpplab",
        source_id=source,
        charger_id=source,
        timestamp=at,
        kind="ocpp",
        action=fields.pop("action", "MeterValues"),
        message_type="CALL",
        record_id=record_id_for("ocpplab", source, n),
        raw={"id": n, "secret": "raw only"},
        **fields,
    )


def objects(bucket: str) -> dict[str, list[dict[str, Any]]]:
    s3 = aws.client("s3")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"{RECORDS_PREFIX}/").get("Contents", [])
    return {
        o["Key"]: [
            json.loads(line)
            for line in gzip.decompress(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()).splitlines()
        ]
        for o in listing
    }


def test_the_key_names_the_records_not_their_order_or_when_they_were_read() -> None:
    day = MIDNIGHT.date()
    ids = ["ocpplab:1", "ocpplab:2", "ocpplab:3"]
    key = object_key("ocpplab", "cp/1", day, ids)
    assert key == object_key("ocpplab", "cp/1", day, reversed(ids)) == object_key("ocpplab", "cp/1", day, ids * 2)
    assert key.startswith("records/vendor=ocpplab/date=2026-11-22/cp_1-")
    assert key.endswith(".ndjson.gz")
    assert key != object_key("ocpplab", "cp/1", day, ids[:2])


def test_the_same_records_give_the_same_bytes() -> None:
    records = [record(n, MIDNIGHT + timedelta(seconds=n)) for n in range(5)]
    assert ndjson_gz(records) == ndjson_gz(list(reversed(records))) == ndjson_gz(records + records[:2])


def test_a_page_read_twice_overwrites_its_object_and_one_spanning_midnight_makes_two(stack: LocalStack) -> None:
    archive = RecordArchive(stack.refs["RecordArchiveBucket"])
    page = [record(n, MIDNIGHT + timedelta(minutes=n - 3)) for n in range(6)]  # 3 before midnight, 3 after
    keys = archive.put_page(page)
    assert sorted(archive.put_page(list(reversed(page)))) == sorted(keys)
    found = objects(stack.refs["RecordArchiveBucket"])
    assert sorted(found) == sorted(keys)
    assert sorted(k.split("/")[2] for k in found) == ["date=2026-11-21", "date=2026-11-22"]
    assert sorted(len(lines) for lines in found.values()) == [3, 3]
    assert archive.put_page([]) == []


def test_a_line_holds_the_normalized_fields_and_not_raw(stack: LocalStack) -> None:
    archive = RecordArchive(stack.refs["RecordArchiveBucket"])
    at = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
    boot = record(1, at, action="BootNotification", payload={"chargePointVendor": "V"}, result={"status": "Accepted"})
    (key,) = archive.put_page([boot])
    (line,) = objects(stack.refs["RecordArchiveBucket"])[key]
    expected = boot.model_dump(mode="json", exclude_none=True, exclude={"raw"}) | {"timestamp": timestamp_key(at)}
    assert line == expected
    assert line["timestamp"] == "2026-11-21T10:00:00.000000Z"
    assert "raw" not in line


def test_the_worker_archives_every_record_it_stores(stack: LocalStack, vendor: FakeVendor) -> None:  # noqa: F811
    add_source()
    vendor.add(10, NOW - timedelta(hours=1), timedelta(minutes=1), action="BootNotification")
    outcome = run_scheduled()
    assert outcome.records_stored == 10
    found = objects(stack.refs["RecordArchiveBucket"])
    assert len(found) == outcome.pages_fetched == 3  # pages of 4, 4, 2
    archived = {line["record_id"] for lines in found.values() for line in lines}
    assert archived == {record_from_item(item)["record_id"] for item in stored(stack)}
    assert all(key.startswith(f"records/vendor={VENDOR}/date=2026-11-21/cp-1-") for key in found)

    # The same range read again (a replayed backfill): the same pages land on the same keys.
    replay = CollectionJob(
        vendor=VENDOR,
        source_id="cp-1",
        scheduled_at=NOW,
        window_start=NOW - timedelta(hours=2),
        window_end=NOW,
        mode="backfill",
    )
    assert run(replay).pages_fetched == 3
    assert objects(stack.refs["RecordArchiveBucket"]) == found


def test_the_checkpoint_moves_only_after_the_archive_is_written(
    stack: LocalStack,
    vendor: FakeVendor,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_source()
    vendor.add(10, NOW - timedelta(hours=1), timedelta(minutes=1))
    checkpoints: list[int] = []
    save = CollectorStateStore.save_progress

    def counting_save(store: CollectorStateStore, *args: Any, **kwargs: Any) -> None:
        checkpoints.append(1)
        save(store, *args, **kwargs)

    def failing_put(archive: RecordArchive, records: Any) -> list[str]:
        raise RuntimeError("S3 is down")

    monkeypatch.setattr(CollectorStateStore, "save_progress", counting_save)
    monkeypatch.setattr(RecordArchive, "put_page", failing_put)
    with pytest.raises(RuntimeError, match="S3 is down"):
        run_scheduled()
    assert checkpoints == []
    assert stores.collector_states().get(VENDOR, "cp-1").checkpoint is None


def run_scheduled() -> Any:
    return run(scheduled())
