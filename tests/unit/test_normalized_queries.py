"""Queries on the normalized fields through the API handler: transaction_id, connector_status and kind filters on
the charger, site and fleet routes and exports, the CSV columns, the stored attributes, and the status timeline."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api_calls import follow, get, get_json, post_json
from chargelog import aws
from chargelog.dal.archive import RawArchive
from chargelog.dal.record_queries import RecordStore
from chargelog.dal.records import RecordWriter, record_from_item
from chargelog.logic import exports
from chargelog.models.exports import ExportRequest
from chargelog.models.records import LogRecord, connector_id_from, record_id_for
from chargelog_local.provision import LocalStack

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
SITE = "depot-n"
EVSE = "evse01HSH04KDEWF6Z4DB2J77J74K5"
STATUSES = ("Available", "Preparing", "Charging", "Faulted")
VENDORS = ("ocpplab", "plugchoice")  # charger CP-0 reads from OCPPLAB, CP-1 from Plugchoice; both on one site


def ocpp_record(n: int) -> LogRecord:
    """Record n of CP-0 / CP-1 (alternating): a StatusNotification CALL, its CALLRESULT, a MeterValues, a Heartbeat."""
    charger = f"CP-{n % 2}"
    vendor = VENDORS[n % 2]
    step = (n // 2) % 4
    fields: dict[str, Any]
    if step == 0:
        fields = {
            "action": "StatusNotification",
            "message_type": "CALL",
            "payload": {
                "connectorId": 1 + n % 3,
                "status": STATUSES[(n // 8) % 4],
                "errorCode": "GroundFailure" if STATUSES[(n // 8) % 4] == "Faulted" else "NoError",
            },
        }
    elif step == 1:
        fields = {"action": "StatusNotification", "message_type": "CALLRESULT", "result": {}}
    elif step == 2:
        fields = {
            "action": "MeterValues",
            "message_type": "CALL",
            "payload": {
                "connectorId": 1,
                "transactionId": 100 + n % 5,
                "meterValue": [
                    {"timestamp": "2026-11-20T00:00:00Z", "sampledValue": [{"value": "1.5", "unit": "kWh"}]}
                ],
            },
        }
    else:
        fields = {"action": "Heartbeat", "message_type": "CALL", "payload": {}}
    return LogRecord.model_validate(
        {
            "vendor": vendor,
            "source_id": charger,
            "site_id": SITE,
            "charger_id": charger,
            "timestamp": START + timedelta(seconds=30 * n),
            "kind": "ocpp",
            "direction": "cp_to_csms",
            "message_id": f"m-{n // 2}",
            "record_id": record_id_for(vendor, charger, None, n=n),
            "raw": {"n": n},
            "connector_id": connector_id_from(fields.get("payload")),
            **fields,
        }
    )


def status_record(n: int) -> LogRecord:
    at = START + timedelta(minutes=5 * n)
    return LogRecord(
        vendor="evenergy",
        source_id=EVSE,
        charger_id=EVSE,
        timestamp=at,
        kind="status",
        payload={
            "is_plugged_in": n % 3 != 0,
            "is_charging": n % 3 == 2,
            "charge_rate_watts": 7000 if n % 3 == 2 else 0,
            "sampled_at": at.isoformat().replace("+00:00", "Z"),
            "logged_at": (at + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        },
        record_id=record_id_for("evenergy", EVSE, None, url=f"https://api.ev.energy/v2/status_logs/{n}"),
        raw={"n": n},
    )


OCPP = [ocpp_record(n) for n in range(160)]
STATUS = [status_record(n) for n in range(30)]


@pytest.fixture
def seeded(stack: LocalStack) -> LocalStack:
    writer = RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), hot_retention_days=400)
    writer.write(OCPP + STATUS)
    return stack


def _matching(records: list[LogRecord], **wanted: str) -> set[str]:
    def field(record: LogRecord, name: str) -> Any:
        return record.kind if name == "kind" else getattr(record.extracted, name, None)

    return {r.record_id for r in records if all(field(r, name) == value for name, value in wanted.items())}


def _ids(got: list[dict[str, Any]]) -> list[str]:
    return [r["record_id"] for r in got]


# ---------------------------------------------------------------------------------------------- storage
def test_items_carry_extracted_fields_and_the_filtered_ones_on_top(seeded: LocalStack) -> None:
    table = aws.table(seeded.refs["Table"])
    items = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "CHARGER#CP-0"})["Items"]
    meter = next(i for i in items if i.get("action") == "MeterValues")
    assert meter["transaction_id"] == record_from_item(meter)["extracted"]["transaction_id"]
    status = next(i for i in items if i.get("action") == "StatusNotification" and i["message_type"] == "CALL")
    assert status["connector_status"] in STATUSES
    heartbeat = next(i for i in items if i.get("action") == "Heartbeat")
    assert not {"extracted", "transaction_id", "connector_status"} & set(heartbeat)
    evse = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"CHARGER#{EVSE}"})["Items"]
    assert len(evse) == len(STATUS)
    assert not any({"gsi1pk", "gsi3pk"} & set(item) for item in evse)  # read from the charger's partition


def test_the_charger_index_says_which_kinds_of_record_a_charger_has(seeded: LocalStack) -> None:
    entries = {e["charger_id"]: e for e in RecordStore(seeded.refs["Table"]).chargers()}
    assert entries[EVSE]["kinds"] == {"status"}
    assert entries["CP-0"]["kinds"] == entries["CP-1"]["kinds"] == {"ocpp"}
    store = RecordStore(seeded.refs["Table"])
    assert store.charger_kinds(EVSE) == {"status"}
    assert store.charger_kinds("CP-0") == {"ocpp"}
    assert store.charger_kinds("CP-unknown") == set()


# ---------------------------------------------------------------------------------------------- filters
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_charger_connector_status_filter_pages_every_match_once(
    seeded: LocalStack, lambda_context: Any, order: str
) -> None:
    got = list(
        follow(lambda_context, "/chargers/CP-0/logs", {"connector_status": "Faulted", "limit": "2", "order": order})
    )
    expected = _matching([r for r in OCPP if r.charger_id == "CP-0"], connector_status="Faulted")
    assert expected
    assert sorted(_ids(got)) == sorted(expected)
    assert len(got) == len(expected)
    assert all(r["extracted"]["error_code"] == "GroundFailure" for r in got)
    times = [r["timestamp"] for r in got]
    assert times == sorted(times, reverse=order == "desc")


def test_site_transaction_id_filter_spans_vendors(seeded: LocalStack, lambda_context: Any) -> None:
    got = list(follow(lambda_context, f"/sites/{SITE}/logs", {"transaction_id": "102", "limit": "3"}))
    expected = _matching(OCPP, transaction_id="102")
    assert {r["vendor"] for r in got} == set(VENDORS)
    assert sorted(_ids(got)) == sorted(expected)


def test_fleet_transaction_id_and_connector_status_filters(seeded: LocalStack, lambda_context: Any) -> None:
    window = {"from": "2026-11-19T23:00:00Z", "to": "2026-11-20T12:00:00Z", "limit": "4"}
    got = list(follow(lambda_context, "/logs", window | {"action": "MeterValues", "transaction_id": "104"}))
    assert sorted(_ids(got)) == sorted(_matching(OCPP, transaction_id="104"))
    got = list(
        follow(lambda_context, "/logs", window | {"action": "StatusNotification", "connector_status": "Charging"})
    )
    assert sorted(_ids(got)) == sorted(_matching(OCPP, connector_status="Charging"))


def test_kind_filter(seeded: LocalStack, lambda_context: Any) -> None:
    got = list(follow(lambda_context, f"/chargers/{EVSE}/logs", {"kind": "status", "limit": "7"}))
    assert len(got) == len(STATUS)
    assert list(follow(lambda_context, f"/chargers/{EVSE}/logs", {"kind": "ocpp"})) == []
    assert len(list(follow(lambda_context, "/chargers/CP-1/logs", {"kind": "ocpp", "limit": "50"}))) == 80
    status, _, body = get_json(lambda_context, "/chargers/CP-1/logs", {"kind": "nonsense"})
    assert status == 422, body


def test_a_cursor_belongs_to_its_filters(seeded: LocalStack, lambda_context: Any) -> None:
    status, _, body = get_json(lambda_context, "/chargers/CP-0/logs", {"connector_status": "Faulted", "limit": "1"})
    assert status == 200
    cursor = body["next_cursor"]
    assert cursor
    status, _, problem = get_json(
        lambda_context, "/chargers/CP-0/logs", {"connector_status": "Charging", "limit": "1", "cursor": cursor}
    )
    assert status == 400, problem


def test_csv_has_transaction_id_and_connector_status_columns(seeded: LocalStack, lambda_context: Any) -> None:
    status, _, text = get(lambda_context, "/chargers/CP-0/logs", {"limit": "8"}, accept="text/csv")
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(text)))
    by_action = {row["action"] + row["message_type"]: row for row in rows}
    assert by_action["MeterValuesCALL"]["transaction_id"].startswith("10")
    assert by_action["StatusNotificationCALL"]["connector_status"] in STATUSES
    assert json.loads(by_action["MeterValuesCALL"]["extracted"])["meter"]["energy_wh"] == 1500.0
    assert by_action["HeartbeatCALL"]["extracted"] == ""


def test_exports_take_the_same_filters(seeded: LocalStack, lambda_context: Any) -> None:
    body = {"site_id": SITE, "transaction_id": "101", "connector_status": "Faulted", "kind": "ocpp"}
    status, _, export = post_json(lambda_context, "/exports", body)
    assert status == 202, export
    assert {k: export["request"][k] for k in body} == body
    _, filters = exports._scope_and_filters(ExportRequest.model_validate(body))
    assert (filters.transaction_id, filters.connector_status, filters.kind) == ("101", "Faulted", "ocpp")
    status, _, problem = post_json(lambda_context, "/exports", {"site_id": SITE, "kind": "weird"})
    assert status == 422, problem


# ---------------------------------------------------------------------------------------------- status timeline
def follow_status(context: Any, charger: str, query: dict[str, str]) -> list[dict[str, Any]]:
    return list(follow(context, f"/chargers/{charger}/status", query, key="entries"))


def test_status_timeline_of_an_evenergy_evse(seeded: LocalStack, lambda_context: Any) -> None:
    status, headers, body = get_json(lambda_context, f"/chargers/{EVSE}/status", {"limit": "25"})
    assert status == 200
    assert len(body["entries"]) == 25
    assert int(headers["x-items-read"]) <= 26  # the charger's partition holds its status records and nothing else
    entries = follow_status(lambda_context, EVSE, {"limit": "4"})
    assert len(entries) == len(STATUS)
    first = entries[0]
    assert first["kind"] == "status"
    assert first["vendor"] == "evenergy"
    assert (first["is_plugged_in"], first["is_charging"], first["charge_rate_watts"]) == (False, False, 0)
    assert first["sampled_at"] == "2026-11-20T00:00:00Z"
    assert first["logged_at"] == "2026-11-20T00:01:00Z"
    assert entries[2]["is_charging"] is True
    times = [e["timestamp"] for e in entries]
    assert times == sorted(times)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_status_timeline_of_an_ocpp_charger(seeded: LocalStack, lambda_context: Any, order: str) -> None:
    entries = follow_status(lambda_context, "CP-0", {"limit": "3", "order": order})
    calls = [r for r in OCPP if r.charger_id == "CP-0" and r.extracted and r.extracted.connector_status]
    assert len(entries) == len(calls)  # the CALLRESULTs report no status
    assert {e["id"].split("~")[1] for e in entries} == {r.record_id for r in calls}
    assert all(e["connector_status"] in STATUSES and e["connector_id"] in (1, 2, 3) for e in entries)
    assert {e["error_code"] for e in entries} == {"NoError", "GroundFailure"}
    times = [e["timestamp"] for e in entries]
    assert times == sorted(times, reverse=order == "desc")


def test_status_timeline_reads_status_records_written_before_the_index_kept_kinds(
    seeded: LocalStack, lambda_context: Any
) -> None:
    """An upgraded table: status items on gsi1's KIND partition and a charger entry without ``kinds``."""
    table = aws.table(seeded.refs["Table"])
    partition = {":pk": f"CHARGER#{EVSE}"}
    items = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues=partition)["Items"]
    for item in items:
        table.put_item(Item=item | {"gsi1pk": f"CHARGER#{EVSE}#KIND#status"})
    (entry,) = [e for e in RecordStore(seeded.refs["Table"]).chargers() if e["charger_id"] == EVSE]
    table.update_item(Key={"pk": entry["pk"], "sk": entry["sk"]}, UpdateExpression="REMOVE kinds")
    assert RecordStore(seeded.refs["Table"]).charger_kinds(EVSE) is None
    entries = follow_status(lambda_context, EVSE, {"limit": "7"})
    assert [e["id"].split("~")[1] for e in entries] == [r.record_id for r in STATUS]


def test_status_timeline_range_and_errors(seeded: LocalStack, lambda_context: Any) -> None:
    query = {"from": "2026-11-20T00:30:00Z", "to": "2026-11-20T01:00:00Z"}
    entries = follow_status(lambda_context, EVSE, query)
    assert [e["timestamp"] for e in entries] == [
        (START + timedelta(minutes=m)).isoformat().replace("+00:00", "Z") for m in range(30, 61, 5)
    ]
    status, _, problem = get_json(
        lambda_context, f"/chargers/{EVSE}/status", {"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}
    )
    assert status == 400, problem
    assert problem["status"] == 400
    status, _, body = get_json(lambda_context, f"/chargers/{EVSE}/status", {"limit": "1"})
    status, _, problem = get_json(lambda_context, "/chargers/CP-0/status", {"cursor": body["next_cursor"]})
    assert status == 400, problem
    assert follow_status(lambda_context, "CP-unknown", {}) == []
