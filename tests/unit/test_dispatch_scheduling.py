"""The scheduler in the dispatcher and the worker (chargelog.logic.scheduling through chargelog.logic.dispatcher and
chargelog.logic.collection): a scheduled job leaves its source's activity in its finishing write; a pass queues the
sources the plan chooses (poked first), counts the others as waiting or over the budget, and ``every-pass`` goes back
to every source every pass."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from test_collection_engine import (  # the in-memory vendor and its fixture
    NOW,
    PROFILE,
    VENDOR,
    FakeAdapter,
    FakeVendor,
    add_source,
    queued_jobs,
    run,
    scheduled,
    state,
    vendor,
)

from chargelog import aws, collectors, stores
from chargelog.collectors.base import RateLimit, VendorCalls, VendorConnection, VendorProfile
from chargelog.dal.state import Activity, CollectorStateStore, Counts
from chargelog.logic import discovery, dispatcher
from chargelog.metric_names import VendorMetric
from chargelog.models.jobs import CollectionJob, DiscoveryJob
from chargelog.settings import get_settings
from chargelog_local.provision import LocalStack

__all__ = ["vendor"]  # a fixture


def finished(stack: LocalStack, source_id: str, *, read_ago: timedelta, rate: float, records: int = 0) -> None:
    """A source whose last scheduled job read up to ``read_ago`` before NOW and left this activity."""
    states = CollectorStateStore(stack.refs["Table"])
    states.take_job(VENDOR, source_id, f"job-{source_id}", NOW - read_ago, 60, clear_queued=True)
    states.finish_job(
        VENDOR,
        source_id,
        f"job-{source_id}",
        NOW - read_ago,
        mark=NOW - read_ago,
        counts=Counts(),
        activity=Activity(rate, records, None),
    )


def dispatch(at: Any = NOW) -> dispatcher.DispatchSummary:
    return dispatcher.dispatch(
        at, sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues()
    )


def test_a_scheduled_job_leaves_its_sources_activity_and_a_backfill_does_not(
    stack: LocalStack, vendor: FakeVendor
) -> None:
    vendor.add(12, NOW - timedelta(hours=2), timedelta(minutes=5))
    run(scheduled())
    first = state(stack)
    # Its first window: 24 hours of history, 12 records in it.
    assert first.activity_rate == pytest.approx(12 / (24 - 30 / 3600), rel=1e-3)
    assert first.activity_records == 12
    assert first.last_record_at == NOW - timedelta(hours=2) + 11 * timedelta(minutes=5)

    vendor.add(10, NOW + timedelta(minutes=1), timedelta(seconds=20))  # a session starts: 10 in 5 minutes
    run(scheduled(NOW + timedelta(minutes=5)))
    second = state(stack)
    assert second.activity_records == 10
    assert second.activity_rate > 40  # up at once (120 an hour over 5 minutes, with a 10-minute rise)
    assert second.last_record_at == NOW + timedelta(minutes=1) + 9 * timedelta(seconds=20)

    backfill = CollectionJob(
        vendor=VENDOR,
        source_id="cp-1",
        mode="backfill",
        window_start=NOW - timedelta(hours=3),
        window_end=NOW,
        scheduled_at=NOW + timedelta(minutes=6),
    )
    run(backfill)
    after = state(stack)
    assert (after.activity_rate, after.activity_records) == (second.activity_rate, second.activity_records)


def test_a_pass_polls_what_the_plan_chooses_poked_first(stack: LocalStack, vendor: FakeVendor) -> None:
    for source_id in ("cp-new", "cp-busy", "cp-quiet", "cp-stale", "cp-poked", "cp-producing"):
        add_source(source_id)
    finished(stack, "cp-busy", read_ago=timedelta(minutes=5), rate=60)
    finished(stack, "cp-quiet", read_ago=timedelta(minutes=5), rate=0.0)  # silent: no spare poll either
    finished(stack, "cp-stale", read_ago=timedelta(minutes=58), rate=0.5)
    finished(stack, "cp-poked", read_ago=timedelta(minutes=5), rate=0.0)
    finished(stack, "cp-producing", read_ago=timedelta(minutes=5), rate=0.5, records=4)
    stores.collector_states().poke(VENDOR, "cp-poked", NOW - timedelta(minutes=1))

    summary = dispatch()

    assert (summary.enqueued, summary.waiting, summary.over_budget) == (5, 1, {VENDOR: 0})
    jobs = [job.source_id for job in queued_jobs(stack)]
    assert jobs[0] == "cp-poked"
    assert sorted(jobs) == ["cp-busy", "cp-new", "cp-poked", "cp-producing", "cp-stale"]
    assert summary.vendor_metrics()[VENDOR][VendorMetric.SOURCES_OVER_BUDGET] == 0


def test_every_pass_polls_every_source_every_pass(
    stack: LocalStack, vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARGELOG_SCHEDULING_POLICY", "every-pass")
    get_settings.cache_clear()
    for source_id in ("cp-busy", "cp-quiet"):
        add_source(source_id)
    finished(stack, "cp-busy", read_ago=timedelta(minutes=5), rate=60)
    finished(stack, "cp-quiet", read_ago=timedelta(minutes=5), rate=0.0)
    summary = dispatch()
    assert (summary.enqueued, summary.waiting) == (2, 0)


def test_a_pass_plans_no_more_than_the_vendors_budget_and_counts_the_rest_over_it(
    stack: LocalStack, vendor: FakeVendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 30 requests a minute for the vendor, two workers: (30 * 0.95 / 2 - 1) / 60 a second each, 132.5 a pass in all.
    limited = VendorProfile(
        lookback=PROFILE.lookback,
        settle_delay=PROFILE.settle_delay,
        requests_per_second=PROFILE.requests_per_second,
        burst=1,
        page_size=PROFILE.page_size,
        rate_limit=RateLimit(30, timedelta(minutes=1)),
    )

    def factory(connection: VendorConnection, _remaining: Callable[[], float]) -> FakeAdapter:
        return FakeAdapter(vendor, connection)

    monkeypatch.setitem(collectors._ADAPTERS, VENDOR, (limited, factory))
    for n in range(20):
        add_source(f"cp-{n}")
        # 120 an hour over 14.5 minutes (lookback and unread): 29 records, 8 pages of 4 each.
        finished(stack, f"cp-{n}", read_ago=timedelta(minutes=5), rate=120)
    budget = dispatcher.scheduling_for(VENDOR, get_settings())[1]
    assert budget.per_pass == pytest.approx(2 * (30 * 0.95 / 2 - 1) / 60 * 300)

    summary = dispatch()

    assert summary.enqueued == 16  # 128 requests
    assert summary.over_budget == {VENDOR: 4}
    assert summary.vendor_metrics()[VENDOR][VendorMetric.SOURCES_OVER_BUDGET] == 4
    # The next pass, with those jobs still queued, counts their requests against its budget.
    later = dispatch(NOW + timedelta(minutes=5))
    assert (later.enqueued, later.pending, later.over_budget) == (0, 16, {VENDOR: 4})


def test_a_discovery_job_pokes_each_source_it_registers(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    from chargelog.collectors.base import DiscoveredSource

    class Listing:
        calls = VendorCalls()

        def discover(self) -> Any:
            yield DiscoveredSource("cp-found", "charger")

        def close(self) -> None:
            pass

    monkeypatch.setattr(collectors, "connection_for", lambda *args, **kwargs: None)
    monkeypatch.setattr(collectors, "adapter_for", lambda *args: Listing())
    monkeypatch.setattr(collectors, "has_adapter", lambda vendor: True)
    outcome = discovery.run_discovery_job(
        DiscoveryJob.model_validate({"vendor": VENDOR, "scheduled_at": NOW}),
        lambda: 900.0,
        sources=stores.sources(),
        secrets=stores.vendor_secrets(),
        queues=stores.work_queues(),
        states=stores.collector_states(),
    )
    assert (outcome.status, outcome.registered, outcome.enqueued) == ("done", 1, 1)
    assert CollectorStateStore(stack.refs["Table"]).get(VENDOR, "cp-found").poked_at is not None
    aws.client("sqs").purge_queue(QueueUrl=stack.refs["PlugchoiceWorkQueue"])
