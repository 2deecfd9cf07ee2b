"""GET /chargers/{charger_id}/exchanges through the API function's handler: CALLs paired with their answers."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import api_calls
from chargelog.dal.archive import RawArchive
from chargelog.dal.records import RecordWriter
from chargelog.logic.exchanges import PAIRING_WINDOW
from chargelog.models.records import LogRecord, record_id_for
from chargelog_local.provision import LocalStack

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
CHARGER = "CP-0001"
PATH = f"/chargers/{CHARGER}/exchanges"
_serial = iter(range(1_000_000))


def message(
    at: datetime,
    message_type: str,
    direction: str,
    message_id: str,
    action: str | None = None,
    payload: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
    status: str | None = None,
    charger: str = CHARGER,
) -> LogRecord:
    n = next(_serial)
    return LogRecord(
        vendor="ocpplab",
        source_id=charger,
        charger_id=charger,
        timestamp=at,
        kind="ocpp",
        action=action,
        direction=direction,  # type: ignore[arg-type]
        message_type=message_type,  # type: ignore[arg-type]
        message_id=message_id,
        status=status,
        payload=payload,
        result=result,
        record_id=record_id_for("ocpplab", charger, None, n=n),
        raw={"n": n},
    )


def call(at: datetime, direction: str, message_id: str, action: str, **fields: Any) -> LogRecord:
    return message(at, "CALL", direction, message_id, action=action, payload=fields.pop("payload", {}), **fields)


def answer(at: datetime, direction: str, message_id: str, **fields: Any) -> LogRecord:
    return message(at, "CALLRESULT", direction, message_id, result=fields.pop("result", {}), **fields)


def status_change(at: datetime, status: str) -> LogRecord:
    n = next(_serial)
    return LogRecord(
        vendor="ocpplab",
        source_id=CHARGER,
        charger_id=CHARGER,
        timestamp=at,
        kind="status",
        status=status,
        record_id=record_id_for("ocpplab", CHARGER, None, n=n),
        raw={"n": n},
    )


def write(stack: LocalStack, records: list[LogRecord]) -> None:
    writer = RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), hot_retention_days=400)
    for start in range(0, len(records), 1000):
        writer.write(records[start : start + 1000])


def get(
    context: Any, query: dict[str, str | list[str]] | None = None, accept: str = "application/json", path: str = PATH
) -> tuple[int, dict[str, str], str]:
    return api_calls.get(context, path, query, accept)


def get_json(context: Any, query: dict[str, Any] | None = None, path: str = PATH) -> tuple[int, dict[str, str], Any]:
    return api_calls.get_json(context, path, query)


def exchanges(context: Any, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    status, _, body = get_json(context, query)
    assert status == 200, body
    assert body["next_cursor"] is None
    return list(body["exchanges"])


def follow(context: Any, query: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return api_calls.follow(context, PATH, query, key="exchanges")


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["message_id"]: row for row in rows}


def test_calls_from_either_side_pair_with_the_other_sides_answer(stack: LocalStack, lambda_context: Any) -> None:
    write(
        stack,
        [
            call(T0, "cp_to_csms", "boot-1", "BootNotification"),
            answer(T0 + timedelta(milliseconds=120), "csms_to_cp", "boot-1", result={"status": "Accepted"}),
            call(T0 + timedelta(seconds=30), "csms_to_cp", "rs-1", "RemoteStartTransaction"),
            answer(T0 + timedelta(seconds=30, milliseconds=850), "cp_to_csms", "rs-1", action="RemoteStartTransaction"),
        ],
    )
    rows = exchanges(lambda_context)
    assert [row["message_id"] for row in rows] == ["boot-1", "rs-1"]  # answers are not exchanges of their own
    boot, remote = rows
    assert (boot["action"], boot["direction"], boot["outcome"]) == ("BootNotification", "cp_to_csms", "answered")
    assert boot["response_time_ms"] == 120.0
    assert boot["response"]["direction"] == "csms_to_cp"
    assert boot["response"]["result"] == {"status": "Accepted"}
    assert boot["call"]["message_type"] == "CALL"
    assert "raw" not in boot["call"]
    assert "raw" not in boot["response"]
    assert (remote["direction"], remote["outcome"], remote["response_time_ms"]) == ("csms_to_cp", "answered", 850.0)
    assert remote["response"]["direction"] == "cp_to_csms"
    assert remote["combined"] is False
    # the ids link to the records in the logs listing
    status, _, record = get_json(lambda_context, path=f"/chargers/{CHARGER}/logs/{remote['response']['id']}")
    assert status == 200
    assert record["message_type"] == "CALLRESULT"


def test_a_callerror_is_an_error_and_a_call_without_answer_is_unanswered(
    stack: LocalStack, lambda_context: Any
) -> None:
    write(
        stack,
        [
            call(T0, "csms_to_cp", "cfg-1", "ChangeConfiguration"),
            message(
                T0 + timedelta(milliseconds=40),
                "CALLERROR",
                "cp_to_csms",
                "cfg-1",
                status="NotSupported",
                result={"errorCode": "NotSupported", "errorDescription": "", "errorDetails": {}},
            ),
            call(T0 + timedelta(seconds=5), "cp_to_csms", "hb-1", "Heartbeat"),
        ],
    )
    error, lonely = exchanges(lambda_context)
    assert (error["outcome"], error["response_time_ms"]) == ("error", 40.0)
    assert error["response"]["message_type"] == "CALLERROR"
    assert error["response"]["status"] == "NotSupported"
    assert (lonely["outcome"], lonely["response"], lonely["response_time_ms"]) == ("unanswered", None, None)


def test_an_answer_just_outside_the_pairing_window_is_not_paired(stack: LocalStack, lambda_context: Any) -> None:
    late = T0 + timedelta(minutes=10)
    write(
        stack,
        [
            call(T0, "cp_to_csms", "in", "Authorize"),
            answer(T0 + PAIRING_WINDOW, "csms_to_cp", "in"),  # on the edge: still paired
            call(late, "cp_to_csms", "out", "Authorize"),
            answer(late + PAIRING_WINDOW + timedelta(milliseconds=1), "csms_to_cp", "out"),
        ],
    )
    rows = by_id(exchanges(lambda_context))
    assert rows["in"]["outcome"] == "answered"
    assert rows["in"]["response_time_ms"] == PAIRING_WINDOW / timedelta(milliseconds=1)
    assert (rows["out"]["outcome"], rows["out"]["response"]) == ("unanswered", None)


def test_a_message_id_used_by_both_sides_pairs_each_call_with_the_other_sides_answer(
    stack: LocalStack, lambda_context: Any
) -> None:
    # Both sides number their CALLs from 1: the charger's answer to the CSMS's CALL "1" arrives first, and
    # must not be taken for the answer to the charger's own CALL "1".
    write(
        stack,
        [
            call(T0, "cp_to_csms", "1", "Heartbeat"),
            call(T0 + timedelta(seconds=1), "csms_to_cp", "1", "GetConfiguration"),
            answer(T0 + timedelta(milliseconds=1500), "cp_to_csms", "1", result={"configurationKey": []}),
            answer(T0 + timedelta(seconds=2), "csms_to_cp", "1", result={"currentTime": "2026-11-20T08:00:02Z"}),
        ],
    )
    heartbeat, get_configuration = exchanges(lambda_context)
    assert heartbeat["action"] == "Heartbeat"
    assert heartbeat["response"]["direction"] == "csms_to_cp"
    assert heartbeat["response"]["result"] == {"currentTime": "2026-11-20T08:00:02Z"}
    assert heartbeat["response_time_ms"] == 2000.0
    assert get_configuration["response"]["direction"] == "cp_to_csms"
    assert get_configuration["response"]["result"] == {"configurationKey": []}
    assert get_configuration["response_time_ms"] == 500.0


def test_an_id_a_sender_reuses_pairs_the_answer_with_its_latest_call(stack: LocalStack, lambda_context: Any) -> None:
    # The charger rebooted and counts from 1 again: the answer belongs to the second CALL "1", not the first.
    write(
        stack,
        [
            call(T0, "cp_to_csms", "1", "StatusNotification"),
            call(T0 + timedelta(seconds=60), "cp_to_csms", "1", "BootNotification"),
            answer(T0 + timedelta(seconds=60, milliseconds=200), "csms_to_cp", "1"),
        ],
    )
    first, second = exchanges(lambda_context)
    assert (first["action"], first["outcome"]) == ("StatusNotification", "unanswered")
    assert (second["action"], second["outcome"], second["response_time_ms"]) == ("BootNotification", "answered", 200.0)


def test_a_call_logged_with_its_answer_pairs_with_itself(stack: LocalStack, lambda_context: Any) -> None:
    write(
        stack,
        [
            call(
                T0, "cp_to_csms", "c-1", "Authorize", payload={"idTag": "ABC"}, result={"idTagInfo": {"status": "ok"}}
            ),
            call(
                T0 + timedelta(seconds=1),
                "csms_to_cp",
                "c-2",
                "Reset",
                payload={"type": "Hard"},
                result={"errorCode": "NotImplemented", "errorDescription": "no"},
            ),
        ],
    )
    answered, failed = exchanges(lambda_context)
    assert answered["combined"] is True
    assert answered["outcome"] == "answered"
    assert answered["response"]["id"] == answered["call"]["id"]
    assert answered["response"]["result"] == {"idTagInfo": {"status": "ok"}}
    assert answered["response_time_ms"] is None
    assert (failed["combined"], failed["outcome"]) == (True, "error")


def _traffic(count: int) -> list[LogRecord]:
    """A charger's traffic: CALLs 10 s apart from both sides, each answered 100 + n ms later (some across the
    next CALL), with status records in between."""
    records = []
    for n in range(count):
        at = T0 + timedelta(seconds=10 * n)
        direction = "cp_to_csms" if n % 3 else "csms_to_cp"
        other = "csms_to_cp" if direction == "cp_to_csms" else "cp_to_csms"
        action = ("GetConfiguration", "Heartbeat", "MeterValues")[n % 3]
        records.append(call(at, direction, f"m-{n}", action, payload={"n": n}))
        records.append(status_change(at + timedelta(seconds=5), "Charging" if n % 2 else "Available"))
        delay = timedelta(milliseconds=100 + n) if n % 5 else timedelta(seconds=12)  # after the next CALL
        records.append(answer(at + delay, other, f"m-{n}"))
    return records


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_cursors_return_each_call_once_in_order_with_its_answer(
    stack: LocalStack, lambda_context: Any, order: str
) -> None:
    write(stack, _traffic(60))
    rows = list(follow(lambda_context, {"order": order, "limit": "7"}))
    assert [row["call"]["payload"]["n"] for row in rows] == sorted(range(60), reverse=order == "desc")
    assert all(row["outcome"] == "answered" for row in rows)
    for row in rows:
        n = row["call"]["payload"]["n"]
        assert row["response"]["message_id"] == f"m-{n}"
        assert row["response_time_ms"] == (100.0 + n if n % 5 else 12_000.0)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_action_and_range_filters_page_over_those_calls_only(
    stack: LocalStack, lambda_context: Any, order: str
) -> None:
    write(stack, _traffic(60))
    query = {
        "action": ["MeterValues", "Heartbeat"],
        "direction": "cp_to_csms",
        "from": (T0 + timedelta(seconds=100)).isoformat(),
        "to": (T0 + timedelta(seconds=500)).isoformat(),
        "order": order,
        "limit": "4",
    }
    rows = list(follow(lambda_context, query))
    expected = [n for n in range(10, 51) if n % 3]  # n % 3 == 0: the CSMS's GetConfiguration
    assert [row["call"]["payload"]["n"] for row in rows] == sorted(expected, reverse=order == "desc")
    assert {row["outcome"] for row in rows} == {"answered"}  # answers without an action are found too


def test_csv_and_ndjson_carry_the_same_page(stack: LocalStack, lambda_context: Any) -> None:
    write(stack, _traffic(4))
    status, headers, text = get(lambda_context, {"limit": "3"}, accept="text/csv")
    assert status == 200
    assert headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(row["message_id"], row["outcome"], row["response_time_ms"]) for row in rows] == [
        ("m-0", "answered", "12000.0"),
        ("m-1", "answered", "101.0"),
        ("m-2", "answered", "102.0"),
    ]
    assert rows[1]["call_timestamp"] == "2026-11-20T08:00:10Z"
    assert rows[1]["response_timestamp"] == "2026-11-20T08:00:10.101000Z"
    assert (json.loads(rows[1]["payload"]), json.loads(rows[1]["result"])) == ({"n": 1}, {})
    status, headers, text = get(
        lambda_context, {"limit": "3", "cursor": headers["x-next-cursor"]}, accept="application/x-ndjson"
    )
    assert status == 200
    assert headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line)["message_id"] for line in text.splitlines()] == ["m-3"]


def test_bad_cursors_are_refused(stack: LocalStack, lambda_context: Any) -> None:
    write(stack, _traffic(6))
    _, _, logs_page = get_json(lambda_context, {"limit": "2"}, path=f"/chargers/{CHARGER}/logs")
    _, _, page = get_json(lambda_context, {"limit": "2"})
    for bad, query in (
        (logs_page["next_cursor"], {"limit": "2"}),  # the logs listing's cursor
        (page["next_cursor"], {"limit": "2", "order": "desc"}),  # another query's
        ("not a cursor!", {"limit": "2"}),
    ):
        status, headers, problem = get_json(lambda_context, query | {"cursor": bad})
        assert status == 400, (bad, query)
        assert headers["content-type"] == "application/problem+json"
        assert "cursor" in problem["detail"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, 400),
        ({"limit": "0"}, 422),
        ({"limit": "501"}, 422),
        ({"action": "Boot Notification"}, 422),
        ({"from": "2026-11-20T00:00:00"}, 422),  # no offset: ambiguous
        ({"direction": "sideways"}, 422),
        ({"order": "random"}, 422),
    ],
)
def test_bad_parameters_get_a_problem(
    stack: LocalStack, lambda_context: Any, query: dict[str, str], expected: int
) -> None:
    status, headers, problem = get_json(lambda_context, query)
    assert status == expected, problem
    assert headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= problem.keys()


def test_answers_to_calls_far_apart_are_read_near_those_calls_only(stack: LocalStack, lambda_context: Any) -> None:
    records = []
    for day in range(5):
        boot = T0 + timedelta(days=day)
        records += [call(boot, "cp_to_csms", f"boot-{day}", "BootNotification")]
        records += [answer(boot + timedelta(milliseconds=300), "csms_to_cp", f"boot-{day}")]
        for minute in range(10, 24 * 60, 10):  # a day of heartbeats and their answers between the boots
            at = boot + timedelta(minutes=minute)
            records += [call(at, "cp_to_csms", f"hb-{day}-{minute}", "Heartbeat")]
            records += [answer(at + timedelta(milliseconds=50), "csms_to_cp", f"hb-{day}-{minute}")]
    write(stack, records)
    status, headers, body = get_json(lambda_context, {"action": "BootNotification"})
    assert status == 200
    assert [(row["message_id"], row["response_time_ms"]) for row in body["exchanges"]] == [
        (f"boot-{day}", 300.0) for day in range(5)
    ]
    assert int(headers["x-items-read"]) <= 5 * 4  # each boot, its answer, and one heartbeat with its answer
