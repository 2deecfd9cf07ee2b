"""An export: a whole log query written to a file in S3 in the background, for ranges too big for one response."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, ConfigDict, Field

from chargelog.models.base import Model
from chargelog.models.fields import ChargerId
from chargelog.models.logs import ActionName, RangeBound, Text
from chargelog.models.records import Direction, RecordKind
from chargelog.ocpp_frames import MessageType
from chargelog.vendors import Vendor

ExportState = Literal["queued", "running", "done", "failed"]
ExportFormat = Literal["ndjson", "csv"]
# Where an export reads its records: the table ("hot": its range starts within the hot window, HotRetentionDays) or
# the record archive in S3 ("archive": it starts earlier, or has no start).
ExportTier = Literal["hot", "archive"]
# OCPP 2.0.1 has 64 messages; more actions than that cannot all be different.
MAX_ACTIONS = 64


class ExportRequest(Model):
    """Body of POST /exports: one scope (a charger, a site, or the fleet), the logs routes' filters, a format."""

    model_config = ConfigDict(extra="forbid")

    charger_id: ChargerId | None = Field(default=None, description="Export this charger's records")
    site_id: ChargerId | None = Field(default=None, description="Export this site's records")
    start: RangeBound | None = Field(
        default=None, alias="from", description="Start of the range (inclusive), ISO 8601 with offset"
    )
    end: RangeBound | None = Field(
        default=None, alias="to", description="End of the range (inclusive), ISO 8601 with offset"
    )
    actions: list[ActionName] = Field(
        default_factory=list,
        max_length=MAX_ACTIONS,
        description="OCPP actions; required for a fleet-wide export (neither charger_id nor site_id)",
    )
    direction: Direction | None = None
    message_type: MessageType | None = None
    status: Text | None = None
    vendor: Vendor | None = None
    message_id: Text | None = None
    transaction_id: Text | None = Field(default=None, description="OCPP transaction id, whatever the vendor")
    connector_status: Text | None = Field(default=None, description="Connector status of StatusNotifications")
    kind: RecordKind | None = Field(default=None, description="ocpp or status records")
    order: Literal["asc", "desc"] = Field(default="asc", description="Time order")
    format: ExportFormat = Field(default="ndjson", description="ndjson (one JSON record per line) or csv")


class ExportJob(Model):
    """The message on the export queue: which export to run (the request itself is on the export's item)."""

    model_config = ConfigDict(extra="forbid")

    export_id: str = Field(min_length=1, max_length=64)


class Export(Model):
    """An export as stored: ``pk = "EXPORT"``, ``sk = <id>``."""

    id: str
    state: ExportState
    request: ExportRequest
    created_at: AwareDatetime
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    attempts: int = 0
    records: int = 0
    bytes: int = 0
    error: str | None = None
    object_key: str | None = None
    # Exports stored before there were two tiers read the table.
    tier: ExportTier = "hot"
    expires_at: int = Field(description="When the table forgets the export (epoch seconds, DynamoDB TTL)")


class ExportStatus(Model):
    """An export as the API shows it: with a short-lived download link once it is done."""

    id: str
    state: ExportState
    format: ExportFormat
    tier: ExportTier = Field(
        description="Where the records are read from: 'hot', the table (the range starts within the last "
        "HotRetentionDays), or 'archive', the record archive in S3 (it starts earlier, or has no start)"
    )
    request: ExportRequest
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int
    records: int = Field(description="Records written (when done)")
    bytes: int = Field(description="Size of the file (when done)")
    error: str | None = Field(default=None, description="Why the last attempt failed")
    download_url: str | None = Field(default=None, description="Presigned GET of the file, when done")
    download_expires_at: datetime | None = None
    expires_at: datetime = Field(description="When the export and its file are deleted")
