"""The detectors applied to the table: the worker's monitor (a stored page in, alerts and one notice per transition
out) and the health monitor function's pass (what absence reveals, at each source's data time), with moto."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from test_health_detectors import Charger, api
from test_health_detectors import at as minutes

import health_monitor_handler
from chargelog import aws, stores
from chargelog.dal.alerts import AlertStore
from chargelog.logic.charger_health import sweep
from chargelog.models.alerts import Alert, alert_id_for
from chargelog.models.health_state import ChargerHealthState
from chargelog_local.lambdas import LocalLambdaContext
from chargelog_local.provision import LocalStack
from chargelog_local.triggers import scheduled_event
from conftest import REGION


def notices(stack: LocalStack) -> list[dict[str, Any]]:
    """The AlertQueue's messages (taken off the queue)."""
    sqs = aws.client("sqs")
    found = []
    while messages := sqs.receive_message(QueueUrl=stack.refs["AlertQueue"], MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=stack.refs["AlertQueue"], ReceiptHandle=message["ReceiptHandle"])
    return found


def sweep_at(now: datetime) -> dict[str, Any]:
    """The health monitor function, invoked by its schedule at ``now``."""
    context = LocalLambdaContext("HealthMonitorFunction", 512, 120, REGION)
    return health_monitor_handler.lambda_handler(scheduled_event("HealthMonitorSchedule", REGION, now=now), context)


def every_alert() -> list[Alert]:
    alerts, _ = stores.alerts().list(limit=500)
    return alerts


def boot_loop(charger: Charger) -> list[Any]:
    return [record for n in (0, 4, 8) for record in charger.boot(minutes(n))]


def test_a_stored_boot_loop_opens_one_alert_with_one_notice_and_reading_it_again_changes_nothing(
    stack: LocalStack,
) -> None:
    charger = Charger()
    records = boot_loop(charger)
    tally = stores.charger_health_stores().monitor().observe(records)
    assert (tally.opened, tally.resolved, tally.states_written) == (1, 0, 1)
    (alert,) = every_alert()
    assert alert.kind == "boot_loop"
    assert alert.state == "open"
    assert alert.evidence == [api(r) for r in records if r.message_type == "CALL"]
    assert notices(stack) == [{"alert_id": alert.alert_id, "state": "open"}]

    stored = stores.charger_health().get("ocpplab", charger.source_id, charger.charger_id)
    assert stored is not None
    # The same page again (a lookback re-read, a retried job), in one job or a new one: nothing opens, nothing is
    # written, nothing is announced.
    for monitor in (stores.charger_health_stores().monitor(), stores.charger_health_stores().monitor()):
        again = monitor.observe(list(reversed(records)))
        assert (again.opened, again.states_written) == (0, 0)
    assert every_alert() == [alert]
    assert notices(stack) == []
    assert stores.charger_health().get("ocpplab", charger.source_id, charger.charger_id) == stored


def _collected(charger: Charger, records: list[Any], mark: datetime) -> None:
    """What a job leaves: the records in the table (and the charger index), the collector's mark."""
    stores.record_writer().write(records)
    stores.charger_health_stores().monitor().observe(records)
    stores.collector_states().advance_mark(charger.vendor, charger.source_id, mark)


def test_the_health_monitor_opens_offline_at_the_collectors_data_time_and_a_record_resolves_it(
    stack: LocalStack,
) -> None:
    charger = Charger()
    _collected(charger, [*charger.boot(minutes(0)), *charger.heartbeats(1, 30)], mark=minutes(40))
    # Ten minutes of silence at the data time: nothing; the wall clock (hours later) is never read.
    assert sweep_at(minutes(600))["alerts_opened"] == 0
    stores.collector_states().advance_mark("ocpplab", charger.source_id, minutes(62))
    result = sweep_at(minutes(64))
    assert result["alerts_opened"] == 1, result
    (alert,) = every_alert()
    assert (alert.kind, alert.state) == ("offline", "open")
    assert notices(stack) == [{"alert_id": alert.alert_id, "state": "open"}]
    assert stores.alerts().claim_notification(alert.alert_id, "open")  # the notifier took it
    assert sweep_at(minutes(69))["alerts_opened"] == 0  # the same silence: the same alert

    back = charger.heartbeats(75, 80)
    _collected(charger, back, mark=minutes(81))
    (resolved,) = every_alert()
    assert resolved.state == "resolved"
    assert resolved.resolution_evidence == [api(back[0])]
    assert notices(stack) == [{"alert_id": alert.alert_id, "state": "resolved"}]


@pytest.mark.parametrize("trouble", ["failing", "stale"])
def test_a_collector_that_cannot_vouch_for_the_silence_opens_no_offline_alert(stack: LocalStack, trouble: str) -> None:
    charger = Charger()
    _collected(charger, [*charger.boot(minutes(0)), *charger.heartbeats(1, 30)], mark=minutes(90))
    now = minutes(95)
    if trouble == "failing":
        states = stores.collector_states()
        states.record_failure("ocpplab", charger.source_id, "job-1", "vendor answered 503", now, timedelta(0), False)
    else:
        now = minutes(90 + 61)  # the mark is older than LagAlarmMinutes: the collector is behind
    result = sweep_at(now)
    assert result["alerts_opened"] == 0
    assert every_alert() == []


def test_the_source_of_a_charger_with_an_open_alert_is_poked_each_pass_until_a_job_reads_past_it(
    stack: LocalStack,
) -> None:
    troubled, healthy = Charger(charger_id="CP-1"), Charger(charger_id="CP-2")
    _collected(troubled, boot_loop(troubled), mark=minutes(20))
    _collected(healthy, [*healthy.boot(minutes(0)), *healthy.heartbeats(1, 15)], mark=minutes(20))
    states = stores.collector_states()

    assert sweep_at(minutes(25))["sources_woken"] == 1
    assert states.get("ocpplab", troubled.source_id).poked_at == minutes(25)
    assert states.get("ocpplab", healthy.source_id).poked_at is None
    # Still poked past its mark (no job has read past the poke): not written again.
    assert sweep_at(minutes(30))["sources_woken"] == 0
    assert states.get("ocpplab", troubled.source_id).poked_at == minutes(25)
    # A job read past it; the alert is still open: poked again.
    states.advance_mark("ocpplab", troubled.source_id, minutes(31))
    assert sweep_at(minutes(35))["sources_woken"] == 1
    assert states.get("ocpplab", troubled.source_id).poked_at == minutes(35)


def test_a_notice_lost_after_its_alert_opened_is_sent_by_a_later_pass_until_the_notifier_claims_it(
    stack: LocalStack,
) -> None:
    charger = Charger()
    alert = Alert(
        alert_id=alert_id_for("ocpplab", charger.source_id, charger.charger_id, "boot_loop", None, "r-1"),
        kind="boot_loop",
        state="open",
        charger_id=charger.charger_id,
        vendor="ocpplab",
        source_id=charger.source_id,
        opened_at=minutes(0),
        summary="Boot loop: 3 BootNotifications in 8 minutes",
        evidence=["r-1"],
    )
    alerts: AlertStore = stores.alerts()
    assert alerts.open(alert)  # a worker that stopped before sending its notice
    assert sweep.resend_unnotified(minutes(1), alerts=alerts, notices=stores.alert_notices()) == 0  # too early
    assert sweep_at(minutes(5))["notices_resent"] == 1
    assert notices(stack) == [{"alert_id": alert.alert_id, "state": "open"}]
    assert alerts.claim_notification(alert.alert_id, "open")
    assert sweep_at(minutes(10))["notices_resent"] == 0
    assert alerts.resolve(alert.alert_id, minutes(12), "quiet for 30 minutes") is not None
    assert sweep_at(minutes(20))["notices_resent"] == 1
    assert notices(stack) == [{"alert_id": alert.alert_id, "state": "resolved"}]


def test_a_state_another_writer_saved_meanwhile_is_read_again_and_decided_again(stack: LocalStack) -> None:
    charger = Charger()
    worker = stores.charger_health_stores().monitor()
    worker.observe(charger.boot(minutes(0)))  # the worker holds the state it wrote (version 1)
    health = stores.charger_health()
    stored = health.get("ocpplab", charger.source_id, charger.charger_id)
    assert stored is not None
    # The health monitor function writes the state meanwhile (a boot seen elsewhere stands for its change).
    other = stores.charger_health_stores().monitor()
    other.observe(charger.boot(minutes(4)))
    tally = worker.observe(charger.boot(minutes(8)))
    assert tally.state_conflicts == 1
    assert tally.opened == 1  # the worker's own view (one boot) would not have seen the loop: it read again
    final = health.get("ocpplab", charger.source_id, charger.charger_id)
    assert final is not None
    assert final.version == stored.version + 2
    assert ChargerHealthState.model_validate_json(final.state_json).open_alerts


def test_the_worker_observes_nothing_without_an_alert_queue(monkeypatch: pytest.MonkeyPatch, stack: LocalStack) -> None:
    """Functions without CHARGELOG_ALERT_QUEUE_URL (tools, the CLI's in-process collection) run no detectors."""
    from chargelog.settings import get_settings

    assert stores.collection().health is not None  # the worker's environment, as deployed
    monkeypatch.setenv("CHARGELOG_ALERT_QUEUE_URL", "")
    get_settings.cache_clear()
    assert stores.collection().health is None


def test_every_threshold_is_a_template_parameter_the_worker_and_the_monitor_both_get(template: dict[str, Any]) -> None:
    from chargelog.models.alerts import HealthThresholds

    names = {str(field.alias) for field in HealthThresholds.model_fields.values()}
    resources = template["Resources"]
    for function in ("WorkerFunction", "HealthMonitorFunction"):
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        for name in names:
            assert name in variables, f"{function} lacks {name}"
            parameter = variables[name]["Ref"]
            assert parameter in template["Parameters"], parameter
            # The parameter's default is the model's: a stack deployed with defaults behaves as documented.
            field = next(f for f in HealthThresholds.model_fields.values() if f.alias == name)
            assert float(template["Parameters"][parameter]["Default"]) == float(field.default)
