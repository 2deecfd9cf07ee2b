"""Collector lag: how far a source's collection is behind. One definition, for GET /collectors (chargelog.logic.health)
and the dispatcher's CollectorLagSeconds metric (chargelog.logic.collection)."""

from __future__ import annotations

from datetime import datetime

from chargelog.dal.state import CollectorState
from chargelog.models.sources import Source


def lag_seconds(state: CollectorState | None, source: Source | None, now: datetime) -> float | None:
    """How far a source's collection is behind: now - its high-water mark. A source never collected (no mark yet)
    counts from its registration, so one whose first job keeps failing shows a lag that grows from the moment it was
    added (its initial history is read in its first job, so counting from there would be behind from the start).
    None for a collector state without a registered source. GET /collectors and the dispatcher's
    CollectorLagSeconds read it."""
    if state is not None and state.high_water_mark is not None:
        return (now - state.high_water_mark).total_seconds()
    if source is not None:
        return max(0.0, (now - source.created_at).total_seconds())
    return None
