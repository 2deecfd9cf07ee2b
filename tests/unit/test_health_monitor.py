"""The health monitor's handler: the schedule's time is the sweep's "now", and the sweep's summary is its answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import health_monitor_handler
from chargelog.logic.charger_health import sweep
from chargelog_local.lambdas import LocalLambdaContext
from conftest import REGION, load_event


def test_the_monitor_sweeps_at_the_schedules_time(monkeypatch: pytest.MonkeyPatch, aws_credentials: None) -> None:
    seen: list[datetime] = []

    def run(now: datetime) -> dict[str, Any]:
        seen.append(now)
        return {"chargers": 3, "opened": 1, "resolved": 0}

    monkeypatch.setattr(sweep, "run", run)
    context = LocalLambdaContext("HealthMonitorFunction", 512, 120, REGION)
    assert health_monitor_handler.lambda_handler(load_event("schedule_collect"), context) == {
        "chargers": 3,
        "opened": 1,
        "resolved": 0,
    }
    assert seen == [datetime(2026, 11, 21, 9, 30, tzinfo=UTC)]
