"""Exports on moto's server, wired as the local stack wires them: ExportFunction polls the template's ExportQueue,
writes to ExportsBucket, and the presigned link GET /exports/{id} gives downloads the file over HTTP."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

import api_handler
from chargelog import aws
from chargelog.dal.archive import RawArchive
from chargelog.dal.record_archive import RecordArchive
from chargelog.dal.records import RecordWriter
from chargelog.models.records import LogRecord, record_id_for
from chargelog_local.lambdas import LocalFunction
from chargelog_local.provision import LocalStack
from chargelog_local.template import functions
from chargelog_local.triggers import SqsTrigger
from conftest import REGION, load_event

START = datetime(2026, 11, 20, tzinfo=UTC)


def seed(stack: LocalStack, count: int) -> None:
    records = [
        LogRecord(
            vendor="ocpplab",
            source_id="CP-7",
            charger_id="CP-7",
            timestamp=START + timedelta(minutes=n),
            kind="ocpp",
            action=("Heartbeat", "MeterValues")[n % 2],
            direction="cp_to_csms",
            message_type="CALL",
            message_id=f"m-{n}",
            payload={"n": n},
            record_id=record_id_for("ocpplab", "CP-7", None, n=n),
            raw={"n": n},
        )
        for n in range(count)
    ]
    # As the worker writes them: the record archive too, which an export without a start reads (tier "archive").
    archive = RecordArchive(stack.refs["RecordArchiveBucket"])
    writer = RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), hot_retention_days=30)
    for page in range(0, count, 200):
        writer.write(records[page : page + 200], before_writing=archive.put_page)


def call(event: dict[str, Any], context: Any) -> tuple[int, dict[str, str], str]:
    response = api_handler.lambda_handler(event, context)
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = values[-1]
    return response["statusCode"], headers, body


def get(context: Any, path: str, query: dict[str, str] | None = None, accept: str = "application/json") -> Any:
    event = load_event("api_get_charger_logs")
    event["path"] = event["resource"] = path
    event["pathParameters"] = None
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    event["headers"]["Accept"] = accept
    event["multiValueHeaders"]["Accept"] = [accept]
    return call(event, context)


def test_the_export_bucket_and_queue_are_provisioned_as_the_template_says(server_stack: LocalStack) -> None:
    s3 = aws.client("s3")
    bucket = server_stack.refs["ExportsBucket"]
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["Expiration"]["Days"] == 7
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=server_stack.refs["ExportQueue"], AttributeNames=["All"]
    )["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == server_stack.attributes[("ExportDeadLetterQueue", "Arn")]
    assert attributes["SqsManagedSseEnabled"] == "true"


def test_the_local_stack_runs_an_export_and_its_link_downloads_the_file(
    template: dict[str, Any], server_stack: LocalStack, moto_server: str, lambda_context: Any
) -> None:
    # ExportFunction's SQS event source, resolved against the stack as chargelog_local.runner does.
    (spec,) = [spec for spec in functions(template) if spec.logical_id == "ExportFunction"]
    ((queue_arn_expr, batch_size, reports_failures),) = spec.queues
    queue_arn = server_stack.resolver().resolve(queue_arn_expr)
    assert server_stack.logical_id_of_arn(queue_arn) == "ExportQueue"
    assert reports_failures
    export_function = LocalFunction(spec, REGION)
    trigger = SqsTrigger(
        export_function,
        server_stack.refs["ExportQueue"],
        queue_arn,
        batch_size,
        reports_failures,
        REGION,
        threading.Event(),
    )
    seed(server_stack, 1200)

    event = load_event("api_create_export")
    event["body"] = base64.b64encode(json.dumps({"charger_id": "CP-7", "actions": ["MeterValues"]}).encode()).decode()
    status, headers, body = call(event, lambda_context)
    assert status == 202, body
    export_id = json.loads(body)["id"]
    assert headers["location"] == f"/exports/{export_id}"

    try:
        assert trigger.poll_once(wait_seconds=0) == 1
    finally:
        export_function.shutdown()
    status, _, body = get(lambda_context, f"/exports/{export_id}")
    export = json.loads(body)
    assert (status, export["state"], export["records"], export["tier"]) == (200, "done", 600, "archive")
    assert export["download_url"].startswith(f"{moto_server}/")  # AWS_ENDPOINT_URL: moto on 127.0.0.1
    link = httpx.URL(export["download_url"]).params
    assert link["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"  # SigV4: S3 refuses SigV2 on new buckets
    assert link["X-Amz-Expires"] == "900"

    download = httpx.get(export["download_url"], timeout=30)
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/x-ndjson"
    assert "attachment" in download.headers["content-disposition"]
    assert len(download.content) == export["bytes"]

    pages, cursor = [], None
    while True:
        query = {"action": "MeterValues", "limit": "500"} | ({"cursor": cursor} if cursor else {})
        status, headers, text = get(lambda_context, "/chargers/CP-7/logs", query, accept="application/x-ndjson")
        assert status == 200
        pages.append(text)
        cursor = headers.get("x-next-cursor")
        if not cursor:
            break
    assert len(pages) == 2
    assert download.text == "".join(pages)
    # The message was deleted: nothing is left to run.
    assert trigger.poll_once(wait_seconds=0) == 0
