"""Exports through the handlers: POST /exports queues one, the export function writes it, GET /exports/{id} links it.

The file an export writes must hold exactly what paging through the logs routes returns for the same query.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

import export_handler
from api_calls import get, get_json, post_json
from chargelog import aws
from chargelog.dal.archive import RawArchive
from chargelog.dal.exports import ExportFiles
from chargelog.dal.record_archive import RecordArchive
from chargelog.dal.records import RecordWriter
from chargelog.logic import exports, logs
from chargelog.models.records import LogRecord, record_id_for
from chargelog.settings import get_settings
from chargelog_local.lambdas import LocalLambdaContext
from chargelog_local.provision import LocalStack
from chargelog_local.triggers import sqs_event
from conftest import REGION, load_event

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
ACTIONS = ("Heartbeat", "MeterValues", "StatusNotification", "BootNotification")
PROBLEM_FIELDS = {"type", "title", "status", "detail"}


# ---------------------------------------------------------------------------------------------- helpers


def log_record(n: int) -> LogRecord:
    """Record n: one of four chargers (three on site depot-1), one of four actions, spread over three days."""
    charger = f"CP-{n % 4}"
    action = ACTIONS[(n // 4) % len(ACTIONS)]
    return LogRecord(
        vendor="ocpplab",
        source_id=charger,
        site_id="depot-1" if n % 4 else None,
        charger_id=charger,
        connector_id=n % 3,
        timestamp=START + timedelta(minutes=19 * n),  # 200 records: over two and a half days
        kind="ocpp",
        action=action,
        direction="cp_to_csms" if n % 3 else "csms_to_cp",
        message_type="CALL" if n % 3 else "CALLRESULT",
        message_id=f"m-{n}",
        payload={"n": n, "text": f'quote " comma , newline \n {n}'},
        record_id=record_id_for("ocpplab", charger, None, n=n),
        raw={"n": n},
    )


def seed(stack: LocalStack, count: int = 200) -> None:
    """The records in the table and in the record archive, as the worker writes them: an export reads either."""
    writer = RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), hot_retention_days=400)
    archive = RecordArchive(stack.refs["RecordArchiveBucket"])
    records = [log_record(n) for n in range(count)]
    writer.write(records[: count // 2], before_writing=archive.put_page)  # pages as a worker splits them
    writer.write(records[count // 2 :], before_writing=archive.put_page)


def post_export(context: Any, body: Any, content_type: str = "application/json") -> tuple[int, dict[str, str], Any]:
    return post_json(context, "/exports", body, content_type)


def get_export(context: Any, export_id: str) -> tuple[int, dict[str, str], Any]:
    return get_json(context, f"/exports/{export_id}")


def api_pages(context: Any, path: str, query: dict[str, Any], accept: str) -> list[str]:
    """Every page the logs route returns for a query, following X-Next-Cursor, in the given format."""
    pages, cursor = [], None
    while True:
        status, headers, text = get(context, path, query | ({"cursor": cursor} if cursor else {}), accept=accept)
        assert status == 200, text
        pages.append(text)
        cursor = headers.get("x-next-cursor")
        if not cursor:
            return pages


def export_messages(stack: LocalStack) -> list[dict[str, Any]]:
    return (
        aws.client("sqs")
        .receive_message(QueueUrl=stack.refs["ExportQueue"], MaxNumberOfMessages=10, AttributeNames=["All"])
        .get("Messages", [])
    )


def export_item(stack: LocalStack, export_id: str) -> dict[str, Any]:
    return aws.table(stack.refs["Table"]).get_item(Key={"pk": "EXPORT", "sk": export_id})["Item"]


def export_file(stack: LocalStack, key: str) -> bytes:
    return bytes(aws.client("s3").get_object(Bucket=stack.refs["ExportsBucket"], Key=key)["Body"].read())


@pytest.fixture
def export_context() -> Callable[..., LocalLambdaContext]:
    def make(timeout_seconds: int = 900) -> LocalLambdaContext:
        return LocalLambdaContext(
            function_name="ExportFunction", memory_limit_in_mb=1024, timeout_seconds=timeout_seconds, region=REGION
        )

    return make


def run_queued_exports(stack: LocalStack, context: LocalLambdaContext) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Deliver what is on the export queue to the export function, as Lambda's SQS event source does."""
    messages = export_messages(stack)
    assert messages
    event = sqs_event(messages, stack.attributes[("ExportQueue", "Arn")], REGION)
    return export_handler.lambda_handler(event, context), messages


def redeliver(messages: list[dict[str, Any]], stack: LocalStack, context: LocalLambdaContext) -> dict[str, Any]:
    return export_handler.lambda_handler(sqs_event(messages, stack.attributes[("ExportQueue", "Arn")], REGION), context)


# ---------------------------------------------------------------------------------------------- POST /exports


def test_post_stores_a_queued_export_and_queues_it(stack: LocalStack, lambda_context: Any) -> None:
    before = datetime.now(UTC)
    body = {"charger_id": "CP-1", "from": "2026-11-20T00:00:00+01:00", "actions": ["Heartbeat"], "format": "csv"}
    status, headers, export = post_export(lambda_context, body)

    assert status == 202, export
    assert headers["location"] == f"/exports/{export['id']}"
    assert export["state"] == "queued"
    assert export["format"] == "csv"
    assert export["request"]["charger_id"] == "CP-1"
    assert export["request"]["from"] == "2026-11-20T00:00:00+01:00"
    assert export["request"]["actions"] == ["Heartbeat"]
    assert "download_url" not in export or export["download_url"] is None

    item = export_item(stack, export["id"])
    assert item["state"] == "queued"
    assert item["request"]["format"] == "csv"
    retention = timedelta(days=exports.EXPORT_RETENTION_DAYS)
    assert (
        (before + retention).timestamp() - 5 <= int(item["expires_at"]) <= (datetime.now(UTC) + retention).timestamp()
    )
    (message,) = export_messages(stack)
    assert json.loads(message["Body"]) == {"export_id": export["id"]}


def test_a_fleet_export_may_span_longer_than_a_fleet_page_but_not_past_retention(
    stack: LocalStack, lambda_context: Any
) -> None:
    long_range = {"from": "2026-01-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}
    status, _, problem = get(lambda_context, "/logs", {"action": "Heartbeat", **long_range})
    assert status == 400, problem
    status, _, export = post_export(lambda_context, {"actions": ["Heartbeat"], **long_range})
    assert status == 202, export
    status, _, problem = post_export(
        lambda_context, {"actions": ["Heartbeat"], "from": "2025-01-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}
    )
    assert status == 400
    assert "400 days" in problem["detail"]


def test_a_fleet_export_over_centuries_is_refused_before_any_day_is_planned(
    stack: LocalStack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fleet Query reads a partition per action and day: planning 2,000 years of 18 actions took the API past API
    # Gateway's 29 s (schemathesis found it). The span is checked first.
    def no_partitions(*_: Any) -> Any:
        raise AssertionError("the range's days were planned before its span was checked")

    monkeypatch.setattr(logs, "_partitions", no_partitions)
    actions = [f"Action{n}" for n in range(18)]
    status, _, problem = post_export(lambda_context, {"actions": actions, "from": "0062-07-01T01:37:12+07:37"})
    assert status == 400, problem
    assert problem["status"] == 400
    assert f"at most {get_settings().archive_retention_days} days" in problem["detail"]


@pytest.mark.parametrize(
    "moment",
    ["0001-01-01T00:00:00+00:12", "0001-01-01T12:00:00Z", "9999-12-31T23:00:00-05:00", "9999-12-31T00:00:00Z"],
)
def test_a_bound_past_the_edge_of_the_calendar_is_read_as_the_edge(
    stack: LocalStack, lambda_context: Any, moment: str
) -> None:
    # Year 1 at a positive offset is year 0 in UTC, which Python cannot hold (schemathesis found the 500), and a
    # schema-valid date-time must not be refused either (schemathesis: a 422 for positive data): no record lies
    # beyond 0001-01-02 or 9999-12-30, so the bound is read as that edge and the range means what was asked.
    early = moment.startswith("0001")
    edge = "0001-01-02T00:00:00Z" if early else "9999-12-30T00:00:00Z"
    bound = "from" if early else "to"
    for path, params in [
        ("/chargers/CP-1/exchanges", {bound: moment}),
        ("/chargers/CP-1/logs", {bound: moment}),
        ("/logs", {"action": "Heartbeat", bound: moment}),
    ]:
        asked = get_json(lambda_context, path, params)
        at_the_edge = get_json(lambda_context, path, params | {bound: edge})
        assert asked[0] < 500, (path, asked)  # a fleet range from year 1 is the route's own 400 (too long)
        assert asked[0] == at_the_edge[0], (path, asked, at_the_edge)
        if asked[0] == 200:
            assert asked[2] == at_the_edge[2], path
    status, _, export = post_export(lambda_context, {"charger_id": "CP-1", bound: moment})
    assert status == 202, export
    status, _, export = get_export(lambda_context, export["id"])
    assert status == 200, export
    assert export["request"][bound] == edge, export
    for action in ("backfill", "replay"):
        body = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"} | {bound: moment}
        status, _, problem = post_json(lambda_context, f"/collectors/ocpplab/dep-1/{action}", body)
        # Older than the archive keeps, or in the future: the route's own 400, as for any such range.
        assert (status, problem["status"]) == (400, 400), (action, problem)


BAD_REQUESTS: list[tuple[Any, int]] = [
    ({}, 400),  # the fleet needs an action
    ({"format": "csv"}, 400),
    ({"charger_id": "CP-1", "site_id": "depot-1"}, 400),
    ({"charger_id": "CP 1"}, 422),
    ({"charger_id": ""}, 422),
    ({"charger_id": 7}, 422),
    ({"site_id": "depot#1"}, 422),
    ({"actions": ["Boot Notification"]}, 422),
    ({"actions": "Heartbeat"}, 422),
    ({"actions": ["Heartbeat"] * 65}, 422),
    ({"charger_id": "CP-1", "format": "xlsx"}, 422),
    ({"charger_id": "CP-1", "order": "random"}, 422),
    ({"charger_id": "CP-1", "direction": "sideways"}, 422),
    ({"charger_id": "CP-1", "vendor": "acme"}, 422),
    ({"charger_id": "CP-1", "from": "yesterday"}, 422),
    ({"charger_id": "CP-1", "from": "2026-11-20T00:00:00"}, 422),  # no offset: ambiguous
    ({"charger_id": "CP-1", "limit": 10}, 422),  # not a field of an export
    ({"charger_id": "CP-1", "start": "2026-11-20T00:00:00Z"}, 422),  # the field is called "from"
    ({"charger_id": "CP-1", "from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, 400),
    (["CP-1"], 422),
    (b"{not json", 400),
]


def test_bad_requests_get_a_problem_and_queue_nothing(stack: LocalStack, lambda_context: Any) -> None:
    # One stack for every case (provisioning one per case would take most of this file's time).
    statuses, problems = {}, []
    for body, _ in BAD_REQUESTS:
        status, headers, problem = post_export(lambda_context, body)
        statuses[repr(body)] = status
        problems.append((headers["content-type"], problem.keys() >= PROBLEM_FIELDS))
    assert statuses == {repr(body): expected for body, expected in BAD_REQUESTS}
    assert problems == [("application/problem+json", True)] * len(BAD_REQUESTS)
    assert export_messages(stack) == []
    items = aws.table(stack.refs["Table"]).query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "EXPORT"}
    )["Items"]
    assert items == []


def test_a_body_that_is_not_json_is_unsupported(stack: LocalStack, lambda_context: Any) -> None:
    status, headers, problem = post_export(lambda_context, b"charger_id=CP-1", content_type="text/plain")
    assert status == 415
    assert headers["content-type"] == "application/problem+json"
    assert problem["status"] == 415
    assert export_messages(stack) == []


# ---------------------------------------------------------------------------------------------- the export function


CHARGER = ({"charger_id": "CP-1"}, "/chargers/CP-1/logs", {})
CHARGER_ACTIONS_DESC = (
    {"charger_id": "CP-2", "actions": ["MeterValues", "BootNotification"], "order": "desc"},
    "/chargers/CP-2/logs",
    {"action": ["MeterValues", "BootNotification"], "order": "desc"},
)
SITE_FILTERED = (
    {"site_id": "depot-1", "direction": "cp_to_csms", "from": "2026-11-20T12:00:00Z"},
    "/sites/depot-1/logs",
    {"direction": "cp_to_csms", "from": "2026-11-20T12:00:00Z"},
)
FLEET_DAYS = (
    {"actions": ["Heartbeat", "BootNotification"], "from": "2026-11-19T00:00:00Z", "to": "2026-11-23T00:00:00Z"},
    "/logs",
    {"action": ["Heartbeat", "BootNotification"], "from": "2026-11-19T00:00:00Z", "to": "2026-11-23T00:00:00Z"},
)


@pytest.mark.parametrize(
    ("fmt", "export_request", "path", "query"),
    [
        ("ndjson", *CHARGER),
        ("ndjson", *CHARGER_ACTIONS_DESC),
        ("ndjson", *SITE_FILTERED),
        ("ndjson", *FLEET_DAYS),
        ("csv", *CHARGER_ACTIONS_DESC),
        ("csv", *FLEET_DAYS),
    ],
    ids=[
        "ndjson-charger",
        "ndjson-charger-actions-desc",
        "ndjson-site-filtered",
        "ndjson-fleet-days",
        "csv-charger-actions-desc",
        "csv-fleet-days",
    ],
)
def test_the_file_holds_what_paging_the_logs_route_returns(
    stack: LocalStack,
    lambda_context: Any,
    export_context: Callable[..., LocalLambdaContext],
    monkeypatch: pytest.MonkeyPatch,
    export_request: dict[str, Any],
    path: str,
    query: dict[str, Any],
    fmt: str,
) -> None:
    seed(stack)
    monkeypatch.setattr(exports, "PAGE_SIZE", 17)  # several pages, so their seams are tested too
    status, _, export = post_export(lambda_context, export_request | {"format": fmt})
    assert status == 202, export

    result, _ = run_queued_exports(stack, export_context())
    assert result == {"batchItemFailures": []}

    status, _, done = get_export(lambda_context, export["id"])
    assert status == 200
    assert done["state"] == "done", done
    content = export_file(stack, ExportFiles.key(export["id"], fmt))
    assert done["bytes"] == len(content)

    accept = {"ndjson": "application/x-ndjson", "csv": "text/csv"}[fmt]
    pages = api_pages(lambda_context, path, query | {"limit": "100"}, accept)
    text = content.decode()
    if fmt == "ndjson":
        assert text == "".join(pages)
        lines = text.splitlines()
    else:
        header = pages[0].splitlines()[0]
        assert text.splitlines()[0] == header
        lines = [row for page in pages for row in csv.DictReader(io.StringIO(page))]  # type: ignore[misc]
        assert list(csv.DictReader(io.StringIO(text))) == lines
    assert done["records"] == len(lines) > exports.PAGE_SIZE  # more than one page


def test_states_queued_running_done_and_a_done_export_is_not_redone(
    stack: LocalStack,
    lambda_context: Any,
    export_context: Callable[..., LocalLambdaContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(stack, 40)
    _, _, export = post_export(lambda_context, {"charger_id": "CP-3"})
    status, _, queued = get_export(lambda_context, export["id"])
    assert (status, queued["state"], queued["download_url"], queued["attempts"]) == (200, "queued", None, 0)

    seen_while_uploading: list[dict[str, Any]] = []
    upload = ExportFiles.upload

    def watched_upload(self: ExportFiles, *args: Any, **kwargs: Any) -> None:
        seen_while_uploading.append(get_export(lambda_context, export["id"])[2])
        upload(self, *args, **kwargs)

    monkeypatch.setattr(ExportFiles, "upload", watched_upload)
    result, messages = run_queued_exports(stack, export_context())
    assert result == {"batchItemFailures": []}
    (running,) = seen_while_uploading
    assert (running["state"], running["download_url"], running["attempts"]) == ("running", None, 1)
    assert running["started_at"] is not None
    assert running["finished_at"] is None

    _, _, done = get_export(lambda_context, export["id"])
    assert done["state"] == "done"
    assert done["records"] == 10
    assert done["download_url"]
    assert done["finished_at"] >= done["started_at"] >= done["created_at"]
    assert datetime.fromisoformat(done["download_expires_at"]) <= datetime.now(UTC) + timedelta(minutes=15)
    key = ExportFiles.key(export["id"], "ndjson")
    etag = aws.client("s3").head_object(Bucket=stack.refs["ExportsBucket"], Key=key)["ETag"]

    # A redelivered message (SQS is at least once) leaves a done export as it is, even if more records arrived.
    seed(stack, 80)
    assert redeliver(messages, stack, export_context()) == {"batchItemFailures": []}
    _, _, again = get_export(lambda_context, export["id"])
    assert (again["state"], again["records"], again["attempts"]) == ("done", 10, 1)
    assert aws.client("s3").head_object(Bucket=stack.refs["ExportsBucket"], Key=key)["ETag"] == etag
    assert len(seen_while_uploading) == 1


def test_a_failed_export_records_its_error_and_a_retry_can_finish_it(
    stack: LocalStack,
    lambda_context: Any,
    export_context: Callable[..., LocalLambdaContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(stack, 40)
    _, _, export = post_export(lambda_context, {"charger_id": "CP-1", "format": "csv"})
    monkeypatch.setenv("CHARGELOG_EXPORTS_BUCKET", "no-such-bucket")
    get_settings.cache_clear()

    messages = export_messages(stack)
    # The whole batch failed, so the invocation fails: SQS delivers the message again (after three receives, to the
    # dead-letter queue).
    with pytest.raises(BatchProcessingError, match="NoSuchBucket"):
        redeliver(messages, stack, export_context())
    status, _, failed = get_export(lambda_context, export["id"])
    assert status == 200
    assert failed["state"] == "failed"
    assert "NoSuchBucket" in failed["error"] or "does not exist" in failed["error"]
    assert failed["download_url"] is None
    assert failed["finished_at"] is not None

    monkeypatch.setenv("CHARGELOG_EXPORTS_BUCKET", stack.refs["ExportsBucket"])
    get_settings.cache_clear()
    assert redeliver(messages, stack, export_context()) == {"batchItemFailures": []}
    _, _, done = get_export(lambda_context, export["id"])
    assert (done["state"], done["error"], done["attempts"], done["records"]) == ("done", None, 2, 10)
    assert done["download_url"]


def test_an_export_too_large_for_one_run_fails_for_good(
    stack: LocalStack, lambda_context: Any, export_context: Callable[..., LocalLambdaContext]
) -> None:
    seed(stack, 40)
    _, _, export = post_export(lambda_context, {"charger_id": "CP-1"})
    # Less time left than the export keeps in reserve: retrying would fail the same way, so it is not retried.
    result, _ = run_queued_exports(stack, export_context(timeout_seconds=int(exports.TIME_RESERVE_SECONDS) - 1))
    assert result == {"batchItemFailures": []}
    _, _, failed = get_export(lambda_context, export["id"])
    assert failed["state"] == "failed"
    assert "shorter ranges" in failed["error"]


def test_a_message_for_an_unknown_export_is_dropped(
    stack: LocalStack, export_context: Callable[..., LocalLambdaContext]
) -> None:
    assert export_handler.lambda_handler(load_event("sqs_export_jobs"), export_context()) == {"batchItemFailures": []}


# ---------------------------------------------------------------------------------------------- GET /exports/{id}


def test_an_unknown_or_expired_export_is_a_404_problem(stack: LocalStack, lambda_context: Any) -> None:
    status, headers, problem = get_export(lambda_context, "5d41402abc4b2a76b9719d911017c592")
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert problem.keys() >= PROBLEM_FIELDS

    _, _, export = post_export(lambda_context, {"charger_id": "CP-1"})
    aws.table(stack.refs["Table"]).update_item(
        Key={"pk": "EXPORT", "sk": export["id"]},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": int(datetime.now(UTC).timestamp()) - 1},
    )
    assert get_export(lambda_context, export["id"])[0] == 404


def test_an_export_lives_no_longer_than_its_file(template: dict[str, Any]) -> None:
    rules = template["Resources"]["ExportsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    (expiry,) = [rule["ExpirationInDays"] for rule in rules if rule["Status"] == "Enabled"]
    assert int(expiry) >= exports.EXPORT_RETENTION_DAYS
