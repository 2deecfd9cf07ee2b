"""Opaque, tamper-proof page cursors.

A cursor says where the next page starts (the last sort key returned) and which query it belongs to (a
digest of the query's scope and filters). It is URL-safe base64 of that JSON plus an HMAC-SHA256 over it,
keyed with the deployment's cursor secret (passed in as ``secret``): a client cannot forge one, edit one, or use
one with another query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from chargelog.dal.secrets import Secret
from chargelog.errors import ChargelogError

_TAG_BYTES = 16


class InvalidCursorError(ChargelogError):
    status = 400
    title = "Bad Request"


def query_digest(query: dict[str, Any]) -> str:
    """A short digest of what a query asks for, so a cursor only continues the query it came from."""
    canonical = json.dumps(query, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _key(secret: Secret) -> bytes:
    return secret.text().encode()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(after: str, digest: str, secret: Secret) -> str:
    body = json.dumps({"a": after, "q": digest}, separators=(",", ":")).encode()
    tag = hmac.new(_key(secret), body, hashlib.sha256).digest()[:_TAG_BYTES]
    return _encode(body + tag)


def decode_cursor(cursor: str, digest: str, secret: Secret) -> str:
    """The sort key a cursor resumes after; InvalidCursorError when it is forged, edited or another query's."""
    try:
        raw = _decode(cursor)
    except (binascii.Error, ValueError) as error:
        raise InvalidCursorError("The cursor is not one this API issued; use next_cursor as returned.") from error
    body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    expected = hmac.new(_key(secret), body, hashlib.sha256).digest()[:_TAG_BYTES]
    if len(raw) <= _TAG_BYTES or not hmac.compare_digest(tag, expected):
        raise InvalidCursorError("The cursor is not one this API issued; use next_cursor as returned.")
    data = json.loads(body)
    if data.get("q") != digest:
        raise InvalidCursorError(
            "The cursor belongs to another query: keep the same filters and order while following cursors."
        )
    return str(data["a"])
