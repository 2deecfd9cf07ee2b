"""A collection job: one source and one time window to collect, as it travels on a vendor's work queue."""

import uuid
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from chargelog.models.base import Model
from chargelog.models.fields import SourceId
from chargelog.vendors import Vendor

JobMode = Literal["scheduled", "backfill"]


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def correlation_id_field() -> Any:
    """One id per job, in every log line about it: from the dispatcher (or whoever queued it) to the worker and to
    its continuations, which carry the job as it was queued. Messages queued before it existed get a new one."""
    return Field(default_factory=new_correlation_id, min_length=1, max_length=128)


class CollectionJob(Model):
    """Read ``[window_start, window_end]`` (inclusive) of one source.

    A scheduled job moves the source's high-water mark as it goes; a backfill reads a past range and
    leaves the mark alone. ``job_id`` stays the same across retries and continuations, so a retry
    resumes from the job's last checkpoint.
    """

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    correlation_id: str = correlation_id_field()
    vendor: Vendor
    source_id: SourceId
    # A scheduled job's window comes from the source's high-water mark when it runs; a backfill's is given.
    window_start: AwareDatetime | None = None
    window_end: AwareDatetime | None = None
    mode: JobMode = "scheduled"
    scheduled_at: AwareDatetime
    # A backfill may ask for one OCPP action only, where the vendor can filter by it.
    action: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+$")

    @model_validator(mode="after")
    def _window_in_order(self) -> Self:
        if self.mode == "backfill" and (self.window_start is None or self.window_end is None):
            raise ValueError("a backfill job needs window_start and window_end")
        if self.action is not None and self.mode != "backfill":
            raise ValueError("only a backfill job can be limited to one action")
        if self.window_start and self.window_end and self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        return self

    @classmethod
    def backfill(
        cls, vendor: str, source_id: str, start: datetime, end: datetime, now: datetime, action: str | None = None
    ) -> Self:
        """A job reading ``[start, end]`` of one source (optionally of one OCPP action), leaving its mark alone:
        what `chargelog backfill` runs and ``POST /collectors/{vendor}/{source_id}/backfill`` queues."""
        return cls.model_validate(
            {
                "vendor": vendor,
                "source_id": source_id,
                "window_start": start,
                "window_end": end,
                "mode": "backfill",
                "scheduled_at": now,
                "action": action,
            }
        )


class DiscoveryJob(Model):
    """List the sources a vendor's credentials can see, register the new ones and collect them right away: what a
    scheduled pass queues per vendor when source discovery is on (``DiscoverSources``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["discover"] = "discover"
    job_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    correlation_id: str = correlation_id_field()
    vendor: Vendor
    scheduled_at: AwareDatetime


class ReplayJob(Model):
    """Rebuild one source's records of ``[window_start, window_end]`` (inclusive) from the raw archive, without
    calling the vendor: the pages fetched from ``window_start`` (a record of time t is fetched at t or later) to
    ``fetched_to``, normalized again. ``job_id`` is the replay's id (its progress item, `chargelog.dal.replays`), the
    same across continuations."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["replay"] = "replay"
    job_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    correlation_id: str = correlation_id_field()
    vendor: Vendor
    source_id: SourceId
    window_start: AwareDatetime
    window_end: AwareDatetime
    fetched_to: AwareDatetime
    scheduled_at: AwareDatetime

    @model_validator(mode="after")
    def _window_in_order(self) -> Self:
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        if self.fetched_to < self.window_start:
            raise ValueError("fetched_to is before window_start: no page fetched by then holds a record of the range")
        return self


# What a vendor's work queue carries. A collection job has no ``kind`` (messages queued before discovery existed
# stay valid), a discovery job no ``source_id``, a replay job its own ``kind``; all forbid unknown fields, so no
# message parses as two of them.
WorkItem = CollectionJob | DiscoveryJob | ReplayJob
