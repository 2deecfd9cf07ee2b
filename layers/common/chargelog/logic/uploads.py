"""Whether a diagnostics upload may go through, and where API Gateway is to store it.

API Gateway's REQUEST authorizer calls `authorize_upload` for every upload (result caching is off). An upload is
allowed when its token names an existing request, the token's secret matches (constant-time, against the stored
SHA-256), the charger in the path is the request's, the upload address has not expired, the method and route are
upload routes, the body is not announced as empty, and the request has room left: fewer files recorded than
`UploadLimits.max_files`, and its recorded bytes plus the announced Content-Length within `UploadLimits.max_bytes`
(the indexer checks both again when it records a file, atomically: uploads let through together all pass here).
The decision then names the object
(``incoming/<request_id>/<received time>-<8 hex>``) and carries the sanitised path file name, which the S3
integration stores as object metadata; the S3-triggered indexer does the rest (chargelog.logic.upload_indexer).

Every refusal carries a short reason for the client (shown by the ACCESS_DENIED gateway response). Unknown
request, wrong secret and wrong charger share one reason, so a guesser learns nothing. The token is never logged.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote, unquote

from chargelog.dal.diagnostics import DiagnosticsStore
from chargelog.models.diagnostics import DiagnosticsRequest, UploadLimits, parse_token, safe_filename, secret_matches
from chargelog.models.keys import timestamp_key

# API Gateway's own limit on a request body; the gateway answers a larger one with REQUEST_TOO_LARGE (413).
MAX_UPLOAD_BYTES: Final = 10 * 1024 * 1024
INCOMING_PREFIX: Final = "incoming/"
UPLOAD_ROUTES: Final = frozenset(
    {
        ("PUT", "/u/{charger_id}/{token}"),
        ("POST", "/u/{charger_id}/{token}"),
        ("PUT", "/u/{charger_id}/{token}/{filename}"),
        ("POST", "/u/{charger_id}/{token}/{filename}"),
    }
)
# A file name in the path longer than this is not a real one.
MAX_PATH_FILENAME_CHARS: Final = 1024

INVALID_ADDRESS: Final = "This upload address is not valid."
EXPIRED_ADDRESS: Final = "This upload address has expired; ask for a new one."
EMPTY_UPLOAD: Final = "The upload is empty."
TOO_LARGE: Final = f"An upload is at most {MAX_UPLOAD_BYTES} bytes."
BAD_FILENAME: Final = "The file name in the path is not acceptable (no path separators or control characters)."
BAD_LENGTH: Final = "The Content-Length header is not a number of bytes."
WRONG_METHOD: Final = "Upload with PUT or POST to the upload address."
NO_BOUNDARY: Final = "A multipart/form-data upload needs a boundary in its Content-Type."


def files_limit_reached(limit: int) -> str:
    return f"This upload address has received all the files it takes ({limit}); ask for a new one."


def bytes_limit_reached(limit: int) -> str:
    return f"This upload address has received all the bytes it takes ({limit}); ask for a new one."


_BOUNDARY = re.compile(r"""(?i)(^|;)\s*boundary\s*=\s*("[^"]{1,70}"|[^\s;"]{1,70})\s*(;|$)""")


@dataclass(frozen=True)
class UploadDecision:
    allowed: bool
    reason: str
    # For API Gateway's integration (allowed only): object_key, filename, request_id, charger_id, method.
    context: dict[str, str] = field(default_factory=dict)
    request_id: str | None = None  # of a well-formed token, for logs


def _deny(reason: str, request_id: str | None = None) -> UploadDecision:
    return UploadDecision(False, reason, {"reason": reason}, request_id)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def _announced_length(headers: Mapping[str, str] | None) -> int:
    """The Content-Length, once `_body_problem` found it sound; 0 for a chunked body (size unknown)."""
    length = _header(headers, "content-length")
    return int(length.strip()) if length is not None else 0


def _limit_problem(request: DiagnosticsRequest, announced: int, limits: UploadLimits) -> str | None:
    """Why the request takes no more uploads, or None."""
    if request.files_received >= limits.max_files:
        return files_limit_reached(limits.max_files)
    if request.bytes_received + announced > limits.max_bytes:
        return bytes_limit_reached(limits.max_bytes)
    return None


def _body_problem(headers: Mapping[str, str] | None) -> str | None:
    """Why the announced body cannot be a file, or None. A chunked body without a length passes (the indexer
    rejects it if it turns out empty)."""
    length = _header(headers, "content-length")
    if length is None:
        chunked = "chunked" in (_header(headers, "transfer-encoding") or "").lower()
        return None if chunked else EMPTY_UPLOAD
    try:
        size = int(length.strip())
    except ValueError:
        return BAD_LENGTH
    if size < 0:
        return BAD_LENGTH
    if size == 0:
        return EMPTY_UPLOAD
    if size > MAX_UPLOAD_BYTES:
        return TOO_LARGE
    content_type = _header(headers, "content-type") or ""
    if content_type.split(";", 1)[0].strip().lower() == "multipart/form-data" and not _BOUNDARY.search(content_type):
        return NO_BOUNDARY
    return None


def _path_filename(raw: str | None) -> str | None:
    """The file name from the path, percent-decoded; None if there is none. ValueError if it is hostile."""
    if raw is None or raw == "":
        return None
    name = unquote(raw)
    if len(name) > MAX_PATH_FILENAME_CHARS or name.strip(". ") == "":
        raise ValueError(name)
    if any(separator in name for separator in ("/", "\\")):
        raise ValueError(name)
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise ValueError(name)
    return safe_filename(name)


def incoming_key(request_id: str, received_at: datetime) -> str:
    """Where API Gateway writes an upload: unique per upload, so a retried upload never replaces an earlier one."""
    return f"{INCOMING_PREFIX}{request_id}/{timestamp_key(received_at)}-{secrets.token_hex(4)}"


def authorize_upload(
    *,
    method: str,
    resource: str,
    path_parameters: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
    received_at: datetime,
    now: datetime | None = None,
    store: DiagnosticsStore,
    limits: UploadLimits | None = None,
) -> UploadDecision:
    """Decide about one upload request (see the module's doc)."""
    now = now or datetime.now(UTC)
    limits = limits or UploadLimits()
    if (method.upper(), resource) not in UPLOAD_ROUTES:
        return _deny(WRONG_METHOD)
    parameters = path_parameters or {}
    token = parse_token(parameters.get("token", ""))
    if token is None:
        return _deny(INVALID_ADDRESS)
    request = store.get_request(token.request_id)
    if request is None or not secret_matches(token.secret, request.secret_sha256):
        return _deny(INVALID_ADDRESS, token.request_id)
    path_charger = parameters.get("charger_id", "")
    if request.charger_id not in (path_charger, unquote(path_charger)):
        return _deny(INVALID_ADDRESS, token.request_id)
    if now >= request.upload_expires_at:
        return _deny(EXPIRED_ADDRESS, token.request_id)
    body_problem = _body_problem(headers)
    if body_problem is not None:
        return _deny(body_problem, token.request_id)
    limit_problem = _limit_problem(request, _announced_length(headers), limits)
    if limit_problem is not None:
        return _deny(limit_problem, token.request_id)
    try:
        filename = _path_filename(parameters.get("filename"))
    except ValueError:
        return _deny(BAD_FILENAME, token.request_id)
    store.note_upload_attempt(request.request_id, now)
    context = {
        "object_key": incoming_key(request.request_id, received_at),
        # S3 metadata is ASCII: the name travels percent-encoded (the indexer decodes it).
        "filename": quote(filename or "", safe=""),
        "request_id": request.request_id,
        "charger_id": request.charger_id,
        "method": method.upper(),
    }
    return UploadDecision(True, "", context, request.request_id)
