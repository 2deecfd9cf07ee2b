"""GET /health: the only route that needs no API key. It reveals nothing but liveness."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel

from chargelog import __version__
from chargelog.settings import get_settings

router = Router()


class Health(BaseModel):
    status: str
    version: str
    stage: str


@router.get("/health", summary="Liveness check (no API key)")
def get_health() -> Health:
    return Health(status="ok", version=__version__, stage=get_settings().stage)
