"""Exports: a whole log query as one NDJSON or CSV file, written in the background, downloaded from S3."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from chargelog import stores
from chargelog.api import problems
from chargelog.logic import exports
from chargelog.metric_names import ServiceMetric
from chargelog.models.exports import ExportRequest, ExportStatus
from chargelog.observability import add_service_metric

router = Router()


@router.post(
    "/exports",
    summary="Export a charger's, a site's or the fleet's records (filtered like the logs routes) to a file",
    responses={
        202: {
            "description": "Queued: poll the Location (GET /exports/{id}) until state is done, then download",
            "content": {"application/json": {"model": ExportStatus}},
        },
        **problems.responses({400: "'from' is after 'to'."}),
    },
)
def create_export(request: Annotated[ExportRequest, Body()]) -> Response[ExportStatus]:
    export = exports.create_export(
        request, store=stores.exports(), files=stores.export_files(), queue=stores.export_queue()
    )
    add_service_metric(ServiceMetric.EXPORTS_REQUESTED, 1)
    return Response(
        status_code=202,
        content_type="application/json",
        body=export,
        headers={"Location": f"/exports/{export.id}"},
    )


@router.get(
    "/exports/<export_id>",
    summary="An export's state and counts; once done, a download link valid for 15 minutes",
    responses={200: {"description": "The export"}, **problems.responses({404: "No such export, or it expired."})},
)
def get_export(export_id: Annotated[str, Path(min_length=1, max_length=64)]) -> ExportStatus:
    return exports.get_export(export_id, store=stores.exports(), files=stores.export_files())
