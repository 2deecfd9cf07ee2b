"""The query API through the API function's handler: logs per charger, site and fleet, cursors, formats, errors."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api_calls import follow, get, get_json
from chargelog import aws
from chargelog.dal import record_queries
from chargelog.dal.archive import RawArchive
from chargelog.dal.records import RecordWriter
from chargelog.models.records import LogRecord, record_id_for
from chargelog_local.provision import LocalStack

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
ACTIONS = ("Heartbeat", "MeterValues", "StatusNotification", "BootNotification")


def record(
    n: int,
    charger: str = "CP-0001",
    at: datetime | None = None,
    action: str | None = None,
    site: str | None = None,
    message_type: str = "CALL",
    direction: str = "cp_to_csms",
    message_id: str | None = None,
) -> LogRecord:
    at = at or START + timedelta(seconds=7 * n)
    action = action or ACTIONS[n % len(ACTIONS)]
    return LogRecord(
        vendor="ocpplab",
        source_id=charger,
        site_id=site,
        charger_id=charger,
        connector_id=n % 3,
        timestamp=at,
        kind="ocpp",
        action=action,
        direction=direction,  # type: ignore[arg-type]
        message_type=message_type,  # type: ignore[arg-type]
        message_id=message_id or f"m-{n}",
        payload={"n": n},
        record_id=record_id_for("ocpplab", charger, None, n=n, charger=charger),
        raw={"message": f'[2,"m-{n}","{action}",{{}}]', "n": n},
    )


def write(stack: LocalStack, records: list[LogRecord]) -> None:
    writer = RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), hot_retention_days=400)
    for start in range(0, len(records), 1000):
        writer.write(records[start : start + 1000])


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_cursors_return_every_record_once_in_order(stack: LocalStack, lambda_context: Any, order: str) -> None:
    write(stack, [record(n) for n in range(230)])
    query = {"order": order, "limit": "37"}
    got = list(follow(lambda_context, "/chargers/CP-0001/logs", query))
    assert len(got) == 230
    assert len({r["id"] for r in got}) == 230
    times = [r["timestamp"] for r in got]
    assert times == sorted(times, reverse=order == "desc")


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_several_actions_merge_in_order_without_loss(stack: LocalStack, lambda_context: Any, order: str) -> None:
    write(stack, [record(n) for n in range(200)])
    query = {"action": ["MeterValues", "BootNotification"], "order": order, "limit": "9"}
    got = list(follow(lambda_context, "/chargers/CP-0001/logs", query))
    assert [r["payload"]["n"] for r in got] == sorted(
        (n for n in range(200) if ACTIONS[n % 4] in ("MeterValues", "BootNotification")), reverse=order == "desc"
    )


def test_time_range_and_filters(stack: LocalStack, lambda_context: Any) -> None:
    write(stack, [record(n) for n in range(100)])
    write(stack, [record(1000, direction="csms_to_cp", message_type="CALLRESULT", message_id="m-10")])
    frm, to = START + timedelta(seconds=70), START + timedelta(seconds=140)  # n = 10 .. 20, inclusive
    got = list(follow(lambda_context, "/chargers/CP-0001/logs", {"from": frm.isoformat(), "to": to.isoformat()}))
    assert [r["payload"]["n"] for r in got] == list(range(10, 21))
    status, _, body = get_json(lambda_context, "/chargers/CP-0001/logs", {"message_id": "m-10"})
    assert status == 200
    assert sorted(r["message_type"] for r in body["records"]) == ["CALL", "CALLRESULT"]
    status, _, body = get_json(lambda_context, "/chargers/CP-0001/logs", {"direction": "csms_to_cp"})
    assert [r["payload"]["n"] for r in body["records"]] == [1000]


def test_action_and_time_range_pages_read_at_most_about_twice_what_they_return(
    stack: LocalStack, lambda_context: Any
) -> None:
    write(stack, [record(n) for n in range(20_000)])
    frm = START + timedelta(seconds=7 * 5_000)
    to = START + timedelta(seconds=7 * 15_000)
    for query in (
        {"from": frm.isoformat(), "to": to.isoformat(), "limit": "500"},
        {"from": frm.isoformat(), "to": to.isoformat(), "limit": "500", "order": "desc"},
        {"action": "BootNotification", "from": frm.isoformat(), "to": to.isoformat(), "limit": "200"},
        {"action": ["BootNotification", "Heartbeat"], "limit": "100"},
    ):
        status, headers, body = get_json(lambda_context, "/chargers/CP-0001/logs", query)
        assert status == 200
        returned = len(body["records"])
        assert returned == int(query["limit"])
        if "action" in query:
            # Index keys, then the items: two reads per record, and per partition merged one key past the page.
            partitions = 1 if isinstance(query["action"], str) else len(query["action"])
            assert int(headers["x-items-read"]) <= 2 * returned + partitions, query
        else:
            assert int(headers["x-items-read"]) <= 1.05 * returned, query


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_site_page_merges_its_chargers_reading_about_one_item_per_item_returned(
    stack: LocalStack, lambda_context: Any, order: str
) -> None:
    """A site's records are its chargers' partitions merged: each reads its share of the page, not a fixed chunk. A
    merge must see the next key of every charger to know the page is complete, so a page reads about its records
    plus one a charger (before shares: 25 a charger, 3.0 items per item returned here)."""
    chargers = [f"CP-S{c:02d}" for c in range(12)]
    write(stack, [record(n, charger=chargers[n % 12], site="site-m") for n in range(2_400)])
    got: list[str] = []
    cursor = None
    while True:
        query = {"limit": "100", "order": order} | ({"cursor": cursor} if cursor else {})
        status, headers, body = get_json(lambda_context, "/sites/site-m/logs", query)
        assert status == 200
        returned = len(body["records"])
        if returned == 100:
            assert int(headers["x-items-read"]) <= returned + len(chargers) + 1, (len(got), headers["x-items-read"])
        got.extend(r["record_id"] for r in body["records"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(got) == len(set(got)) == 2_400
    times = [r.split("~")[0] for r in got]
    assert len(times) == 2_400


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("actions", [[], ["Heartbeat", "MeterValues", "BootNotification"]])
def test_a_selective_filter_ends_pages_early_and_still_returns_every_match_once(
    stack: LocalStack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch, order: str, actions: list[str]
) -> None:
    monkeypatch.setattr(record_queries, "READ_BUDGET", 60)
    write(stack, [record(n, direction="csms_to_cp" if n % 50 == 0 else "cp_to_csms") for n in range(1_000)])
    query: dict[str, Any] = {"direction": "csms_to_cp", "order": order, "limit": "5"}
    if actions:
        query["action"] = actions
    pages = 0
    got: list[dict[str, Any]] = []
    cursor = None
    while True:
        status, headers, body = get_json(
            lambda_context, "/chargers/CP-0001/logs", query | ({"cursor": cursor} if cursor else {})
        )
        assert status == 200
        assert int(headers["x-items-read"]) <= 60 + 2 * 25 * max(
            1, len(actions)
        )  # the budget, plus one chunk per partition
        got.extend(body["records"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = [n for n in range(0, 1_000, 50) if not actions or ACTIONS[n % 4] in actions]
    assert [r["payload"]["n"] for r in got] == sorted(expected, reverse=order == "desc")
    assert pages > len(expected) / 5  # some pages ended early
    # A page cut short by its budget ends where every stream has read through, and the streams read in turn, the one
    # furthest behind first: so the pages come to about what the streams must read over the budget (the charger's
    # partition for MeterValues, and each other action's index keys and items), not one for every few items read.
    must_read = 1_000 + sum(2 * 250 for action in actions if action != "MeterValues")
    assert pages <= 2 * must_read / 60


def test_a_filter_that_matches_nothing_reads_the_range_in_a_few_growing_queries(
    stack: LocalStack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each Query whose items the filter all discards doubles the next one's Limit: 1,000 items read for a page of 5
    take about log2(1000 / 6) Queries, not one per six items."""
    write(stack, [record(n, direction="cp_to_csms") for n in range(1_000)])
    queries: list[int] = []
    read_chunk = record_queries.read_chunk

    def counted(table: Any, partition: Any, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        queries.append(query["Limit"])
        return read_chunk(table, partition, query, *args, **kwargs)

    monkeypatch.setattr(record_queries, "read_chunk", counted)
    status, headers, body = get_json(
        lambda_context, "/chargers/CP-0001/logs", {"direction": "csms_to_cp", "limit": "5"}
    )
    assert status == 200
    assert body["records"] == []
    assert body["next_cursor"] is None
    assert int(headers["x-items-read"]) == 1_000
    assert len(queries) <= 10, queries
    assert queries == sorted(queries)  # each at least the last


def test_a_read_whose_items_the_filter_all_discarded_doubles_the_next_chunk_within_the_budget() -> None:
    assert record_queries.grown_chunk(share=2, misses=0, budget_left=100) == 2
    assert record_queries.grown_chunk(share=2, misses=3, budget_left=100) == 16
    assert record_queries.grown_chunk(share=2, misses=10, budget_left=50) == 50  # no more than the budget has left
    assert record_queries.grown_chunk(share=2, misses=10, budget_left=0) == 2  # nor less than the share


def test_site_and_fleet_scopes(stack: LocalStack, lambda_context: Any) -> None:
    write(stack, [record(n, charger=f"CP-{n % 3}", site="depot-1" if n % 3 else None) for n in range(60)])
    # the fleet index spans days: put boots on three days
    write(
        stack,
        [
            record(500 + d, charger="CP-9", at=START + timedelta(days=d, hours=5), action="BootNotification")
            for d in range(3)
        ],
    )
    site = list(follow(lambda_context, "/sites/depot-1/logs", {"limit": "7"}))
    assert {r["charger_id"] for r in site} == {"CP-1", "CP-2"}
    assert len(site) == 40
    boots = list(
        follow(
            lambda_context,
            "/logs",
            {
                "action": "BootNotification",
                "from": START.isoformat(),
                "to": (START + timedelta(days=3)).isoformat(),
                "limit": "4",
            },
        )
    )
    expected = sorted([n for n in range(60) if ACTIONS[n % 4] == "BootNotification"] + [500, 501, 502])
    assert [r["payload"]["n"] for r in boots] == expected


def test_chargers_lists_first_and_last_record_times(stack: LocalStack, lambda_context: Any) -> None:
    write(stack, [record(n) for n in range(10)])
    write(stack, [record(99, at=START - timedelta(days=1))])  # a backfilled, earlier record widens the span
    status, _, body = get_json(lambda_context, "/chargers")
    assert status == 200
    [entry] = body["chargers"]
    assert entry["charger_id"] == "CP-0001"
    assert entry["first_record_at"].startswith("2026-11-19T00:00:00")
    assert entry["last_record_at"].startswith("2026-11-20T00:01:03")


def test_chargers_reads_a_half_written_entry_as_the_span_of_its_one_time(
    stack: LocalStack, lambda_context: Any
) -> None:
    """Seen under load: an entry with first_record_at and no last_record_at made GET /chargers answer 500."""
    aws.table(stack.refs["Table"]).put_item(
        Item={
            "pk": "CHARGERS",
            "sk": "CP-9#ocpplab#dep-1",
            "charger_id": "CP-9",
            "vendor": "ocpplab",
            "source_id": "dep-1",
            "site_id": "site-2f7a91",
            "first_record_at": "2026-11-20T00:00:00.000000Z",
        }
    )
    status, _, body = get_json(lambda_context, "/chargers")
    assert status == 200
    [entry] = body["chargers"]
    assert entry["first_record_at"] == entry["last_record_at"] == "2026-11-20T00:00:00.000000Z"
    assert entry["site_id"] == "site-2f7a91"


def test_one_record_with_its_raw_form(stack: LocalStack, lambda_context: Any) -> None:
    write(stack, [record(n) for n in range(3)])
    _, _, body = get_json(lambda_context, "/chargers/CP-0001/logs")
    first = body["records"][0]
    assert "raw" not in first
    status, _, one = get_json(lambda_context, f"/chargers/CP-0001/logs/{first['id']}")
    assert status == 200
    assert one["raw"]["n"] == 0
    assert one["record_id"] == first["record_id"]
    status, _, problem = get_json(lambda_context, "/chargers/CP-0001/logs/2026-11-20T00:00:00.000000Z~ocpplab:nope")
    assert status == 404
    assert problem["status"] == 404
    status, _, problem = get_json(lambda_context, f"/chargers/CP-0001/logs/{first['record_id']}")
    assert status == 400
    assert "form" in problem["detail"]


def test_csv_and_ndjson_carry_the_same_page(stack: LocalStack, lambda_context: Any) -> None:
    write(stack, [record(n) for n in range(5)])
    status, headers, text = get(lambda_context, "/chargers/CP-0001/logs", {"limit": "3"}, accept="text/csv")
    assert status == 200
    assert headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [json.loads(row["payload"])["n"] for row in rows] == [0, 1, 2]
    assert headers["x-next-cursor"]
    status, headers, text = get(
        lambda_context,
        "/chargers/CP-0001/logs",
        {"limit": "3", "cursor": headers["x-next-cursor"]},
        accept="application/x-ndjson",
    )
    assert status == 200
    assert headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line)["payload"]["n"] for line in text.splitlines()] == [3, 4]
    assert "x-next-cursor" not in headers


def test_forged_edited_and_foreign_cursors_are_refused(stack: LocalStack, lambda_context: Any) -> None:
    write(stack, [record(n) for n in range(10)])
    _, _, body = get_json(lambda_context, "/chargers/CP-0001/logs", {"limit": "2"})
    cursor = body["next_cursor"]
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[8] ^= 1
    edited = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    forged = base64.urlsafe_b64encode(b'{"a":"2026","q":"x"}' + b"0" * 16).rstrip(b"=").decode()
    for bad, query in (
        (edited, {"limit": "2"}),
        (forged, {"limit": "2"}),
        ("not a cursor!", {"limit": "2"}),
        (cursor, {"limit": "2", "order": "desc"}),  # another query's
        (cursor, {"limit": "2", "action": "Heartbeat"}),
    ):
        status, headers, problem = get_json(lambda_context, "/chargers/CP-0001/logs", query | {"cursor": bad})
        assert status == 400, (bad, query)
        assert headers["content-type"] == "application/problem+json"
        assert "cursor" in problem["detail"]
    assert get_json(lambda_context, "/chargers/CP-0001/logs", {"limit": "2", "cursor": cursor})[0] == 200


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/chargers/CP-0001/logs", {"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, 400),
        ("/chargers/CP-0001/logs", {"limit": "0"}, 422),
        ("/chargers/CP-0001/logs", {"limit": "501"}, 422),
        ("/chargers/CP-0001/logs", {"limit": "ten"}, 422),
        ("/chargers/CP-0001/logs", {"action": "Boot Notification"}, 422),
        ("/chargers/CP-0001/logs", {"action": "x' OR 1=1 --"}, 422),
        ("/chargers/CP-0001/logs", {"from": "yesterday"}, 422),
        ("/chargers/CP-0001/logs", {"from": "2026-11-20T00:00:00"}, 422),  # no offset: ambiguous
        ("/chargers/CP-0001/logs", {"to": "0.5"}, 422),  # pydantic would read a Unix time
        ("/chargers/CP-0001/logs", {"from": "1763600000"}, 422),
        ("/chargers/Ladesäule/logs", {}, 422),  # charger ids are printable ASCII
        ("/chargers/CP-0001/logs", {"direction": "sideways"}, 422),
        ("/chargers/CP-0001/logs", {"order": "random"}, 422),
        ("/logs", {}, 422),  # the fleet needs an action
        ("/logs", {"action": "Heartbeat", "from": "2026-01-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, 400),
    ],
)
def test_bad_parameters_get_a_problem(
    stack: LocalStack, lambda_context: Any, path: str, query: dict[str, str], expected: int
) -> None:
    status, headers, problem = get_json(lambda_context, path, query)
    assert status == expected, problem
    assert headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= problem.keys()
