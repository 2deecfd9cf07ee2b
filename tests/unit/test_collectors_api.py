"""GET /collectors through the API handler: per source its marks, lag, counts, errors, running and queued jobs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import api_handler
from chargelog import aws, stores
from chargelog.dal.state import Checkpoint, CollectorStateStore, Counts
from chargelog.logic import backfills, sources
from chargelog.models.jobs import CollectionJob
from chargelog.models.sources import SourceCreate
from chargelog_local.provision import LocalStack
from conftest import load_event


def list_collectors(context: Any) -> dict[str, Any]:
    response = api_handler.lambda_handler(load_event("api_list_collectors"), context)
    assert response["statusCode"] == 200, response.get("body")
    return dict(json.loads(response["body"]))


def register(vendor: str, source_id: str) -> None:
    sources.create_source(
        SourceCreate.model_validate({"vendor": vendor, "source_id": source_id}), store=stores.sources()
    )


def test_each_source_reports_its_progress_errors_and_jobs(
    stack: LocalStack, lambda_context: Any, without_evenergy_collector: None
) -> None:
    now = datetime.now(UTC)
    store = CollectorStateStore(stack.refs["Table"])
    register("ocpplab", "dep-healthy")
    register("ocpplab", "dep-failing")
    register("ocpplab", "dep-new")
    register("evenergy", "evse-1")  # a vendor without a collector
    # dep-healthy: a run stored 42 records and moved the mark; another job is collecting it now
    store.acquire_lease("ocpplab", "dep-healthy", "job-1", now - timedelta(minutes=10), 60)
    checkpoint = Checkpoint(job_id="job-1", chunk_start=now - timedelta(hours=1), chunk_end=now)
    store.save_progress("ocpplab", "dep-healthy", checkpoint, now, 60, stored=42, quarantined=1, pages=3)
    store.finish_job(
        "ocpplab", "dep-healthy", "job-1", now - timedelta(minutes=1), mark=now - timedelta(minutes=2), counts=Counts()
    )
    store.acquire_lease("ocpplab", "dep-healthy", "job-2", now, 600)
    # dep-failing: its last attempt failed and went to the dead-letter queue
    store.acquire_lease("ocpplab", "dep-failing", "job-3", now - timedelta(minutes=1), 600)
    store.record_failure(
        "ocpplab", "dep-failing", "job-3", "HTTPStatusError: 503", now, timedelta(minutes=1), dead_lettered=True
    )
    # an unregistered source's leftover state still shows
    store.advance_mark("ocpplab", "dep-removed", now - timedelta(days=1))
    # queued work: a backfill waiting on ocpplab's queue, a delayed job, and a dead-lettered message
    job = backfills.queue_backfill(
        "ocpplab",
        "dep-new",
        now - timedelta(days=2),
        now - timedelta(days=1),
        sources=stores.sources(),
        queues=stores.work_queues(),
    )
    sqs = aws.client("sqs")
    delayed = CollectionJob(vendor="ocpplab", source_id="dep-healthy", scheduled_at=now)
    sqs.send_message(QueueUrl=stack.refs["OcpplabWorkQueue"], MessageBody=delayed.model_dump_json(), DelaySeconds=300)
    assert store.mark_queued("ocpplab", "dep-healthy", delayed.job_id, now, stale_before=now - timedelta(hours=1))
    sqs.send_message(QueueUrl=stack.refs["WorkDeadLetterQueue"], MessageBody=delayed.model_dump_json())

    report = list_collectors(lambda_context)

    rows = {row["source_id"]: row for row in report["collectors"]}
    assert set(rows) == {"dep-healthy", "dep-failing", "dep-new", "evse-1", "dep-removed"}
    healthy = rows["dep-healthy"]
    assert healthy["status"] == "ok"
    assert datetime.fromisoformat(healthy["high_water_mark"]) == now - timedelta(minutes=2)
    assert 115 <= healthy["lag_seconds"] <= 180
    assert datetime.fromisoformat(healthy["last_success_at"]) == now - timedelta(minutes=1)
    assert (healthy["records_stored"], healthy["records_quarantined"], healthy["pages_fetched"]) == (42, 1, 3)
    assert (healthy["running"], healthy["running_job_id"]) == (True, "job-2")
    assert healthy["last_error"] is None
    assert datetime.fromisoformat(healthy["job_queued_at"]) == now  # its scheduled job waits on the queue
    assert "queued_job_id" not in healthy
    failing = rows["dep-failing"]
    assert failing["status"] == "backing_off"
    assert failing["last_error"] == "HTTPStatusError: 503"
    assert (failing["jobs_dead_lettered"], failing["consecutive_failures"]) == (1, 1)
    assert (failing["running"], failing["running_job_id"]) == (False, None)
    assert failing["job_queued_at"] is None
    assert rows["dep-new"]["status"] == "never_run"
    assert rows["evse-1"]["status"] == "no_collector"
    assert rows["dep-removed"]["status"] == "unregistered"
    # Each entry carries its vendor's queue: the backfill waits, the delayed job is counted as delayed.
    for source_id in ("dep-healthy", "dep-failing", "dep-new"):
        assert rows[source_id]["vendor_queue"] == {"queue": "ocpplab", "visible": 1, "in_flight": 0, "delayed": 1}
    assert rows["evse-1"]["vendor_queue"] == {"queue": "evenergy", "visible": 0, "in_flight": 0, "delayed": 0}
    queues = {queue["queue"]: queue for queue in report["queues"]}
    assert set(queues) == {"plugchoice", "ocpplab", "chargepilot", "evenergy", "dead-letter"}
    assert queues["dead-letter"]["visible"] == 1
    # Once a worker takes the backfill, the source shows that job running.
    store.acquire_lease("ocpplab", "dep-new", job.job_id, datetime.now(UTC), 600)
    rows = {row["source_id"]: row for row in list_collectors(lambda_context)["collectors"]}
    assert (rows["dep-new"]["running"], rows["dep-new"]["running_job_id"]) == (True, job.job_id)
