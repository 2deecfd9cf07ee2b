"""Hostile and careless input against every route of the query API: no server error, every refusal a problem body
whose status is the HTTP status, and nothing stored or overwritten (issue 13).

Each case is one request through the API function's handler, as API Gateway's proxy integration sends it; the
table is compared item by item before and after the whole run.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from api_calls import call_api
from chargelog import aws
from chargelog.dal.archive import RawArchive
from chargelog.dal.records import RecordWriter
from chargelog.models.records import LogRecord, record_id_for
from chargelog_local.provision import LocalStack

PROBLEM_FIELDS = {"type", "title", "status", "detail"}
JSON = "application/json"


class Case(NamedTuple):
    name: str
    method: str
    path: str
    query: dict[str, str] | None = None
    body: Any = None
    content_type: str | None = None
    accept: str | None = None


# Path segments a client might send where an id belongs.
HOSTILE_IDS = {
    "dot-dot": "..",
    "encoded traversal": "..%2F..%2Fetc%2Fpasswd",
    "NUL": "a\x00b",
    "bidi override": "\u202eevil",
    "key separator #": "CP#1",
    "key separator ~": "CP~1",
    "300 characters": "C" * 300,
    "SQL": "1' OR '1'='1",
    "script": "<script>alert(1)</script>",
    "template injection": "${jndi:ldap://x}",
    "emoji": "\U0001f50c",
    "spaces": "CP 1",
}

# Query values a careless or hostile client sends to the listing routes.
HOSTILE_QUERIES = {
    "limit negative": {"limit": "-1"},
    "limit zero": {"limit": "0"},
    "limit huge": {"limit": "1000000000"},
    "limit a word": {"limit": "ten"},
    "limit 5000 digits": {"limit": "9" * 5000},
    "from not a date": {"from": "yesterday"},
    "from impossible": {"from": "2026-13-45T25:61:61Z"},
    "from year 0": {"from": "0000-01-01T00:00:00Z"},
    "to before from": {"from": "2026-11-20T00:00:00Z", "to": "2026-11-19T00:00:00Z"},
    "a range of ten thousand years": {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59Z"},
    "order sideways": {"order": "sideways"},
    "cursor garbage": {"cursor": "not-a-cursor"},
    "cursor forged": {"cursor": base64.urlsafe_b64encode(b'{"after": "0", "view": "logs"}').decode()},
    "cursor 10 KB": {"cursor": "A" * 10_000},
    "action with a space": {"action": "Boot Notification"},
    "action 100 characters": {"action": "A" * 100},
    "kind unknown": {"kind": "everything"},
    "direction unknown": {"direction": "sideways"},
    "message type unknown": {"message_type": "CALLMAYBE"},
    "transaction id with NUL": {"transaction_id": "1\x002"},
    "connector status with bidi": {"connector_status": "\u202eFaulted"},
    "status 1000 characters": {"status": "x" * 1000},
    "vendor unknown": {"vendor": "acme"},
}

LISTINGS = ("/chargers/CP-1/logs", "/logs", "/sites/site-1/logs", "/chargers/CP-1/status", "/chargers/CP-1/exchanges")

SOURCE = {"vendor": "ocpplab", "source_id": "dep-1"}
HOSTILE_BODIES: dict[str, tuple[Any, str | None]] = {
    "empty": (b"", JSON),
    "null": (b"null", JSON),
    "a string": (b'"sources"', JSON),
    "a number": (b"42", JSON),
    "an array": (b"[]", JSON),
    "truncated": (b'{"vendor": "ocpplab", ', JSON),
    "nested ten thousand deep": (b"[" * 10_000 + b"]" * 10_000, JSON),
    "an integer of 5000 digits": (b'{"limit": ' + b"1" * 5000 + b"}", JSON),
    "NaN": (b'{"vendor": NaN}', JSON),
    "Infinity": (b'{"from": Infinity}', JSON),
    "duplicate keys": (b'{"vendor": "ocpplab", "vendor": "acme"}', JSON),
    "not UTF-8": (b"\xff\xfe\xfd", JSON),
    "UTF-16": ('{"vendor": "ocpplab"}'.encode("utf-16"), JSON),
    "XML": (b"<source><vendor>ocpplab</vendor></source>", "application/xml"),
    "form": (b"vendor=ocpplab&source_id=x", "application/x-www-form-urlencoded"),
    "no content type": (b'{"vendor": "ocpplab"}', None),
    "multipart without boundary": (b"--x\r\n\r\n", "multipart/form-data"),
    "70 KB": (json.dumps({"name": "a" * 70_000}).encode(), JSON),
    "prototype pollution": (b'{"__proto__": {"admin": true}, "constructor": {"prototype": {}}}', JSON),
}
BODY_ROUTES = (
    ("POST", "/sources"),
    ("PATCH", "/sources/ocpplab/dep-1"),
    ("POST", "/sources/discover"),
    ("POST", "/collectors/ocpplab/dep-1/backfill"),
    ("POST", "/collectors/ocpplab/dep-1/replay"),
    ("POST", "/exports"),
    ("POST", "/diagnostics/requests"),
)

# Well-formed JSON with values no route should take.
HOSTILE_FIELDS = [
    Case("source: vendor unknown", "POST", "/sources", body={"vendor": "acme", "source_id": "x"}),
    Case("source: id with a slash", "POST", "/sources", body={"vendor": "ocpplab", "source_id": "a/b"}),
    Case("source: id with #", "POST", "/sources", body={"vendor": "ocpplab", "source_id": "a#b"}),
    Case("source: id 1000 characters", "POST", "/sources", body={"vendor": "ocpplab", "source_id": "a" * 1000}),
    Case("source: enabled a string", "POST", "/sources", body=SOURCE | {"source_id": "x", "enabled": "true"}),
    Case("source: name a list", "POST", "/sources", body=SOURCE | {"source_id": "x", "name": ["a"]}),
    Case("source: name with ESC", "POST", "/sources", body=SOURCE | {"source_id": "x", "name": "\x1b[31mred"}),
    Case("source: name with RLO", "POST", "/sources", body=SOURCE | {"source_id": "x", "name": "\u202egnp.exe"}),
    # NEL (U+0085) is a C1 control and, to str.strip, whitespace: refused as sent, not stripped first.
    Case("source: name ending in NEL", "POST", "/sources", body=SOURCE | {"source_id": "x", "name": "name\u0085"}),
    Case("source: name 201 characters", "POST", "/sources", body=SOURCE | {"source_id": "x", "name": "n" * 201}),
    Case("source: overwrite an existing one", "POST", "/sources", body=SOURCE | {"name": "taken over"}),
    Case("patch: nothing", "PATCH", "/sources/ocpplab/dep-1", body={}),
    Case("patch: key fields", "PATCH", "/sources/ocpplab/dep-1", body={"vendor": "plugchoice"}),
    Case("patch: unknown source", "PATCH", "/sources/ocpplab/nope", body={"enabled": False}),
    Case("patch: name with NUL", "PATCH", "/sources/ocpplab/dep-1", body={"name": "a\x00"}),
    Case(
        "backfill: to before from",
        "POST",
        "/collectors/ocpplab/dep-1/backfill",
        body={"from": "2026-11-20T00:00:00Z", "to": "2026-11-19T00:00:00Z"},
    ),
    Case(
        "backfill: unknown source",
        "POST",
        "/collectors/ocpplab/nope/backfill",
        body={"from": "2026-11-19T00:00:00Z", "to": "2026-11-20T00:00:00Z"},
    ),
    Case(
        "backfill: year 1",
        "POST",
        "/collectors/ocpplab/dep-1/backfill",
        body={"from": "0001-01-01T00:00:00Z", "to": "0001-01-02T00:00:00Z"},
    ),
    Case(
        "backfill: in the future",
        "POST",
        "/collectors/ocpplab/dep-1/backfill",
        body={"from": "2999-01-01T00:00:00Z", "to": "2999-01-02T00:00:00Z"},
    ),
    Case(
        "replay: to before from",
        "POST",
        "/collectors/ocpplab/dep-1/replay",
        body={"from": "2026-11-20T00:00:00Z", "to": "2026-11-19T00:00:00Z"},
    ),
    Case(
        "replay: unknown vendor",
        "POST",
        "/collectors/acme/dep-1/replay",
        body={"from": "2026-11-19T00:00:00Z", "to": "2026-11-20T00:00:00Z"},
    ),
    Case(
        "replay: fetched_to a word",
        "POST",
        "/collectors/ocpplab/dep-1/replay",
        body={"from": "2026-11-19T00:00:00Z", "to": "2026-11-20T00:00:00Z", "fetched_to": "later"},
    ),
    Case("export: no scope", "POST", "/exports", body={"format": "csv"}),
    Case("export: format exe", "POST", "/exports", body={"charger_id": "CP-1", "format": "exe"}),
    Case("export: charger and site", "POST", "/exports", body={"charger_id": "CP-1", "site_id": "s", "format": "csv"}),
    Case("export: charger with #", "POST", "/exports", body={"charger_id": "CP#1", "format": "csv"}),
    Case("diagnostics: no charger", "POST", "/diagnostics/requests", body={}),
    Case("diagnostics: charger with a slash", "POST", "/diagnostics/requests", body={"charger_id": "a/b"}),
    Case("diagnostics: retries negative", "POST", "/diagnostics/requests", body={"charger_id": "CP-1", "retries": -1}),
    Case(
        "diagnostics: log type unknown",
        "POST",
        "/diagnostics/requests",
        body={"charger_id": "CP-1", "log_type": "EverythingLog"},
    ),
    Case(
        "diagnostics: valid for a century",
        "POST",
        "/diagnostics/requests",
        body={"charger_id": "CP-1", "upload_valid_for_minutes": 52_560_000},
    ),
]

# Methods and paths no route has.
STRAY = [
    Case("PUT a collection", "PUT", "/sources", body=SOURCE),
    Case("DELETE the charger list", "DELETE", "/chargers"),
    Case("POST to health", "POST", "/health", body={}),
    Case("PATCH a record", "PATCH", "/chargers/CP-1/logs/x", body={}),
    Case("unknown path", "GET", "/admin"),
    Case("double slash", "GET", "//sources"),
    Case("trailing garbage", "GET", "/sources/ocpplab/dep-1/../../health"),
    Case("delete an unknown source", "DELETE", "/sources/ocpplab/nope"),
    Case("delete with a bad vendor", "DELETE", "/sources/acme/dep-1"),
    Case("a record of another charger's form", "GET", "/chargers/CP-1/logs/not~a~record"),
    Case("an export that does not exist", "GET", "/exports/00000000-0000-0000-0000-000000000000"),
    Case("a diagnostics request that does not exist", "GET", "/diagnostics/nope"),
    Case("CSV of a problem", "GET", "/logs", {"limit": "-1"}, accept="text/csv"),
    Case("an accept header nobody serves", "GET", "/chargers/CP-1/logs", accept="image/png"),
]


def cases() -> Iterator[Case]:
    for label, value in HOSTILE_IDS.items():
        yield Case(f"charger id {label}", "GET", f"/chargers/{value}/logs")
        yield Case(f"record id {label}", "GET", f"/chargers/CP-1/logs/{value}")
        yield Case(f"site id {label}", "GET", f"/sites/{value}/logs")
        yield Case(f"source id {label} (delete)", "DELETE", f"/sources/ocpplab/{value}")
    for label, query in HOSTILE_QUERIES.items():
        for path in LISTINGS:
            yield Case(f"{path} {label}", "GET", path, query)
    for label, (raw, content_type) in HOSTILE_BODIES.items():
        for method, path in BODY_ROUTES:
            yield Case(f"{method} {path} body {label}", method, path, body=raw, content_type=content_type)
    yield from HOSTILE_FIELDS
    yield from STRAY


ALL_CASES = list(cases())


def _snapshot(stack: LocalStack) -> list[dict[str, Any]]:
    items = aws.table(stack.refs["Table"]).scan()["Items"]
    return sorted(items, key=lambda item: (str(item["pk"]), str(item["sk"])))


def _objects(stack: LocalStack) -> dict[str, list[str]]:
    s3 = aws.client("s3")
    return {
        bucket: sorted(o["Key"] for o in s3.list_objects_v2(Bucket=stack.refs[bucket]).get("Contents", []))
        for bucket in ("ExportsBucket", "DiagnosticsBucket", "RawBucket")
    }


def _seed(stack: LocalStack, context: Any) -> None:
    created = call_api(context, "POST", "/sources", body=SOURCE | {"name": "Depot 1"}, headers={"content-type": JSON})
    assert created.status == 201, created.text
    record = LogRecord.model_validate(
        {
            "vendor": "ocpplab",
            "source_id": "dep-1",
            "charger_id": "CP-1",
            "site_id": "site-1",
            "timestamp": "2026-11-20T00:00:00Z",
            "kind": "ocpp",
            "direction": "cp_to_csms",
            "message_type": "CALL",
            "action": "Heartbeat",
            "payload": {},
            "raw": {"n": 1},
            "record_id": record_id_for("ocpplab", "dep-1", None, n=1),
        }
    )
    RecordWriter(stack.refs["Table"], RawArchive(stack.refs["RawBucket"]), hot_retention_days=30).write([record])


def test_the_suite_is_at_least_a_hundred_cases() -> None:
    assert len(ALL_CASES) >= 100
    assert len({case.name for case in ALL_CASES}) == len(ALL_CASES)


@pytest.mark.parametrize("chunk", range(4))
def test_hostile_requests_get_no_server_error_and_change_nothing(
    stack: LocalStack, lambda_context: Any, subtests: Any, chunk: int
) -> None:
    _seed(stack, lambda_context)
    before, objects_before = _snapshot(stack), _objects(stack)
    for case in ALL_CASES[chunk::4]:
        with subtests.test(msg=case.name):
            content_type = case.content_type or (
                JSON if case.body is not None and not isinstance(case.body, bytes) else None
            )
            headers = {"content-type": content_type} if content_type else {}
            if case.accept:
                headers["Accept"] = case.accept
            answer = call_api(lambda_context, case.method, case.path, case.query, case.body, headers)
            assert answer.status < 500, (answer.status, answer.text[:300])
            if answer.status >= 400:
                assert answer.headers["content-type"] == "application/problem+json", answer.headers
                problem = answer.json()
                assert problem.keys() >= PROBLEM_FIELDS
                assert problem["status"] == answer.status
            else:
                assert case.method == "GET", (case.method, answer.status, answer.text[:300])
    assert _snapshot(stack) == before
    assert _objects(stack) == objects_before
