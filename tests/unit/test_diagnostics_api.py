"""Diagnostics requests through the API handler: issue an upload address, list and read requests, their states
merged from the upload path and the charger's own status notifications, and download links that work."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import ocpp
import pytest
from aws_lambda_powertools import Tracer
from aws_lambda_powertools.utilities import parameters
from jsonschema import Draft4Validator, Draft6Validator

from api_calls import get_json, post_json
from chargelog import aws, stores
from chargelog.dal.archive import RawArchive
from chargelog.dal.records import RecordWriter
from chargelog.logic import diagnostics as logic
from chargelog.logic import uploads as upload_logic
from chargelog.models.diagnostics import derive_secret, parse_token, secret_sha256
from chargelog.models.records import LogRecord, record_id_for
from chargelog.settings import get_settings
from chargelog_local.provision import LocalStack
from diagnostics_files import store_file

UPLOAD_BASE = "https://uploads.example.com/prod"
T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
OCPP_SCHEMAS = Path(ocpp.__file__).parent
GETLOG_SCHEMA = Draft6Validator(
    json.loads((OCPP_SCHEMAS / "v201" / "schemas" / "GetLogRequest.json").read_text("utf-8-sig")),
    format_checker=Draft6Validator.FORMAT_CHECKER,
)
GETDIAGNOSTICS_SCHEMA = Draft4Validator(
    json.loads((OCPP_SCHEMAS / "v16" / "schemas" / "GetDiagnostics.json").read_text("utf-8-sig")),
    format_checker=Draft4Validator.FORMAT_CHECKER,
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(logic, "_now", clock)
    return clock


@pytest.fixture
def api(stack: LocalStack, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Iterator[LocalStack]:
    monkeypatch.setenv("CHARGELOG_UPLOAD_BASE_URL", UPLOAD_BASE)
    get_settings.cache_clear()
    yield stack
    get_settings.cache_clear()


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


# ---------------------------------------------------------------------------------------------- helpers


def post(context: Any, body: Any) -> tuple[int, dict[str, str], Any]:
    return post_json(context, "/diagnostics/requests", body)


def get(context: Any, path: str, query: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    return get_json(context, path, query)


def created(context: Any, **body: Any) -> dict[str, Any]:
    status, _, response = post(context, {"charger_id": "CP-1"} | body)
    assert status == 201, response
    return dict(response)


def seed_notifications(stack: LocalStack, *notifications: tuple[str, datetime, dict[str, Any]]) -> None:
    writer = RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), hot_retention_days=400)
    records = []
    for action, at, payload in notifications:
        record = {"action": action, "timestamp": at, "payload": payload}
        records.append(
            LogRecord(
                vendor="ocpplab",
                source_id="CP-1",
                charger_id="CP-1",
                timestamp=at,
                kind="ocpp",
                action=action,
                direction="cp_to_csms",
                message_type="CALL",
                message_id=f"m-{at.timestamp()}",
                payload=payload,
                ocpp_version="2.0.1" if action == "LogStatusNotification" else "1.6",
                record_id=record_id_for("ocpplab", "CP-1", None, **record),
                raw=json.loads(json.dumps(record, default=str)),
            )
        )
    writer.write(records)


# ---------------------------------------------------------------------------------------------- POST


def test_a_request_gets_an_upload_address_and_ready_ocpp_payloads(
    api: LocalStack, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    status, headers, body = post(
        lambda_context,
        {
            "charger_id": "CP:1|x",
            "log_type": "SecurityLog",
            "oldest_timestamp": "2026-11-20T10:00:00+01:00",
            "latest_timestamp": "2026-11-21T08:00:00Z",
            "retries": 3,
            "retry_interval": 60,
        },
    )
    assert status == 201, body
    request_id = body["request_id"]
    assert headers["location"] == f"/diagnostics/{request_id}"
    location = body["remote_location"]
    assert len(location) <= 512
    assert location.endswith("/")
    prefix = f"{UPLOAD_BASE}/u/CP%3A1%7Cx/"
    assert location.startswith(prefix)
    token = parse_token(location[len(prefix) : -1])
    assert token is not None
    assert token.request_id == request_id
    assert body["state"] == "requested"
    assert body["upload_expires_at"] == "2026-11-22T09:00:00Z"
    assert body["ocpp_request_id"] == 1
    assert body["getlog"] == {
        "logType": "SecurityLog",
        "requestId": 1,
        "log": {
            "remoteLocation": location,
            "oldestTimestamp": "2026-11-20T09:00:00Z",
            "latestTimestamp": "2026-11-21T08:00:00Z",
        },
        "retries": 3,
        "retryInterval": 60,
    }
    assert body["getdiagnostics"] == {
        "location": location,
        "retries": 3,
        "retryInterval": 60,
        "startTime": "2026-11-20T09:00:00Z",
        "stopTime": "2026-11-21T08:00:00Z",
    }
    assert (body["files"], body["status_notifications"]) == ([], [])
    # Only the secret's hash is stored, and the secret is never logged.
    item = aws.table(api.refs["Table"]).get_item(Key={"pk": f"DIAG#{request_id}", "sk": "REQUEST"})["Item"]
    assert item["secret_sha256"] == secret_sha256(token.secret)
    assert token.secret not in json.dumps({k: v for k, v in item.items() if k != "remote_location"}, default=str)
    assert token.secret not in capsys.readouterr().out


def test_the_payloads_validate_against_the_ocpp_schemas(api: LocalStack, lambda_context: Any) -> None:
    minimal = created(lambda_context)
    full = created(
        lambda_context,
        oldest_timestamp="2026-11-20T00:00:00Z",
        latest_timestamp="2026-11-20T00:00:00Z",
        retries=0,
        retry_interval=0,
    )
    for body in (minimal, full):
        assert list(GETLOG_SCHEMA.iter_errors(body["getlog"])) == []
        assert list(GETDIAGNOSTICS_SCHEMA.iter_errors(body["getdiagnostics"])) == []
        location = urlsplit(body["getdiagnostics"]["location"])  # "format": "uri" (jsonschema cannot check it)
        assert (location.scheme, location.netloc) == ("https", "uploads.example.com")
        assert body["getdiagnostics"]["location"].isascii()
    assert minimal["getlog"] == {
        "logType": "DiagnosticsLog",
        "requestId": 1,
        "log": {"remoteLocation": minimal["remote_location"]},
    }
    assert minimal["getdiagnostics"] == {"location": minimal["remote_location"]}
    assert full["ocpp_request_id"] == 2  # unique per charger
    assert created(lambda_context, charger_id="CP-2")["ocpp_request_id"] == 1


def test_whole_numbers_written_with_a_fraction_are_integers(api: LocalStack, lambda_context: Any) -> None:
    # JSON Schema's integer (the OpenAPI document's) includes 3.0; a client sending it must not get a 422.
    answer = created(lambda_context, retries=3.0, retry_interval=60.0, expires_in_minutes=10.0)
    assert answer["getlog"]["retries"] == 3
    assert answer["getlog"]["retryInterval"] == 60
    assert answer["upload_expires_at"] == "2026-11-21T09:10:00Z"


def test_the_expiry_can_be_chosen(api: LocalStack, lambda_context: Any) -> None:
    assert created(lambda_context, expires_in_minutes=10)["upload_expires_at"] == "2026-11-21T09:10:00Z"
    assert created(lambda_context, expires_in_minutes=7 * 24 * 60)["upload_expires_at"] == "2026-11-28T09:00:00Z"


BAD_BODIES: dict[str, tuple[Any, int]] = {
    "no charger": ({}, 422),
    "empty charger": ({"charger_id": ""}, 422),
    "charger with a slash path": ({"charger_id": "a b"}, 422),
    "unknown log type": ({"charger_id": "CP-1", "log_type": "DebugLog"}, 422),
    "unknown field": ({"charger_id": "CP-1", "location": "ftp://x/"}, 422),
    "timestamp not a date": ({"charger_id": "CP-1", "oldest_timestamp": "yesterday"}, 422),
    "timestamp a number": ({"charger_id": "CP-1", "oldest_timestamp": 1763000000}, 422),
    "timestamp a numeric string": ({"charger_id": "CP-1", "latest_timestamp": "1763000000"}, 422),
    "timestamp without offset": ({"charger_id": "CP-1", "oldest_timestamp": "2026-11-20T10:00:00"}, 422),
    "timestamp a date only": ({"charger_id": "CP-1", "oldest_timestamp": "2026-11-20"}, 422),
    "timestamp out of range": ({"charger_id": "CP-1", "oldest_timestamp": "2026-13-40T10:00:00Z"}, 422),
    "negative retries": ({"charger_id": "CP-1", "retries": -1}, 422),
    "negative retry interval": ({"charger_id": "CP-1", "retry_interval": -5}, 422),
    "retries as text": ({"charger_id": "CP-1", "retries": "3"}, 422),
    "retries a boolean": ({"charger_id": "CP-1", "retries": True}, 422),
    "retries a fraction": ({"charger_id": "CP-1", "retries": 1.5}, 422),
    "retries past OCPP's integers": ({"charger_id": "CP-1", "retries": 2**31}, 422),
    "expiry zero": ({"charger_id": "CP-1", "expires_in_minutes": 0}, 422),
    "expiry past a week": ({"charger_id": "CP-1", "expires_in_minutes": 7 * 24 * 60 + 1}, 422),
    "oldest after latest": (
        {"charger_id": "CP-1", "oldest_timestamp": "2026-11-21T00:00:01Z", "latest_timestamp": "2026-11-21T00:00:00Z"},
        400,
    ),
    "address over 512 characters": ({"charger_id": "%" * 150}, 400),
    "charger of dots": ({"charger_id": ".."}, 400),
    "not JSON": (b"{charger_id", 400),
    "a list": ([], 422),
}


def test_bad_requests_are_client_errors_and_store_nothing(api: LocalStack, lambda_context: Any) -> None:
    for case, (body, expected) in BAD_BODIES.items():
        status, headers, problem = post(lambda_context, body)
        assert status == expected, (case, problem)
        assert headers["content-type"] == "application/problem+json", case
        assert problem["status"] == expected, case
        assert problem["detail"], case
    items = aws.table(api.refs["Table"]).scan()["Items"]
    assert [item for item in items if str(item["pk"]).startswith("DIAG")] == []


def test_the_512_character_limit_is_exact(api: LocalStack, lambda_context: Any) -> None:
    overhead = len(f"{UPLOAD_BASE}/u//{'0' * 32}.{'a' * 24}/")
    # '%' is percent-encoded to 3 characters, so a 200-character id can make a longer address than OCPP allows.
    percents = (512 - overhead - 200) // 2
    fitting = "%" * percents + "C" * (512 - overhead - 3 * percents)
    assert len(fitting) <= 200
    assert len(created(lambda_context, charger_id=fitting)["remote_location"]) == 512
    status, _, problem = post(lambda_context, {"charger_id": "%" + fitting[:-1]})
    assert status == 400
    assert "514 characters" in problem["detail"]


def test_without_an_upload_base_url_requests_are_refused_not_broken(
    stack: LocalStack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARGELOG_UPLOAD_BASE_URL", "")
    get_settings.cache_clear()
    status, _, problem = post(lambda_context, {"charger_id": "CP-1"})
    assert status == 503
    assert "not configured" in problem["detail"]


def test_the_table_holds_nothing_that_rebuilds_the_token(api: LocalStack, lambda_context: Any) -> None:
    body = created(lambda_context)
    token = parse_token(body["remote_location"].rstrip("/").rsplit("/", 1)[1])
    assert token is not None
    key = aws.client("secretsmanager").get_secret_value(SecretId=api.refs["UploadTokenSecret"])["SecretString"]
    assert token.secret == derive_secret(key, token.request_id)  # what the API rebuilds the address from
    item = aws.table(api.refs["Table"]).get_item(Key={"pk": f"DIAG#{token.request_id}", "sk": "REQUEST"})["Item"]
    assert "remote_location" not in item
    assert token.secret not in json.dumps(item, default=str)
    assert item["secret_sha256"] == secret_sha256(token.secret)


def test_upload_addresses_are_not_traced(api: LocalStack, lambda_context: Any, traced_responses: list[Any]) -> None:
    body = created(lambda_context)
    status, _, detail = get(lambda_context, f"/diagnostics/{body['request_id']}")
    assert (status, detail["remote_location"]) == (200, body["remote_location"])
    token = parse_token(body["remote_location"].rstrip("/").rsplit("/", 1)[1])
    assert token is not None
    assert token.secret not in json.dumps(traced_responses, default=str)


def test_the_derived_token_opens_the_upload_path(api: LocalStack, lambda_context: Any) -> None:
    body = created(lambda_context)
    token = body["remote_location"].rstrip("/").rsplit("/", 1)[1]
    decision = upload_logic.authorize_upload(
        method="PUT",
        resource="/u/{charger_id}/{token}",
        path_parameters={"charger_id": "CP-1", "token": token},
        headers={"Content-Length": "10"},
        received_at=T0,
        now=T0,
        store=stores.diagnostics(),
    )
    assert decision.allowed, decision.reason


def test_a_request_stored_with_its_address_before_is_shown_as_stored(api: LocalStack, lambda_context: Any) -> None:
    body = created(lambda_context)
    table = aws.table(api.refs["Table"])
    old_location = f"{UPLOAD_BASE}/u/CP-1/{body['request_id']}.{'A' * 24}/"
    table.update_item(
        Key={"pk": f"DIAG#{body['request_id']}", "sk": "REQUEST"},
        UpdateExpression="SET remote_location = :l, secret_sha256 = :h",
        ExpressionAttributeValues={":l": old_location, ":h": secret_sha256("A" * 24)},
    )
    status, _, detail = get(lambda_context, f"/diagnostics/{body['request_id']}")
    assert status == 200, detail
    assert detail["remote_location"] == old_location
    assert detail["getlog"]["log"]["remoteLocation"] == old_location


def test_after_the_key_is_replaced_an_address_is_not_shown_wrong(api: LocalStack, lambda_context: Any) -> None:
    body = created(lambda_context)
    aws.client("secretsmanager").put_secret_value(SecretId=api.refs["UploadTokenSecret"], SecretString="another key")
    parameters.clear_caches()
    status, _, detail = get(lambda_context, f"/diagnostics/{body['request_id']}")
    assert status == 200, detail
    assert (detail["remote_location"], detail["getlog"], detail["getdiagnostics"]) == (None, None, None)
    assert detail["state"] == "requested"


# ---------------------------------------------------------------------------------------------- GET one


def test_an_unknown_request_is_404(api: LocalStack, lambda_context: Any) -> None:
    created(lambda_context)
    for request_id in ("0" * 32, "nope", "..%2F..%2Fx", "A" * 32, "f" * 64):
        status, headers, problem = get(lambda_context, f"/diagnostics/{request_id}")
        assert status == 404, request_id
        assert headers["content-type"] == "application/problem+json"
        assert problem["status"] == 404


def test_a_request_shows_its_files_with_download_links(
    server_stack: LocalStack, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARGELOG_UPLOAD_BASE_URL", UPLOAD_BASE)
    get_settings.cache_clear()
    body = created(lambda_context)
    data = bytes(range(256)) * 100
    at = datetime.now(UTC)
    store_file(server_stack, body["request_id"], at, "diag:2026-11-21T09:00:00Z.tar.gz", data)

    status, _, detail = get(lambda_context, f"/diagnostics/{body['request_id']}")

    assert status == 200, detail
    assert detail["state"] == "uploaded"
    assert detail["files_received"] == 1
    assert detail["remote_location"] == body["remote_location"]  # support may need to send GetLog again
    assert detail["getlog"] == body["getlog"]
    (file,) = detail["files"]
    assert file["filename"] == "diag:2026-11-21T09:00:00Z.tar.gz"
    assert (file["size"], file["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert (file["content_type"], file["compression"], file["upload_method"]) == ("application/gzip", "gzip", "PUT")
    assert "X-Amz-Signature=" in file["download_url"]
    assert "X-Amz-Expires=900" in file["download_url"]
    download = httpx.get(file["download_url"], timeout=10)
    assert download.status_code == 200
    assert download.content == data
    disposition = "attachment; filename*=UTF-8''diag%3A2026-11-21T09%3A00%3A00Z.tar.gz"
    assert download.url.params["response-content-disposition"] == disposition


def test_a_file_past_the_retention_has_no_link(api: LocalStack, lambda_context: Any, clock: Clock) -> None:
    body = created(lambda_context)
    store_file(api, body["request_id"], T0 + timedelta(minutes=5), "old.log", b"old")
    clock.now = T0 + timedelta(days=91)
    (file,) = get(lambda_context, f"/diagnostics/{body['request_id']}")[2]["files"]
    assert file["download_url"] is None
    assert file["kept_until"] == "2027-02-19T09:05:00Z"


# ---------------------------------------------------------------------------------------------- lifecycle


def state(context: Any, request_id: str) -> str:
    status, _, body = get(context, f"/diagnostics/{request_id}")
    assert status == 200, body
    return str(body["state"])


def test_a_new_request_is_requested_then_expires(api: LocalStack, lambda_context: Any, clock: Clock) -> None:
    body = created(lambda_context, expires_in_minutes=30)
    assert state(lambda_context, body["request_id"]) == "requested"
    clock.now = T0 + timedelta(minutes=30)
    assert state(lambda_context, body["request_id"]) == "expired"


def test_an_allowed_upload_makes_it_uploading_and_a_file_uploaded(
    api: LocalStack, lambda_context: Any, clock: Clock
) -> None:
    body = created(lambda_context, expires_in_minutes=30)
    request_id = body["request_id"]
    assert stores.diagnostics().note_upload_attempt(request_id, T0 + timedelta(minutes=1))
    clock.now = T0 + timedelta(minutes=2)
    assert state(lambda_context, request_id) == "uploading"
    detail = get(lambda_context, f"/diagnostics/{request_id}")[2]
    assert (detail["upload_attempts"], detail["last_attempt_at"]) == (1, "2026-11-21T09:01:00Z")
    store_file(api, request_id, T0 + timedelta(minutes=1, seconds=5), "d.log", b"x")
    assert state(lambda_context, request_id) == "uploaded"
    clock.now = T0 + timedelta(days=2)
    assert state(lambda_context, request_id) == "uploaded"  # a file received never expires into another state


def test_a_log_status_upload_failure_with_the_request_id_fails_it(
    api: LocalStack, lambda_context: Any, clock: Clock
) -> None:
    body = created(lambda_context)
    other = created(lambda_context)
    assert (body["ocpp_request_id"], other["ocpp_request_id"]) == (1, 2)
    seed_notifications(
        api,
        ("LogStatusNotification", T0 + timedelta(minutes=1), {"status": "Uploading", "requestId": 1}),
        ("LogStatusNotification", T0 + timedelta(minutes=2), {"status": "UploadFailure", "requestId": 1}),
        ("LogStatusNotification", T0 + timedelta(minutes=3), {"status": "Uploading", "requestId": 2}),
    )
    clock.now = T0 + timedelta(minutes=5)
    detail = get(lambda_context, f"/diagnostics/{body['request_id']}")[2]
    assert detail["state"] == "failed"
    assert [(n["status"], n["ocpp_request_id"]) for n in detail["status_notifications"]] == [
        ("Uploading", 1),
        ("UploadFailure", 1),
    ]
    assert state(lambda_context, other["request_id"]) == "uploading"  # its own requestId said Uploading


def test_status_notifications_logged_in_snake_case_count_too(
    api: LocalStack, lambda_context: Any, clock: Clock
) -> None:
    # OCPPLAB logs payloads with snake_case keys (request_id); the normalizer reads both spellings.
    body = created(lambda_context)
    seed_notifications(
        api,
        ("LogStatusNotification", T0 + timedelta(minutes=1), {"status": "UploadFailure", "request_id": 1}),
        ("LogStatusNotification", T0 + timedelta(minutes=2), {"status": "Uploading", "request_id": 7}),
    )
    clock.now = T0 + timedelta(minutes=5)
    detail = get(lambda_context, f"/diagnostics/{body['request_id']}")[2]
    assert [(n["status"], n["ocpp_request_id"]) for n in detail["status_notifications"]] == [("UploadFailure", 1)]
    assert detail["state"] == "failed"


def test_a_diagnostics_status_upload_failed_in_the_window_fails_it(
    api: LocalStack, lambda_context: Any, clock: Clock
) -> None:
    seed_notifications(api, ("DiagnosticsStatusNotification", T0 - timedelta(minutes=1), {"status": "UploadFailed"}))
    body = created(lambda_context, expires_in_minutes=60)
    clock.now = T0 + timedelta(minutes=10)
    assert state(lambda_context, body["request_id"]) == "requested"  # before the request: not about it
    seed_notifications(api, ("DiagnosticsStatusNotification", T0 + timedelta(minutes=2), {"status": "Uploading"}))
    assert state(lambda_context, body["request_id"]) == "uploading"
    seed_notifications(api, ("DiagnosticsStatusNotification", T0 + timedelta(minutes=3), {"status": "UploadFailed"}))
    assert state(lambda_context, body["request_id"]) == "failed"
    clock.now = T0 + timedelta(hours=3)
    assert state(lambda_context, body["request_id"]) == "failed"  # not expired: the charger said why


def test_a_report_soon_after_the_expiry_counts_a_later_one_does_not(
    api: LocalStack, lambda_context: Any, clock: Clock
) -> None:
    soon = created(lambda_context, expires_in_minutes=60)
    clock.now = T0 + timedelta(hours=2, minutes=1)
    late = created(lambda_context, expires_in_minutes=60)  # both with their own requestId
    seed_notifications(
        api,
        ("LogStatusNotification", T0 + timedelta(minutes=90), {"status": "UploadFailure", "requestId": 1}),
        ("LogStatusNotification", T0 + timedelta(hours=5), {"status": "UploadFailure", "requestId": 2}),
    )
    clock.now = T0 + timedelta(hours=6)
    assert state(lambda_context, soon["request_id"]) == "failed"
    assert state(lambda_context, late["request_id"]) == "expired"


def test_a_rejected_upload_fails_it_until_the_next_attempt(api: LocalStack, lambda_context: Any, clock: Clock) -> None:
    body = created(lambda_context)
    request_id = body["request_id"]
    stores.diagnostics().note_upload_attempt(request_id, T0 + timedelta(minutes=1))
    stores.diagnostics().note_upload_error(request_id, "malformed multipart body", T0 + timedelta(minutes=1, seconds=2))
    clock.now = T0 + timedelta(minutes=2)
    detail = get(lambda_context, f"/diagnostics/{request_id}")[2]
    assert (detail["state"], detail["last_upload_error"]) == ("failed", "malformed multipart body")
    stores.diagnostics().note_upload_attempt(request_id, T0 + timedelta(minutes=3))
    clock.now = T0 + timedelta(minutes=4)
    assert state(lambda_context, request_id) == "uploading"


# ---------------------------------------------------------------------------------------------- the list


def test_a_chargers_requests_are_listed_newest_first_without_addresses(
    api: LocalStack, lambda_context: Any, clock: Clock
) -> None:
    ids = []
    for minute in range(5):
        clock.now = T0 + timedelta(minutes=minute)
        ids.append(created(lambda_context, expires_in_minutes=60)["request_id"])
    created(lambda_context, charger_id="CP-2")
    stores.diagnostics().note_upload_attempt(ids[4], T0 + timedelta(minutes=4, seconds=30))
    seed_notifications(
        api,
        ("LogStatusNotification", T0 + timedelta(minutes=1, seconds=30), {"status": "UploadFailure", "requestId": 2}),
    )
    clock.now = T0 + timedelta(minutes=90)

    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        status, _, page = get(
            lambda_context,
            "/diagnostics",
            {"charger_id": "CP-1", "limit": "2"} | ({"cursor": cursor} if cursor else {}),
        )
        assert status == 200, page
        pages += 1
        seen += page["requests"]
        cursor = page["next_cursor"]
        if not cursor:
            break

    assert [r["request_id"] for r in seen] == ids[::-1]
    assert pages == 3
    assert [r["state"] for r in seen] == ["uploading", "expired", "expired", "failed", "expired"]
    for summary in seen:
        assert "remote_location" not in summary
        assert "getlog" not in summary
        assert summary["charger_id"] == "CP-1"


def test_list_errors(api: LocalStack, lambda_context: Any) -> None:
    created(lambda_context)
    assert get(lambda_context, "/diagnostics")[0] == 422  # the charger is required
    assert get(lambda_context, "/diagnostics", {"charger_id": "CP-1", "limit": "0"})[0] == 422
    page = get(lambda_context, "/diagnostics", {"charger_id": "CP-1", "limit": "1"})[2]
    created(lambda_context)
    page = get(lambda_context, "/diagnostics", {"charger_id": "CP-1", "limit": "1"})[2]
    assert page["next_cursor"]
    status, _, problem = get(lambda_context, "/diagnostics", {"charger_id": "CP-2", "cursor": page["next_cursor"]})
    assert status == 400
    assert "another query" in problem["detail"]
    assert get(lambda_context, "/diagnostics", {"charger_id": "CP-1", "cursor": "forged"})[0] == 400
    assert get(lambda_context, "/diagnostics", {"charger_id": "nobody"})[2] == {"requests": [], "next_cursor": None}
