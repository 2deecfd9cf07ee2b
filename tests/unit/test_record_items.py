"""The record item's layout: the raw form read from its archived page (``raw_ref``), long documents compressed, and
items written before either still read the same.

Per vendor, the simulator's traffic goes through the worker's engine (real adapter over HTTP, page archive, record
writer) into the template's resources, and every record read back - through the API and through `get_record` - is
exactly what the layout before this change (raw inline, documents as text) gave.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters
from boto3.dynamodb.types import Binary

from api_calls import get_json
from chargelog import aws, collectors, stores
from chargelog.collectors import evenergy, vendor_http
from chargelog.collectors.base import Page, VendorAdapter, VendorConnection
from chargelog.dal.archive import RawArchive, raw_ref
from chargelog.dal.records import COMPRESS_ABOVE, RecordWriter, record_from_item
from chargelog.errors import NotFoundError
from chargelog.json_pointer import resolve
from chargelog.logic import logs
from chargelog.logic.collection import JobRunner
from chargelog.models.jobs import CollectionJob
from chargelog.models.keys import timestamp_key
from chargelog.models.records import LogRecord, record_id_for
from chargelog_local.provision import LocalStack
from chargelog_simulators.base import ManualClock, SimulatorServer, VendorSimulator
from chargelog_simulators.chargepilot import ChargepilotSimulator
from chargelog_simulators.evenergy import EvEnergySimulator
from chargelog_simulators.ocpplab import OcpplabSimulator
from chargelog_simulators.plugchoice import PlugchoiceSimulator

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
RETENTION_DAYS = 400


@dataclass
class Vendor:
    """A vendor's simulator with one source's traffic, and the secret that reaches it."""

    simulator: VendorSimulator
    source_id: str
    base_path: str
    secret: dict[str, Any]


def ocpplab_vendor(clock: ManualClock) -> Vendor:
    simulator = OcpplabSimulator(seed=3, clock=clock)
    simulator.add_token("t", "tenant-1")
    simulator.add_charger("dep-1", "tenant-1")
    simulator.seed("dep-1", NOW - timedelta(hours=2), NOW)
    return Vendor(simulator, "dep-1", "", {"token": "t"})


def plugchoice_vendor(clock: ManualClock) -> Vendor:
    simulator = PlugchoiceSimulator(seed=3, clock=clock, rate_limit_per_minute=None)
    simulator.add_token("t")
    simulator.add_charger("6f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8")
    simulator.seed("6f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8", NOW - timedelta(hours=2), NOW)
    return Vendor(simulator, "6f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8", "/api", {"token": "t"})


def chargepilot_vendor(clock: ManualClock) -> Vendor:
    simulator = ChargepilotSimulator(seed=3, clock=clock)
    simulator.add_api_key("k", "s")
    simulator.add_site("site-1", "k", "Depot")
    for charger in ("CP-A", "CP-B"):
        simulator.add_charger("site-1", charger, 2)
    simulator.seed("site-1", NOW - timedelta(hours=2), NOW)
    return Vendor(simulator, "site-1", "/rest/v1", {"api_key": "k", "api_secret": "s"})


def evenergy_vendor(clock: ManualClock) -> Vendor:
    simulator = EvEnergySimulator(seed=3, clock=clock)
    simulator.add_client("c", "s")
    simulator.add_evse("evse01HSH04KDEWF6Z4DB2J77J74K5", "c")
    simulator.seed("evse01HSH04KDEWF6Z4DB2J77J74K5", NOW - timedelta(hours=2), NOW, interval_seconds=60)
    return Vendor(simulator, "evse01HSH04KDEWF6Z4DB2J77J74K5", "/v2", {"client_id": "c", "client_secret": "s"})


VENDORS: dict[str, Callable[[ManualClock], Vendor]] = {
    "ocpplab": ocpplab_vendor,
    "plugchoice": plugchoice_vendor,
    "chargepilot": chargepilot_vendor,
    "evenergy": evenergy_vendor,
}


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vendor_http, "_LIMITERS", {})
    monkeypatch.setattr(evenergy, "_AUTHS", {})
    monkeypatch.setattr(evenergy, "_PACERS", {})


def collect(stack: LocalStack, vendor: str, setup: Vendor) -> None:
    """The source's last two hours, read by the worker's engine from the simulator served over HTTP."""
    with SimulatorServer(setup.simulator.wsgi_app) as url:
        secret = {"base_url": url + setup.base_path, "page_size": 10, "requests_per_second": 1000, **setup.secret}
        ref = f"{vendor.capitalize()}Secret"
        aws.client("secretsmanager").put_secret_value(SecretId=stack.refs[ref], SecretString=json.dumps(secret))
        parameters.clear_caches()
        job = CollectionJob(
            vendor=vendor,  # type: ignore[arg-type]
            source_id=setup.source_id,
            mode="backfill",
            window_start=NOW - timedelta(hours=2),
            window_end=NOW,
            scheduled_at=NOW,
        )
        outcome = JobRunner(job, lambda: 900.0, now=lambda: NOW, stores=stores.collection()).run()
        assert outcome.records_quarantined == 0
        assert outcome.pages_fetched > 1


def adapter_of(vendor: str) -> VendorAdapter:
    collectors.has_adapter(vendor)
    profile, _ = collectors._ADAPTERS[vendor]
    return collectors.adapter_for(VendorConnection(vendor, "http://unused.invalid", {}, profile), lambda: 1.0)


@pytest.mark.parametrize("vendor", list(VENDORS))
def test_every_record_reads_back_exactly_as_with_its_raw_form_in_the_table(
    stack: LocalStack, lambda_context: Any, vendor: str
) -> None:
    setup = VENDORS[vendor](ManualClock(NOW))
    collect(stack, vendor, setup)
    adapter = adapter_of(vendor)
    before = RecordWriter(stack.refs["Table"], stores.raw_archive(), RETENTION_DAYS, compress_above=None)
    records: dict[tuple[str, str], LogRecord] = {}
    for entry in setup.simulator.visible_records(setup.source_id):  # type: ignore[attr-defined]
        record = adapter.normalize(setup.source_id, entry)
        records[(record.charger_id, f"{timestamp_key(record.timestamp)}~{record.record_id}")] = record
    assert len(records) > 25
    compressed = 0
    for (charger, api_id), record in records.items():
        item = stores.records().get(charger, api_id.replace("~", "#", 1))
        assert item is not None
        assert "raw" not in item
        assert not item["raw_ref"].startswith("raw/")  # stored relative to its source's pages
        page_key, _, index = record_from_item(item)["raw_ref"].rpartition("#")
        assert page_key.startswith(f"raw/vendor={vendor}/source=")
        assert index.isdigit()
        compressed += sum(isinstance(item.get(name), Binary) for name in ("payload", "result"))
        # The layout before: the raw form inline, every document as JSON text.
        expected = {**record_from_item(before.item_for(record)), "id": api_id}
        assert logs.get_record(charger, api_id, records=stores.records(), archive=stores.raw_archive()) == expected
        status, _, answer = get_json(lambda_context, f"/chargers/{charger}/logs/{api_id}")
        assert status == 200
        assert answer["raw"] == expected["raw"] == json.loads(json.dumps(record.raw))
        assert answer["payload"] == expected.get("payload")
        assert answer.get("result") == expected.get("result")
    if vendor != "evenergy":  # its status payloads are all short
        assert compressed > 0


def test_the_archived_page_says_where_its_items_are(stack: LocalStack) -> None:
    setup = ocpplab_vendor(ManualClock(NOW))
    collect(stack, "ocpplab", setup)
    s3 = aws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.refs["RawBucket"], Prefix="raw/")["Contents"]]
    page = RawArchive(stack.refs["RawBucket"]).read(keys[0])
    assert set(page) == {"fetched_at", "request", "body", "items_at"}
    assert page["items_at"] == "/data"
    assert resolve(page["body"], "/data") == page["body"]["data"]


# ---------------------------------------------------------------------------------------------- the item itself
def meter_values(n: int, samples: int = 12) -> LogRecord:
    payload = {
        "connectorId": 1,
        "transactionId": 7,
        "meterValue": [
            {
                "timestamp": f"2026-11-20T00:{minute:02d}:00Z",
                "sampledValue": [
                    {"value": str(1000 + minute), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                    {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
                ],
            }
            for minute in range(samples)
        ],
    }
    return LogRecord(
        vendor="ocpplab",
        source_id="CP-1",
        charger_id="CP-1",
        connector_id=1,
        timestamp=datetime(2026, 11, 20, 0, 0, n, tzinfo=UTC),
        kind="ocpp",
        action="MeterValues",
        direction="cp_to_csms",
        message_type="CALL",
        message_id=f"m-{n}",
        payload=payload,
        ocpp_version="1.6",
        record_id=record_id_for("ocpplab", "CP-1", None, n=n),
        raw={"message": json.dumps([2, f"m-{n}", "MeterValues", payload]), "n": n},
    )


def writer(stack: LocalStack) -> RecordWriter:
    return RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), RETENTION_DAYS)


def test_an_item_leaves_out_what_its_keys_say_and_reads_back_whole(stack: LocalStack) -> None:
    for n, moment in enumerate(
        (NOW.replace(microsecond=123_456), NOW.replace(microsecond=0), NOW.replace(microsecond=5_000))
    ):
        record = meter_values(n).model_copy(update={"timestamp": moment})
        item = writer(stack).item_for(record, raw_ref(f"raw/vendor=ocpplab/source=CP-1/date=x/p{n}.json.gz", n))
        assert not {"charger_id", "timestamp", "record_id", "vendor", "source_id", "gsi1sk", "gsi3sk"} & set(item)
        back = record_from_item(item)
        assert back["timestamp"] == record.model_dump(mode="json")["timestamp"]  # the text pydantic writes
        expected = record.model_dump(mode="json", exclude_none=True, exclude={"raw"})
        assert {k: v for k, v in back.items() if k != "raw_ref"} == expected
    elsewhere = meter_values(9).model_copy(update={"source_id": "SITE-7"})  # a source that is not the charger
    assert record_from_item(writer(stack).item_for(elsewhere, "k#0"))["source_id"] == "SITE-7"


def test_an_item_points_at_its_raw_form_instead_of_holding_it(stack: LocalStack) -> None:
    item = writer(stack).item_for(
        meter_values(1), raw_ref("raw/vendor=ocpplab/source=CP-1/date=2026-11-20/p.json.gz", 3)
    )
    assert "raw" not in item
    assert item["raw_ref"] == "date=2026-11-20/p.json.gz#3"  # the source's own prefix left out
    assert record_from_item(item)["raw_ref"] == "raw/vendor=ocpplab/source=CP-1/date=2026-11-20/p.json.gz#3"
    elsewhere = writer(stack).item_for(meter_values(1), raw_ref("raw/vendor=ocpplab/source=CP-2/date=x/p.json.gz", 0))
    assert record_from_item(elsewhere)["raw_ref"] == "raw/vendor=ocpplab/source=CP-2/date=x/p.json.gz#0"
    without_page = writer(stack).item_for(meter_values(1))  # a writer not given the page keeps the raw form
    assert json.loads(without_page["raw"]) == meter_values(1).raw
    assert "raw_ref" not in without_page


def test_long_documents_are_compressed_short_ones_stay_text(stack: LocalStack) -> None:
    long = writer(stack).item_for(meter_values(1), "k#0")
    assert isinstance(long["payload"], Binary)
    text = json.dumps(meter_values(1).payload, separators=(",", ":"))
    assert len(long["payload"].value) < len(text) / 2
    assert json.loads(zlib.decompress(long["payload"].value)) == meter_values(1).payload
    short = writer(stack).item_for(meter_values(2, samples=1), "k#0")
    assert len(short["payload"]) <= COMPRESS_ABOVE
    assert isinstance(short["payload"], str)
    assert long["transaction_id"] == record_from_item(long)["extracted"]["transaction_id"]


def test_compressed_documents_read_back_in_lists_and_single_records(stack: LocalStack, lambda_context: Any) -> None:
    records = [meter_values(n, samples=1 + n % 15) for n in range(30)]
    writer(stack).write(records)
    status, _, body = get_json(lambda_context, "/chargers/CP-1/logs", {"limit": "100"})
    assert status == 200
    assert [r["payload"] for r in body["records"]] == [r.payload for r in records]
    assert [r["extracted"]["meter"]["energy_wh"] for r in body["records"]] == [
        r.extracted.meter.energy_wh  # type: ignore[union-attr]
        for r in records
    ]
    status, _, one = get_json(lambda_context, f"/chargers/CP-1/logs/{body['records'][-1]['id']}")
    assert status == 200
    assert one["payload"] == records[-1].payload
    assert one["raw"] == records[-1].raw


def test_items_written_before_the_change_still_read_the_same(stack: LocalStack, lambda_context: Any) -> None:
    """An item as written until now: the raw form and a long payload inline, as JSON text."""
    record = meter_values(5)
    old = RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), RETENTION_DAYS, compress_above=None)
    item = old.item_for(record)
    assert isinstance(item["payload"], str)
    assert isinstance(item["raw"], str)
    aws.table(stack.refs["Table"]).put_item(Item=item)
    status, _, body = get_json(lambda_context, "/chargers/CP-1/logs")
    assert status == 200
    (listed,) = body["records"]
    assert listed["payload"] == record.payload
    assert "raw" not in listed
    status, _, one = get_json(lambda_context, f"/chargers/CP-1/logs/{listed['id']}")
    assert status == 200
    assert one["raw"] == record.raw
    assert one["payload"] == record.payload


def test_a_record_whose_page_has_expired_is_not_found(stack: LocalStack) -> None:
    record = meter_values(1)
    writer(stack).write([record], [raw_ref("raw/vendor=ocpplab/source=CP-1/date=2026-11-20/gone.json.gz", 0)])
    api_id = f"{timestamp_key(record.timestamp)}~{record.record_id}"
    with pytest.raises(NotFoundError, match="expired"):
        logs.get_record("CP-1", api_id, records=stores.records(), archive=stores.raw_archive())


def test_a_page_whose_items_are_not_where_it_says_is_refused() -> None:
    body = {"data": [{"a": 1}], "total": 1}
    assert Page(items=body["data"], body=body, request={}, next_cursor=None, total=1, items_at="/data").items_at
    with pytest.raises(ValueError, match="not at"):
        Page(items=[{"a": 2}], body=body, request={}, next_cursor=None, total=1, items_at="/data")


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [("", {"a/b": [1, {"~x": 2}]}), ("/a~1b", [1, {"~x": 2}]), ("/a~1b/0", 1), ("/a~1b/1/~0x", 2)],
)
def test_json_pointers_resolve_as_rfc_6901_says(pointer: str, expected: Any) -> None:
    assert resolve({"a/b": [1, {"~x": 2}]}, pointer) == expected


@pytest.mark.parametrize("pointer", ["a", "/missing", "/a~1b/01", "/a~1b/5", "/a~1b/0/x"])
def test_json_pointers_that_name_nothing_are_errors(pointer: str) -> None:
    with pytest.raises((KeyError, IndexError, TypeError, ValueError)):
        resolve({"a/b": [1, {"~x": 2}]}, pointer)
