"""Log records as clients read them: the entry model, the filter value types, and the CSV / NDJSON forms.

Shared by the logs routes (a page at a time) and exports (a whole query to a file), so both write the same rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

from chargelog.models.base import Model
from chargelog.models.extracted import ExtractedFields
from chargelog.models.records import Direction, RecordKind
from chargelog.models.text import Printable
from chargelog.ocpp_frames import MessageType
from chargelog.vendors import Vendor

ActionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9]{0,63}$")]
# A range's bounds are read in UTC and moved by up to a day (a fleet range's default day, the exchanges' pairing
# window): the first and last days of Python's years 1-9999 are left out, so none of that leaves them (a 500 before).
EARLIEST_BOUND = datetime(1, 1, 2, tzinfo=UTC)
LATEST_BOUND = datetime(9999, 12, 30, tzinfo=UTC)


def _clamped_to_calendar(value: datetime) -> datetime:
    """A bound beyond `EARLIEST_BOUND`/`LATEST_BOUND` is read as that bound: no record lies out there, so the range
    means the same, and a schema-valid date-time is never refused (year 1 at a positive offset is year 0 in UTC)."""
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:  # year 1 at a positive offset, year 9999 at a negative one
        return EARLIEST_BOUND if value.year == 1 else LATEST_BOUND
    if in_utc < EARLIEST_BOUND:
        return EARLIEST_BOUND
    if in_utc > LATEST_BOUND:
        return LATEST_BOUND
    return value


# A range's bound (from, to): ISO 8601 with an offset, read as `EARLIEST_BOUND`/`LATEST_BOUND` beyond them.
RangeBound = Annotated[AwareDatetime, AfterValidator(_clamped_to_calendar)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=255), Printable]

CSV_COLUMNS = (
    "id",
    "timestamp",
    "vendor",
    "source_id",
    "site_id",
    "charger_id",
    "connector_id",
    "kind",
    "action",
    "direction",
    "message_type",
    "message_id",
    "status",
    "ocpp_version",
    "record_id",
    "transaction_id",
    "connector_status",
    "payload",
    "result",
    "extracted",
)
# Columns read out of ``extracted`` (see chargelog.models.extracted).
EXTRACTED_COLUMNS = ("transaction_id", "connector_status")


class LogEntry(Model):
    id: str = Field(description="The record's id in this API: GET /chargers/{charger_id}/logs/{id}")
    record_id: str
    vendor: Vendor
    source_id: str
    site_id: str | None = None
    charger_id: str
    connector_id: int | None = None
    timestamp: datetime
    kind: RecordKind
    action: str | None = None
    direction: Direction | None = None
    message_type: MessageType | None = None
    message_id: str | None = None
    status: str | None = None
    payload: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    ocpp_version: str | None = None
    payload_ref: str | None = Field(default=None, description="Set when the payload was too large to list")
    extracted: ExtractedFields | None = Field(
        default=None,
        description="What the payloads say, the same for every vendor: connector status and error code, id tag, "
        "transaction id, firmware / diagnostics status, GetLog request id, the latest meter sample (W, Wh, A, V, "
        "%), and the vendor's own extracted fields under 'vendor'",
    )


def records_csv(records: Iterable[LogEntry], header: bool = True) -> str:
    """CSV rows (``CSV_COLUMNS``; payload, result and extracted as compact JSON), after a header line unless told
    not to."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    for record in records:
        row = record.model_dump(mode="json", exclude_none=True)
        extracted = row.get("extracted") or {}
        for name in EXTRACTED_COLUMNS:
            row[name] = extracted.get(name)
        for name in ("payload", "result", "extracted"):
            if row.get(name) is not None:
                row[name] = json.dumps(row[name], separators=(",", ":"))
        writer.writerow(row)
    return out.getvalue()


def records_ndjson(records: Iterable[LogEntry]) -> str:
    return "".join(record.model_dump_json(exclude_none=True) + "\n" for record in records)
