"""Reading logs: chargers, a charger's / a site's / the fleet's records, one record. JSON, CSV or NDJSON."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import Field

from chargelog import stores
from chargelog.api import problems
from chargelog.api.filters import Cursor, FleetLogQuery, LogQuery, expand_query_models
from chargelog.api.media import CSV, JSON, NDJSON, response_format
from chargelog.logic import logs
from chargelog.logic.logs import LogPage, Scope
from chargelog.models.base import Model
from chargelog.models.fields import ChargerId
from chargelog.models.logs import LogEntry, records_csv, records_ndjson
from chargelog.vendors import Vendor

router = Router()


class LogEntryWithRaw(LogEntry):
    raw: dict[str, Any] = Field(description="The vendor's log entry exactly as received")


class LogPageBody(Model):
    records: list[LogEntry]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


class ChargerEntry(Model):
    charger_id: str
    vendor: Vendor
    source_id: str
    site_id: str | None = None
    first_record_at: str
    last_record_at: str


class ChargerList(Model):
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


@router.get("/chargers", summary="Chargers seen in collected logs, with their first and last record time")
def list_chargers() -> ChargerList:
    return ChargerList.model_validate({"chargers": logs.list_chargers(records=stores.records())})


@router.get(
    "/chargers/<charger_id>/logs",
    summary="A charger's log records, filtered, in time order, page by page",
    responses=PAGE_RESPONSES,
)
@expand_query_models
def charger_logs(
    charger_id: Annotated[ChargerId, Path()],
    filters: Annotated[LogQuery, Query()],
    cursor: Cursor = None,
):  # the response is documented in PAGE_RESPONSES: JSON, CSV or NDJSON
    page = logs.query_logs(
        Scope("charger", charger_id),
        filters.log_filters(),
        cursor,
        records=stores.records(),
        cursor_secret=stores.cursor_secret(),
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
@expand_query_models
def site_logs(
    site_id: Annotated[ChargerId, Path()],
    filters: Annotated[LogQuery, Query()],
    cursor: Cursor = None,
):
    page = logs.query_logs(
        Scope("site", site_id),
        filters.log_filters(),
        cursor,
        records=stores.records(),
        cursor_secret=stores.cursor_secret(),
    )
    return render_page(page, router.current_event.headers.get("accept"))


@router.get(
    "/logs",
    summary="Fleet-wide records of one or more actions in a time range (default: the last 24 hours)",
    responses=PAGE_RESPONSES,
)
@expand_query_models
def fleet_logs(filters: Annotated[FleetLogQuery, Query()], cursor: Cursor = None):
    page = logs.query_logs(
        Scope("fleet"), filters.log_filters(), cursor, records=stores.records(), cursor_secret=stores.cursor_secret()
    )
    return render_page(page, router.current_event.headers.get("accept"))
