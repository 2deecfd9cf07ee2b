"""Secrets Manager, read through Powertools' parameters utility (each value cached in the process for a while)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities import parameters

# How long a value is used before it is read again: the cursor key rarely changes, a vendor's credentials may.
CURSOR_SECRET_CACHE_SECONDS = 3600
VENDOR_SECRET_CACHE_SECONDS = 300


class Secret:
    """One secret's value, read again once it is ``max_age`` seconds old."""

    def __init__(self, name: str, max_age: int) -> None:
        self.name = name
        self._max_age = max_age

    def text(self) -> str:
        return str(parameters.get_secret(self.name, max_age=self._max_age))

    def document(self) -> dict[str, Any]:
        """The secret as a JSON object."""
        raw = parameters.get_secret(self.name, max_age=self._max_age)
        return json.loads(raw) if isinstance(raw, str) else dict(raw)


class VendorSecrets:
    """Each vendor's connection secret: ``<prefix><vendor>``, a JSON object (base_url and credentials)."""

    def __init__(self, prefix: str, max_age: int = VENDOR_SECRET_CACHE_SECONDS) -> None:
        self._prefix = prefix
        self._max_age = max_age

    def of(self, vendor: str) -> Secret:
        return Secret(f"{self._prefix}{vendor}", self._max_age)
