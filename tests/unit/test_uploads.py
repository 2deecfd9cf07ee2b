"""The upload authorizer and the S3-triggered indexer, on the sample events in events/, against moto in process."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools import Tracer
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError

from chargelog import aws, stores
from chargelog.dal.diagnostics import DiagnosticsFiles, DiagnosticsStore
from chargelog.logic import upload_indexer, uploads
from chargelog.models.diagnostics import DiagnosticsRequest, UploadLimits, format_token, new_secret, secret_sha256
from chargelog.settings import get_settings
from chargelog_local.lambdas import LocalLambdaContext
from chargelog_local.provision import LocalStack
from conftest import load_event
from diagnostics_indexer_handler import lambda_handler as indexer_handler
from upload_authorizer_handler import lambda_handler as authorizer_handler

REQUEST_ID = "0123456789abcdef0123456789abcdef"
RECEIVED_AT = datetime(2024, 2, 7, 16, 51, 51, 123000, tzinfo=UTC)


def _request(
    charger_id: str = "CP-RIV-01", expires_at: datetime | None = None, **counters: int
) -> tuple[DiagnosticsRequest, str]:
    secret = new_secret()
    request = DiagnosticsRequest(
        request_id=REQUEST_ID,
        charger_id=charger_id,
        ocpp_request_id=1,
        requested_at=datetime.now(UTC) - timedelta(minutes=5),
        upload_expires_at=expires_at or datetime.now(UTC) + timedelta(hours=1),
        secret_sha256=secret_sha256(secret),
        remote_location=f"https://example.test/u/{charger_id}/{format_token(REQUEST_ID, secret)}/",
        **counters,
    )
    stores.diagnostics().put_request(request)
    return request, secret


def _authorizer_event(secret: str, **changes: Any) -> dict[str, Any]:
    text = json.dumps(load_event("upload_authorizer_request")).replace("SECRET_PLACEHOLDER_24CHARS", secret)
    event: dict[str, Any] = json.loads(text)
    headers = changes.pop("headers", None)
    if headers is not None:
        event["headers"] = headers
        event["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    event["pathParameters"].update(changes.pop("path", {}))
    event.update(changes)
    return event


def _authorize(event: dict[str, Any], lambda_context: LocalLambdaContext) -> dict[str, Any]:
    return dict(authorizer_handler(event, lambda_context))


def _effect(answer: dict[str, Any]) -> str:
    (statement,) = answer["policyDocument"]["Statement"]
    return str(statement["Effect"])


@pytest.fixture
def traced_responses(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the tracer would put into X-Ray as handler responses (it does so only when capturing them)."""
    captured: list[Any] = []
    original = Tracer._add_response_as_metadata

    def record(
        self: Tracer, method_name: Any = None, data: Any = None, subsegment: Any = None, capture_response: Any = None
    ) -> None:
        if capture_response and data is not None:
            captured.append(data)
        original(self, method_name, data, subsegment, capture_response)

    monkeypatch.setattr(Tracer, "_add_response_as_metadata", record)
    return captured


# ---------------------------------------------------------------------------------------------- authorizer


def test_a_valid_upload_is_allowed_on_its_method_arn_with_the_object_key(
    stack: LocalStack, lambda_context: LocalLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    _, secret = _request()
    event = _authorizer_event(secret)

    answer = _authorize(event, lambda_context)

    (statement,) = answer["policyDocument"]["Statement"]
    assert statement == {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}
    context = answer["context"]
    assert context["object_key"].startswith(f"incoming/{REQUEST_ID}/2024-02-07T16:51:51.123000Z-")
    assert len(context["object_key"].rsplit("-", 1)[1]) == 8
    assert context["filename"] == "diagnostics-2024-02-07T16%3A51%3A50.808ZblrG7o"  # ASCII for S3 metadata
    assert (context["request_id"], context["charger_id"], context["method"]) == (REQUEST_ID, "CP-RIV-01", "PUT")
    stored = stores.diagnostics().get_request(REQUEST_ID)
    assert stored is not None
    assert stored.upload_attempts == 1
    assert secret not in capsys.readouterr().out  # the token is never logged


def test_the_authorizers_answer_is_not_traced(
    stack: LocalStack, lambda_context: LocalLambdaContext, traced_responses: list[Any]
) -> None:
    # Its policy names the method ARN, whose path holds the token.
    _, secret = _request()
    event = _authorizer_event(secret)
    assert secret in event["methodArn"]
    assert _effect(_authorize(event, lambda_context)) == "Allow"
    assert secret not in json.dumps(traced_responses, default=str)


def test_two_uploads_get_two_object_keys(stack: LocalStack, lambda_context: LocalLambdaContext) -> None:
    _, secret = _request()
    keys = {_authorize(_authorizer_event(secret), lambda_context)["context"]["object_key"] for _ in range(2)}
    assert len(keys) == 2


DENIALS: list[tuple[dict[str, Any], str]] = [
    ({"path": {"token": f"{REQUEST_ID}.{'A' * 24}"}}, uploads.INVALID_ADDRESS),
    ({"path": {"token": f"{'f' * 32}.{'A' * 24}"}}, uploads.INVALID_ADDRESS),
    ({"path": {"token": "not-a-token"}}, uploads.INVALID_ADDRESS),
    ({"path": {"token": ""}}, uploads.INVALID_ADDRESS),
    ({"path": {"charger_id": "CP-AIR-02"}}, uploads.INVALID_ADDRESS),
    ({"path": {"filename": "..%2F..%2Fetc%2Fpasswd"}}, uploads.BAD_FILENAME),
    ({"path": {"filename": "a%5Cb"}}, uploads.BAD_FILENAME),
    ({"path": {"filename": "%2E%2E"}}, uploads.BAD_FILENAME),
    ({"path": {"filename": "log%00.txt"}}, uploads.BAD_FILENAME),
    ({"path": {"filename": "x" * 1025}}, uploads.BAD_FILENAME),
    ({"headers": {"Content-Length": "0"}}, uploads.EMPTY_UPLOAD),
    ({"headers": {}}, uploads.EMPTY_UPLOAD),
    ({"headers": {"content-length": "ten"}}, uploads.BAD_LENGTH),
    ({"headers": {"Content-Length": str(10 * 1024 * 1024 + 1)}}, uploads.TOO_LARGE),
    ({"headers": {"Content-Length": "5", "Content-Type": "multipart/form-data"}}, uploads.NO_BOUNDARY),
    ({"httpMethod": "GET"}, uploads.WRONG_METHOD),
    ({"resource": "/u/{proxy+}"}, uploads.WRONG_METHOD),
]


def test_everything_else_is_denied_with_a_reason(stack: LocalStack, lambda_context: LocalLambdaContext) -> None:
    _, secret = _request()
    for change, reason in DENIALS:
        answer = _authorize(_authorizer_event(secret, **json.loads(json.dumps(change))), lambda_context)
        assert _effect(answer) == "Deny", change
        assert answer["context"] == {"reason": reason}, change
    stored = stores.diagnostics().get_request(REQUEST_ID)
    assert stored is not None
    assert stored.upload_attempts == 0


def test_an_expired_address_is_denied_as_expired(stack: LocalStack, lambda_context: LocalLambdaContext) -> None:
    _, secret = _request(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    answer = _authorize(_authorizer_event(secret), lambda_context)
    assert (_effect(answer), answer["context"]["reason"]) == ("Deny", uploads.EXPIRED_ADDRESS)


def test_a_percent_encoded_charger_and_a_chunked_body_are_allowed(
    stack: LocalStack, lambda_context: LocalLambdaContext
) -> None:
    _, secret = _request(charger_id="site/7:bay 2")
    event = _authorizer_event(
        secret, path={"charger_id": "site%2F7%3Abay%202"}, headers={"Transfer-Encoding": "chunked"}
    )
    answer = _authorize(event, lambda_context)
    assert _effect(answer) == "Allow"
    assert answer["context"]["charger_id"] == "site/7:bay 2"


def test_an_upload_without_a_file_name_has_none(stack: LocalStack, lambda_context: LocalLambdaContext) -> None:
    _, secret = _request()
    event = _authorizer_event(secret, resource="/u/{charger_id}/{token}", httpMethod="POST")
    del event["pathParameters"]["filename"]
    answer = _authorize(event, lambda_context)
    assert _effect(answer) == "Allow"
    assert (answer["context"]["filename"], answer["context"]["method"]) == ("", "POST")


MB = 1024 * 1024


@pytest.mark.parametrize(
    ("counters", "length", "effect", "reason"),
    [
        ({"files_received": 9, "bytes_received": 90 * MB}, 10 * MB, "Allow", None),
        ({"files_received": 10}, 1, "Deny", uploads.files_limit_reached(10)),
        ({"files_received": 3, "bytes_received": 100 * MB}, 1, "Deny", uploads.bytes_limit_reached(100 * MB)),
        ({"files_received": 3, "bytes_received": 95 * MB}, 5 * MB + 1, "Deny", uploads.bytes_limit_reached(100 * MB)),
    ],
)
def test_an_address_that_stored_its_files_or_bytes_takes_no_more(
    stack: LocalStack,
    lambda_context: LocalLambdaContext,
    counters: dict[str, int],
    length: int,
    effect: str,
    reason: str | None,
) -> None:
    # The template's defaults (UploadMaxFilesPerRequest 10, UploadMaxBytesPerRequest 100 MB) reach the authorizer.
    _, secret = _request(**counters)
    answer = _authorize(_authorizer_event(secret, headers={"Content-Length": str(length)}), lambda_context)
    assert _effect(answer) == effect
    assert answer["context"].get("reason") == reason
    stored = stores.diagnostics().get_request(REQUEST_ID)
    assert stored is not None
    assert stored.upload_attempts == (1 if effect == "Allow" else 0)


def test_the_limits_come_from_the_environment(
    stack: LocalStack, lambda_context: LocalLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARGELOG_UPLOAD_MAX_FILES_PER_REQUEST", "2")
    get_settings.cache_clear()
    _, secret = _request(files_received=2)
    answer = _authorize(_authorizer_event(secret), lambda_context)
    assert answer["context"] == {"reason": uploads.files_limit_reached(2)}


def test_the_gateway_answers_a_denial_with_a_problem_of_the_same_status(template: dict[str, Any]) -> None:
    # The authorizer's reason reaches the charger through ACCESS_DENIED: a 403 whose body says 403 and why.
    responses = template["Resources"]["UploadApi"]["Properties"]["DefinitionBody"][
        "x-amazon-apigateway-gateway-responses"
    ]
    denied = responses["ACCESS_DENIED"]
    body = denied["responseTemplates"]["application/json"]
    reason = uploads.files_limit_reached(10)
    problem = json.loads(body.replace("$context.authorizer.reason", reason))
    assert (denied["statusCode"], problem["status"], problem["detail"]) == ("403", 403, reason)


# ---------------------------------------------------------------------------------------------- indexer


def _incoming(
    stack: LocalStack, body: bytes, content_type: str | None = None, nonce: str = "0a1b2c3d", **metadata: str
) -> str:
    key = f"incoming/{REQUEST_ID}/2024-02-07T16:51:51.123000Z-{nonce}"
    put: dict[str, Any] = {"Bucket": stack.refs["DiagnosticsBucket"], "Key": key, "Body": body, "Metadata": metadata}
    if content_type:
        put["ContentType"] = content_type
    if (content_type or "").startswith("multipart/"):
        # moto (unlike S3) keeps only the file part of a PUT whose Content-Type is a form: upload it in one part.
        s3, body = aws.client("s3"), put.pop("Body")
        upload_id = s3.create_multipart_upload(**put)["UploadId"]
        etag = s3.upload_part(Bucket=put["Bucket"], Key=key, UploadId=upload_id, PartNumber=1, Body=body)["ETag"]
        s3.complete_multipart_upload(
            Bucket=put["Bucket"],
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]},
        )
    else:
        aws.client("s3").put_object(**put)
    return key


def _notify(stack: LocalStack, key: str, lambda_context: LocalLambdaContext) -> dict[str, Any]:
    text = json.dumps(load_event("sqs_diagnostics_upload"))
    text = text.replace("BUCKET_PLACEHOLDER", stack.refs["DiagnosticsBucket"]).replace("KEY_PLACEHOLDER", key)
    return dict(indexer_handler(json.loads(text), lambda_context))


def _keys(stack: LocalStack) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=stack.refs["DiagnosticsBucket"])
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_a_raw_upload_is_moved_to_its_final_key_and_recorded(
    stack: LocalStack, lambda_context: LocalLambdaContext
) -> None:
    request, _ = _request(charger_id="CP 1")
    data = gzip.compress(b"log line\n" * 1000)
    key = _incoming(stack, data, "application/gzip", filename="diag%3A1.tar.gz", method="PUT")
    etag = hashlib.md5(data).hexdigest()  # noqa: S324 - S3's ETag of a single-part object
    expected_id = hashlib.sha256(f"{key}\n{etag}".encode()).hexdigest()[:16]

    assert _notify(stack, key, lambda_context) == {"batchItemFailures": []}

    (file,) = stores.diagnostics().files_of(request.request_id)
    assert file.key == f"diagnostics/CP%201/{REQUEST_ID}/2024-02-07T16:51:51.123000Z-{expected_id}-diag:1.tar.gz"
    assert (file.filename, file.size, file.sha256) == ("diag:1.tar.gz", len(data), hashlib.sha256(data).hexdigest())
    assert (file.compression, file.content_type, file.upload_method, file.multipart) == (
        "gzip",
        "application/gzip",
        "PUT",
        False,
    )
    assert _keys(stack) == [file.key]


def test_a_redelivered_notification_records_nothing_twice(
    stack: LocalStack, lambda_context: LocalLambdaContext
) -> None:
    request, _ = _request()
    key = _incoming(stack, b"data\n")
    _notify(stack, key, lambda_context)
    assert _notify(stack, key, lambda_context) == {"batchItemFailures": []}
    assert len(stores.diagnostics().files_of(request.request_id)) == 1


def test_the_same_name_at_the_same_instant_keeps_both(stack: LocalStack, lambda_context: LocalLambdaContext) -> None:
    request, _ = _request()
    bucket = stack.refs["DiagnosticsBucket"]
    first = _incoming(stack, b"first\n", filename="a.log")
    _notify(stack, first, lambda_context)
    second = first[:-8] + "99999999"
    aws.client("s3").put_object(Bucket=bucket, Key=second, Body=b"second\n", Metadata={"filename": "a.log"})
    _notify(stack, second, lambda_context)
    files = stores.diagnostics().files_of(request.request_id)
    names = sorted(f.key.rsplit("/", 1)[1] for f in files)
    assert len(set(names)) == 2
    assert all(re.fullmatch(r"2024-02-07T16:51:51\.123000Z-[0-9a-f]{16}-a\.log", name) for name in names)
    assert sorted(_keys(stack)) == sorted(f.key for f in files)


def test_a_form_is_unwrapped_and_an_empty_or_malformed_one_rejected(
    server_stack: LocalStack, lambda_context: LocalLambdaContext
) -> None:
    # moto's server: in process, moto rewrites a form's Content-Type boundary.
    stack = server_stack
    request, _ = _request()
    payload = bytes(range(256)) * 10 + b"\r\n--A\r\n-"  # binary, with a near-boundary inside
    form = (
        b'--B\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="../d.bin"\r\n'
        b"Content-Type: application/x-binary\r\n\r\n" + payload + b"\r\n--B--\r\n"
    )
    _notify(stack, _incoming(stack, form, "multipart/form-data; boundary=B", method="POST"), lambda_context)
    (file,) = stores.diagnostics().files_of(request.request_id)
    assert (file.filename, file.content_type, file.multipart, file.upload_method) == (
        "d.bin",
        "application/x-binary",
        True,
        "POST",
    )
    assert file.sha256 == hashlib.sha256(payload).hexdigest()

    empty_part = b'--B\r\nContent-Disposition: form-data; name="file"; filename="e"\r\n\r\n\r\n--B--\r\n'
    _notify(stack, _incoming(stack, empty_part, "multipart/form-data; boundary=B"), lambda_context)
    stored = stores.diagnostics().get_request(REQUEST_ID)
    assert stored is not None
    assert stored.last_upload_error == "The uploaded file is empty"
    _notify(stack, _incoming(stack, b"garbage", "multipart/form-data; boundary=B"), lambda_context)
    stored = stores.diagnostics().get_request(REQUEST_ID)
    assert stored is not None
    assert stored.last_upload_error is not None
    assert stored.last_upload_error.startswith("Malformed multipart/form-data body")
    assert len(stores.diagnostics().files_of(request.request_id)) == 1
    assert [k for k in _keys(stack) if k.startswith("incoming/")] == []


def test_uploads_for_unknown_requests_and_s3_test_events_are_dropped(
    stack: LocalStack, lambda_context: LocalLambdaContext
) -> None:
    key = _incoming(stack, b"orphan")
    assert _notify(stack, key, lambda_context) == {"batchItemFailures": []}
    assert _keys(stack) == []
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": stack.refs["DiagnosticsBucket"]}
    event = load_event("sqs_diagnostics_upload")
    event["Records"][0]["body"] = json.dumps(test_event)
    assert indexer_handler(event, lambda_context) == {"batchItemFailures": []}


def _final_keys(stack: LocalStack) -> list[str]:
    return [key for key in _keys(stack) if key.startswith("diagnostics/")]


def test_past_its_files_a_request_records_and_keeps_nothing_more(
    stack: LocalStack, lambda_context: LocalLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Uploads let through together all pass the authorizer; the indexer's conditional record keeps the bound.
    monkeypatch.setenv("CHARGELOG_UPLOAD_MAX_FILES_PER_REQUEST", "2")
    get_settings.cache_clear()
    request, _ = _request()
    for number in range(3):
        key = _incoming(stack, f"file {number}\n".encode(), nonce=f"0000000{number}")
        assert _notify(stack, key, lambda_context) == {"batchItemFailures": []}

    stored = stores.diagnostics().get_request(REQUEST_ID)
    assert stored is not None
    assert (stored.files_received, stored.bytes_received) == (2, len(b"file 0\n") * 2)
    assert stored.last_upload_error == f"Not kept: {uploads.files_limit_reached(2)}"
    assert len(stores.diagnostics().files_of(request.request_id)) == 2
    assert len(_final_keys(stack)) == 2
    assert [key for key in _keys(stack) if key.startswith("incoming/")] == []


def test_a_file_that_would_pass_the_bytes_bound_is_not_kept(stack: LocalStack) -> None:
    limits = UploadLimits(max_bytes=100)
    _request(bytes_received=90)
    store, files = stores.diagnostics(), stores.diagnostics_files(stack.refs["DiagnosticsBucket"])
    outcome = upload_indexer.index_upload(_incoming(stack, b"x" * 11), store=store, files=files, limits=limits)
    assert outcome.rejected == uploads.bytes_limit_reached(100)
    exact = upload_indexer.index_upload(
        _incoming(stack, b"x" * 10, nonce="11111111"), store=store, files=files, limits=limits
    )
    assert exact.file is not None
    stored = store.get_request(REQUEST_ID)
    assert stored is not None
    assert (stored.files_received, stored.bytes_received) == (1, 100)
    assert _final_keys(stack) == [exact.file.key]


def test_one_upload_delivered_twice_at_once_is_stored_and_counted_once(stack: LocalStack) -> None:
    # SQS delivers at least once: two indexers may take the same notification at the same time.
    request, _ = _request()
    store, files = stores.diagnostics(), stores.diagnostics_files(stack.refs["DiagnosticsBucket"])
    keys = [_incoming(stack, f"upload {n}\n".encode() * 1000, nonce=f"0000000{n}") for n in range(4)]
    start = threading.Barrier(8)

    def index(key: str) -> upload_indexer.IndexOutcome:
        start.wait()
        return upload_indexer.index_upload(key, store=store, files=files)

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(index, [key for key in keys for _ in range(2)]))

    assert all(outcome.rejected is None for outcome in outcomes)
    recorded = store.files_of(request.request_id)
    assert len(recorded) == 4
    stored = store.get_request(request.request_id)
    assert stored is not None
    assert (stored.files_received, stored.bytes_received) == (4, sum(file.size for file in recorded))
    assert _final_keys(stack) == sorted(file.key for file in recorded)
    assert [key for key in _keys(stack) if key.startswith("incoming/")] == []


def test_a_recorded_file_redelivered_at_the_bound_is_a_duplicate_not_a_rejection(stack: LocalStack) -> None:
    limits = UploadLimits(max_files=1)
    request, _ = _request()
    store, files = stores.diagnostics(), stores.diagnostics_files(stack.refs["DiagnosticsBucket"])
    file = upload_indexer.index_upload(_incoming(stack, b"once\n"), store=store, files=files, limits=limits).file
    assert file is not None
    assert store.put_file(file, limits) == "duplicate"
    stored = store.get_request(request.request_id)
    assert stored is not None
    assert (stored.files_received, stored.last_upload_error) == (1, None)


class _FailsOnce:
    """Replaces a method so that its first call raises a throttling error, then does what it did."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
        self.original = getattr(owner, name)
        self.calls = 0
        monkeypatch.setattr(owner, name, self)

    def __get__(self, instance: object, owner: type) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == 1:
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "once"}}, "test")
            return self.original(instance, *args, **kwargs)

        return call


@pytest.mark.parametrize(
    ("owner", "step"),
    [
        (DiagnosticsStore, "put_file"),  # the recording
        (DiagnosticsFiles, "put_new"),  # the final put, after the recording
        (DiagnosticsFiles, "delete"),  # the incoming object's delete, after both
    ],
)
def test_a_redelivery_after_a_failed_step_stores_one_object_and_one_item(
    stack: LocalStack, lambda_context: LocalLambdaContext, monkeypatch: pytest.MonkeyPatch, owner: type, step: str
) -> None:
    request, _ = _request()
    key = _incoming(stack, b"payload\n" * 100, filename="diag.log")
    failing = _FailsOnce(monkeypatch, owner, step)

    with pytest.raises(BatchProcessingError):  # the batch's only record failed: SQS delivers it again
        _notify(stack, key, lambda_context)
    assert _notify(stack, key, lambda_context) == {"batchItemFailures": []}
    assert _notify(stack, key, lambda_context) == {"batchItemFailures": []}  # and once more, for good measure

    assert failing.calls >= 2
    (file,) = stores.diagnostics().files_of(request.request_id)
    assert _keys(stack) == [file.key]
    body = aws.client("s3").get_object(Bucket=stack.refs["DiagnosticsBucket"], Key=file.key)["Body"].read()
    assert body == b"payload\n" * 100
    stored = stores.diagnostics().get_request(REQUEST_ID)
    assert stored is not None
    assert (stored.files_received, stored.bytes_received) == (1, 800)


def _tiny_parts_form(parts: int) -> bytes:
    one = b'--B\r\nContent-Disposition: form-data; name="f"; filename="x"\r\n\r\nx\r\n'
    return one * parts + b"--B--\r\n"


def test_a_form_of_thousands_of_parts_is_rejected_at_the_first_part_past_the_cap(
    server_stack: LocalStack,
) -> None:
    stack = server_stack
    _request()
    body = _tiny_parts_form(20_000)  # 1.3 MB of 65-byte file parts
    key = _incoming(stack, body, "multipart/form-data; boundary=B", method="POST")
    store, files = stores.diagnostics(), stores.diagnostics_files(stack.refs["DiagnosticsBucket"])

    outcome = upload_indexer.index_upload(key, store=store, files=files, limits=UploadLimits(max_multipart_parts=20))

    expected = "The multipart/form-data body has more than 20 parts; it was not read further"
    assert outcome.rejected == expected
    assert outcome.multipart_parts == 21
    assert outcome.bytes_read <= upload_indexer.CHUNK_BYTES < len(body)  # one chunk of the body, not all of it
    stored = store.get_request(REQUEST_ID)
    assert stored is not None
    assert (stored.last_upload_error, stored.files_received) == (expected, 0)
    assert _keys(stack) == []


def test_a_form_within_the_cap_keeps_its_file(server_stack: LocalStack) -> None:
    stack = server_stack
    _request()
    key = _incoming(stack, _tiny_parts_form(20), "multipart/form-data; boundary=B", method="POST")
    store, files = stores.diagnostics(), stores.diagnostics_files(stack.refs["DiagnosticsBucket"])
    outcome = upload_indexer.index_upload(key, store=store, files=files, limits=UploadLimits(max_multipart_parts=20))
    # 20 parts with a file name and none named "file": not exactly one file part, so the usual rejection.
    assert outcome.multipart_parts == 20
    assert outcome.rejected is not None
    assert "not exactly one part with a file name" in outcome.rejected


def _tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("a.log")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"abc"))
    return buffer.getvalue()


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.log", "abc")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (gzip.compress(_tar()), "gzip"),
        (_zip(), "zip"),
        (b"BZh91AY&SY", "bzip2"),
        (b"\xfd7zXZ\x00\x00", "xz"),
        (b"\x28\xb5\x2f\xfd\x00", "zstd"),
        (_tar(), "tar"),
        (b"plain text log\n", "none"),
        (b"", "none"),
    ],
)
def test_compression_is_detected_from_magic_bytes(head: bytes, expected: str) -> None:
    assert upload_indexer.detect_compression(head[:512]) == expected
