"""GET /health: the only route that needs no API key. It reveals nothing but liveness."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from chargelog import __version__
from chargelog.models.base import Model
from chargelog.settings import get_settings

router = Router()


class Health(Model):
    status: str
    version: str
    stage: str


@router.get("/health", summary="Liveness check (no API key)")
def get_health() -> Health:
    return Health(status="ok", version=__version__, stage=get_settings().stage)
