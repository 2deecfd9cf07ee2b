"""The collector registry: one collector per vendor, behind one small interface.

A vendor's module registers a factory here; the dispatcher only enqueues jobs for vendors that have
one, and the worker hands each job to its vendor's collector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chargelog.models.jobs import CollectionJob


@dataclass(frozen=True)
class CollectionResult:
    records_stored: int
    pages_fetched: int


class Collector(Protocol):
    def collect(self, job: CollectionJob, remaining_ms: Callable[[], int]) -> CollectionResult:
        """Collect the job's source; ``remaining_ms`` tells how long the invocation has left."""
        ...


_FACTORIES: dict[str, Callable[[], Collector]] = {}


def register(vendor: str, factory: Callable[[], Collector]) -> None:
    _FACTORIES[vendor] = factory


def unregister(vendor: str) -> None:
    _FACTORIES.pop(vendor, None)


def has_collector(vendor: str) -> bool:
    return vendor in _FACTORIES


def for_vendor(vendor: str) -> Collector | None:
    factory = _FACTORIES.get(vendor)
    return factory() if factory else None
