"""A replay: one source's records of a range rebuilt from the raw archive, and how far it has got."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, ConfigDict, Field

from chargelog.models.base import Model
from chargelog.models.fields import SourceId
from chargelog.vendors import Vendor

ReplayState = Literal["queued", "running", "done", "failed"]


def replay_id_for(now: datetime, unique: str) -> str:
    """A replay's id: the time it was asked for first (so a source's replays sort by it), then ``unique``."""
    return f"{now:%Y%m%dT%H%M%S}-{unique[:12]}"


class Replay(Model):
    model_config = ConfigDict(extra="ignore")

    replay_id: str = Field(description="The replay's id (the job_id of its job on the vendor's work queue)")
    vendor: Vendor
    source_id: SourceId
    window_start: AwareDatetime = Field(description="Records of this time or later (inclusive) are rebuilt")
    window_end: AwareDatetime = Field(description="Records of this time or earlier (inclusive) are rebuilt")
    fetched_to: AwareDatetime = Field(description="Only pages fetched by then are read")
    state: ReplayState
    created_at: AwareDatetime
    updated_at: AwareDatetime
    pages_read: int = Field(default=0, description="Archived pages read and normalized again")
    records_read: int = Field(
        default=0,
        description=(
            "Records of the range those pages held; one several pages hold counts once per run of the job (a "
            "continuation counts it again, but does not write it again)"
        ),
    )
    records_written: int = Field(default=0, description="Items written: new, or changed since they were stored")
    records_quarantined: int = Field(default=0, description="Entries the normalizer could not read")
    pages_unreadable: int = Field(
        default=0, description="Pages that do not say where their records are (archived before items_at existed)"
    )
    error: str | None = Field(default=None, description="Why the replay failed")
