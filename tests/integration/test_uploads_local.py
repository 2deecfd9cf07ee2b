"""Diagnostics uploads through the local upload API, with real curl, the way chargers send them.

The upload API is the template's UploadApi served by chargelog_local.uploads (DefinitionBody routes, the
UploadAuthorizerFunction as REQUEST authorizer, the S3 integration into moto's server); moto's own S3 -> SQS
notification feeds DiagnosticsIndexerFunction through the template's SQS event source. Requests are created with
the diagnostics dal, as POST /diagnostics/requests would.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from chargelog import aws, stores
from chargelog.models.diagnostics import (
    DiagnosticsRequest,
    format_token,
    new_request_id,
    new_secret,
    remote_location,
    secret_sha256,
)
from chargelog_local.lambdas import LocalFunction
from chargelog_local.provision import LocalStack
from chargelog_local.template import functions
from chargelog_local.triggers import SqsTrigger
from chargelog_local.uploads import upload_gateways
from conftest import REGION

CURL = "curl"


@dataclass
class UploadStack:
    stack: LocalStack
    url: str
    indexer: SqsTrigger
    bucket: str

    def drain(self) -> None:
        """Run the indexer until the upload queue is empty."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.indexer.poll_once(wait_seconds=0) == 0:
                attributes = aws.client("sqs").get_queue_attributes(
                    QueueUrl=self.indexer.queue_url,
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]
                if all(int(value) == 0 for value in attributes.values()):
                    return
        raise AssertionError("the upload queue did not drain")

    def keys(self) -> list[str]:
        listed = aws.client("s3").list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def body(self, key: str) -> bytes:
        return bytes(aws.client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read())


@pytest.fixture
def uploads(
    server_stack: LocalStack, template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[UploadStack]:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    specs = {spec.logical_id: spec for spec in functions(template)}
    local = {
        name: LocalFunction(specs[name], REGION) for name in ("UploadAuthorizerFunction", "DiagnosticsIndexerFunction")
    }
    (gateway,) = upload_gateways(template, server_stack, local, stage="local")
    server = make_server("127.0.0.1", 0, gateway, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ((queue_arn, batch_size, reports),) = specs["DiagnosticsIndexerFunction"].queues
    arn = server_stack.resolver().resolve(queue_arn)
    indexer = SqsTrigger(
        local["DiagnosticsIndexerFunction"],
        server_stack.refs[server_stack.logical_id_of_arn(arn)],
        arn,
        batch_size,
        reports,
        REGION,
        threading.Event(),
    )
    # moto sends S3's test event when the notification is configured: the indexer skips it.
    stack = UploadStack(
        server_stack, f"http://127.0.0.1:{server.server_port}", indexer, server_stack.refs["DiagnosticsBucket"]
    )
    stack.drain()
    yield stack
    server.shutdown()
    for function in local.values():
        function.shutdown()


def new_request(
    upload_url: str, charger_id: str = "CP-RIV-01", expires_in: timedelta = timedelta(hours=1)
) -> tuple[DiagnosticsRequest, str]:
    """A stored request and its upload address."""
    request_id, secret = new_request_id(), new_secret()
    now = datetime.now(UTC)
    location = remote_location(upload_url, charger_id, format_token(request_id, secret))
    request = DiagnosticsRequest(
        request_id=request_id,
        charger_id=charger_id,
        ocpp_request_id=stores.diagnostics().next_ocpp_request_id(charger_id),
        requested_at=now - timedelta(minutes=1),
        upload_expires_at=now + expires_in,
        secret_sha256=secret_sha256(secret),
        remote_location=location,
    )
    stores.diagnostics().put_request(request)
    return request, location


@dataclass
class CurlResult:
    status: int
    body: str
    content_type: str

    def problem(self) -> dict[str, Any]:
        assert self.content_type.startswith("application/json"), self
        problem = json.loads(self.body)
        assert problem["status"] == self.status, problem
        assert problem["title"], problem
        assert "detail" in problem, problem
        return dict(problem)


def curl(*args: str, tmp_path: Path) -> CurlResult:
    out = tmp_path / f"response-{secrets.token_hex(4)}"
    result = subprocess.run(
        [CURL, "-sS", "-o", str(out), "-w", "%{http_code} %{content_type}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"},
    )
    assert result.returncode == 0, result.stderr
    status, _, content_type = result.stdout.partition(" ")
    return CurlResult(int(status), out.read_text(errors="replace") if out.exists() else "", content_type)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_files(uploads: UploadStack, request: DiagnosticsRequest) -> list[tuple[Any, bytes]]:
    return [(file, uploads.body(file.key)) for file in stores.diagnostics().files_of(request.request_id)]


# ---------------------------------------------------------------------------------------------- acceptance

EVEREST_NAME = "diagnostics-2024-02-07T16:51:50.808ZblrG7o"


@pytest.mark.parametrize("size", [600, 9 * 1024 * 1024], ids=["small-text", "9MB-binary"])
def test_curl_put_like_everest_stores_the_exact_bytes_under_the_name(
    uploads: UploadStack, tmp_path: Path, size: int
) -> None:
    request, location = new_request(uploads.url)
    if size < 1024:
        data = (b"2024-02-07T16:51:50Z INFO evse_manager: charging session started\n" * 10)[:size]
    else:
        data = b"\x1f\x8b\x08\x00" + os.urandom(size - 4)  # gzip magic, then noise
    path = tmp_path / EVEREST_NAME
    path.write_bytes(data)

    result = curl("-T", str(path), location, tmp_path=tmp_path)  # the location ends in "/": curl appends the name

    assert (result.status, result.body) == (200, "OK")
    uploads.drain()
    ((file, stored),) = stored_files(uploads, request)
    assert sha256(stored) == sha256(data) == file.sha256
    assert file.size == size
    assert file.filename == EVEREST_NAME
    assert file.key.startswith(f"diagnostics/{request.charger_id}/{request.request_id}/")
    assert file.key.endswith(f"-{EVEREST_NAME}")
    assert (file.upload_method, file.multipart) == ("PUT", False)
    assert file.compression == ("none" if size < 1024 else "gzip")
    assert uploads.keys() == [file.key]  # the incoming object is gone
    refreshed = stores.diagnostics().get_request(request.request_id)
    assert refreshed is not None
    assert (refreshed.files_received, refreshed.upload_attempts) == (1, 1)


@pytest.mark.parametrize("size", [300, 9 * 1024 * 1024], ids=["small-text", "9MB-binary"])
def test_curl_form_post_like_openevse_stores_the_file_part(uploads: UploadStack, tmp_path: Path, size: int) -> None:
    request, location = new_request(uploads.url, charger_id="openevse:42/a")
    data = (b"[ocpp] GetLog received\r\n--not-a-boundary\r\n" * 20)[:size] if size < 1024 else os.urandom(size)
    path = tmp_path / "diagnostics.log"
    path.write_bytes(data)

    result = curl("-F", f"file=@{path}", location, tmp_path=tmp_path)

    assert (result.status, result.body) == (200, "OK")
    uploads.drain()
    ((file, stored),) = stored_files(uploads, request)
    assert sha256(stored) == sha256(data) == file.sha256
    assert (file.filename, file.upload_method, file.multipart) == ("diagnostics.log", "POST", True)
    assert file.content_type == "application/octet-stream"
    assert file.key.startswith(f"diagnostics/openevse%3A42%2Fa/{request.request_id}/")


def test_a_station_that_uploads_twice_keeps_both_files(uploads: UploadStack, tmp_path: Path) -> None:
    request, location = new_request(uploads.url)
    first, second = tmp_path / "a" / "log.txt", tmp_path / "b" / "log.txt"
    for path, text in ((first, b"first try\n"), (second, b"second try\n")):
        path.parent.mkdir()
        path.write_bytes(text)
        assert curl("-T", str(path), location, tmp_path=tmp_path).status == 200
    uploads.drain()
    stored = sorted(body for _, body in stored_files(uploads, request))
    assert stored == [b"first try\n", b"second try\n"]
    assert len(set(uploads.keys())) == 2


def test_concurrent_uploads_are_each_indexed_once_with_their_hash(
    uploads: UploadStack, template: dict[str, Any]
) -> None:
    # 3 requests, 6 uploads each at once (raw PUTs and forms), while 3 indexer environments take the notifications
    # concurrently, as Lambda scales its SQS pollers: every 200 is one file item with the upload's SHA-256, counted
    # once, and one object.
    spec = next(spec for spec in functions(template) if spec.logical_id == "DiagnosticsIndexerFunction")
    stop = threading.Event()
    indexers = [
        SqsTrigger(
            LocalFunction(spec, REGION),
            uploads.indexer.queue_url,
            uploads.indexer.queue_arn,
            uploads.indexer.batch_size,
            uploads.indexer.reports_failures,
            REGION,
            stop,
        )
        for _ in range(3)
    ]
    requests = [new_request(uploads.url, charger_id=f"CP-CONC-{n}") for n in range(3)]
    bodies = {
        (request.request_id, n): secrets.token_bytes(50_000 + 1000 * n) for request, _ in requests for n in range(6)
    }
    locations = {request.request_id: location for request, location in requests}
    start = threading.Barrier(len(bodies))

    def upload(job: tuple[tuple[str, int], bytes]) -> int:
        (request_id, n), body = job
        start.wait()
        with httpx.Client(timeout=60) as client:
            if n % 2:
                response = client.post(locations[request_id], files={"file": (f"log-{n}.txt", body)})
            else:
                response = client.put(f"{locations[request_id]}log-{n}.txt", content=body)
        return response.status_code

    for indexer in indexers:
        indexer.start()
    try:
        with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
            statuses = list(pool.map(upload, bodies.items()))
        assert statuses == [200] * len(bodies)
        deadline = time.monotonic() + 60
        while sum(len(stores.diagnostics().files_of(r.request_id)) for r, _ in requests) < len(bodies):
            assert time.monotonic() < deadline, "not every upload was indexed"
            time.sleep(0.2)
    finally:
        stop.set()
        for indexer in indexers:
            indexer.join(10)
            indexer.function.shutdown()
    for request, _ in requests:
        files = stored_files(uploads, request)
        expected = {sha256(body) for (request_id, _), body in bodies.items() if request_id == request.request_id}
        assert {file.sha256 for file, _ in files} == expected
        assert all(sha256(body) == file.sha256 for file, body in files)
        stored = stores.diagnostics().get_request(request.request_id)
        assert stored is not None
        assert (stored.files_received, stored.bytes_received) == (6, sum(file.size for file, _ in files))
    stored_keys = uploads.keys()
    assert len([key for key in stored_keys if key.startswith("diagnostics/")]) == len(bodies)


# ---------------------------------------------------------------------------------------------- hostile input


def _hostile_cases(upload_url: str, location: str, request: DiagnosticsRequest, tmp: Path) -> dict[str, list[str]]:
    """Each case: curl arguments. All must get a 4xx JSON problem and store nothing."""
    token = location.rstrip("/").rsplit("/", 1)[1]
    request_id, secret = token.split(".")
    small = tmp / "small.log"
    small.write_bytes(b"hello\n")
    large = tmp / "large.bin"
    large.write_bytes(os.urandom(10 * 1024 * 1024 + 1))
    empty = tmp / "empty.log"
    empty.write_bytes(b"")
    other_id = new_request_id()
    expired_request, expired_location = new_request(upload_url, expires_in=timedelta(seconds=-1))
    _, other_charger_location = new_request(upload_url, charger_id="CP-AIR-02")
    other_token = other_charger_location.rstrip("/").rsplit("/", 1)[1]
    base = f"{upload_url}/u/{request.charger_id}"
    return {
        "unknown request": ["-T", str(small), f"{base}/{other_id}.{secret}/"],
        "wrong secret": ["-T", str(small), f"{base}/{request_id}.{new_secret()}/"],
        "malformed token": ["-T", str(small), f"{base}/not-a-token/"],
        "token without secret": ["-T", str(small), f"{base}/{request_id}/"],
        "absurdly long token": ["-T", str(small), f"{base}/{'a' * 3000}/"],
        "expired token": ["-T", str(small), expired_location],
        "another charger's token": ["-T", str(small), f"{base}/{other_token}/"],
        "charger in the path not the request's": ["-T", str(small), f"{upload_url}/u/CP-AIR-02/{token}/"],
        "path traversal in the file name": ["-T", str(small), f"{location}..%2F..%2Fetc%2Fpasswd"],
        "backslashes in the file name": ["-T", str(small), f"{location}..%5C..%5Cwin.ini"],
        "dot-dot file name": ["-T", str(small), f"{location}%2E%2E"],
        "raw dot segments": ["--path-as-is", "-T", str(small), f"{location}../../{other_id}/x"],
        "NUL in the file name": ["-T", str(small), f"{location}log%00.txt"],
        "newline in the file name": ["-T", str(small), f"{location}log%0D%0AX-Evil:%201"],
        "absurdly long file name": ["-T", str(small), f"{location}{'n' * 2000}.log"],
        "empty body": ["-T", str(empty), location],
        "empty POST": ["-X", "POST", "--data-binary", "", location],
        "multipart without boundary": [
            "-H",
            "Content-Type: multipart/form-data",
            "--data-binary",
            "@" + str(small),
            location,
        ],
        "GET": ["-X", "GET", location],
        "DELETE": ["-X", "DELETE", f"{location}log.txt"],
        "PATCH": ["-X", "PATCH", "--data-binary", "x", location],
        "over 10 MB": ["-T", str(large), location],
        "over 10 MB by form": ["-F", f"file=@{large}", location],
        "no route": ["-T", str(small), f"{upload_url}/u/{request.charger_id}"],
    } | {"expired request id": ["-T", str(small), f"{base}/{expired_request.request_id}.{secret}/"]}


def test_hostile_uploads_get_4xx_problems_and_store_nothing(uploads: UploadStack, tmp_path: Path) -> None:
    request, location = new_request(uploads.url)
    keeper = tmp_path / "keeper.log"
    keeper.write_bytes(b"the file that must survive\n")
    assert curl("-T", str(keeper), location, tmp_path=tmp_path).status == 200
    uploads.drain()
    before = uploads.keys()
    assert len(before) == 1

    outcomes = {}
    for name, arguments in _hostile_cases(uploads.url, location, request, tmp_path).items():
        result = curl(*arguments, tmp_path=tmp_path)
        outcomes[name] = result.status
        assert 400 <= result.status < 500, (name, result)
        result.problem()
    assert outcomes["over 10 MB"] == 413
    assert outcomes["over 10 MB by form"] == 413
    assert outcomes["GET"] == outcomes["DELETE"] == outcomes["no route"] == 404
    assert outcomes["expired token"] == 403

    uploads.drain()
    assert uploads.keys() == before
    ((_, stored),) = stored_files(uploads, request)
    assert stored == b"the file that must survive\n"


def test_a_denial_says_why(uploads: UploadStack, tmp_path: Path) -> None:
    _, location = new_request(uploads.url, expires_in=timedelta(seconds=-1))
    small = tmp_path / "small.log"
    small.write_bytes(b"x")
    problem = curl("-T", str(small), location, tmp_path=tmp_path).problem()
    assert problem["status"] == 403
    assert "expired" in problem["detail"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=XyZ", b"this is not a form at all"),
        ("multipart/form-data; boundary=XyZ", b'--XyZ\r\nContent-Disposition: form-data; name="file"\r\n\r\ntruncated'),
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--XyZ--\r\n',
        ),
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n\r\n--XyZ--\r\n',
        ),
    ],
    ids=["garbage", "truncated", "no file part", "empty file part"],
)
def test_a_malformed_form_records_the_error_and_keeps_nothing(
    uploads: UploadStack, tmp_path: Path, content_type: str, body: bytes
) -> None:
    """API Gateway writes the body to S3 without reading it, so the authorizer cannot see a malformed form: the
    upload gets S3's 200, and the indexer rejects it (nothing recorded, the request says why)."""
    request, location = new_request(uploads.url)
    path = tmp_path / "form"
    path.write_bytes(body)
    result = curl(
        "-X", "POST", "-H", f"Content-Type: {content_type}", "--data-binary", f"@{path}", location, tmp_path=tmp_path
    )
    assert result.status == 200
    uploads.drain()
    assert stores.diagnostics().files_of(request.request_id) == []
    assert uploads.keys() == []
    refreshed = stores.diagnostics().get_request(request.request_id)
    assert refreshed is not None
    assert refreshed.last_upload_error


def test_the_integration_role_confines_api_gateway_to_incoming(
    uploads: UploadStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local S3 integration runs as UploadApiRole: were the authorizer to name a key outside incoming/, S3 would
    refuse the role (403), which the integration response turns into a 502 problem; nothing is stored."""
    from chargelog.logic import uploads as upload_logic

    monkeypatch.setattr(upload_logic, "incoming_key", lambda request_id, received_at: f"diagnostics/x/{request_id}/y")
    _, location = new_request(uploads.url)
    path = tmp_path / "log.txt"
    path.write_bytes(b"hello\n")
    result = curl("-T", str(path), location, tmp_path=tmp_path)
    assert result.status == 502
    assert result.content_type == "application/problem+json"
    assert json.loads(result.body)["status"] == 502
    assert uploads.keys() == []


def test_success_is_exactly_200_with_a_short_text_body(uploads: UploadStack, tmp_path: Path) -> None:
    _, location = new_request(uploads.url)
    path = tmp_path / "log.txt"
    path.write_bytes(b"hello\n")
    for arguments in (["-T", str(path), location], ["-X", "POST", "--data-binary", f"@{path}", f"{location}named.log"]):
        result = curl(*arguments, tmp_path=tmp_path)
        assert (result.status, result.body) == (200, "OK")
        assert result.content_type.startswith("text/plain")


def test_an_address_that_stored_its_files_refuses_more_with_a_403_problem(uploads: UploadStack, tmp_path: Path) -> None:
    """The template's UploadMaxFilesPerRequest (10) through the deployed path: ten files are kept, the eleventh is
    refused by the authorizer, and the gateway's ACCESS_DENIED problem says why with status 403."""
    request, location = new_request(uploads.url)
    path = tmp_path / "log.txt"
    for number in range(10):
        path.write_bytes(f"try {number}\n".encode())
        assert curl("-T", str(path), location, tmp_path=tmp_path).status == 200
    uploads.drain()
    assert len(stores.diagnostics().files_of(request.request_id)) == 10

    result = curl("-T", str(path), location, tmp_path=tmp_path)
    assert result.status == 403
    assert "all the files it takes (10)" in result.problem()["detail"]
    uploads.drain()
    assert len(uploads.keys()) == 10


def test_a_form_of_thousands_of_parts_is_recorded_as_failed(uploads: UploadStack, tmp_path: Path) -> None:
    """python-multipart stops at UploadMaxMultipartParts (20): the body is not read further, nothing is kept."""
    request, location = new_request(uploads.url)
    part = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\nx\r\n'
    path = tmp_path / "form"
    path.write_bytes(part * 5000 + b"--XyZ--\r\n")
    result = curl(
        "-X", "POST", "-H", "Content-Type: multipart/form-data; boundary=XyZ", "--data-binary", f"@{path}", location,
        tmp_path=tmp_path,
    )  # fmt: skip
    assert result.status == 200  # API Gateway stores the body unread; the indexer rejects it
    uploads.drain()
    assert stores.diagnostics().files_of(request.request_id) == []
    assert uploads.keys() == []
    refreshed = stores.diagnostics().get_request(request.request_id)
    assert refreshed is not None
    assert refreshed.last_upload_error == (
        "The multipart/form-data body has more than 20 parts; it was not read further"
    )
