"""Diagnostics requests: issue an upload address for a charger's own log file (GetLog / GetDiagnostics), follow the
request's state, and download what the charger uploaded."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from chargelog import stores
from chargelog.api import problems
from chargelog.logic import diagnostics
from chargelog.models.diagnostics import (
    DiagnosticsRequestDetail,
    DiagnosticsRequestList,
    NewDiagnosticsRequest,
)
from chargelog.models.fields import ChargerId

router = Router()


@router.post(
    "/diagnostics/requests",
    summary="Issue an upload address for a charger's log file, with the GetLog and GetDiagnostics payloads to send",
    responses={
        201: {
            "description": "The request, its upload address (remote_location: keep it secret, it lets anyone "
            "upload) and the OCPP payloads that send it",
            "content": {"application/json": {"model": DiagnosticsRequestDetail}},
        },
        **problems.responses(
            {
                400: "oldest_timestamp is after latest_timestamp, or the charger id makes the upload address longer "
                "than OCPP's 512 characters (or is dots only).",
                503: "Uploads are not configured in this deployment (no upload base URL or upload token key).",
            }
        ),
    },
)
def create_request(request: Annotated[NewDiagnosticsRequest, Body()]) -> Response[DiagnosticsRequestDetail]:
    created = diagnostics.create_request(
        request, store=stores.diagnostics(), files=stores.diagnostics_files(), token_key=stores.upload_token_secret()
    )
    return Response(
        status_code=201,
        content_type="application/json",
        body=created,
        headers={"Location": f"/diagnostics/{created.request_id}"},
    )


@router.get(
    "/diagnostics",
    summary="A charger's diagnostics requests and their states, newest first, page by page (no upload addresses)",
    responses={
        200: {"description": "One page of requests"},
        **problems.responses({400: "The cursor is not one this API issued for this charger."}),
    },
)
def list_requests(
    charger_id: Annotated[ChargerId, Query(description="The charger")],
    limit: Annotated[
        int, Query(ge=1, le=diagnostics.MAX_LIMIT, description=f"Requests per page, at most {diagnostics.MAX_LIMIT}")
    ] = diagnostics.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=2000, description="next_cursor from the previous page")] = None,
) -> DiagnosticsRequestList:
    return diagnostics.list_requests(
        charger_id, limit, cursor, store=stores.diagnostics(), cursor_secret=stores.cursor_secret()
    )


@router.get(
    "/diagnostics/<request_id>",
    summary="A diagnostics request: its state, upload address, OCPP payloads, the charger's status reports, and "
    "every file received with a download link valid for 15 minutes",
    responses={200: {"description": "The request"}, **problems.responses({404: "No such request."})},
)
def get_request(request_id: Annotated[str, Path(min_length=1, max_length=64)]) -> DiagnosticsRequestDetail:
    return diagnostics.get_request(
        request_id, store=stores.diagnostics(), files=stores.diagnostics_files(), token_key=stores.upload_token_secret()
    )
