"""The media types the API answers in, and the one a request's ``Accept`` header asks for.

Shared by the routers that answer in more than JSON (logs, exchanges) and those that document JSON answers: each
router imports this, not another router, so a request loads its own router only (chargelog.api.app).
"""

from __future__ import annotations

from typing import Literal

CSV = "text/csv"
NDJSON = "application/x-ndjson"
JSON = "application/json"


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
