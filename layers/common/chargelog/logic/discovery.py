"""Source discovery: list what a vendor's credentials can see and register what is not registered yet.

Registration never touches a source that exists: a source a user disabled or renamed stays as it is. A discovery
job (queued by a scheduled pass when ``DiscoverSources`` is on) also queues a collection job for each source it
registered, so new sources are collected right away rather than on the next pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Literal

from pydantic import ValidationError

from chargelog import collectors
from chargelog.collectors.base import DiscoveredSource, VendorAdapter, VendorCalls, VendorError
from chargelog.dal.queue import WorkQueues
from chargelog.dal.secrets import VendorSecrets
from chargelog.dal.sources import SourceStore
from chargelog.dal.state import CollectorStateStore
from chargelog.errors import ChargelogError, ConflictError, VendorFailedError, VendorNotConfiguredError
from chargelog.logic import sources as registry
from chargelog.logic.collection import vendor_call_metrics
from chargelog.metric_names import VendorMetric
from chargelog.models.jobs import CollectionJob, DiscoveryJob
from chargelog.models.sources import DiscoveredSourceResult, DiscoveryResult, Source, SourceCreate
from chargelog.observability import logger
from chargelog.settings import get_settings
from chargelog.vendors import Vendor

# More sources than any fleet has: a vendor whose paging never ends cannot make discovery run forever.
MAX_DISCOVERED_SOURCES = 10_000
NAME_MAX_LENGTH = 200


def discover_sources(
    vendor: Vendor,
    register: bool,
    remaining_seconds: Callable[[], float],
    *,
    sources: SourceStore,
    secrets: VendorSecrets,
    calls: VendorCalls | None = None,
) -> DiscoveryResult:
    """What the vendor's credentials can see, each registered (enabled) unless it is already or ``register`` is
    false. Raises VendorNotConfiguredError (409) or VendorFailedError (502, the vendor's message). The vendor calls
    it made are added to ``calls``, if given (failed or not)."""
    if not collectors.has_adapter(vendor):
        raise ChargelogError(f"chargelog has no collector for {vendor}, so nothing to discover there.")
    connection = collectors.connection_for(
        vendor, secrets, require_credentials=True, workers=get_settings().worker_concurrency
    )
    adapter = collectors.adapter_for(connection, remaining_seconds)
    try:
        found = _list(adapter)
    except VendorError as error:
        adapter.calls.record(error)  # a failure the adapter found in a body, after its client returned
        raise VendorFailedError(str(error)) from error
    finally:
        if calls is not None:
            calls.add(adapter.calls)
        adapter.close()
    return _register(vendor, found, register, sources)


def _list(adapter: VendorAdapter) -> list[DiscoveredSource]:
    return list(islice(adapter.discover(), MAX_DISCOVERED_SOURCES))


def _register(vendor: Vendor, found: list[DiscoveredSource], register: bool, store: SourceStore) -> DiscoveryResult:
    known: dict[str, Source] = {source.source_id: source for source in store.list(vendor=vendor)}
    results: list[DiscoveredSourceResult] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for discovered in found:
        if discovered.source_id in seen:
            continue  # listed twice (a page shifted while paging): once is enough
        seen.add(discovered.source_id)
        name = " ".join((discovered.name or "").split())[:NAME_MAX_LENGTH] or discovered.source_id
        try:
            request = SourceCreate(vendor=vendor, source_id=discovered.source_id, name=name)
        except ValidationError:
            skipped.append(discovered.source_id[:NAME_MAX_LENGTH])
            logger.warning(
                "Discovered source id is not a valid source id; left out",
                extra={"vendor": vendor, "source_id": discovered.source_id[:NAME_MAX_LENGTH]},
            )
            continue
        existing = known.get(discovered.source_id)
        registered = False
        if existing is None and register:
            try:
                existing = registry.create_source(request, store=store)
                registered = True
            except ConflictError:  # registered meanwhile, by a user or another discovery
                existing = store.get(vendor, discovered.source_id)
        results.append(
            DiscoveredSourceResult(
                vendor=request.vendor,
                source_id=request.source_id,
                kind=discovered.kind,
                name=name,
                details=dict(discovered.details),
                registered=registered,
                known=existing is not None and not registered,
                enabled=existing.enabled if existing is not None else None,
            )
        )
    return DiscoveryResult(
        vendor=vendor,
        dry_run=not register,
        sources=results,
        registered=sum(result.registered for result in results),
        skipped=skipped,
    )


@dataclass(frozen=True)
class DiscoveryOutcome:
    status: Literal["done", "not_configured", "vendor_failed"]
    found: int = 0
    registered: int = 0
    enqueued: int = 0
    detail: str = ""
    vendor_calls: VendorCalls = field(default_factory=VendorCalls)

    def metrics(self) -> dict[VendorMetric, int]:
        """The job's vendor metrics (chargelog.metric_names), written with its vendor as a dimension."""
        return discovery_metrics(self.registered, self.vendor_calls)


def discovery_metrics(registered: int, calls: VendorCalls) -> dict[VendorMetric, int]:
    """A discovery's vendor metrics, whether a job or POST /sources/discover ran it."""
    return {VendorMetric.SOURCES_REGISTERED: registered, **vendor_call_metrics(calls)}


def run_discovery_job(
    job: DiscoveryJob,
    remaining_seconds: Callable[[], float],
    *,
    sources: SourceStore,
    secrets: VendorSecrets,
    queues: WorkQueues,
    states: CollectorStateStore | None = None,
) -> DiscoveryOutcome:
    """Discover and register the vendor's sources, and queue a collection job for each new one; with ``states``, each
    new one is poked too (chargelog.logic.scheduling), so should its job be lost the next pass polls it first.

    A vendor without credentials or failing is an outcome, not an error: the next scheduled pass tries again, and
    the job never blocks the vendor's queue with retries."""
    calls = VendorCalls()
    try:
        result = discover_sources(
            job.vendor,
            register=True,
            remaining_seconds=remaining_seconds,
            sources=sources,
            secrets=secrets,
            calls=calls,
        )
    except VendorNotConfiguredError as error:
        return DiscoveryOutcome(status="not_configured", detail=error.detail)
    except VendorFailedError as error:
        return DiscoveryOutcome(status="vendor_failed", detail=error.detail, vendor_calls=calls)
    now = datetime.now(UTC)
    jobs = [
        CollectionJob(vendor=job.vendor, source_id=source.source_id, scheduled_at=now)
        for source in result.sources
        if source.registered
    ]
    if states is not None:
        for new in jobs:
            states.poke(new.vendor, new.source_id, now)
    enqueued = queues.of(job.vendor).send(jobs) if jobs else 0
    return DiscoveryOutcome(
        status="done", found=len(result.sources), registered=result.registered, enqueued=enqueued, vendor_calls=calls
    )
