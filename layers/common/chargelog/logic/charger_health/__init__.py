"""Charger health: the detectors that open and resolve alerts on misbehaving chargers (docs/health.md).

`detectors.observe` reads a page of one charger's records, `detectors.evaluate` what the passing of data time
reveals; both are pure functions of the charger's `ChargerHealthState`, the records or times, and the thresholds.
"""

from chargelog.logic.charger_health.detectors import AlertChange, Observation, evaluate, observe

__all__ = ["AlertChange", "Observation", "evaluate", "observe"]
