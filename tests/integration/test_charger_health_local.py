"""Acceptance (issue 16): charger health on the template's resources in moto's server, fed by a vendor simulator.

Each kind of misbehaviour is one opt-in episode of the OCPPLAB simulator's traffic (chargelog_simulators.traffic).
Scheduled passes run as deployed - the dispatcher, the worker on the vendor's queue (which feeds every stored page
to the detectors), the health monitor function on its schedule, the alert notifier on the alert queue with a
webhook (a receiver on 127.0.0.1, its URL in a Secrets Manager secret) - while the simulated clock moves on. Each
kind opens exactly one alert, with evidence that is in the table, and resolves it when the pattern ends; reading the
same traffic again (every pass re-reads its lookback; then a backfill and a replay of the whole span) opens nothing
more; the webhook receives one open and one resolve message. A week of normal traffic opens nothing, and an hour's
collector outage opens no ``offline`` alert.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import alert_notifier_handler
import health_monitor_handler
from api_calls import call_api
from chargelog import aws, stores
from chargelog.dal.records import charger_items
from chargelog.logic import sources
from chargelog.models.alerts import Alert
from chargelog.models.jobs import CollectionJob
from chargelog.models.sources import SourceCreate
from chargelog.settings import get_settings
from chargelog_local.lambdas import LocalLambdaContext
from chargelog_local.provision import LocalStack
from chargelog_local.triggers import scheduled_event, sqs_event
from chargelog_simulators.base import Faults, ManualClock
from chargelog_simulators.ocpplab import OcpplabSimulator
from chargelog_simulators.traffic import (
    AuthorizationFailures,
    Behaviour,
    BootLoop,
    DiagnosticsFailure,
    ErrorBurst,
    FaultedConnector,
    FirmwareFailure,
    Misbehaviour,
    Silent,
    StuckSession,
)
from conftest import REGION
from convergence_harness import WorkerHarness, plenty, worker_harness

TOKEN = "health-token"
TENANT = "health"
CHARGER = "dep-health-1"
FIVE_MINUTES = timedelta(minutes=5)
HOUR = timedelta(hours=1)

type Harness = WorkerHarness[OcpplabSimulator]


# ---------------------------------------------------------------------------------------------- the webhook
@dataclass
class Webhook:
    """A Slack-compatible webhook on 127.0.0.1: every JSON body it was sent."""

    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)

    def transitions(self) -> list[tuple[str, str]]:
        return [(post["alert"]["alert_id"], post["transition"]) for post in self.posts]


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch, server_stack: LocalStack) -> Iterator[Webhook]:
    received = Webhook()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.posts.append(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/chargelog"
    secret = aws.client("secretsmanager").create_secret(
        Name=f"{server_stack.stack_name}/alert-webhook", SecretString=json.dumps({"url": received.url})
    )
    monkeypatch.setenv("CHARGELOG_ALERT_WEBHOOK_SECRET_ARN", secret["ARN"])
    get_settings.cache_clear()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------------- passes
@dataclass
class HealthStack:
    harness: Harness
    webhook: Webhook

    @property
    def clock(self) -> ManualClock:
        return self.harness.clock

    def scheduled_pass(self) -> None:
        """What one schedule does: the dispatcher and the worker, then the health monitor, then the notifier."""
        self.harness.schedule(plenty())
        self.monitor()

    def monitor(self) -> dict[str, Any]:
        context = LocalLambdaContext("HealthMonitorFunction", 512, 120, REGION)
        event = scheduled_event("HealthMonitorSchedule", REGION, now=self.clock())
        summary = health_monitor_handler.lambda_handler(event, context)
        self.notify()
        return summary

    def notify(self) -> None:
        """The alert notifier on the alert queue, as Lambda's event source mapping runs it."""
        sqs = aws.client("sqs")
        queue = self.harness.stack.refs["AlertQueue"]
        arn = self.harness.stack.attributes[("AlertQueue", "Arn")]
        context = LocalLambdaContext("AlertNotifierFunction", 512, 60, REGION)
        while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
            "Messages", []
        ):
            result = alert_notifier_handler.lambda_handler(sqs_event(messages, arn, REGION), context)
            assert result == {"batchItemFailures": []}
            for message in messages:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    def run_until(self, end: datetime, step: timedelta) -> None:
        while self.clock() < end:
            self.clock.advance(min(step, end - self.clock()).total_seconds())
            self.scheduled_pass()

    def read_again(self, start: datetime, lambda_context: Any) -> None:
        """The whole span read again: a backfill through the vendor, then a replay from the raw archive."""
        job = CollectionJob.backfill("ocpplab", CHARGER, start, self.clock(), now=self.clock())
        stores.work_queues().of("ocpplab").send([job])
        self.harness.schedule(plenty())
        body = {"from": start.isoformat(), "to": self.clock().isoformat()}
        response = call_api(lambda_context, "POST", f"/collectors/ocpplab/{CHARGER}/replay", body=body)
        assert response.status == 202, response.text
        self.harness.schedule(plenty())
        self.monitor()


def every_alert() -> list[Alert]:
    alerts, cursor = stores.alerts().list(limit=500)
    assert cursor is None
    return alerts


def stored_record_ids(stack: LocalStack) -> set[str]:
    """The API's ids of the charger's records (time and record id), as alerts name their evidence."""
    return {str(item["sk"]).replace("#", "~", 1) for item in charger_items(stack.refs["Table"], CHARGER)}


@contextmanager
def health_stack(
    server_stack: LocalStack,
    monkeypatch: pytest.MonkeyPatch,
    webhook: Webhook,
    start: datetime,
    until: datetime,
    behaviour: Behaviour,
) -> Iterator[HealthStack]:
    """One OCPPLAB charger with ``behaviour``'s traffic over [start - 2 h, until], the clock at ``start``, the
    source registered and collected once."""
    clock = ManualClock(start)
    simulator = OcpplabSimulator(seed=16, clock=clock)
    simulator.add_token(TOKEN, TENANT)
    simulator.add_charger(CHARGER, TENANT)
    simulator.seed(CHARGER, start - timedelta(hours=2), until, behaviour=behaviour)
    sources.create_source(
        SourceCreate.model_validate({"vendor": "ocpplab", "source_id": CHARGER}), store=stores.sources()
    )
    secret = {"token": TOKEN, "page_size": 200, "requests_per_second": 1000}
    with worker_harness("ocpplab", server_stack, monkeypatch, simulator, clock, secret) as harness:
        stack = HealthStack(harness, webhook)
        stack.scheduled_pass()
        yield stack


def _past(hours: float) -> datetime:
    """A start this many hours before now, in whole minutes: the simulated clock stays behind the real one, so every
    page is fetched after its records' time (what a replay from the raw archive relies on)."""
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(second=0, microsecond=0)


# ---------------------------------------------------------------------------------------------- each kind
@dataclass(frozen=True)
class Case:
    kind: str
    episode: Misbehaviour
    # Passes every five minutes up to `busy` after the episode starts, then hourly up to `until`.
    busy: timedelta
    until: timedelta


START_OFFSET = timedelta(minutes=30)  # the episode starts this long after the clock's start


CASES = {
    "boot_loop": lambda at: Case(
        "boot_loop", BootLoop(at=at, duration=timedelta(minutes=20)), timedelta(minutes=70), timedelta(minutes=70)
    ),
    "connector_faulted": lambda at: Case(
        "connector_faulted",
        FaultedConnector(at=at, duration=timedelta(minutes=20), connector=2),
        timedelta(minutes=35),
        timedelta(minutes=35),
    ),
    "offline": lambda at: Case(
        "offline", Silent(at=at, duration=timedelta(minutes=90)), timedelta(minutes=110), timedelta(minutes=110)
    ),
    "error_burst": lambda at: Case(
        "error_burst",
        ErrorBurst(at=at, duration=timedelta(minutes=5), count=8),
        timedelta(minutes=30),
        timedelta(minutes=30),
    ),
    "authorization_failures": lambda at: Case(
        "authorization_failures",
        AuthorizationFailures(at=at, duration=timedelta(minutes=5), count=4),
        timedelta(minutes=40),
        timedelta(minutes=40),
    ),
    "firmware_failed": lambda at: Case(
        "firmware_failed",
        FirmwareFailure(at=at, duration=timedelta(minutes=90), failure="InstallationFailed"),
        timedelta(minutes=30),
        timedelta(minutes=120),
    ),
    "diagnostics_failed": lambda at: Case(
        "diagnostics_failed",
        DiagnosticsFailure(at=at, duration=timedelta(minutes=2)),
        timedelta(minutes=20),
        timedelta(hours=25),
    ),
    "stuck_session": lambda at: Case(
        "stuck_session", StuckSession(at=at, duration=timedelta(hours=26)), timedelta(minutes=10), timedelta(hours=27)
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_kind_opens_one_alert_with_its_evidence_and_resolves_when_the_pattern_ends(
    kind: str, server_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, webhook: Webhook, lambda_context: Any
) -> None:
    start = _past(30)
    case = CASES[kind](start + START_OFFSET)
    episode_at = start + START_OFFSET
    end = episode_at + case.until
    with health_stack(
        server_stack, monkeypatch, webhook, start, end, Behaviour(misbehaviours=(case.episode,))
    ) as stack:
        assert every_alert() == []  # the traffic before the episode is healthy
        stack.run_until(episode_at + case.busy, FIVE_MINUTES)
        stack.run_until(end, HOUR)

        (alert,) = every_alert()
        assert alert.kind == kind
        assert (alert.charger_id, alert.vendor, alert.source_id) == (CHARGER, "ocpplab", CHARGER)
        assert alert.state == "resolved", alert
        assert alert.resolved_at is not None
        assert episode_at <= alert.opened_at <= alert.resolved_at <= end
        assert alert.summary
        if kind != "offline":  # silence has no record to show; its resolution has the first record after it
            assert alert.evidence
        stored = stored_record_ids(server_stack)
        assert set(alert.evidence) <= stored
        assert set(alert.resolution_evidence) <= stored
        if kind in ("connector_faulted", "stuck_session"):
            assert alert.connector_id is not None
        # The API answers it, and the webhook had exactly one message for each transition.
        response = call_api(lambda_context, "GET", f"/alerts/{alert.alert_id}")
        assert response.status == 200
        assert response.json()["evidence"] == alert.evidence
        assert webhook.transitions() == [(alert.alert_id, "open"), (alert.alert_id, "resolved")]

        stack.read_again(start - timedelta(hours=2), lambda_context)
        assert every_alert() == [alert]
        assert webhook.transitions() == [(alert.alert_id, "open"), (alert.alert_id, "resolved")]


# ---------------------------------------------------------------------------------------------- no false alarms
def test_a_week_of_normal_traffic_opens_no_alert(
    server_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, webhook: Webhook
) -> None:
    start = _past(24 * 7 + 1)
    with health_stack(server_stack, monkeypatch, webhook, start, start + timedelta(days=7), Behaviour()) as stack:
        stack.run_until(start + timedelta(days=7), timedelta(hours=3))
        assert stores.collector_states().get("ocpplab", CHARGER).high_water_mark is not None
        assert every_alert() == []
        assert webhook.posts == []


def test_an_hours_collector_outage_opens_no_offline_alert(
    server_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, webhook: Webhook
) -> None:
    # The clock runs ahead of the real one here: the worker's backoff after failures is in real time.
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    with health_stack(server_stack, monkeypatch, webhook, start, start + timedelta(hours=3), Behaviour()) as stack:
        stack.run_until(start + timedelta(minutes=30), FIVE_MINUTES)
        harness = stack.harness
        harness.simulator.faults = Faults(error_rate=1.0)  # the vendor's API is down for an hour
        outage_end = stack.clock() + HOUR
        while stack.clock() < outage_end:
            stack.clock.advance(FIVE_MINUTES.total_seconds())
            # Every attempt of the pass's job fails ("did not drain"), or the source waits out its backoff.
            with contextlib.suppress(AssertionError):
                harness.schedule(plenty(), max_invocations=3)
            summary = stack.monitor()
            assert summary["alerts_opened"] == 0, summary
        assert stores.collector_states().get("ocpplab", CHARGER).consecutive_failures > 0
        harness.calm_down()
        harness.drop_queued_jobs()
        stack.run_until(outage_end + timedelta(minutes=45), FIVE_MINUTES)
        assert stores.collector_states().get("ocpplab", CHARGER).consecutive_failures == 0
        assert every_alert() == []
        assert webhook.posts == []
