"""A source's activity: what each scheduled job observed of it, the measure the scheduler (chargelog.logic.scheduling)
decides from.

The worker computes it as a job finishes (`observe`) and stores it with the job's one finishing write; the dispatcher
reads it from the collector state. Pure: no AWS, no clock, no I/O. Kept apart from the scheduler so the worker, which
only observes, loads none of the scheduler's planning.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from chargelog.dal.state import Activity, CollectorState

# The rate estimate's time constants: a higher rate is taken up within minutes (a charger starting a session is
# polled again soon), a lower one over hours (a busy charger in a lull is not forgotten).
RATE_RISE = timedelta(minutes=10)
RATE_FALL = timedelta(hours=6)
HOUR = 3600.0

NO_ACTIVITY = Activity(rate_per_hour=None, records=0, last_record_at=None)


def activity_of(state: CollectorState) -> Activity:
    return Activity(state.activity_rate, state.activity_records or 0, state.last_record_at)


def observe(
    before: Activity,
    *,
    read_from: datetime,
    read_to: datetime,
    records: int,
    newest_record_at: datetime | None,
) -> Activity:
    """The activity after a scheduled job stored ``records`` while moving the source's read point from ``read_from``
    to ``read_to``: the rate moves towards ``records`` per hour of that span, quickly up (`RATE_RISE`) and slowly
    down (`RATE_FALL`); a span of no length leaves the rate alone."""
    last = before.last_record_at
    if newest_record_at is not None and (last is None or newest_record_at > last):
        last = newest_record_at
    span = (read_to - read_from).total_seconds()
    rate = before.rate_per_hour
    if span > 0:
        sample = records * HOUR / span
        if rate is None:
            rate = sample
        else:
            tau = (RATE_RISE if sample > rate else RATE_FALL).total_seconds()
            rate += (1 - math.exp(-span / tau)) * (sample - rate)
    return Activity(rate_per_hour=rate, records=records, last_record_at=last)
