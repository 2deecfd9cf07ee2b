"""The source registry: what chargelog collects."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from chargelog import stores
from chargelog.api import problems
from chargelog.collectors.base import VendorCalls
from chargelog.logic import sources
from chargelog.models.fields import SourceId
from chargelog.models.sources import (
    DiscoverRequest,
    DiscoveryResult,
    Source,
    SourceCreate,
    SourceList,
    SourceUpdate,
)
from chargelog.observability import logger, publish_vendor_metrics
from chargelog.vendors import Vendor

router = Router()


@router.get("/sources", summary="List sources")
def list_sources(
    vendor: Annotated[Vendor | None, Query(description="Only this vendor's sources")] = None,
) -> SourceList:
    return SourceList(sources=sources.list_sources(vendor=vendor, store=stores.sources()))


@router.post(
    "/sources",
    summary="Register a source",
    responses={
        201: {"description": "Created"},
        **problems.responses({409: "A source with this vendor and id is already registered."}),
    },
)
def create_source(request: Annotated[SourceCreate, Body()]) -> Response[Source]:
    source = sources.create_source(request, store=stores.sources())
    logger.info("Source created", extra={"vendor": source.vendor, "source_id": source.source_id})
    return Response(
        status_code=201,
        content_type="application/json",
        body=source,
        headers={"Location": f"/sources/{source.vendor}/{source.source_id}"},
    )


@router.post(
    "/sources/discover",
    summary="Discover (and register) the sources a vendor's credentials can see",
    description=(
        "Lists the vendor's chargers (Plugchoice, OCPPLAB), sites (ChargePilot) or EVSEs (ev.energy) and registers, "
        "enabled, each one not registered yet; sources already registered are left exactly as they are. "
        'With `"register": false` it only lists them.'
    ),
    responses={
        200: {"description": "What the vendor lists, and what was registered"},
        **problems.responses(
            {
                409: "The vendor is not configured: its secret has no base URL or credentials (the detail says which).",
                502: "The vendor refused the credentials, failed or answered nonsense (the detail has its message).",
            }
        ),
    },
)
def discover_sources(request: Annotated[DiscoverRequest, Body()]) -> DiscoveryResult:
    # Imported here: discovery loads the vendor adapters and their HTTP client (httpx, tenacity), about 100 ms
    # of cold start that every other route of this function would pay for nothing.
    from chargelog.logic import discovery

    context = router.lambda_context
    calls = VendorCalls()
    registered = 0
    try:
        result = discovery.discover_sources(
            request.vendor,
            register=request.register_new,
            remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
            sources=stores.sources(),
            secrets=stores.vendor_secrets(),
            calls=calls,
        )
        registered = result.registered
    finally:
        publish_vendor_metrics(request.vendor, discovery.discovery_metrics(registered, calls))
    logger.info(
        "Sources discovered",
        extra={"vendor": request.vendor, "found": len(result.sources), "registered": result.registered},
    )
    return result


@router.patch(
    "/sources/<vendor>/<source_id>",
    summary="Rename, enable or disable a source",
    responses={
        200: {"description": "The source as changed"},
        **problems.responses(
            {
                400: "The body is not valid JSON, or changes nothing (give name and/or enabled).",
                404: "No such source.",
            }
        ),
    },
)
def update_source(
    vendor: Annotated[Vendor, Path()],
    source_id: Annotated[SourceId, Path()],
    request: Annotated[SourceUpdate, Body()],
) -> Source:
    return sources.update_source(vendor, source_id, request, store=stores.sources())


@router.delete(
    "/sources/<vendor>/<source_id>",
    summary="Remove a source",
    responses={204: {"description": "Removed", "content": {}}, **problems.responses({404: "No such source."})},
)
def delete_source(vendor: Annotated[Vendor, Path()], source_id: Annotated[SourceId, Path()]) -> Response[Any]:
    sources.delete_source(vendor, source_id, store=stores.sources())
    logger.info("Source deleted", extra={"vendor": vendor, "source_id": source_id})
    return Response(status_code=204, body=None)
