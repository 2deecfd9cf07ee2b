"""A charger's OCPP exchanges: CALLs paired with their answers, with response times. JSON, CSV or NDJSON."""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import Field

from chargelog import stores
from chargelog.api import problems
from chargelog.api.filters import Cursor, ExchangeQuery, expand_query_models
from chargelog.api.media import CSV, JSON, NDJSON, response_format
from chargelog.logic import exchanges
from chargelog.logic.exchanges import ExchangePage
from chargelog.models.base import Model
from chargelog.models.fields import ChargerId
from chargelog.models.logs import LogEntry
from chargelog.models.records import Direction

router = Router()

CSV_COLUMNS = (
    "message_id",
    "action",
    "direction",
    "outcome",
    "response_time_ms",
    "combined",
    "call_id",
    "call_timestamp",
    "response_id",
    "response_timestamp",
    "response_message_type",
    "error_code",
    "payload",
    "result",
)


class Exchange(Model):
    message_id: str | None = Field(description="The OCPP-J message id the CALL and its answer share")
    action: str | None
    direction: Direction | None = Field(description="Who sent the CALL")
    call: LogEntry
    response: LogEntry | None = Field(
        description="The CALLRESULT or CALLERROR that answered the CALL; the CALL itself when the vendor logs both "
        "as one record (combined); null when no answer came within the pairing window"
    )
    combined: bool = Field(description="The vendor logged the CALL and its answer as one record")
    outcome: Literal["answered", "error", "unanswered"]
    response_time_ms: float | None = Field(
        description="Milliseconds from the CALL to its answer, by the vendor's timestamps; null when unknown"
    )


class ExchangePageBody(Model):
    exchanges: list[Exchange]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


EXCHANGE_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "One page of exchanges. With Accept: text/csv or application/x-ndjson, the same page in that "
        "format (CSV: one row per exchange, payload and result as JSON text), with the next cursor in the "
        "X-Next-Cursor header.",
        "content": {
            JSON: {"model": ExchangePageBody},
            CSV: {"schema": {"type": "string"}},
            NDJSON: {"schema": {"type": "string"}},
        },
    },
    **problems.responses({400: "'from' is after 'to', or the cursor is not one this API issued for this query."}),
}


def exchanges_csv(rows: list[Exchange]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for exchange in rows:
        row = exchange.model_dump(mode="json")  # times as in the logs listing's CSV
        call, response = row["call"], row["response"] or {}
        writer.writerow(
            {
                **{name: row[name] for name in ("message_id", "action", "direction", "outcome", "combined")},
                "response_time_ms": row["response_time_ms"],
                "call_id": call["id"],
                "call_timestamp": call["timestamp"],
                "response_id": response.get("id"),
                "response_timestamp": response.get("timestamp"),
                "response_message_type": response.get("message_type"),
                "error_code": response.get("status") if row["outcome"] == "error" else None,
                "payload": _json_text(call["payload"]),
                "result": _json_text(response.get("result")),
            }
        )
    return out.getvalue()


def _json_text(document: Any) -> str | None:
    return None if document is None else json.dumps(document, separators=(",", ":"))


def render_exchanges(page: ExchangePage, accept: str | None) -> Response[Any]:
    body = ExchangePageBody.model_validate({"exchanges": page.exchanges, "next_cursor": page.next_cursor})
    headers = {"X-Items-Read": str(page.items_read)}
    if page.next_cursor:
        headers["X-Next-Cursor"] = page.next_cursor
    match response_format(accept):
        case "csv":
            return Response(
                200, content_type=f"{CSV}; charset=utf-8", body=exchanges_csv(body.exchanges), headers=headers
            )
        case "ndjson":
            lines = "".join(row.model_dump_json(exclude_none=True) + "\n" for row in body.exchanges)
            return Response(200, content_type=NDJSON, body=lines, headers=headers)
        case _:
            return Response(200, content_type=JSON, body=body.model_dump(mode="json"), headers=headers)


@router.get(
    "/chargers/<charger_id>/exchanges",
    summary="A charger's OCPP CALLs paired with their CALLRESULT / CALLERROR, with response times, page by page",
    responses=EXCHANGE_RESPONSES,
)
@expand_query_models
def charger_exchanges(
    charger_id: Annotated[ChargerId, Path()],
    filters: Annotated[ExchangeQuery, Query()],
    cursor: Cursor = None,
):  # the response is documented in EXCHANGE_RESPONSES: JSON, CSV or NDJSON
    page = exchanges.query_exchanges(
        charger_id, filters.exchange_filters(), cursor, records=stores.records(), cursor_secret=stores.cursor_secret()
    )
    return render_exchanges(page, router.current_event.headers.get("accept"))
