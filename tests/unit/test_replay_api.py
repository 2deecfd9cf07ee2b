"""POST /collectors/{vendor}/{source_id}/replay through the API handler: the replay is stored and queued, bad input
gets a problem and queues nothing, the route needs the API key, and GET /collectors lists each source's replays."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api_calls import call_api
from chargelog import aws, stores
from chargelog.logic import sources
from chargelog.models.jobs import ReplayJob
from chargelog.models.sources import SourceCreate
from chargelog_local.provision import LocalStack
from chargelog_local.template import functions

NOW = datetime.now(UTC).replace(microsecond=0)
QUEUES = ("PlugchoiceWorkQueue", "OcpplabWorkQueue", "ChargepilotWorkQueue", "EvenergyWorkQueue")
PATH = "/collectors/{vendor}/{source_id}/replay"


def register(vendor: str, source_id: str) -> None:
    sources.create_source(
        SourceCreate.model_validate({"vendor": vendor, "source_id": source_id}), store=stores.sources()
    )


def post_replay(
    context: Any, vendor: str, source_id: str, body: Any, raw: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    sent = raw if raw is not None else json.dumps(body).encode()
    response = call_api(
        context,
        "POST",
        PATH.format(vendor=vendor, source_id=source_id),
        body=sent,
        headers={"content-type": "application/json"},
    )
    return response.status, response.headers, response.json()


def queued(stack: LocalStack, queue: str) -> list[dict[str, Any]]:
    response = aws.client("sqs").receive_message(QueueUrl=stack.refs[queue], MaxNumberOfMessages=10)
    return list(response.get("Messages", []))


def test_a_replay_is_stored_and_queued_on_the_vendors_queue(stack: LocalStack, lambda_context: Any) -> None:
    register("ocpplab", "dep-123")
    start, end = NOW - timedelta(days=3), NOW - timedelta(days=2)
    status, headers, replay = post_replay(
        lambda_context, "ocpplab", "dep-123", {"from": start.isoformat(), "to": end.isoformat()}
    )
    assert status == 202, replay
    assert headers["location"] == "/collectors"
    assert replay["state"] == "queued"
    assert (replay["vendor"], replay["source_id"]) == ("ocpplab", "dep-123")
    assert datetime.fromisoformat(replay["window_start"]) == start
    assert datetime.fromisoformat(replay["window_end"]) == end
    fetched_to = datetime.fromisoformat(replay["fetched_to"])
    assert NOW <= fetched_to <= datetime.now(UTC)  # by default: the pages fetched until it was asked for
    (message,) = queued(stack, "OcpplabWorkQueue")
    job = ReplayJob.model_validate_json(message["Body"])
    assert (job.job_id, job.window_start, job.window_end, job.fetched_to) == (
        replay["replay_id"],
        start,
        end,
        fetched_to,
    )
    assert all(not queued(stack, queue) for queue in QUEUES if queue != "OcpplabWorkQueue")

    response = call_api(lambda_context, "GET", "/collectors")
    assert response.status == 200
    (row,) = [r for r in response.json()["collectors"] if r["source_id"] == "dep-123"]
    assert [r["replay_id"] for r in row["replays"]] == [replay["replay_id"]]
    assert row["replays"][0]["state"] == "queued"


def test_fetched_to_is_kept(stack: LocalStack, lambda_context: Any) -> None:
    register("ocpplab", "dep-123")
    body = {
        "from": (NOW - timedelta(days=3)).isoformat(),
        "to": (NOW - timedelta(days=2)).isoformat(),
        "fetched_to": (NOW - timedelta(days=1)).isoformat(),
    }
    status, _, replay = post_replay(lambda_context, "ocpplab", "dep-123", body)
    assert status == 202, replay
    assert datetime.fromisoformat(replay["fetched_to"]) == NOW - timedelta(days=1)


@pytest.mark.parametrize(
    ("vendor", "source_id", "body", "expected", "detail"),
    [
        ("acme", "dep-123", "recent", 422, "vendor"),
        ("ocpplab", "dep-404", "recent", 404, "not registered"),
        ("ocpplab", "dep-123", "reversed", 400, "not before"),
        ("ocpplab", "dep-123", "empty", 400, "not before"),
        ("ocpplab", "dep-123", "future", 400, "future"),
        ("ocpplab", "dep-123", "too old", 400, "retention"),
        ("ocpplab", "dep-123", "fetched before from", 400, "fetched_to"),
        ("ocpplab", "dep-123", "fetched in the future", 400, "future"),
        ("evenergy", "evse-1", "recent", 409, "no collector"),
        ("ocpplab", "dep-123", {"from": "2026-11-20T00:00:00Z"}, 422, "to"),
        ("ocpplab", "dep-123", {"from": "2026-11-20T00:00:00", "to": "2026-11-20T01:00:00"}, 422, "from"),
        ("ocpplab", "dep-123", "recent with an unknown field", 422, "action"),
    ],
)
def test_bad_replays_get_a_problem_and_queue_nothing(
    stack: LocalStack,
    lambda_context: Any,
    without_evenergy_collector: None,
    vendor: str,
    source_id: str,
    body: Any,
    expected: int,
    detail: str,
) -> None:
    register("ocpplab", "dep-123")
    register("evenergy", "evse-1")
    recent = {"from": (NOW - timedelta(hours=3)).isoformat(), "to": (NOW - timedelta(hours=1)).isoformat()}
    body = (
        {
            "recent": recent,
            "reversed": {"from": recent["to"], "to": recent["from"]},
            "empty": {"from": recent["from"], "to": recent["from"]},
            "future": {"from": recent["from"], "to": (NOW + timedelta(hours=1)).isoformat()},
            "too old": {"from": (NOW - timedelta(days=401)).isoformat(), "to": recent["to"]},
            "fetched before from": recent | {"fetched_to": (NOW - timedelta(hours=4)).isoformat()},
            "fetched in the future": recent | {"fetched_to": (NOW + timedelta(hours=1)).isoformat()},
            "recent with an unknown field": recent | {"action": "Heartbeat"},
        }.get(body, body)
        if isinstance(body, str)
        else body
    )
    status, headers, problem = post_replay(lambda_context, vendor, source_id, body)
    assert status == expected, problem
    assert headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["status"] == expected
    assert detail in json.dumps(problem)
    assert all(not queued(stack, queue) for queue in QUEUES)
    assert list(stores.replays().list()) == []


def test_a_body_that_is_not_json_is_a_400(stack: LocalStack, lambda_context: Any) -> None:
    register("ocpplab", "dep-123")
    status, _, problem = post_replay(lambda_context, "ocpplab", "dep-123", None, raw=b'{"from": ')
    assert status == 400
    assert problem["status"] == 400
    assert all(not queued(stack, queue) for queue in QUEUES)


def test_the_route_needs_the_api_key(template: dict[str, Any]) -> None:
    routes = [route for spec in functions(template) for route in spec.routes if route.path == PATH]
    assert [(route.function, route.method, route.api_key_required) for route in routes] == [
        ("ApiFunction", "POST", True)
    ]


def test_the_worker_may_list_and_read_raw_pages_only(template: dict[str, Any]) -> None:
    worker = template["Resources"]["WorkerFunction"]["Properties"]["Policies"]
    statements = [s for policy in worker if "Statement" in policy for s in policy["Statement"]]
    reads = [s for s in statements if s["Action"] in ("s3:ListBucket", "s3:GetObject")]
    assert {s["Action"]: s.get("Condition") for s in reads} == {
        "s3:ListBucket": {"StringLike": {"s3:prefix": "raw/*"}},
        "s3:GetObject": None,
    }
    (get,) = [s for s in reads if s["Action"] == "s3:GetObject"]
    assert get["Resource"] == {"Fn::Sub": "${RawBucket.Arn}/raw/*"}
