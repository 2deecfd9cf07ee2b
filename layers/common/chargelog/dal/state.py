"""Collector state per source, in the table: ``pk = "COLLECTOR"``, ``sk = "<vendor>#<source_id>"``.

It holds the high-water mark, the running job's checkpoint and lease, the scheduled job waiting on the queue
(its pending mark), the last success and error, and counters. Listing every collector (for health) is one Query.

A job writes it as seldom as its guarantees allow (each write is a write unit: the item stays under 1 KB): one
write takes the lease (and clears the queued mark), one finishes (mark, counters, success, checkpoint and lease
gone: `CollectorStateStore.finish_job`) or hands over to a continuation (`CollectorStateStore.hand_over`), and
in between one per page that another page of the same pass follows (`CollectorStateStore.save_progress`).
"""

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, Self

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError
from pydantic import AwareDatetime

from chargelog.dal import TableStore, is_condition_failure, query_all
from chargelog.models.base import Model
from chargelog.models.keys import iso

COLLECTOR_PARTITION = "COLLECTOR"
# The most of an error's text kept in ``last_error``: with it the state item stays under 1 KB (one write unit).
MAX_ERROR_CHARS = 400


class Checkpoint(Model):
    """Where a job stands inside its window: the chunk being read and the page to read next."""

    job_id: str
    chunk_start: AwareDatetime
    chunk_end: AwareDatetime
    cursor: str | None = None  # None: the chunk's first page
    total_first: int | None = None  # the vendor's total when the chunk's first page was read
    read: int = 0  # records read in this pass of the chunk
    passes: int = 0  # passes of this chunk that found the data changing under them


@dataclass
class Counts:
    """What a job stored since its last state write: added to the source's counters with its next one."""

    stored: int = 0
    quarantined: int = 0
    pages: int = 0

    def taken(self) -> Self:
        """These counts, leaving this tally at zero (a count is written at most once, even if its write fails)."""
        taken = replace(self)
        self.stored = self.quarantined = self.pages = 0
        return taken

    def adds(self) -> dict[str, int]:
        counts = {"records_stored": self.stored, "records_quarantined": self.quarantined, "pages_fetched": self.pages}
        return {name: count for name, count in counts.items() if count}


class CollectorState(Model):
    vendor: str
    source_id: str
    high_water_mark: AwareDatetime | None = None
    history_start: AwareDatetime | None = None  # where a new source's first window started
    checkpoint: Checkpoint | None = None
    lease_job_id: str | None = None
    lease_until: AwareDatetime | None = None
    # A scheduled job the dispatcher queued for this source and no worker has taken yet: since when, and its id.
    job_queued_at: AwareDatetime | None = None
    queued_job_id: str | None = None
    last_run_at: AwareDatetime | None = None
    last_success_at: AwareDatetime | None = None
    last_error: str | None = None
    last_error_at: AwareDatetime | None = None
    consecutive_failures: int = 0
    backoff_until: AwareDatetime | None = None
    records_stored: int = 0
    pages_fetched: int = 0
    records_quarantined: int = 0
    jobs_dead_lettered: int = 0
    # The scheduler's (chargelog.logic.scheduling): records stored per hour (a moving average), what the last scheduled
    # job stored, the newest record's time seen; written by a scheduled job's finishing write. And when another
    # signal last said the source woke (a discovery registering it, an alert): `CollectorStateStore.poke`.
    activity_rate: float | None = None
    activity_records: int | None = None
    last_record_at: AwareDatetime | None = None
    poked_at: AwareDatetime | None = None

    def leased(self, now: datetime) -> bool:
        return self.lease_until is not None and self.lease_until > now

    def backed_off(self, now: datetime) -> bool:
        return self.backoff_until is not None and self.backoff_until > now

    def job_pending(self, now: datetime, pending_for: timedelta) -> bool:
        """A scheduled job waits on the queue for this source, queued at most ``pending_for`` ago."""
        return self.job_queued_at is not None and self.job_queued_at >= now - pending_for


class Activity(NamedTuple):
    """A source's activity as a scheduled job leaves it (chargelog.logic.activity.observe computes it)."""

    rate_per_hour: float | None
    records: int
    last_record_at: datetime | None

    def attributes(self) -> dict[str, Any]:
        """As the state item's attributes (a number the table takes: a Decimal, rounded)."""
        attributes: dict[str, Any] = {"activity_records": self.records}
        if self.rate_per_hour is not None:
            attributes["activity_rate"] = Decimal(f"{self.rate_per_hour:.4g}")
        if self.last_record_at is not None:
            attributes["last_record_at"] = iso(self.last_record_at)
        return attributes


def _key(vendor: str, source_id: str) -> dict[str, str]:
    return {"pk": COLLECTOR_PARTITION, "sk": f"{vendor}#{source_id}"}


class CollectorStateStore(TableStore):
    def get(self, vendor: str, source_id: str) -> CollectorState:
        item = self._table.get_item(Key=_key(vendor, source_id), ConsistentRead=True).get("Item")
        return CollectorState.model_validate(item) if item else CollectorState(vendor=vendor, source_id=source_id)

    def list(self) -> Iterator[CollectorState]:
        items = query_all(self._table, KeyConditionExpression=Key("pk").eq(COLLECTOR_PARTITION))
        return (CollectorState.model_validate(item) for item in items)

    def _update(
        self,
        vendor: str,
        source_id: str,
        set_: dict[str, Any],
        add: dict[str, int] | None = None,
        remove: tuple[str, ...] = (),
        condition: Any = None,
        returning: bool = False,
    ) -> dict[str, Any] | None:
        """One UpdateItem; None when its condition failed, else the item as it is now (``returning``) or ``{}``."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        clauses = []
        sets = [f"#{k} = :{k}" for k in set_] + ["#vendor = :vendor", "#source_id = :source_id"]
        names.update({f"#{k}": k for k in set_} | {"#vendor": "vendor", "#source_id": "source_id"})
        values.update({f":{k}": v for k, v in set_.items()} | {":vendor": vendor, ":source_id": source_id})
        clauses.append("SET " + ", ".join(sets))
        if add:
            clauses.append("ADD " + ", ".join(f"#{k} :{k}" for k in add))
            names.update({f"#{k}": k for k in add})
            values.update({f":{k}": v for k, v in add.items()})
        if remove:
            clauses.append("REMOVE " + ", ".join(f"#{k}" for k in remove))
            names.update({f"#{k}": k for k in remove})
        request: dict[str, Any] = {
            "Key": _key(vendor, source_id),
            "UpdateExpression": " ".join(clauses),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if condition is not None:
            request["ConditionExpression"] = condition
        if returning:
            request["ReturnValues"] = "ALL_NEW"
        try:
            response = self._table.update_item(**request)
        except ClientError as error:
            if is_condition_failure(error):
                return None
            raise
        return dict(response.get("Attributes", {})) if returning else {}

    def _update_moving_mark(
        self,
        vendor: str,
        source_id: str,
        mark: datetime | None,
        set_: dict[str, Any],
        add: dict[str, int] | None = None,
        remove: tuple[str, ...] = (),
        condition: Any = None,
    ) -> bool:
        """`_update`, moving the high-water mark forward to ``mark`` in the same write. Should the write's condition
        fail, or the stored mark be further on already, the mark moves on its own (`advance_mark`) and the rest is
        written with its own condition only; False when that condition failed."""
        if mark is not None:
            forward = Attr("high_water_mark").not_exists() | Attr("high_water_mark").lte(iso(mark))
            moved = set_ | {"high_water_mark": iso(mark)}
            both = forward if condition is None else condition & forward
            if self._update(vendor, source_id, moved, add, remove, both) is not None:
                return True
            self.advance_mark(vendor, source_id, mark)
        return self._update(vendor, source_id, set_, add, remove, condition) is not None

    def take_job(
        self, vendor: str, source_id: str, job_id: str, now: datetime, seconds: float, *, clear_queued: bool
    ) -> CollectorState | None:
        """Take the source for ``job_id`` (as `acquire_lease`) and, with ``clear_queued``, clear the queued mark if it
        is the job's (as `clear_queued`), in one write in the usual case; the state as it is then, or None when another
        job holds the source."""
        lease = {"lease_job_id": job_id, "lease_until": iso(now + timedelta(seconds=seconds)), "last_run_at": iso(now)}
        if clear_queued:
            taken = self._update(
                vendor,
                source_id,
                lease,
                remove=("job_queued_at", "queued_job_id"),
                condition=_lease_free(job_id, now)
                & (Attr("queued_job_id").not_exists() | Attr("queued_job_id").eq(job_id)),
                returning=True,
            )
            if taken is not None:
                return CollectorState.model_validate(taken)
        # Busy, or the queued mark is a newer job's: the two writes apart.
        taken = self._update(vendor, source_id, lease, condition=_lease_free(job_id, now), returning=True)
        if clear_queued:
            self.clear_queued(vendor, source_id, job_id)
        return CollectorState.model_validate(taken) if taken is not None else None

    def acquire_lease(self, vendor: str, source_id: str, job_id: str, now: datetime, seconds: float) -> bool:
        """Take the source for ``job_id`` unless another job holds an unexpired lease on it."""
        return self.take_job(vendor, source_id, job_id, now, seconds, clear_queued=False) is not None

    def mark_queued(self, vendor: str, source_id: str, job_id: str, now: datetime, stale_before: datetime) -> bool:
        """Claim the source's one pending scheduled job for ``job_id`` before it is queued: only if no job is pending,
        or the pending mark is older than ``stale_before`` (its message lost, expired or never sent). Conditional, so
        of two dispatchers racing only one wins and queues the job."""
        condition = Attr("job_queued_at").not_exists() | Attr("job_queued_at").lt(iso(stale_before))
        return (
            self._update(vendor, source_id, {"job_queued_at": iso(now), "queued_job_id": job_id}, condition=condition)
            is not None
        )

    def clear_queued(self, vendor: str, source_id: str, job_id: str) -> bool:
        """A worker took ``job_id`` off the queue (or it was never sent): the source has no pending job, unless a
        newer job holds the mark."""
        return (
            self._update(
                vendor,
                source_id,
                {},
                remove=("job_queued_at", "queued_job_id"),
                condition=Attr("queued_job_id").eq(job_id),
            )
            is not None
        )

    def save_progress(
        self,
        vendor: str,
        source_id: str,
        checkpoint: Checkpoint,
        now: datetime,
        lease_seconds: float,
        stored: int,
        quarantined: int,
        pages: int,
        mark: datetime | None = None,
    ) -> None:
        """After a page is durably written: record the position, count it, renew the lease and (``mark``) move the
        high-water mark forward."""
        self._update_moving_mark(
            vendor,
            source_id,
            mark,
            {
                "checkpoint": checkpoint.model_dump(mode="json"),
                "lease_until": iso(now + timedelta(seconds=lease_seconds)),
            },
            add=Counts(stored, quarantined, pages).adds(),
        )

    def finish_job(
        self,
        vendor: str,
        source_id: str,
        job_id: str,
        now: datetime,
        *,
        mark: datetime | None,
        counts: Counts,
        activity: Activity | None = None,
    ) -> None:
        """A job ended well, in one write: the mark moved forward to ``mark`` (every record up to it stored), its
        counts added, its success recorded (failures and backoff cleared), the source's ``activity`` (a scheduled
        job's: chargelog.logic.scheduling) set, the checkpoint and its lease removed. A
        checkpoint there is this job's, or one a job left that no longer runs (the source was leased to none, and
        every job saves into the one checkpoint): a job only resumes from a checkpoint with its own id, and without
        one reads its whole window. If the job no longer holds the lease (it expired and another job took it), the
        mark and the success are written without touching that job's lease or checkpoint."""
        success: dict[str, Any] = {"last_success_at": iso(now), "consecutive_failures": 0}
        if activity is not None:
            success |= activity.attributes()
        removed = ("backoff_until", "checkpoint", "lease_job_id", "lease_until")
        mine = Attr("lease_job_id").eq(job_id)
        if self._update_moving_mark(vendor, source_id, mark, success, counts.adds(), removed, condition=mine):
            return
        self.clear_checkpoint(vendor, source_id, job_id)
        self._update(vendor, source_id, success, counts.adds(), remove=("backoff_until",))

    def hand_over(
        self,
        vendor: str,
        source_id: str,
        job_id: str,
        checkpoint: Checkpoint,
        now: datetime,
        *,
        requeued: bool,
        mark: datetime | None,
        counts: Counts,
        error: str | None = None,
    ) -> None:
        """A job out of time goes on in a new invocation, in one write: its position saved, the mark moved forward, its
        counts added, its lease released and (``requeued``, a scheduled job) it is again the source's queued job. A job
        that hands over after a vendor error (``error``, having made progress) keeps it as the last error; its
        consecutive failures and backoff stay as they are: it has not failed."""
        saved: dict[str, Any] = {"checkpoint": checkpoint.model_dump(mode="json")}
        if requeued:
            saved |= {"job_queued_at": iso(now), "queued_job_id": job_id}
        if error is not None:
            saved |= {"last_error": error[:MAX_ERROR_CHARS], "last_error_at": iso(now)}
        released = ("lease_job_id", "lease_until")
        if self._update_moving_mark(
            vendor, source_id, mark, saved, counts.adds(), released, condition=Attr("lease_job_id").eq(job_id)
        ):
            return
        self._update(vendor, source_id, saved, counts.adds())  # another job holds the lease: leave it

    def poke(self, vendor: str, source_id: str, at: datetime) -> None:
        """Another signal says the source woke at ``at`` (a discovery registered it, an alert saw it): the scheduler
        polls it in the next pass, ahead of the others, until a job has read past ``at``. Never moves a poke back."""
        self._update(
            vendor,
            source_id,
            {"poked_at": iso(at)},
            condition=Attr("poked_at").not_exists() | Attr("poked_at").lt(iso(at)),
        )

    def advance_mark(self, vendor: str, source_id: str, mark: datetime) -> None:
        """Move the high-water mark forward (never back): every record up to ``mark`` is stored."""
        self._update(
            vendor,
            source_id,
            {"high_water_mark": iso(mark)},
            condition=Attr("high_water_mark").not_exists() | Attr("high_water_mark").lt(iso(mark)),
        )

    def set_history_start(self, vendor: str, source_id: str, start: datetime) -> None:
        """Pin where a new source's history starts (first writer wins), until its mark takes over."""
        self._update(vendor, source_id, {"history_start": iso(start)}, condition=Attr("history_start").not_exists())

    def clear_checkpoint(self, vendor: str, source_id: str, job_id: str) -> None:
        self._update(vendor, source_id, {}, remove=("checkpoint",), condition=Attr("checkpoint.job_id").eq(job_id))

    def record_failure(
        self,
        vendor: str,
        source_id: str,
        job_id: str,
        error: str,
        now: datetime,
        backoff: timedelta | None,
        dead_lettered: bool,
        *,
        mark: datetime | None = None,
        counts: Counts | None = None,
    ) -> None:
        """A job failed: the error (its first `MAX_ERROR_CHARS` characters), the job's lease released, what it achieved
        before failing (``mark``, ``counts``) kept; and, with a ``backoff``, one more consecutive failure and the source
        left alone until ``now + backoff``. Without one (``None``: the job stored pages before it failed, so the vendor
        answers) the failure does not count: consecutive failures start again from zero and no backoff holds."""
        state = self.get(vendor, source_id)
        failed: dict[str, Any] = {"last_error": error[:MAX_ERROR_CHARS], "last_error_at": iso(now)}
        removed: tuple[str, ...] = ("lease_job_id", "lease_until") if state.lease_job_id == job_id else ()
        if backoff is not None:
            failed |= {"consecutive_failures": state.consecutive_failures + 1, "backoff_until": iso(now + backoff)}
        else:
            failed |= {"consecutive_failures": 0}
            removed += ("backoff_until",)
        self._update_moving_mark(
            vendor,
            source_id,
            mark,
            failed,
            add={"jobs_dead_lettered": 1 if dead_lettered else 0} | (counts.adds() if counts else {}),
            remove=removed,
        )


def _lease_free(job_id: str, now: datetime) -> Any:
    """No other job holds an unexpired lease."""
    return Attr("lease_until").not_exists() | Attr("lease_until").lt(iso(now)) | Attr("lease_job_id").eq(job_id)
