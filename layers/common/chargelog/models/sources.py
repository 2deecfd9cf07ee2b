"""A source is one thing to collect: a charger, site or EVSE on one vendor platform."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, StrictBool, StringConstraints

from chargelog.models.base import Model
from chargelog.models.fields import SourceId
from chargelog.models.text import Printable
from chargelog.vendors import SourceKind, Vendor

DisplayName = Annotated[
    str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=200), Printable
]


class SourceCreate(Model):
    """Body of POST /sources."""

    model_config = ConfigDict(extra="forbid")

    vendor: Vendor
    source_id: SourceId
    name: DisplayName | None = Field(default=None, description="Display name; defaults to source_id.")
    enabled: StrictBool = True


class SourceUpdate(Model):
    """Body of PATCH /sources/{vendor}/{source_id}: the fields to change."""

    model_config = ConfigDict(extra="forbid")

    name: DisplayName | None = None
    enabled: StrictBool | None = None


class Source(Model):
    vendor: Vendor
    source_id: SourceId
    kind: SourceKind
    name: str
    enabled: bool
    created_at: datetime
    updated_at: datetime


class SourceList(Model):
    sources: list[Source]


class DiscoverRequest(Model):
    """Body of POST /sources/discover."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    vendor: Vendor
    # "register" on the wire; the attribute name would shadow BaseModel.register.
    register_new: StrictBool = Field(
        default=True,
        alias="register",
        description="Register what is not registered yet; false only lists (a dry run).",
    )


class DiscoveredSourceResult(Model):
    """One source the vendor's credentials can see, and what discovery did with it."""

    vendor: Vendor
    source_id: SourceId
    kind: SourceKind
    name: str = Field(description="The vendor's display name, else the source id")
    details: dict[str, str] = Field(description="What else the vendor tells: OCPP identity, URL...")
    registered: bool = Field(description="Registered by this discovery (false: already known, or a dry run)")
    known: bool = Field(description="Was registered before this discovery")
    enabled: bool | None = Field(description="Whether it is collected: as registered; null when not registered")


class DiscoveryResult(Model):
    vendor: Vendor
    dry_run: bool
    sources: list[DiscoveredSourceResult]
    registered: int = Field(description="How many sources this discovery registered")
    skipped: list[str] = Field(
        default_factory=list, description="Ids the vendor listed that are not valid source ids, left out"
    )
