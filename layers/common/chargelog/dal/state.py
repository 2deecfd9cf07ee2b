"""Collector state per source, in the table: ``pk = "COLLECTOR"``, ``sk = "<vendor>#<source_id>"``.

It holds the high-water mark, the running job's checkpoint and lease, the scheduled job waiting on the queue
(its pending mark), the last success and error, and counters. Listing every collector (for health) is one Query.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError
from pydantic import AwareDatetime, BaseModel

from chargelog.dal import TableStore, is_condition_failure, query_all
from chargelog.models.keys import iso

COLLECTOR_PARTITION = "COLLECTOR"


class Checkpoint(BaseModel):
    """Where a job stands inside its window: the chunk being read and the page to read next."""

    job_id: str
    chunk_start: AwareDatetime
    chunk_end: AwareDatetime
    cursor: str | None = None  # None: the chunk's first page
    total_first: int | None = None  # the vendor's total when the chunk's first page was read
    read: int = 0  # records read in this pass of the chunk
    passes: int = 0  # passes of this chunk that found the data changing under them


class CollectorState(BaseModel):
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

    def leased(self, now: datetime) -> bool:
        return self.lease_until is not None and self.lease_until > now

    def backed_off(self, now: datetime) -> bool:
        return self.backoff_until is not None and self.backoff_until > now

    def job_pending(self, now: datetime, pending_for: timedelta) -> bool:
        """A scheduled job waits on the queue for this source, queued at most ``pending_for`` ago."""
        return self.job_queued_at is not None and self.job_queued_at >= now - pending_for


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
    ) -> bool:
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
        try:
            self._table.update_item(**request)
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def acquire_lease(self, vendor: str, source_id: str, job_id: str, now: datetime, seconds: float) -> bool:
        """Take the source for ``job_id`` unless another job holds an unexpired lease on it."""
        condition = (
            Attr("lease_until").not_exists() | Attr("lease_until").lt(iso(now)) | Attr("lease_job_id").eq(job_id)
        )
        return self._update(
            vendor,
            source_id,
            {"lease_job_id": job_id, "lease_until": iso(now + timedelta(seconds=seconds)), "last_run_at": iso(now)},
            condition=condition,
        )

    def mark_queued(self, vendor: str, source_id: str, job_id: str, now: datetime, stale_before: datetime) -> bool:
        """Claim the source's one pending scheduled job for ``job_id`` before it is queued: only if no job is pending,
        or the pending mark is older than ``stale_before`` (its message lost, expired or never sent). Conditional, so
        of two dispatchers racing only one wins and queues the job."""
        condition = Attr("job_queued_at").not_exists() | Attr("job_queued_at").lt(iso(stale_before))
        return self._update(
            vendor, source_id, {"job_queued_at": iso(now), "queued_job_id": job_id}, condition=condition
        )

    def mark_requeued(self, vendor: str, source_id: str, job_id: str, now: datetime) -> None:
        """A scheduled job that re-queues itself to go on later is again the source's pending job."""
        self._update(vendor, source_id, {"job_queued_at": iso(now), "queued_job_id": job_id})

    def clear_queued(self, vendor: str, source_id: str, job_id: str) -> bool:
        """A worker took ``job_id`` off the queue (or it was never sent): the source has no pending job, unless a
        newer job holds the mark."""
        return self._update(
            vendor,
            source_id,
            {},
            remove=("job_queued_at", "queued_job_id"),
            condition=Attr("queued_job_id").eq(job_id),
        )

    def release_lease(self, vendor: str, source_id: str, job_id: str) -> None:
        self._update(
            vendor, source_id, {}, remove=("lease_job_id", "lease_until"), condition=Attr("lease_job_id").eq(job_id)
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
    ) -> None:
        """After a page is durably written: record the position, count it, and renew the lease."""
        self._update(
            vendor,
            source_id,
            {
                "checkpoint": checkpoint.model_dump(mode="json"),
                "lease_until": iso(now + timedelta(seconds=lease_seconds)),
            },
            add={"records_stored": stored, "records_quarantined": quarantined, "pages_fetched": pages},
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

    def record_success(self, vendor: str, source_id: str, job_id: str, now: datetime) -> None:
        self._update(
            vendor,
            source_id,
            {"last_success_at": iso(now), "consecutive_failures": 0},
            remove=("backoff_until", "lease_job_id", "lease_until"),
        )

    def record_failure(
        self,
        vendor: str,
        source_id: str,
        job_id: str,
        error: str,
        now: datetime,
        backoff: timedelta,
        dead_lettered: bool,
    ) -> None:
        state = self.get(vendor, source_id)
        self._update(
            vendor,
            source_id,
            {
                "last_error": error[:2000],
                "last_error_at": iso(now),
                "consecutive_failures": state.consecutive_failures + 1,
                "backoff_until": iso(now + backoff),
            },
            add={"jobs_dead_lettered": 1 if dead_lettered else 0},
            remove=("lease_job_id", "lease_until") if state.lease_job_id == job_id else (),
        )
