"""A collection job: one source to collect, as it travels on the work queue."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from chargelog.models.sources import SourceId
from chargelog.vendors import Vendor


class CollectionJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendor: Vendor
    source_id: SourceId
    scheduled_at: datetime
