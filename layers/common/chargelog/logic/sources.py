"""What the source registry does, free of any AWS event type."""

from __future__ import annotations

from datetime import UTC, datetime

from chargelog.dal.sources import SourceStore
from chargelog.errors import ChargelogError
from chargelog.models.sources import Source, SourceCreate, SourceUpdate
from chargelog.vendors import SOURCE_KIND


def _now() -> datetime:
    return datetime.now(UTC)


def create_source(request: SourceCreate, *, store: SourceStore) -> Source:
    now = _now()
    source = Source(
        vendor=request.vendor,
        source_id=request.source_id,
        kind=SOURCE_KIND[request.vendor],
        name=request.name or request.source_id,
        enabled=request.enabled,
        created_at=now,
        updated_at=now,
    )
    store.create(source)
    return source


def list_sources(vendor: str | None = None, enabled_only: bool = False, *, store: SourceStore) -> list[Source]:
    return list(store.list(vendor=vendor, enabled_only=enabled_only))


def update_source(vendor: str, source_id: str, request: SourceUpdate, *, store: SourceStore) -> Source:
    changes = request.model_dump(exclude_none=True)
    if not changes:
        raise ChargelogError("Nothing to change: give 'name' and/or 'enabled'.")
    return store.update(vendor, source_id, changes, _now())


def delete_source(vendor: str, source_id: str, *, store: SourceStore) -> None:
    store.delete(vendor, source_id)
