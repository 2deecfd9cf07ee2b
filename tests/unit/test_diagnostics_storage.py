"""The diagnostics storage contract: tokens, safe file names, object keys, and the table's items (moto)."""

from __future__ import annotations

import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from chargelog import aws, stores
from chargelog.dal.diagnostics import MAX_ERROR_LENGTH
from chargelog.models.diagnostics import (
    DEFAULT_FILENAME,
    MAX_FILENAME_BYTES,
    DiagnosticsFile,
    DiagnosticsRequest,
    UploadLimits,
    format_token,
    key_segment,
    new_request_id,
    new_secret,
    object_key,
    parse_token,
    remote_location,
    safe_filename,
    secret_matches,
    secret_sha256,
)
from chargelog.settings import get_settings
from chargelog_local.provision import LocalStack

AT = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)
REQUEST_ID = "0123456789abcdef0123456789abcdef"
SECRET = "abcdefghijklmnopqrstuv_-"

# ---------------------------------------------------------------------------------------------- tokens


def test_a_new_token_parses_back_into_its_parts() -> None:
    request_id, secret = new_request_id(), new_secret()
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert len(secret) == 24
    token = format_token(request_id, secret)
    assert token == f"{request_id}.{secret}"
    assert parse_token(token) == (request_id, secret)


def test_secrets_differ_every_time() -> None:
    assert len({new_secret() for _ in range(100)}) == 100


@pytest.mark.parametrize(
    "token",
    [
        "",
        REQUEST_ID,
        f"{REQUEST_ID}.",
        f".{SECRET}",
        f"{REQUEST_ID}{SECRET}",
        f"{REQUEST_ID}.{SECRET}x",  # secret too long
        f"{REQUEST_ID}.{SECRET[:-1]}",  # too short
        f"{REQUEST_ID.upper()}.{SECRET}",  # uuid hex is lowercase
        f"{REQUEST_ID[:-1]}.{SECRET}",
        f"{REQUEST_ID}.{SECRET[:-1]}=",  # not URL-safe base64
        f"{REQUEST_ID}.{SECRET[:-1]}/",
        f"{REQUEST_ID}.{SECRET}\n",
        f" {REQUEST_ID}.{SECRET}",
        f"{REQUEST_ID}..{SECRET}",
        f"{REQUEST_ID}.{SECRET}.{SECRET}",
        "../" * 20,
        "x" * 10_000,
    ],
)
def test_a_malformed_token_parses_to_none(token: str) -> None:
    assert parse_token(token) is None


def test_format_token_refuses_parts_that_would_not_parse() -> None:
    with pytest.raises(ValueError, match="Not a request id"):
        format_token("not-a-request-id", SECRET)
    with pytest.raises(ValueError, match="Not a request id"):
        format_token(REQUEST_ID, "short")


def test_only_the_secret_whose_hash_is_stored_matches() -> None:
    stored = secret_sha256(SECRET)
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert SECRET not in stored
    assert secret_matches(SECRET, stored)
    assert not secret_matches(SECRET[:-1] + "A", stored)
    assert not secret_matches("", stored)


def test_remote_location_percent_encodes_the_charger_and_ends_with_a_slash() -> None:
    token = format_token(REQUEST_ID, SECRET)
    assert remote_location("https://up.example/prod/", "CP 1/a:b", token) == (
        f"https://up.example/prod/u/CP%201%2Fa%3Ab/{token}/"
    )
    assert remote_location("http://127.0.0.1:3001", "CP-1", token) == f"http://127.0.0.1:3001/u/CP-1/{token}/"


# ---------------------------------------------------------------------------------------------- file names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("diagnostics.tar.gz", "diagnostics.tar.gz"),
        ("diag-2026-11-21T10:00:00Z.log", "diag-2026-11-21T10:00:00Z.log"),  # colons are kept
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\config", "config"),
        ("C:\\logs\\charger.log", "charger.log"),
        ("..", DEFAULT_FILENAME),
        ("../..", DEFAULT_FILENAME),
        ("a/..", DEFAULT_FILENAME),
        ("...", DEFAULT_FILENAME),
        (".hidden", "hidden"),
        ("..secret.log", "secret.log"),
        ("", DEFAULT_FILENAME),
        (None, DEFAULT_FILENAME),
        ("   ", DEFAULT_FILENAME),
        ("dir/", DEFAULT_FILENAME),
        ("a\x00b.log", "ab.log"),
        ("line\nbreak\r.log", "linebreak.log"),
        ("bell\x07\x1b[31m.log", "bell[31m.log"),
        ("evil\u202egol.txt", "evilgol.txt"),  # a bidi override would disguise the extension
        ("a..b.log", "a..b.log"),
        ("report (1) ü.log", "report (1) ü.log"),
        ("x/\x00/..", DEFAULT_FILENAME),
    ],
)
def test_safe_filename(name: str | None, expected: str) -> None:
    assert safe_filename(name) == expected


def test_an_absurdly_long_name_is_cut_to_200_bytes_keeping_its_extension() -> None:
    cut = safe_filename("a" * 100_000 + ".tar.gz")
    assert cut.endswith(".gz")
    assert len(cut.encode()) <= MAX_FILENAME_BYTES
    assert cut.startswith("aaaa")


def test_a_long_multibyte_name_is_cut_on_a_character_boundary() -> None:
    cut = safe_filename("é" * 500)
    assert len(cut.encode()) <= MAX_FILENAME_BYTES
    assert set(cut) == {"é"}
    long_extension = safe_filename("b" * 300 + "." + "c" * 40)
    assert len(long_extension.encode()) <= MAX_FILENAME_BYTES


@pytest.mark.parametrize(
    "name", ["../../x", "..\\..\\x", "/abs/path", "\x00", "a" * 5000, "..", ".", "\\", "x/../../y", "\u0085\u2028"]
)
def test_a_safe_name_is_one_harmless_segment(name: str) -> None:
    safe = safe_filename(name)
    assert safe
    assert "/" not in safe
    assert "\\" not in safe
    assert not safe.startswith(".")
    assert all(ord(ch) >= 0x20 and ord(ch) != 0x7F for ch in safe)
    assert len(safe.encode()) <= MAX_FILENAME_BYTES


# ---------------------------------------------------------------------------------------------- object keys


def test_object_key() -> None:
    assert object_key("CP-1", REQUEST_ID, AT, "diag:1.tar.gz") == (
        f"diagnostics/CP-1/{REQUEST_ID}/2026-11-21T10:00:00.123456Z-diag:1.tar.gz"
    )
    assert object_key("CP-1", REQUEST_ID, AT, None).endswith("Z-upload.bin")
    assert object_key("CP-1", REQUEST_ID, AT, "../../../etc/passwd") == (
        f"diagnostics/CP-1/{REQUEST_ID}/2026-11-21T10:00:00.123456Z-passwd"
    )


def test_object_key_stays_under_the_charger_and_request() -> None:
    for charger, expected in [
        ("a/b", "a%2Fb"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("CP:1", "CP%3A1"),
        ("CP 1", "CP%201"),
        ("CP_1.x", "CP_1.x"),
    ]:
        assert key_segment(charger) == expected
        key = object_key(charger, REQUEST_ID, AT, "../x")
        assert key.startswith(f"diagnostics/{expected}/{REQUEST_ID}/")
        assert key.count("/") == 3


def test_object_key_refuses_a_request_id_that_is_not_one() -> None:
    with pytest.raises(ValueError, match="Not a request id"):
        object_key("CP-1", "../../other", AT, "x")
    with pytest.raises(ValueError, match="empty"):
        key_segment("")


def test_the_longest_key_fits_s3s_1024_bytes() -> None:
    key = object_key("%" * 200, REQUEST_ID, AT, "字" * 1000)
    assert len(key.encode()) <= 1024


# ---------------------------------------------------------------------------------------------- the table


def a_request(charger_id: str = "CP-1", at: datetime = AT, **fields: object) -> DiagnosticsRequest:
    request_id = new_request_id()
    values: dict[str, object] = {
        "request_id": request_id,
        "charger_id": charger_id,
        "log_type": "DiagnosticsLog",
        "ocpp_request_id": 1,
        "requested_at": at,
        "upload_expires_at": at + timedelta(hours=24),
        "secret_sha256": secret_sha256(SECRET),
        "remote_location": f"https://up.example/u/{charger_id}/{request_id}.{SECRET}/",
    }
    return DiagnosticsRequest.model_validate(values | fields)


def a_file(request: DiagnosticsRequest, at: datetime = AT, name: str = "diag.tar.gz") -> DiagnosticsFile:
    return DiagnosticsFile(
        request_id=request.request_id,
        charger_id=request.charger_id,
        key=object_key(request.charger_id, request.request_id, at, name),
        filename=safe_filename(name),
        size=1234,
        sha256="ab" * 32,
        content_type="application/gzip",
        compression="gzip",
        received_at=at,
        upload_method="PUT",
        multipart=False,
    )


def test_a_request_round_trips(stack: LocalStack) -> None:
    request = a_request(
        oldest_timestamp=AT - timedelta(days=1),
        latest_timestamp=AT,
        retries=3,
        retry_interval=60,
        log_type="SecurityLog",
    )
    stores.diagnostics().put_request(request)
    stored = stores.diagnostics().get_request(request.request_id)
    assert stored == request
    assert stores.diagnostics().get_request(new_request_id()) is None
    item = aws.table(get_settings().table_name).get_item(Key={"pk": f"DIAG#{request.request_id}", "sk": "REQUEST"})[
        "Item"
    ]
    assert item["gsi2pk"] == "DIAGNOSTICS#CP-1"
    assert item["gsi2sk"] == f"2026-11-21T10:00:00.123456Z#{request.request_id}"
    assert "expires_at" not in item
    assert SECRET not in str({k: v for k, v in item.items() if k != "remote_location"})


def test_a_request_is_never_overwritten(stack: LocalStack) -> None:
    request = a_request()
    stores.diagnostics().put_request(request)
    with pytest.raises(ClientError):
        stores.diagnostics().put_request(request.model_copy(update={"charger_id": "CP-2"}))
    assert stores.diagnostics().get_request(request.request_id) == request


def test_ocpp_request_ids_count_up_per_charger(stack: LocalStack) -> None:
    assert [stores.diagnostics().next_ocpp_request_id("CP-1") for _ in range(3)] == [1, 2, 3]
    assert stores.diagnostics().next_ocpp_request_id("CP-2") == 1
    assert stores.diagnostics().next_ocpp_request_id("CP-1") == 4


def test_a_chargers_requests_page_newest_first(stack: LocalStack) -> None:
    requests = [a_request(at=AT + timedelta(minutes=n)) for n in range(5)]
    for request in requests:
        stores.diagnostics().put_request(request)
    stores.diagnostics().put_request(a_request(charger_id="CP-2"))
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page, after = stores.diagnostics().requests_of_charger("CP-1", limit=2, after=after)
        pages += 1
        seen += [r.request_id for r in page]
        if after is None:
            break
    assert seen == [r.request_id for r in reversed(requests)]
    assert pages == 3
    oldest, _ = stores.diagnostics().requests_of_charger("CP-1", limit=10, newest_first=False)
    assert [r.request_id for r in oldest] == [r.request_id for r in requests]
    assert stores.diagnostics().requests_of_charger("nobody", limit=10) == ([], None)


def test_upload_attempts_and_errors_are_noted(stack: LocalStack) -> None:
    request = a_request()
    stores.diagnostics().put_request(request)
    assert stores.diagnostics().note_upload_attempt(request.request_id, AT + timedelta(minutes=1))
    assert stores.diagnostics().note_upload_attempt(request.request_id, AT + timedelta(minutes=2))
    assert stores.diagnostics().note_upload_error(request.request_id, "malformed multipart body" + "x" * 5000, AT)
    stored = stores.diagnostics().get_request(request.request_id)
    assert stored is not None
    assert stored.upload_attempts == 2
    assert stored.last_attempt_at == AT + timedelta(minutes=2)
    assert stored.last_upload_error is not None
    assert stored.last_upload_error.startswith("malformed multipart body")
    assert len(stored.last_upload_error) == MAX_ERROR_LENGTH
    assert stored.last_upload_error_at == AT
    unknown = uuid.uuid4().hex
    assert not stores.diagnostics().note_upload_attempt(unknown, AT)
    assert not stores.diagnostics().note_upload_error(unknown, "x", AT)
    assert stores.diagnostics().get_request(unknown) is None


def test_files_are_recorded_once_and_counted(stack: LocalStack) -> None:
    request = a_request()
    stores.diagnostics().put_request(request)
    first = a_file(request, AT + timedelta(minutes=1), "diag:1.tar.gz")
    second = a_file(request, AT + timedelta(minutes=2), "diag:1.tar.gz")  # a retry: same name, a new object
    limits = UploadLimits()
    assert stores.diagnostics().put_file(second, limits) == "recorded"
    assert stores.diagnostics().put_file(first, limits) == "recorded"
    assert stores.diagnostics().put_file(first, limits) == "duplicate"  # redelivered: nothing written, not counted
    assert stores.diagnostics().files_of(request.request_id) == [first, second]
    stored = stores.diagnostics().get_request(request.request_id)
    assert stored is not None
    assert (stored.files_received, stored.bytes_received) == (2, first.size + second.size)
    assert stored.last_file_at == AT + timedelta(minutes=1)  # what the last put_file said
    assert stores.diagnostics().files_of(new_request_id()) == []


def test_a_request_takes_files_up_to_its_limits(stack: LocalStack) -> None:
    request = a_request()
    stores.diagnostics().put_request(request)
    first = a_file(request, AT + timedelta(minutes=1), "a.log")
    second = a_file(request, AT + timedelta(minutes=2), "b.log")
    third = a_file(request, AT + timedelta(minutes=3), "c.log")
    limits = UploadLimits(max_files=2, max_bytes=first.size + second.size)
    assert stores.diagnostics().put_file(first, limits) == "recorded"
    assert stores.diagnostics().put_file(first.model_copy(update={"size": limits.max_bytes + 1}), limits) == "full"
    assert stores.diagnostics().put_file(second.model_copy(update={"size": second.size + 1}), limits) == "full"
    assert stores.diagnostics().put_file(second, limits) == "recorded"  # exactly the bytes left
    assert stores.diagnostics().put_file(third.model_copy(update={"size": 1}), UploadLimits(max_files=2)) == "full"
    assert stores.diagnostics().put_file(third, UploadLimits(max_files=3, max_bytes=10**9)) == "recorded"
    assert stores.diagnostics().put_file(third, limits) == "duplicate"  # a redelivery past the limit: done before
    assert [f.filename for f in stores.diagnostics().files_of(request.request_id)] == ["a.log", "b.log", "c.log"]


def test_concurrent_recordings_count_each_file_once_and_keep_the_bound(stack: LocalStack) -> None:
    # Each of 8 files recorded by two writers at once (a redelivered notification racing the first delivery), with
    # room for 6: 6 files are recorded and counted once each, the other 2 are full, and every item is counted.
    request = a_request()
    stores.diagnostics().put_request(request)
    files = [a_file(request, AT + timedelta(seconds=n), f"part-{n}.log") for n in range(8)]
    limits = UploadLimits(max_files=6)
    start = threading.Barrier(16)

    def record(file: DiagnosticsFile) -> str:
        start.wait()
        return stores.diagnostics().put_file(file, limits)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(record, [file for file in files for _ in range(2)]))

    by_file = [sorted(answers[2 * n : 2 * n + 2]) for n in range(8)]
    assert sorted(tuple(pair) for pair in by_file).count(("duplicate", "recorded")) == 6
    assert sorted(tuple(pair) for pair in by_file).count(("full", "full")) == 2
    stored = stores.diagnostics().get_request(request.request_id)
    recorded = stores.diagnostics().files_of(request.request_id)
    assert stored is not None
    assert (stored.files_received, stored.bytes_received) == (6, sum(file.size for file in recorded))
    assert len(recorded) == 6
    assert {file.key for file in recorded} == {
        file.key for file, pair in zip(files, by_file, strict=True) if "recorded" in pair
    }


def test_a_recording_that_failed_after_counting_is_completed_by_the_retry_not_counted_again(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = a_request()
    stores.diagnostics().put_request(request)
    file = a_file(request, AT + timedelta(minutes=1))
    store = stores.diagnostics()
    table = store._table

    def throttled(**_: object) -> None:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "PutItem"
        )

    monkeypatch.setattr(table, "put_item", throttled)
    with pytest.raises(ClientError):
        store.put_file(file, UploadLimits())  # counted, the file item not written: the message is retried
    monkeypatch.undo()
    assert store.files_of(request.request_id) == []

    assert store.put_file(file, UploadLimits()) == "duplicate"  # the retry writes the item, counts nothing
    assert store.put_file(file, UploadLimits()) == "duplicate"
    assert store.files_of(request.request_id) == [file]
    stored = store.get_request(request.request_id)
    assert stored is not None
    assert (stored.files_received, stored.bytes_received) == (1, file.size)


def test_a_request_stored_before_bytes_were_counted_takes_files(stack: LocalStack) -> None:
    request = a_request()
    stores.diagnostics().put_request(request)
    aws.table(stack.refs["Table"]).update_item(
        Key={"pk": f"DIAG#{request.request_id}", "sk": "REQUEST"},
        UpdateExpression="SET files_received = :one REMOVE bytes_received",
        ExpressionAttributeValues={":one": 1},
    )
    file = a_file(request, AT + timedelta(minutes=1), "a.log")
    assert stores.diagnostics().put_file(file, UploadLimits()) == "recorded"
    stored = stores.diagnostics().get_request(request.request_id)
    assert stored is not None
    assert (stored.files_received, stored.bytes_received) == (2, file.size)


def test_a_file_for_an_unknown_request_is_not_recorded(stack: LocalStack) -> None:
    orphan = a_file(a_request())
    assert stores.diagnostics().put_file(orphan, UploadLimits()) == "no request"
    assert stores.diagnostics().files_of(orphan.request_id) == []
