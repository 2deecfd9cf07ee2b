"""Diagnostics uploads: a request for a charger's own log file, the files it uploads, and the upload address.

Support asks for a file (POST /diagnostics/requests); chargelog issues an upload address, ``remote_location`` =
``{upload base URL}/u/{charger id}/{token}/``, that the CSMS sends in OCPP 2.0.1 GetLog or 1.6 GetDiagnostics.
The token is ``{request_id}.{secret}``: the request id (32 hex digits) says which request the upload belongs to,
the secret (24 URL-safe characters, 144 bits) proves the uploader was given the address. The secret is
`derive_secret`: an HMAC-SHA256 of the request id under the upload token key (a Secrets Manager secret only the API
reads), so the API can rebuild the address for GET /diagnostics/{id} while the table holds only the secret's
SHA-256 (``secret_sha256``, which the upload authorizer checks). Requests stored before kept a random secret and
the whole address (``remote_location``); they are still read as they are. Neither is ever logged.

Uploaded files land in the diagnostics bucket under `object_key`, their names made safe by `safe_filename`.

Standard library and pydantic only (and the shared timestamp format): the upload authorizer loads this module on
every cold start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal, NamedTuple
from urllib.parse import quote

from pydantic import AwareDatetime, BeforeValidator, ConfigDict, Field, StrictInt

from chargelog.models.base import Model
from chargelog.models.fields import ChargerId, UtcDatetime
from chargelog.models.keys import timestamp_key

LogType = Literal["DiagnosticsLog", "SecurityLog"]
Compression = Literal["gzip", "zip", "bzip2", "xz", "zstd", "tar", "none"]
UploadMethod = Literal["PUT", "POST"]

# OCPP 2.0.1 GetLog's remoteLocation is a string of at most 512 characters (1.6 GetDiagnostics' location has no
# limit, but the same address serves both).
MAX_REMOTE_LOCATION_LENGTH: Final = 512
REQUEST_ID_PATTERN: Final = r"[0-9a-f]{32}"
SECRET_BYTES: Final = 18  # secrets.token_urlsafe(18): 24 characters, 144 bits
SECRET_PATTERN: Final = r"[A-Za-z0-9_-]{24}"  # noqa: S105 - the shape of a secret, not one
UPLOAD_ID_PATTERN: Final = r"[0-9a-f]{16}"
_TOKEN = re.compile(rf"(?P<request_id>{REQUEST_ID_PATTERN})\.(?P<secret>{SECRET_PATTERN})")

MAX_FILENAME_BYTES: Final = 200
DEFAULT_FILENAME: Final = "upload.bin"
_MAX_EXTENSION_LENGTH = 16
OBJECT_PREFIX: Final = "diagnostics/"
# Characters S3 documents as safe in a key, which no client or URL normalisation changes.
_SAFE_KEY_SEGMENT = re.compile(r"[A-Za-z0-9!_.*'()-]+")


class UploadToken(NamedTuple):
    request_id: str
    secret: str


def new_request_id() -> str:
    return uuid.uuid4().hex


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def derive_secret(key: str, request_id: str) -> str:
    """A request's upload secret: the first 144 bits of HMAC-SHA256(key, request id), URL-safe base64 (24
    characters). Whoever holds the key can rebuild it; nothing stored in the table can."""
    if not key:
        raise ValueError("An empty upload token key")
    digest = hmac.new(key.encode(), f"chargelog-upload:{request_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:SECRET_BYTES]).decode()


def format_token(request_id: str, secret: str) -> str:
    """The token of an upload address: ``{request_id}.{secret}``."""
    token = f"{request_id}.{secret}"
    if parse_token(token) is None:
        raise ValueError("Not a request id (32 lowercase hex digits) and a secret (24 URL-safe characters)")
    return token


def parse_token(token: str) -> UploadToken | None:
    """The request id and secret of a token; None for anything that is not exactly a token this module made."""
    match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    return UploadToken(match["request_id"], match["secret"]) if match else None


def secret_sha256(secret: str) -> str:
    """What is stored of a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, expected_sha256: str) -> bool:
    """Whether a presented secret is the one whose SHA-256 was stored (constant-time comparison)."""
    return hmac.compare_digest(secret_sha256(secret), expected_sha256)


def remote_location(upload_base_url: str, charger_id: str, token: str) -> str:
    """The upload address: ``{upload_base_url}/u/{charger id, percent-encoded}/{token}/``.

    May exceed `MAX_REMOTE_LOCATION_LENGTH` (a very long charger id): the caller checks.
    """
    return f"{upload_base_url.rstrip('/')}/u/{quote(charger_id, safe='')}/{token}/"


def key_segment(text: str) -> str:
    """``text`` as one S3 key segment: as is when it only has characters safe in keys and URLs, else
    percent-encoded (dot-only segments too, as URL normalisation would drop or climb them)."""
    if not text:
        raise ValueError("An empty key segment")
    if not text.strip("."):
        return text.replace(".", "%2E")
    return text if _SAFE_KEY_SEGMENT.fullmatch(text) else quote(text, safe="")


def _truncate_utf8(text: str, max_bytes: int) -> str:
    return text.encode()[:max_bytes].decode(errors="ignore")


def safe_filename(name: str | None) -> str:
    """A file name safe to store and to write on a support engineer's disk, as close to the uploaded one as can be.

    Only the last path segment is kept (``/`` and ``\\`` both separate), so ``../../etc/passwd`` is ``passwd``;
    control and other invisible format characters (NUL, newlines, bidi overrides) are dropped; leading dots and
    surrounding whitespace are stripped (no hidden files, no ``..``); at most 200 UTF-8 bytes, the extension kept
    when shortening. Colons stay (``diag-2024-05-01T10:00:00Z.tar.gz`` is a real name). Nothing left: ``upload.bin``.
    """
    text = unicodedata.normalize("NFC", name or "")
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))
    text = re.split(r"[/\\]", text)[-1].strip().lstrip(".").strip()
    if len(text.encode()) > MAX_FILENAME_BYTES:
        stem, dot, extension = text.rpartition(".")
        if dot and stem and 0 < len(extension) <= _MAX_EXTENSION_LENGTH and extension.isascii():
            suffix = f".{extension}"
            text = _truncate_utf8(stem, MAX_FILENAME_BYTES - len(suffix)).rstrip() + suffix
        else:
            text = _truncate_utf8(text, MAX_FILENAME_BYTES).rstrip()
    return text or DEFAULT_FILENAME


def object_key(
    charger_id: str, request_id: str, received_at: datetime, filename: str | None, upload_id: str | None = None
) -> str:
    """Where a received file is kept: ``diagnostics/<charger>/<request id>/<received time>-[<upload id>-]<safe
    filename>``. The indexer names each file by the incoming object it came from (`upload_id`), so indexing the
    same upload again finds the same key; files indexed before it did have none."""
    if not re.fullmatch(REQUEST_ID_PATTERN, request_id):
        raise ValueError(f"Not a request id: {request_id!r}")
    if upload_id is not None and not re.fullmatch(UPLOAD_ID_PATTERN, upload_id):
        raise ValueError(f"Not an upload id: {upload_id!r}")
    name = safe_filename(filename) if upload_id is None else f"{upload_id}-{safe_filename(filename)}"
    return f"{OBJECT_PREFIX}{key_segment(charger_id)}/{request_id}/{timestamp_key(received_at)}-{name}"


def upload_id(incoming_key: str, etag: str) -> str:
    """A name for one incoming object: 16 hex digits of the SHA-256 of its key and ETag. The key is unique per upload
    (the authorizer adds a random nonce) and the ETag pins its content, so a redelivered notification of the same
    object gets the same id, and another object (or another version of the same key with other bytes) another."""
    content = etag.strip('"')
    return hashlib.sha256(f"{incoming_key}\n{content}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class UploadLimits:
    """What one diagnostics request may store, and how many parts a multipart upload may have (template parameters
    UploadMaxFilesPerRequest, UploadMaxBytesPerRequest, UploadMaxMultipartParts)."""

    max_files: int = 10
    max_bytes: int = 100 * 1024 * 1024
    max_multipart_parts: int = 20


class DiagnosticsRequest(Model):
    """A request for a charger's diagnostics, as stored: ``pk = "DIAG#<request_id>"``, ``sk = "REQUEST"``."""

    model_config = ConfigDict(extra="ignore")

    request_id: str = Field(pattern=f"^{REQUEST_ID_PATTERN}$")
    charger_id: str = Field(min_length=1)
    log_type: LogType = "DiagnosticsLog"
    ocpp_request_id: int = Field(ge=1, description="GetLog's requestId: unique per charger")
    oldest_timestamp: UtcDatetime | None = None
    latest_timestamp: UtcDatetime | None = None
    retries: int | None = Field(default=None, ge=0)
    retry_interval: int | None = Field(default=None, ge=0)
    requested_at: UtcDatetime
    upload_expires_at: UtcDatetime = Field(description="When the upload address stops working")
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # Stored only by requests made before the secret was derived (whole token in the table); else rebuilt.
    remote_location: str | None = Field(default=None, max_length=MAX_REMOTE_LOCATION_LENGTH)
    upload_attempts: int = Field(default=0, description="Uploads the authorizer let through")
    last_attempt_at: UtcDatetime | None = None
    files_received: int = Field(default=0, description="Files the indexer recorded")
    bytes_received: int = Field(default=0, description="Bytes of the files the indexer recorded")
    last_file_at: UtcDatetime | None = None
    last_upload_error: str | None = Field(default=None, description="Why the last upload was rejected, if it was")
    last_upload_error_at: UtcDatetime | None = None


class DiagnosticsFile(Model):
    """A file received for a request: ``pk = "DIAG#<request_id>"``, ``sk = "FILE#<received_at>#<key's last part>"``."""

    model_config = ConfigDict(extra="ignore")

    request_id: str = Field(pattern=f"^{REQUEST_ID_PATTERN}$")
    charger_id: str = Field(min_length=1)
    key: str = Field(min_length=1, description="The file's S3 key in the diagnostics bucket")
    filename: str = Field(min_length=1, description="The sanitised file name")
    size: int = Field(ge=0, description="Bytes")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str = Field(description="Of the file: its multipart part's, else the request's")
    compression: Compression = Field(description="Detected from the first bytes; a gzipped tar reads as gzip")
    received_at: UtcDatetime
    upload_method: UploadMethod
    multipart: bool = False


# ---------------------------------------------------------------------------------------------- the API's shapes

RequestState = Literal["requested", "uploading", "uploaded", "failed", "expired"]
# How long an upload address works: a day unless asked otherwise, a week at most.
DEFAULT_EXPIRES_IN_MINUTES: Final = 24 * 60
MAX_EXPIRES_IN_MINUTES: Final = 7 * 24 * 60
MIN_EXPIRES_IN_MINUTES: Final = 5
OCPP_MAX_INTEGER: Final = 2**31 - 1
_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_date_time_text(value: object) -> object:
    # pydantic would also read numbers ("1763000000") as Unix times; GetLog takes ISO 8601, so this API does too.
    if not isinstance(value, str) or not _ISO_DATE_TIME.match(value.strip()):
        raise ValueError("Give an ISO 8601 date-time with an offset, e.g. 2026-11-20T08:00:00Z")
    return value


def _integral_number(value: object) -> object:
    # JSON Schema's integer is any number without a fraction, so 3.0 is one; booleans and strings are not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_date_time_text)]
OcppCount = Annotated[StrictInt, Field(ge=0, le=OCPP_MAX_INTEGER), BeforeValidator(_integral_number)]


class NewDiagnosticsRequest(Model):
    """Body of POST /diagnostics/requests: which charger, which log, and how GetLog / GetDiagnostics should ask."""

    model_config = ConfigDict(extra="forbid")

    charger_id: ChargerId = Field(description="The charger (its OCPP identity, as in the collected logs)")
    log_type: LogType = Field(default="DiagnosticsLog", description="GetLog's logType (1.6 knows only diagnostics)")
    oldest_timestamp: IsoDateTime | None = Field(
        default=None, description="Oldest log entries to include, ISO 8601 with offset"
    )
    latest_timestamp: IsoDateTime | None = Field(
        default=None, description="Latest log entries to include, ISO 8601 with offset; not before the oldest"
    )
    retries: OcppCount | None = Field(default=None, description="Upload attempts the charger may retry")
    retry_interval: OcppCount | None = Field(default=None, description="Seconds between retries")
    expires_in_minutes: Annotated[StrictInt, BeforeValidator(_integral_number)] = Field(
        default=DEFAULT_EXPIRES_IN_MINUTES,
        ge=MIN_EXPIRES_IN_MINUTES,
        le=MAX_EXPIRES_IN_MINUTES,
        description="How long the upload address works: 24 hours unless asked, 5 minutes to 7 days",
    )


class StatusNotification(Model):
    """A LogStatusNotification (2.0.1) or DiagnosticsStatusNotification (1.6) the charger sent about the upload,
    as its vendor's log holds it."""

    timestamp: datetime
    action: str
    status: str
    ocpp_request_id: int | None = Field(default=None, description="LogStatusNotification's requestId")


class DiagnosticsFileView(Model):
    """A file received for a request, with a short-lived download link."""

    filename: str
    size: int = Field(description="Bytes")
    sha256: str = Field(description="Hex SHA-256 of the stored bytes")
    content_type: str
    compression: Compression
    received_at: datetime
    upload_method: UploadMethod
    multipart: bool
    kept_until: datetime = Field(description="When the bucket's lifecycle deletes the file")
    download_url: str | None = Field(description="Presigned GET of the file; null once it has been deleted")
    download_expires_at: datetime | None = None


class DiagnosticsRequestSummary(Model):
    """A request as lists show it: no upload address (it holds the token), no files."""

    request_id: str
    charger_id: str
    log_type: LogType
    ocpp_request_id: int = Field(description="GetLog's requestId; LogStatusNotifications carry it")
    oldest_timestamp: datetime | None = None
    latest_timestamp: datetime | None = None
    retries: int | None = None
    retry_interval: int | None = None
    requested_at: datetime
    upload_expires_at: datetime = Field(description="When the upload address stops working")
    state: RequestState = Field(
        description="uploaded: a file arrived; failed: the charger reported a failure (or the last upload was "
        "rejected) and no file arrived; uploading: an upload was let through, or the charger reported Uploading; "
        "expired: the address expired with no file; else requested"
    )
    upload_attempts: int = Field(description="Uploads the upload address let through")
    last_attempt_at: datetime | None = None
    files_received: int
    bytes_received: int = Field(description="Bytes of the files received (0 for files recorded before it was counted)")
    last_file_at: datetime | None = None
    last_upload_error: str | None = Field(default=None, description="Why the last upload was rejected, if it was")


class DiagnosticsRequestDetail(DiagnosticsRequestSummary):
    """A request with its upload address, the OCPP payloads that send it, its files and the charger's reports."""

    remote_location: str | None = Field(
        description="The upload address (at most 512 characters, ends with /); it holds the request's secret token. "
        "null if it can no longer be rebuilt (the upload token key was replaced since the request was made)"
    )
    getlog: dict[str, Any] | None = Field(
        description="The OCPP 2.0.1 GetLog request payload, ready to send; null without an address"
    )
    getdiagnostics: dict[str, Any] | None = Field(
        description="The OCPP 1.6 GetDiagnostics request payload, ready to send; null without an address"
    )
    files: list[DiagnosticsFileView]
    status_notifications: list[StatusNotification] = Field(
        description="The charger's LogStatusNotification (same requestId) or DiagnosticsStatusNotification (between "
        "the request and its expiry) records collected from its vendor, in time order"
    )


class DiagnosticsRequestList(Model):
    requests: list[DiagnosticsRequestSummary] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")
