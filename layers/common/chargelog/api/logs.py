"""Reading logs: chargers, a charger's / a site's / the fleet's records, one record. JSON, CSV or NDJSON."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field

from chargelog import stores
from chargelog.api import problems
from chargelog.logic import logs
from chargelog.logic.logs import LogFilters, LogPage, Scope
from chargelog.models.logs import ActionName, ChargerId, LogEntry, Text, records_csv, records_ndjson
from chargelog.models.records import Direction, RecordKind
from chargelog.ocpp_frames import MessageType
from chargelog.vendors import Vendor

router = Router()

CSV = "text/csv"
NDJSON = "application/x-ndjson"
JSON = "application/json"


class LogEntryWithRaw(LogEntry):
    raw: dict[str, Any] = Field(description="The vendor's log entry exactly as received")


class LogPageBody(BaseModel):
    records: list[LogEntry]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


class ChargerEntry(BaseModel):
    charger_id: str
    vendor: Vendor
    source_id: str
    site_id: str | None = None
    first_record_at: str
    last_record_at: str


class ChargerList(BaseModel):
    chargers: list[ChargerEntry]


PAGE_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "One page of records. With Accept: text/csv or application/x-ndjson, the same page in that "
        "format, with the next cursor in the X-Next-Cursor header.",
        "content": {
            JSON: {"model": LogPageBody},
            CSV: {"schema": {"type": "string"}},
            NDJSON: {"schema": {"type": "string"}},
        },
    },
    **problems.responses(
        {
            400: "'from' is after 'to', a fleet-wide range spans too many days, or the cursor is not one this API "
            "issued for this query."
        }
    ),
}


def response_format(accept: str | None) -> Literal["json", "csv", "ndjson"]:
    for part in (accept or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media == CSV:
            return "csv"
        if media == NDJSON:
            return "ndjson"
        if media in (JSON, "application/*", "*/*", ""):
            return "json"
    return "json"


def render_page(page: LogPage, accept: str | None) -> Response[Any]:
    body = LogPageBody.model_validate({"records": page.records, "next_cursor": page.next_cursor})
    headers = {"X-Items-Read": str(page.items_read)}
    if page.next_cursor:
        headers["X-Next-Cursor"] = page.next_cursor
    match response_format(accept):
        case "csv":
            return Response(200, content_type=f"{CSV}; charset=utf-8", body=records_csv(body.records), headers=headers)
        case "ndjson":
            return Response(200, content_type=NDJSON, body=records_ndjson(body.records), headers=headers)
        case _:
            return Response(200, content_type=JSON, body=body.model_dump(mode="json"), headers=headers)


def _filters(
    start: datetime | None,
    end: datetime | None,
    actions: list[str] | None,
    direction: str | None,
    message_type: str | None,
    status: str | None,
    vendor: str | None,
    message_id: str | None,
    transaction_id: str | None,
    connector_status: str | None,
    kind: str | None,
    order: Literal["asc", "desc"],
    limit: int,
) -> LogFilters:
    return LogFilters(
        start=start,
        end=end,
        actions=tuple(actions or ()),
        direction=direction,
        message_type=message_type,
        status=status,
        vendor=vendor,
        message_id=message_id,
        transaction_id=transaction_id,
        connector_status=connector_status,
        kind=kind,
        order=order,
        limit=limit,
    )


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _not_a_number(value: Any) -> Any:
    # pydantic also reads "0.5" or "1763000000" as Unix times; this API takes ISO 8601, as the document says.
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        raise ValueError("Give an ISO 8601 date-time with an offset, e.g. 2026-11-20T08:00:00Z")
    return value


IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
From = Annotated[
    IsoDateTime | None, Query(alias="from", description="Start of the range (inclusive), ISO 8601 with offset")
]
To = Annotated[IsoDateTime | None, Query(alias="to", description="End of the range (inclusive), ISO 8601 with offset")]
Actions = Annotated[list[ActionName] | None, Query(alias="action", description="OCPP action; repeat for several")]
DirectionFilter = Annotated[Direction | None, Query()]
MessageTypeFilter = Annotated[MessageType | None, Query()]
StatusFilter = Annotated[Text | None, Query()]
VendorFilter = Annotated[Vendor | None, Query()]
MessageIdFilter = Annotated[Text | None, Query()]
TransactionIdFilter = Annotated[
    Text | None, Query(description="OCPP transaction id (1.6 numbers as text, 2.0.1 ids), whatever the vendor")
]
ConnectorStatusFilter = Annotated[
    Text | None, Query(description="Connector status a StatusNotification reports (Available, Charging, Faulted...)")
]
KindFilter = Annotated[RecordKind | None, Query(description="ocpp: OCPP messages; status: vendor status records")]
OrderParam = Annotated[Literal["asc", "desc"], Query(description="Time order")]
Limit = Annotated[int, Query(ge=1, le=logs.MAX_LIMIT, description=f"Records per page, at most {logs.MAX_LIMIT}")]
Cursor = Annotated[str | None, Query(max_length=2000, description="next_cursor from the previous page")]


@router.get("/chargers", summary="Chargers seen in collected logs, with their first and last record time")
def list_chargers() -> ChargerList:
    return ChargerList.model_validate({"chargers": logs.list_chargers(records=stores.records())})


@router.get(
    "/chargers/<charger_id>/logs",
    summary="A charger's log records, filtered, in time order, page by page",
    responses=PAGE_RESPONSES,
)
def charger_logs(
    charger_id: Annotated[ChargerId, Path()],
    start: From = None,
    end: To = None,
    actions: Actions = None,
    direction: DirectionFilter = None,
    message_type: MessageTypeFilter = None,
    status: StatusFilter = None,
    vendor: VendorFilter = None,
    message_id: MessageIdFilter = None,
    transaction_id: TransactionIdFilter = None,
    connector_status: ConnectorStatusFilter = None,
    kind: KindFilter = None,
    order: OrderParam = "asc",
    limit: Limit = logs.DEFAULT_LIMIT,
    cursor: Cursor = None,
):  # the response is documented in PAGE_RESPONSES: JSON, CSV or NDJSON
    filters = _filters(
        start,
        end,
        actions,
        direction,
        message_type,
        status,
        vendor,
        message_id,
        transaction_id,
        connector_status,
        kind,
        order,
        limit,
    )
    page = logs.query_logs(
        Scope("charger", charger_id), filters, cursor, records=stores.records(), cursor_secret=stores.cursor_secret()
    )
    return render_page(page, router.current_event.headers.get("accept"))


@router.get(
    "/chargers/<charger_id>/logs/<record_id>",
    summary="One record, with the vendor's raw form",
    responses={
        200: {"description": "The record"},
        **problems.responses(
            {400: "The record id is not of the form <time>~<record id>.", 404: "The charger has no such record."}
        ),
    },
)
def charger_record(
    charger_id: Annotated[ChargerId, Path()],
    record_id: Annotated[str, Path(min_length=3, max_length=600)],
) -> LogEntryWithRaw:
    return LogEntryWithRaw.model_validate(
        logs.get_record(charger_id, record_id, records=stores.records(), archive=stores.raw_archive())
    )


@router.get(
    "/sites/<site_id>/logs",
    summary="A site's log records (vendors that log per site), filtered, page by page",
    responses=PAGE_RESPONSES,
)
def site_logs(
    site_id: Annotated[ChargerId, Path()],
    start: From = None,
    end: To = None,
    actions: Actions = None,
    direction: DirectionFilter = None,
    message_type: MessageTypeFilter = None,
    status: StatusFilter = None,
    vendor: VendorFilter = None,
    message_id: MessageIdFilter = None,
    transaction_id: TransactionIdFilter = None,
    connector_status: ConnectorStatusFilter = None,
    kind: KindFilter = None,
    order: OrderParam = "asc",
    limit: Limit = logs.DEFAULT_LIMIT,
    cursor: Cursor = None,
):
    filters = _filters(
        start,
        end,
        actions,
        direction,
        message_type,
        status,
        vendor,
        message_id,
        transaction_id,
        connector_status,
        kind,
        order,
        limit,
    )
    page = logs.query_logs(
        Scope("site", site_id), filters, cursor, records=stores.records(), cursor_secret=stores.cursor_secret()
    )
    return render_page(page, router.current_event.headers.get("accept"))


@router.get(
    "/logs",
    summary="Fleet-wide records of one or more actions in a time range (default: the last 24 hours)",
    responses=PAGE_RESPONSES,
)
def fleet_logs(
    actions: Annotated[list[ActionName], Query(alias="action", description="OCPP action; repeat for several")],
    start: From = None,
    end: To = None,
    direction: DirectionFilter = None,
    message_type: MessageTypeFilter = None,
    status: StatusFilter = None,
    vendor: VendorFilter = None,
    message_id: MessageIdFilter = None,
    transaction_id: TransactionIdFilter = None,
    connector_status: ConnectorStatusFilter = None,
    kind: KindFilter = None,
    order: OrderParam = "asc",
    limit: Limit = logs.DEFAULT_LIMIT,
    cursor: Cursor = None,
):
    filters = _filters(
        start,
        end,
        actions,
        direction,
        message_type,
        status,
        vendor,
        message_id,
        transaction_id,
        connector_status,
        kind,
        order,
        limit,
    )
    page = logs.query_logs(
        Scope("fleet"), filters, cursor, records=stores.records(), cursor_secret=stores.cursor_secret()
    )
    return render_page(page, router.current_event.headers.get("accept"))
