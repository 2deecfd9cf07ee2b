"""Charger health: the alerts chargelog opened on misbehaving chargers, and one charger's health now."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from chargelog import stores
from chargelog.api import problems
from chargelog.api.filters import Cursor, From, To, VendorFilter, expand_query_models
from chargelog.api.media import JSON
from chargelog.logic import alerts as alert_logic
from chargelog.models.alerts import Alert, AlertKind
from chargelog.models.base import Model
from chargelog.models.fields import ChargerId
from chargelog.models.health_views import AlertPage, ChargerHealth

router = Router()

StateFilter = Annotated[Literal["open", "resolved"] | None, Query(description="open or resolved; both when left out")]
ChargerFilter = Annotated[ChargerId | None, Query(description="One charger's alerts")]
SiteFilter = Annotated[ChargerId | None, Query(description="The alerts of a site's chargers")]
KindFilter = Annotated[AlertKind | None, Query(description="One kind of alert (docs/health.md)")]
AlertLimit = Annotated[
    int, Query(ge=1, le=alert_logic.MAX_LIMIT, description=f"Alerts per page, at most {alert_logic.MAX_LIMIT}")
]


class AlertQuery(Model):
    """Which alerts, by their state, charger, site, vendor, kind and when they opened; how many per page."""

    state: StateFilter = None
    charger_id: ChargerFilter = None
    site_id: SiteFilter = None
    vendor: VendorFilter = None
    kind: KindFilter = None
    start: From = None
    end: To = None
    limit: AlertLimit = alert_logic.DEFAULT_LIMIT

    def alert_filters(self) -> alert_logic.AlertFilters:
        return alert_logic.AlertFilters(
            state=self.state,
            charger_id=self.charger_id,
            site_id=self.site_id,
            vendor=self.vendor,
            kind=self.kind,
            start=self.start,
            end=self.end,
            limit=self.limit,
        )


LIST_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {"description": "One page of alerts, newest opened first", "content": {JSON: {"model": AlertPage}}},
    **problems.responses({400: "'from' is after 'to', or the cursor is not one this API issued for these filters."}),
}


@router.get(
    "/alerts",
    summary="Alerts on misbehaving chargers, newest opened first, page by page",
    description="'from' and 'to' bound when the alerts opened. A page can hold fewer alerts than 'limit' (even "
    "none) and still have a next_cursor, when its filters kept few of the alerts it read.",
    responses=LIST_RESPONSES,
)
@expand_query_models
def list_alerts(filters: Annotated[AlertQuery, Query()], cursor: Cursor = None) -> AlertPage:
    return alert_logic.list_alerts(
        filters.alert_filters(), cursor, alerts=stores.alerts(), cursor_secret=stores.cursor_secret()
    )


@router.get(
    "/alerts/<alert_id>",
    summary="One alert, with the records that opened and resolved it",
    responses={
        200: {"description": "The alert", "content": {JSON: {"model": Alert}}},
        **problems.responses({400: "The id is not an alert id.", 404: "No such alert (or it has expired)."}),
    },
)
def get_alert(alert_id: Annotated[str, Path(min_length=1, max_length=64)]) -> Alert:
    return alert_logic.get_alert(alert_id, alerts=stores.alerts())


@router.get(
    "/chargers/<charger_id>/health",
    summary="A charger's health now: its last record, heartbeat interval, connectors' statuses and open alerts",
    responses={
        200: {"description": "The charger's health", "content": {JSON: {"model": ChargerHealth}}},
        **problems.responses({404: "chargelog has no record of this charger."}),
    },
)
def charger_health(charger_id: Annotated[ChargerId, Path()]) -> ChargerHealth:
    return alert_logic.charger_health(
        charger_id, records=stores.records(), health=stores.charger_health(), alerts=stores.alerts()
    )
