"""Typed settings, read once from the environment (the template's Globals set them)."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    stage: str = Field(default="local", alias="CHARGELOG_STAGE")
    table_name: str = Field(alias="CHARGELOG_TABLE")
    raw_bucket: str = Field(alias="CHARGELOG_RAW_BUCKET")
    diagnostics_bucket: str = Field(alias="CHARGELOG_DIAGNOSTICS_BUCKET")
    work_queue_url: str = Field(alias="CHARGELOG_WORK_QUEUE_URL")
    vendor_secret_prefix: str = Field(alias="CHARGELOG_VENDOR_SECRET_PREFIX")
    retention_days: int = Field(default=400, ge=1, alias="CHARGELOG_RETENTION_DAYS")
    max_json_body_bytes: int = Field(default=65_536, ge=1, alias="CHARGELOG_MAX_JSON_BODY_BYTES")


@cache
def get_settings() -> Settings:
    """The settings of this process; a missing variable fails loudly on first use."""
    return Settings.model_validate(dict(os.environ))
