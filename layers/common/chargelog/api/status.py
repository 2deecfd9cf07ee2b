"""A charger's status timeline: vendor status records and OCPP StatusNotifications, in time order, page by page."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import Field

from chargelog import stores
from chargelog.api import problems
from chargelog.api.filters import Cursor, StatusQuery, expand_query_models
from chargelog.api.media import JSON
from chargelog.logic import status
from chargelog.models.base import Model
from chargelog.models.fields import ChargerId
from chargelog.models.records import RecordKind
from chargelog.vendors import Vendor

router = Router()


class StatusEntry(Model):
    id: str = Field(description="The record's id: GET /chargers/{charger_id}/logs/{id}")
    timestamp: datetime
    vendor: Vendor
    source_id: str
    charger_id: str
    kind: RecordKind
    action: str | None = Field(default=None, description="StatusNotification for OCPP records")
    connector_id: int | None = Field(default=None, description="The connector an OCPP status is about (0: all)")
    connector_status: str | None = Field(default=None, description="OCPP: the connector's status")
    error_code: str | None = Field(default=None, description="OCPP 1.6: the connector's error code")
    is_plugged_in: bool | None = Field(default=None, description="Status records: a vehicle is plugged in")
    is_charging: bool | None = Field(default=None, description="Status records: the vehicle is charging")
    charge_rate_watts: float | None = Field(default=None, description="Status records: charging power")
    sampled_at: datetime | None = Field(default=None, description="Status records: when the status was sampled")
    logged_at: datetime | None = Field(default=None, description="Status records: when the vendor logged it")


class StatusPageBody(Model):
    entries: list[StatusEntry]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


STATUS_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {"description": "One page of the timeline", "content": {JSON: {"model": StatusPageBody}}},
    **problems.responses({400: "'from' is after 'to', or the cursor is not one this API issued for this query."}),
}


@router.get(
    "/chargers/<charger_id>/status",
    summary="A charger's status timeline: vendor status records and OCPP StatusNotifications, page by page",
    responses=STATUS_RESPONSES,
)
@expand_query_models
def charger_status(
    charger_id: Annotated[ChargerId, Path()],
    filters: Annotated[StatusQuery, Query()],
    cursor: Cursor = None,
) -> Response[dict[str, object]]:
    page = status.status_timeline(
        charger_id, filters.log_filters(), cursor, records=stores.records(), cursor_secret=stores.cursor_secret()
    )
    body = StatusPageBody.model_validate({"entries": page.records, "next_cursor": page.next_cursor})
    headers = {"X-Items-Read": str(page.items_read)}
    if page.next_cursor:
        headers["X-Next-Cursor"] = page.next_cursor
    return Response(200, content_type=JSON, body=body.model_dump(mode="json"), headers=headers)
