"""PLACEHOLDER (branch health-notifier), to be replaced by the real sweep of chargelog.logic.charger_health.

The health monitor's handler (functions/health_monitor) calls ``run(now)`` every ScheduleMinutes. This stand-in
evaluates nothing and says so, so the template's HealthMonitorFunction, the local stack and the tests run before the
detectors land.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def run(now: datetime) -> dict[str, Any]:
    """PLACEHOLDER: the real sweep evaluates every charger's health at ``now`` and opens or resolves alerts."""
    return {"placeholder": True, "now": now.isoformat(), "chargers": 0, "opened": 0, "resolved": 0}
