"""The collection scheduler: which sources a scheduled pass polls, spending each vendor's request budget where the
records are (docs/scheduling.md).

Pure: no AWS, no clock, no I/O. Every decision is a function of the sources' collector state, the pass's time and
the policy, so the dispatcher (chargelog.logic.dispatcher.dispatch) and the freshness benchmark (bench/freshness.py)
run the very same `plan`, the one on a table, the other on a simulated clock.

What a source's state holds for it (written by the job's one finishing write: chargelog.logic.activity.observe):
- ``activity_rate``: records stored per hour, a moving average that rises fast (a charger starting a session is
  polled again soon) and falls slowly (a busy charger in a lull is not forgotten);
- ``activity_records``: what the last scheduled job stored (a job that found records is followed by another);
- ``last_record_at``: the newest record's time seen so far;
- ``poked_at``: another signal said the source woke (a discovery registering it, an alert): it is polled first.

A pass (`plan`) polls a source when one of these holds, and never plans more requests than the vendor's budget for
the pass (`Budget`, from its documented rate limit and the workers' pace):
1. ``new``: it was never collected, or its activity never measured (a state from before the scheduler);
   ``poked``: poked after the point it was read up to;
2. ``starving``: by the next pass it would have waited ``max_poll_interval`` (the starvation bound);
3. ``producing``: its last job stored at least ``min_expected_records``; ``expected``: its rate times the time since
   it was read up to reaches ``min_expected_records``.
When the budget is short, groups 1 and 2 come first (group 2 oldest first; the first of them that does not fit keeps
its requests from group 3 and holds the rest of 1 and 2 back, so a big job is not passed over), then group 3 most
expected records first. When it is not (the due sources use less than `SPARE_SHARE` of it), the sources making
records that are not due yet are polled too, busiest first, up to that share: ``spare``. The chosen jobs are sent
poked first, then the busiest, so a quiet source polled only to keep the starvation bound never delays a busy one's
records.
``every-pass`` (the policy before this scheduler) polls every source every pass, with no budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from chargelog.collectors.base import DEFAULT_WORKERS, VendorProfile
from chargelog.logic.activity import HOUR

if TYPE_CHECKING:
    from chargelog.dal.state import CollectorState

PolicyName = Literal["adaptive", "every-pass"]
POLICIES: tuple[PolicyName, ...] = ("adaptive", "every-pass")
Reason = Literal["poked", "new", "starving", "producing", "expected", "spare", "every-pass"]

# A job expected to make more requests than this share of a pass's budget counts as this share: it spans passes (its
# worker paces it), and so fits beside the pass's other jobs instead of waiting for a pass of its own.
BIG_JOB_SHARE = 0.5
# A pass whose due sources leave its budget less than this share used polls the sources that make records but are
# not due yet, busiest first, up to it: spare requests buy freshness, not more of the limit.
SPARE_SHARE = 0.5


@dataclass(frozen=True)
class Policy:
    """How a vendor's sources are scheduled. ``page_size``, ``lookback`` and ``settle_delay`` are the vendor's
    (a poll re-reads its lookback, so its pages count those records too)."""

    name: PolicyName = "adaptive"
    pass_interval: timedelta = timedelta(minutes=5)  # ScheduleMinutes
    max_poll_interval: timedelta = timedelta(minutes=45)  # MaxPollIntervalMinutes: the starvation bound
    min_expected_records: float = 3.0  # a job is worth it once this many records are expected to wait
    page_size: int = 25
    lookback: timedelta = timedelta(0)
    settle_delay: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise ValueError(f"unknown scheduling policy {self.name!r}: one of {', '.join(POLICIES)}")
        if self.pass_interval <= timedelta(0) or self.max_poll_interval <= timedelta(0) or self.page_size < 1:
            raise ValueError(f"a policy needs positive intervals and page size, got {self!r}")

    @classmethod
    def for_vendor(
        cls,
        profile: VendorProfile,
        name: PolicyName,
        pass_interval: timedelta,
        max_poll_interval: timedelta,
    ) -> Policy:
        """A vendor's policy: its profile's paging, lookback and settle delay, and its own starvation bound if the
        profile sets one (in code: the dispatcher reads no vendor secret), else the deployment's."""
        return cls(
            name=name,
            pass_interval=pass_interval,
            max_poll_interval=profile.max_poll_interval or max_poll_interval,
            page_size=profile.page_size,
            lookback=profile.lookback,
            settle_delay=profile.settle_delay,
        )


@dataclass(frozen=True)
class Budget:
    """Requests a pass may plan: ``per_pass`` (what the vendor's workers make in one pass interval, paced to its
    limit) less what jobs still queued or running will make (``in_flight``)."""

    per_pass: float
    in_flight: float = 0.0

    @property
    def available(self) -> float:
        return max(0.0, self.per_pass - self.in_flight)

    @classmethod
    def of(cls, profile: VendorProfile, pass_interval: timedelta, workers: int = DEFAULT_WORKERS) -> Budget:
        """A vendor's budget for one pass: its workers' paced capacity (`VendorProfile.capacity_per_second`) over the
        pass interval, so what a pass plans is made before the next pass."""
        return cls(per_pass=profile.capacity_per_second(workers) * pass_interval.total_seconds())


@dataclass(frozen=True, slots=True)
class SourceView:
    """What the scheduler knows of one source (`view`): where it was read up to (its high-water mark; None: never
    collected), its activity, its poke, and whether a job of it is queued or running (``in_flight``: not polled
    again, but its requests count against the pass's budget)."""

    source_id: str
    read_through: datetime | None = None
    rate_per_hour: float | None = None  # None: never measured (a state from before the scheduler)
    last_job_records: int = 0
    poked_at: datetime | None = None
    in_flight: bool = False


def view(state: CollectorState | None, source_id: str, *, in_flight: bool = False) -> SourceView:
    """A source's view from its collector state (None: no state yet, a new source)."""
    if state is None:
        return SourceView(source_id, in_flight=in_flight)
    return SourceView(
        source_id,
        read_through=state.high_water_mark,
        rate_per_hour=state.activity_rate,
        last_job_records=state.activity_records or 0,
        poked_at=state.poked_at,
        in_flight=in_flight,
    )


@dataclass(frozen=True, slots=True)
class Poll:
    source_id: str
    reason: Reason
    expected_records: float  # records expected to wait unread
    expected_requests: int  # requests the job is expected to make (its window's records in pages; at least 1)
    rate_per_hour: float = 0.0  # the source's rate estimate


@dataclass(frozen=True)
class Decision:
    """A pass's plan for one vendor: the polls in the order to send them, the due sources the budget left for a later
    pass (``deferred``) and how many are not due yet (``waiting``)."""

    polls: tuple[Poll, ...]
    deferred: tuple[str, ...] = ()
    waiting: int = 0
    budget: Budget = field(default_factory=lambda: Budget(per_pass=math.inf))

    @property
    def planned_requests(self) -> int:
        return sum(poll.expected_requests for poll in self.polls)


def unread_seconds(source: SourceView, now: datetime, policy: Policy) -> float:
    """How long the source has gone unread: from its read point to the end of a window read now."""
    if source.read_through is None:
        return 0.0
    return max(0.0, (now - policy.settle_delay - source.read_through).total_seconds())


def expected_requests(source: SourceView, now: datetime, policy: Policy, cap: float = math.inf) -> int:
    """The requests a job of the source would make now: the records of its window (the lookback and what came
    since) in pages, at least one; at most ``cap`` (`BIG_JOB_SHARE`)."""
    return _requests(source.rate_per_hour or 0.0, unread_seconds(source, now, policy), policy, cap)


def _requests(rate: float, unread: float, policy: Policy, cap: float) -> int:
    records = rate * (unread + policy.lookback.total_seconds()) / HOUR
    pages = max(1, math.ceil(records / policy.page_size - 1e-9))
    return int(min(pages, max(1, cap)))


def plan(now: datetime, sources: list[SourceView], budget: Budget, policy: Policy) -> Decision:
    """Which of a vendor's sources to poll in the pass at ``now`` (module docstring). Sources ``in_flight`` are never
    polled; their expected requests are taken from the budget."""
    cap = budget.per_pass * BIG_JOB_SHARE
    in_flight = float(sum(expected_requests(s, now, policy, cap) for s in sources if s.in_flight))
    budget = Budget(per_pass=budget.per_pass, in_flight=budget.in_flight + in_flight)
    free = [source for source in sources if not source.in_flight]
    if policy.name == "every-pass":
        polls = tuple(_poll(s, "every-pass", unread_seconds(s, now, policy), policy, cap) for s in free)
        return Decision(polls=polls, budget=budget)

    bound = (policy.max_poll_interval - policy.pass_interval).total_seconds()
    settle = policy.settle_delay.total_seconds()
    threshold = policy.min_expected_records
    urgent: list[Poll] = []  # poked or new
    starving: list[tuple[float, Poll]] = []
    due: list[tuple[float, Poll]] = []
    waiting = 0
    spare: list[tuple[float, SourceView, float]] = []  # not due, but making records: for a pass with budget to spare
    for source in free:
        read, rate = source.read_through, source.rate_per_hour
        if read is None or rate is None:
            urgent.append(_poll(source, "new", 0.0 if read is None else _unread(now, read, settle), policy, cap))
            continue
        waited = (now - read).total_seconds()
        unread = max(0.0, waited - settle)
        if source.poked_at is not None and source.poked_at >= read:
            urgent.append(_poll(source, "poked", unread, policy, cap))
            continue
        if waited > bound:
            starving.append((waited, _poll(source, "starving", unread, policy, cap)))
            continue
        producing = source.last_job_records >= threshold
        if producing or rate * unread / HOUR >= threshold:
            poll = _poll(source, "producing" if producing else "expected", unread, policy, cap)
            due.append((poll.expected_records, poll))
        elif rate > 0:
            spare.append((rate, source, unread))
        else:
            waiting += 1
    starving.sort(key=lambda item: -item[0])
    due.sort(key=lambda item: -item[0])

    chosen: list[Poll] = []
    deferred: list[str] = []
    left = budget.available
    blocked = False
    for poll in [*urgent, *(poll for _, poll in starving)]:
        # In order: once one does not fit, the other new, poked and starving ones wait too, and its requests are kept
        # from the due ones, so a big job is not passed over pass after pass.
        if not blocked and poll.expected_requests <= left:
            chosen.append(poll)
            left -= poll.expected_requests
        else:
            if not blocked:
                left = max(0.0, left - poll.expected_requests)
            blocked = True
            deferred.append(poll.source_id)
    for _, poll in due:
        if poll.expected_requests <= left:
            chosen.append(poll)
            left -= poll.expected_requests
        else:
            deferred.append(poll.source_id)
    # Budget to spare: the sources making records that are not due yet, busiest first, while the pass stays under
    # SPARE_SHARE of its budget (the rest is kept for what the estimate misses: slow requests, a job's own work).
    spare.sort(key=lambda item: -item[0])
    spare_left = left - budget.available + budget.per_pass * SPARE_SHARE - budget.in_flight
    for _, source, unread in spare:
        poll = _poll(source, "spare", unread, policy, cap)
        if blocked or poll.expected_requests > min(left, spare_left):
            waiting += 1
            continue
        chosen.append(poll)
        left -= poll.expected_requests
        spare_left -= poll.expected_requests
    return Decision(
        polls=tuple(sorted(chosen, key=_send_order)), deferred=tuple(deferred), waiting=waiting, budget=budget
    )


def _unread(now: datetime, read: datetime, settle: float) -> float:
    return max(0.0, (now - read).total_seconds() - settle)


def _poll(source: SourceView, reason: Reason, unread: float, policy: Policy, cap: float) -> Poll:
    rate = source.rate_per_hour or 0.0
    return Poll(source.source_id, reason, rate * unread / HOUR, _requests(rate, unread, policy, cap), rate)


def _send_order(poll: Poll) -> tuple[int, float]:
    """Poked sources first, then the busiest (the most records expected an hour): a busy source's records wait the
    least, and a quiet one polled for the starvation bound, whose records have waited long already, loses little
    by going after it; new sources, whose first job reads their whole initial history, last."""
    rank = 0 if poll.reason == "poked" else 2 if poll.reason == "new" else 1
    return rank, -poll.rate_per_hour
