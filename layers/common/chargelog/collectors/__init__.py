"""The vendor adapter registry: one module per vendor registers its profile and adapter factory here.

The dispatcher only enqueues jobs for vendors that have an adapter; the worker builds the vendor's adapter
from its secret for each job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chargelog.collectors.base import AdapterFactory, VendorAdapter, VendorConnection, VendorProfile
from chargelog.errors import VendorNotConfiguredError

if TYPE_CHECKING:
    from chargelog.dal.secrets import VendorSecrets

_ADAPTERS: dict[str, tuple[VendorProfile, AdapterFactory]] = {}
_REQUIRED_CREDENTIALS: dict[str, tuple[str, ...]] = {}


def register(
    vendor: str, profile: VendorProfile, factory: AdapterFactory, required_credentials: tuple[str, ...] = ()
) -> None:
    """``required_credentials``: the keys of the vendor's secret that must be set (besides base_url)."""
    _ADAPTERS[vendor] = (profile, factory)
    _REQUIRED_CREDENTIALS[vendor] = required_credentials


def unregister(vendor: str) -> None:
    _ADAPTERS.pop(vendor, None)
    _REQUIRED_CREDENTIALS.pop(vendor, None)


def has_adapter(vendor: str) -> bool:
    _load_builtin_adapters()
    return vendor in _ADAPTERS


def connection_for(vendor: str, secrets: VendorSecrets, require_credentials: bool = False) -> VendorConnection:
    """The vendor's connection settings from its secret in ``secrets`` (cached for a few minutes). Raises
    VendorNotConfiguredError (409) without a base_url, or (``require_credentials``) without each credential the
    vendor's adapter needs."""
    _load_builtin_adapters()
    profile, _ = _ADAPTERS[vendor]
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
    return VendorConnection(vendor=vendor, base_url=base_url, credentials=credentials, profile=profile.tuned(secret))


def adapter_for(connection: VendorConnection, remaining_seconds: Callable[[], float]) -> VendorAdapter:
    """The vendor's adapter; ``remaining_seconds`` bounds its retries by the time the Lambda has left."""
    _, factory = _ADAPTERS[connection.vendor]
    return factory(connection, remaining_seconds)


_loaded = False


def _load_builtin_adapters() -> None:
    """Import the vendor modules that ship with chargelog (they register themselves)."""
    global _loaded
    if not _loaded:
        _loaded = True
        from chargelog.collectors import chargepilot, evenergy, ocpplab, plugchoice  # noqa: F401
