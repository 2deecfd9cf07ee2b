"""A charger's charging sessions: OCPP 1.6 Start/StopTransaction and 2.0.1 TransactionEvents, per transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import Field

from chargelog import stores
from chargelog.api import problems
from chargelog.api.filters import From, To
from chargelog.api.media import JSON
from chargelog.logic import sessions as session_logic
from chargelog.models.base import Model
from chargelog.models.fields import ChargerId

router = Router()


class Session(Model):
    transaction_id: str | None = Field(
        description="OCPP transaction id (1.6: from the StartTransaction answer; 2.0.1: transactionInfo); null when "
        "a 1.6 start was not answered"
    )
    ocpp_version: Literal["1.6", "2.0.1"]
    state: session_logic.SessionState = Field(
        description="ended: its start and stop are in the range; unfinished: no stop in the range (still charging, "
        "or stopped after 'to'); stop_without_start: a stop whose start is before the range"
    )
    connector_id: int | None = Field(description="1.6 connectorId; 2.0.1 evse id")
    started_at: datetime | None = Field(description="The start's timestamp as the charger reported it")
    stopped_at: datetime | None = Field(description="The stop's timestamp as the charger reported it")
    duration_seconds: float | None = Field(description="From start to stop, when both are known")
    meter_start_wh: float | None = Field(description="Energy register at the start (Wh)")
    meter_stop_wh: float | None = Field(description="Energy register at the stop (Wh)")
    energy_wh: float | None = Field(
        description="Energy delivered: the register's rise from start to stop, or to the latest reading so far"
    )
    id_tag: str | None = Field(description="1.6 idTag, 2.0.1 idToken")
    authorization_status: str | None = Field(description="The start's answer: idTagInfo / idTokenInfo status")
    stop_reason: str | None = Field(description="1.6 StopTransaction reason, 2.0.1 stoppedReason, as sent")
    start_record_id: str | None = Field(description="The start's record: GET /chargers/{charger_id}/logs/{id}")
    stop_record_id: str | None = Field(description="The stop's record: GET /chargers/{charger_id}/logs/{id}")
    first_record_at: datetime = Field(description="Its first record in the range (for a link to its logs)")
    last_record_at: datetime = Field(description="Its last record in the range")
    records: int = Field(description="Its StartTransaction, StopTransaction and TransactionEvent records read")


class SessionListBody(Model):
    sessions: list[Session] = Field(description="Newest first, by their first record")
    truncated: bool = Field(
        description=f"The range holds more than {session_logic.MAX_SESSION_RECORDS} transaction messages: only the "
        "newest were read; ask again with 'to' at complete_from for the earlier sessions"
    )
    complete_from: datetime | None = Field(
        description="With truncated: the sessions are complete from this time on; null otherwise"
    )


SESSION_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {"description": "The sessions in the range", "content": {JSON: {"model": SessionListBody}}},
    **problems.responses({400: "'from' is after 'to'."}),
}


@router.get(
    "/chargers/<charger_id>/sessions",
    summary="A charger's charging sessions (transactions) with start, stop, energy, id tag and stop reason",
    description="Built from the StartTransaction / StopTransaction (OCPP 1.6) and TransactionEvent (2.0.1) "
    f"messages in the range, at most {session_logic.MAX_SESSION_RECORDS} of them (newest first; see truncated).",
    responses=SESSION_RESPONSES,
)
def charger_sessions(charger_id: Annotated[ChargerId, Path()], start: From = None, end: To = None) -> SessionListBody:
    found = session_logic.charger_sessions(charger_id, start, end, records=stores.records())
    return SessionListBody.model_validate(
        {"sessions": found.sessions, "truncated": found.truncated, "complete_from": found.complete_from}
    )
