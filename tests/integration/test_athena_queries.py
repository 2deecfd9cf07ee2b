"""The queries of docs/athena.md, run with DuckDB (standing in for Athena) over the record archive the worker wrote
while collecting from the OCPPLAB simulator on the local stack, give the answers DynamoDB gives for the same records.

DuckDB reads the objects as Athena's ``records`` table does: the columns and partition keys come from the Glue
table in template.yaml, the partitions from the Hive-style keys (``hive_partitioning``), gzip from the name. The one
dialect difference the queries meet: DuckDB has no ``json_extract_scalar``; a macro maps it to ``json_extract_string``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from athena_duckdb import documented_queries, download_archive, duckdb_over
from chargelog import stores
from chargelog.dal.records import charger_items, record_from_item
from chargelog.logic import sources
from chargelog.models.keys import timestamp_key
from chargelog.models.sources import SourceCreate
from chargelog.settings import get_settings
from chargelog_local.provision import LocalStack
from chargelog_simulators.base import ManualClock
from chargelog_simulators.ocpplab import OcpplabSimulator
from chargelog_simulators.traffic import Behaviour, Density
from convergence_harness import WorkerHarness, plenty, worker_harness

TOKEN = "athena-token"
CHARGERS = ("cp-a", "cp-b", "cp-c")
BUSY = Density(session_gap_seconds=1200, session_seconds=1800, meter_interval_seconds=60)
FAULTY = Behaviour(connector_fault=0.3)  # (transient) faults enough to count by error code
# The simulated day starts 02:00 UTC, so the first job's history (30 hours) spans two UTC days and a midnight.
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
HISTORY_HOURS = 30

type Harness = WorkerHarness[OcpplabSimulator]


@pytest.fixture
def harness(server_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setenv("CHARGELOG_INITIAL_HISTORY_HOURS", str(HISTORY_HOURS))
    get_settings.cache_clear()
    clock = ManualClock(NOW)
    simulator = OcpplabSimulator(seed=5, clock=clock)
    simulator.add_token(TOKEN, "tenant-1")
    start = NOW - timedelta(hours=HISTORY_HOURS - 1)
    for charger in CHARGERS:
        simulator.add_charger(charger, "tenant-1")
        # A boot every ten hours: boots on both days, per charger.
        for hours in range(0, HISTORY_HOURS - 1, 10):
            simulator.seed(
                charger,
                start + timedelta(hours=hours),
                min(NOW, start + timedelta(hours=hours + 10)),
                density=BUSY,
                boot=True,
                behaviour=FAULTY,
            )
        sources.create_source(
            SourceCreate.model_validate({"vendor": "ocpplab", "source_id": charger}), store=stores.sources()
        )
    secret = {"token": TOKEN, "page_size": 200, "requests_per_second": 1000}
    with worker_harness("ocpplab", server_stack, monkeypatch, simulator, clock, secret) as harness:
        yield harness


def table_records(stack: LocalStack) -> list[dict[str, Any]]:
    """Every record DynamoDB holds for the chargers, as the API reads it."""
    return [record_from_item(item) for charger in CHARGERS for item in charger_items(stack.refs["Table"], charger)]


def day_of(record: dict[str, Any]) -> str:
    return datetime.fromisoformat(record["timestamp"]).astimezone(UTC).date().isoformat()


def key_time(record: dict[str, Any]) -> str:
    return timestamp_key(datetime.fromisoformat(record["timestamp"]))


def test_the_documented_queries_answer_over_the_archive_as_dynamodb_does(harness: Harness, tmp_path: Path) -> None:
    simulator, clock = harness.simulator, harness.clock
    for _ in range(3):  # three five-minute schedules: each re-reads its lookback, so the archive repeats records
        before = clock()
        clock.advance(300)
        for charger in CHARGERS:
            simulator.seed(charger, before, clock(), density=BUSY, behaviour=FAULTY)
        harness.schedule(plenty())
    stored = table_records(harness.stack)
    archive_objects, archive_bytes = download_archive(harness.stack, tmp_path)
    db = duckdb_over(tmp_path)
    queries = documented_queries()
    assert sorted(queries) == [
        "boots_per_charger_per_day",
        "charger_messages",
        "energy_per_session",
        "faults_by_error_code",
    ]
    first_day, last_day = (NOW - timedelta(hours=HISTORY_HOURS)).date().isoformat(), clock().date().isoformat()
    days = (first_day, last_day)

    # The archive holds every stored record, each copy the same as the table's (less raw), and no other.
    lines = db.execute("SELECT count(*), count(DISTINCT record_id) FROM records").fetchone()
    assert lines is not None
    copies, distinct = lines
    assert distinct == len(stored) > 1000
    assert copies == distinct  # the lookback re-read records already stored: unchanged, so not archived again
    by_id = {r["record_id"]: r for r in stored}
    for record_id, vendor, day, timestamp, payload, extracted in db.execute(
        'SELECT record_id, vendor, "date", "timestamp", payload, extracted FROM records'
    ).fetchall():
        record = by_id[record_id]
        assert (vendor, day, timestamp) == (record["vendor"], day_of(record), key_time(record))
        assert (json.loads(payload) if payload else None) == record.get("payload")
        assert (json.loads(extracted) if extracted else None) == record.get("extracted")

    # Boots per charger per day.
    boots = Counter(
        (r["charger_id"], day_of(r))
        for r in stored
        if r.get("action") == "BootNotification" and r.get("message_type") == "CALL"
    )
    got = db.execute(queries["boots_per_charger_per_day"], days).fetchall()
    assert got == sorted((charger, day, count) for (charger, day), count in boots.items())
    assert len({day for _, day, _ in got}) >= 2  # boots on more than one day
    assert {charger for charger, _, _ in got} == set(CHARGERS)

    # Faults by error code.
    faults: dict[str, set[str]] = defaultdict(set)
    fault_chargers: dict[str, set[str]] = defaultdict(set)
    for r in stored:
        code = (r.get("extracted") or {}).get("error_code")
        if (
            r.get("action") == "StatusNotification"
            and r.get("message_type") == "CALL"
            and code not in (None, "NoError")
        ):
            faults[code].add(r["record_id"])
            fault_chargers[code].add(r["charger_id"])
    got = db.execute(queries["faults_by_error_code"], days).fetchall()
    expected = sorted(
        ((code, len(ids), len(fault_chargers[code])) for code, ids in faults.items()), key=lambda t: (-t[1], t[0])
    )
    assert got == expected
    assert got, "no faults in the simulated traffic"

    # Energy per session.
    readings: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
    for r in stored:
        extracted = r.get("extracted") or {}
        energy = (extracted.get("meter") or {}).get("energy_wh")
        if extracted.get("transaction_id") is not None and energy is not None:
            readings[(r["charger_id"], extracted["transaction_id"])].append((key_time(r), float(energy)))
    got = db.execute(queries["energy_per_session"], days).fetchall()
    expected_sessions = sorted(
        (
            (
                charger,
                transaction,
                min(t for t, _ in values),
                max(t for t, _ in values),
                max(e for _, e in values) - min(e for _, e in values),
            )
            for (charger, transaction), values in readings.items()
        ),
        key=lambda t: (t[0], t[2]),
    )
    assert [row[:4] for row in got] == [row[:4] for row in expected_sessions]
    assert [row[4] for row in got] == pytest.approx([row[4] for row in expected_sessions])
    assert sum(1 for row in got if row[4] > 0) >= len(CHARGERS)

    # A charger's messages in a range across midnight.
    midnight = datetime.combine(date.fromisoformat(last_day), datetime.min.time(), tzinfo=UTC)
    low, high = timestamp_key(midnight - timedelta(hours=1)), timestamp_key(midnight + timedelta(hours=1))
    got = db.execute(queries["charger_messages"], [*days, "cp-b", low, high]).fetchall()
    window = sorted(
        (r for r in stored if r["charger_id"] == "cp-b" and low <= key_time(r) < high),
        key=lambda r: (key_time(r), r["record_id"]),
    )
    assert [(row[0], row[1], row[4]) for row in got] == [(key_time(r), r["record_id"], r.get("action")) for r in window]
    assert len(window) > 20

    print(
        f"\narchive: {archive_objects} objects, {copies} lines ({distinct} records), {archive_bytes} bytes gzipped: "
        f"{archive_bytes / copies:.0f} B per line, {archive_bytes / archive_objects / 1024:.1f} KB per object"
    )
