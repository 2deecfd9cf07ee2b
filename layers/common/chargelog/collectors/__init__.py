"""The vendor adapter registry: one module per vendor registers its profile, adapter factory and normalizer here.

The dispatcher only enqueues jobs for vendors that have an adapter; the worker builds the vendor's adapter
from its secret for each job. A replay needs no adapter (no secret, no HTTP): only the vendor's normalizer, a pure
function from one vendor record to a LogRecord (`normalizer_for`).

The built-in vendors' modules load one at a time, when their vendor is first asked about: a worker running one
vendor's jobs imports that vendor's adapter (and the HTTP client it brings), not the other three.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chargelog.collectors.base import DEFAULT_WORKERS, AdapterFactory, VendorAdapter, VendorConnection, VendorProfile
from chargelog.errors import VendorNotConfiguredError
from chargelog.vendors import VENDORS

if TYPE_CHECKING:
    from chargelog.dal.secrets import VendorSecrets
    from chargelog.models.records import LogRecord

_ADAPTERS: dict[str, tuple[VendorProfile, AdapterFactory]] = {}
_REQUIRED_CREDENTIALS: dict[str, tuple[str, ...]] = {}
# One vendor record (as received, for a source) -> a LogRecord; raises ValueError when it cannot be parsed. A type
# statement: evaluated when a type checker asks, so the registry (the dispatcher's too) loads no record model.
type Normalizer = Callable[[str, Any], LogRecord]
_NORMALIZERS: dict[str, Normalizer] = {}


def register(
    vendor: str,
    profile: VendorProfile,
    factory: AdapterFactory,
    required_credentials: tuple[str, ...] = (),
    normalizer: Normalizer | None = None,
) -> None:
    """``required_credentials``: the keys of the vendor's secret that must be set (besides base_url).
    ``normalizer``: the adapter's ``normalize`` as a pure function (no HTTP, no adapter state), for replays."""
    _ADAPTERS[vendor] = (profile, factory)
    _REQUIRED_CREDENTIALS[vendor] = required_credentials
    if normalizer is not None:
        _NORMALIZERS[vendor] = normalizer


def unregister(vendor: str) -> None:
    _ADAPTERS.pop(vendor, None)
    _REQUIRED_CREDENTIALS.pop(vendor, None)
    _NORMALIZERS.pop(vendor, None)


def has_normalizer(vendor: str) -> bool:
    _load_builtin_adapter(vendor)
    return vendor in _NORMALIZERS


def normalizer_for(vendor: str) -> Normalizer:
    """The vendor's normalizer: what its adapter does to each record of a fetched page, without the adapter (KeyError
    when the vendor has none: check `has_normalizer`)."""
    _load_builtin_adapter(vendor)
    return _NORMALIZERS[vendor]


def has_adapter(vendor: str) -> bool:
    _load_builtin_adapter(vendor)
    return vendor in _ADAPTERS


def profile_for(vendor: str) -> VendorProfile:
    """The vendor's profile as its module documents it (no secret's tuning): what the dispatcher plans with."""
    _load_builtin_adapter(vendor)
    profile, _ = _ADAPTERS[vendor]
    return profile


def connection_for(
    vendor: str, secrets: VendorSecrets, require_credentials: bool = False, workers: int = DEFAULT_WORKERS
) -> VendorConnection:
    """The vendor's connection settings from its secret in ``secrets`` (cached for a few minutes), for one of
    ``workers`` concurrent workers sharing the vendor's rate limit. Raises VendorNotConfiguredError (409) without a
    base_url, or (``require_credentials``) without each credential the vendor's adapter needs."""
    profile = profile_for(vendor)
    stored = secrets.of(vendor)
    name = stored.name
    secret = stored.document()
    required = ("base_url", *(_REQUIRED_CREDENTIALS.get(vendor, ()) if require_credentials else ()))
    missing = [key for key in required if not secret.get(key)]
    if missing:
        raise VendorNotConfiguredError(
            f"The {vendor} secret ({name}) has no {', '.join(missing)}: set {' and '.join(missing)} in it "
            f"(aws secretsmanager put-secret-value --secret-id {name} ...)."
        )
    base_url = str(secret["base_url"])
    credentials = {k: str(v) for k, v in secret.items() if k != "base_url" and isinstance(v, str)}
    return VendorConnection(
        vendor=vendor, base_url=base_url, credentials=credentials, profile=profile.tuned(secret), workers=workers
    )


def adapter_for(connection: VendorConnection, remaining_seconds: Callable[[], float]) -> VendorAdapter:
    """The vendor's adapter; ``remaining_seconds`` bounds its retries by the time the Lambda has left."""
    _, factory = _ADAPTERS[connection.vendor]
    return factory(connection, remaining_seconds)


# The vendor modules that ship with chargelog, by vendor: each registers itself when imported.
_BUILTIN_MODULES: dict[str, str] = {vendor: f"chargelog.collectors.{vendor}" for vendor in VENDORS}
_loaded: set[str] = set()


def _load_builtin_adapter(vendor: str) -> None:
    """Import the vendor's built-in module (it registers itself), once; nothing for a vendor without one."""
    if vendor in _loaded or vendor not in _BUILTIN_MODULES:
        return
    importlib.import_module(_BUILTIN_MODULES[vendor])
    _loaded.add(vendor)
