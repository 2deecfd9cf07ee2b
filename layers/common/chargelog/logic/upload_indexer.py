"""Turns an upload API Gateway stored under ``incoming/`` into a recorded diagnostics file.

S3 announces each new ``incoming/<request_id>/<received time>-<8 hex>`` object (the authorizer named it, see
chargelog.logic.uploads). `index_upload` reads it once, as a stream: a ``multipart/form-data`` body is unwrapped
with python-multipart (the part named ``file``, else the only part with a file name); any other body is the file
itself. The file goes to a spooled temporary file (memory up to 1 MB, then /tmp) while its size, SHA-256 and
first bytes are taken, so a 10 MB upload is never held in memory whole. A body of more than
`UploadLimits.max_multipart_parts` parts is rejected at the first part past it, without reading the rest.

The file's key, ``diagnostics/<charger>/<request_id>/<received time>-<upload id>-<safe name>``, follows from the
incoming object alone (`upload_id`: its key and ETag), so indexing the same object again (SQS delivers at least
once, and retries a failed message) always finds the same key and the same file item. The file is first recorded
(`put_file`: the request's counters, in one conditional update that counts each file once and keeps the request
within `UploadLimits.max_files` and `max_bytes`, then the file item, if not there yet), then written with a
conditional put (never over an existing object: one already there is this same upload's), and the incoming object
deleted last. Whatever
step fails, the retried message redoes the rest and stores one object and one item.

A malformed multipart body, an empty file or a request without room records nothing but ``last_upload_error`` on
the request; the incoming object is deleted either way. An upload for a request that no longer exists is dropped.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Final
from urllib.parse import unquote

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from chargelog.dal.diagnostics import DiagnosticsFiles, DiagnosticsStore
from chargelog.logic.uploads import bytes_limit_reached, files_limit_reached
from chargelog.models.diagnostics import (
    REQUEST_ID_PATTERN,
    Compression,
    DiagnosticsFile,
    UploadLimits,
    UploadMethod,
    object_key,
    safe_filename,
    upload_id,
)
from chargelog.models.keys import parse_timestamp_key
from chargelog.observability import logger

CHUNK_BYTES: Final = 256 * 1024
SPOOL_IN_MEMORY_BYTES: Final = 1024 * 1024
DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
# timestamp_key's format (chargelog.models.keys): fixed-width UTC with microseconds.
_INCOMING_KEY = re.compile(
    rf"^incoming/(?P<request_id>{REQUEST_ID_PATTERN})/(?P<stamp>\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{6}}Z)-(?P<nonce>[0-9a-f]{{8}})$"
)
_HEAD_BYTES: Final = 512


class RejectedUpload(Exception):
    """An upload that holds no file we can keep (malformed multipart, empty): the message says why."""


@dataclass(frozen=True)
class IndexOutcome:
    """What became of one incoming object."""

    file: DiagnosticsFile | None = None
    rejected: str | None = None  # why no file was recorded
    duplicate: bool = False  # the same upload was indexed before (a redelivered notification)
    multipart_parts: int = 0  # parts of a multipart body read (the one past the limit included)
    bytes_read: int = 0  # of the incoming object


def detect_compression(head: bytes) -> Compression:
    """The container or compression of a file, from its first bytes (a gzipped tar reads as gzip)."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head[257:262] == b"ustar":
        return "tar"
    return "none"


class _SpooledFile:
    """A file being received: spooled to disk past 1 MB, with its size, SHA-256 and first bytes."""

    def __init__(self) -> None:
        self.handle: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.head = b""

    def write(self, data: bytes) -> None:
        if not data:
            return
        if len(self.head) < _HEAD_BYTES:
            self.head += data[: _HEAD_BYTES - len(self.head)]
        self.sha256.update(data)
        self.size += len(data)
        self.handle.write(data)

    def rewind(self) -> IO[bytes]:
        self.handle.seek(0)
        return self.handle

    def close(self) -> None:
        self.handle.close()


@dataclass
class _Part:
    name: str | None = None
    filename: str | None = None
    content_type: str | None = None
    spool: _SpooledFile | None = None


def _decode_header(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


class _TooManyParts(Exception):
    """Raised from the parser's callback to stop reading a body at its first part past the limit."""


class _FormUnwrapper:
    """Streams a multipart/form-data body, keeping each part that carries a file (or is named ``file``); stops at
    the first part past ``max_parts``."""

    def __init__(self, boundary: bytes, max_parts: int) -> None:
        self.max_parts = max_parts
        self.parts_begun = 0
        self.parts: list[_Part] = []
        self.ended = False
        self._current = _Part()
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[str, str] = {}
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_end": self._end,
            },
        )

    def _part_begin(self) -> None:
        self.parts_begun += 1
        if self.parts_begun > self.max_parts:
            raise _TooManyParts
        self._current = _Part()
        self._headers = {}

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[_decode_header(self._header_field).strip().lower()] = _decode_header(self._header_value).strip()
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", ""))
        name = options.get(b"name")
        filename = options.get(b"filename")
        self._current.name = _decode_header(name) if name is not None else None
        self._current.filename = _decode_header(filename) if filename is not None else None
        self._current.content_type = self._headers.get("content-type") or None
        if self._current.filename is not None or self._current.name == "file":
            self._current.spool = _SpooledFile()
            self.parts.append(self._current)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current.spool is not None:
            self._current.spool.write(data[start:end])

    def _end(self) -> None:
        self.ended = True

    def feed(self, chunks: Iterator[bytes]) -> _Part:
        """The file part of the body; RejectedUpload if the body is not a complete form with one."""
        try:
            for chunk in chunks:
                self.parser.write(chunk)
            self.parser.finalize()
        except MultipartParseError as error:
            raise RejectedUpload(f"Malformed multipart/form-data body: {error}") from error
        except _TooManyParts:
            raise RejectedUpload(
                f"The multipart/form-data body has more than {self.max_parts} parts; it was not read further"
            ) from None
        if not self.ended:
            raise RejectedUpload("Malformed multipart/form-data body: it ends before its closing boundary")
        named = [part for part in self.parts if part.name == "file"]
        if named:
            return named[0]
        with_files = [part for part in self.parts if part.filename is not None]
        if len(with_files) == 1:
            return with_files[0]
        raise RejectedUpload(
            "The multipart/form-data body has no part named 'file' and not exactly one part with a file name"
        )

    def close(self) -> None:
        for part in self.parts:
            if part.spool is not None:
                part.spool.close()


def _multipart_boundary(content_type: str) -> bytes | None:
    media_type, options = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        return None
    boundary = options.get(b"boundary")
    if not boundary:
        raise RejectedUpload("A multipart/form-data body without a boundary")
    return boundary


@dataclass(frozen=True)
class IncomingObject:
    request_id: str
    received_at: datetime
    nonce: str


def parse_incoming_key(key: str) -> IncomingObject | None:
    match = _INCOMING_KEY.match(key)
    if match is None:
        return None
    received_at = parse_timestamp_key(match["stamp"])
    return IncomingObject(match["request_id"], received_at, match["nonce"])


class _CountingChunks:
    """The chunks of an object, counting the bytes read."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.bytes_read = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.bytes_read += len(chunk)
            yield chunk


def _reject(
    key: str, reason: str, *, request_id: str, store: DiagnosticsStore, files: DiagnosticsFiles, now: datetime
) -> None:
    store.note_upload_error(request_id, reason, now)
    logger.warning("Upload rejected", extra={"request_id": request_id, "key": key, "reason": reason})
    files.delete(key)


def index_upload(
    key: str,
    *,
    store: DiagnosticsStore,
    files: DiagnosticsFiles,
    limits: UploadLimits | None = None,
    now: datetime | None = None,
) -> IndexOutcome:
    """Index one incoming object of ``files`` (see the module's doc). Raises on storage errors, so the message is
    retried."""
    now = now or datetime.now(UTC)
    limits = limits or UploadLimits()
    incoming = parse_incoming_key(key)
    if incoming is None:
        logger.warning("Not an incoming upload key; deleted", extra={"key": key})
        files.delete(key)
        return IndexOutcome(rejected="not an upload key")
    request = store.get_request(incoming.request_id)
    if request is None:
        logger.warning("Upload for an unknown request; deleted", extra={"key": key})
        files.delete(key)
        return IndexOutcome(rejected="unknown request")
    stored = files.get(key)
    if stored is None:
        # Indexed and deleted already: a redelivered notification.
        return IndexOutcome(duplicate=True)
    metadata = stored.metadata
    path_filename = unquote(metadata.get("filename", "")) or None
    method: UploadMethod = "POST" if metadata.get("method", "").upper() == "POST" else "PUT"
    request_content_type = stored.content_type or DEFAULT_CONTENT_TYPE
    chunks = _CountingChunks(stored.chunks(CHUNK_BYTES))
    form: _FormUnwrapper | None = None
    raw: _SpooledFile | None = None
    try:
        try:
            boundary = _multipart_boundary(request_content_type)
            if boundary is not None:
                form = _FormUnwrapper(boundary, limits.max_multipart_parts)
                part = form.feed(iter(chunks))
                assert part.spool is not None
                spool = part.spool
                filename = path_filename or part.filename
                content_type = part.content_type or DEFAULT_CONTENT_TYPE
            else:
                raw = spool = _SpooledFile()
                for chunk in chunks:
                    spool.write(chunk)
                filename = path_filename
                content_type = request_content_type
            if spool.size == 0:
                raise RejectedUpload("The uploaded file is empty")
        except RejectedUpload as rejection:
            _reject(key, str(rejection), request_id=request.request_id, store=store, files=files, now=now)
            return IndexOutcome(
                rejected=str(rejection),
                multipart_parts=form.parts_begun if form is not None else 0,
                bytes_read=chunks.bytes_read,
            )
        safe_name = safe_filename(filename)
        final_key = object_key(
            request.charger_id, request.request_id, incoming.received_at, safe_name, upload_id(key, stored.etag)
        )
        file = DiagnosticsFile(
            request_id=request.request_id,
            charger_id=request.charger_id,
            key=final_key,
            filename=safe_name,
            size=spool.size,
            sha256=spool.sha256.hexdigest(),
            content_type=content_type,
            compression=detect_compression(spool.head),
            received_at=incoming.received_at,
            upload_method=method,
            multipart=form is not None,
        )
        parts, bytes_read = (form.parts_begun if form is not None else 0), chunks.bytes_read
        recording = store.put_file(file, limits)
        if recording == "no request":
            files.delete(key)
            return IndexOutcome(rejected="unknown request", multipart_parts=parts, bytes_read=bytes_read)
        if recording == "full":
            current = store.get_request(request.request_id) or request
            reason = (
                files_limit_reached(limits.max_files)
                if current.files_received >= limits.max_files
                else bytes_limit_reached(limits.max_bytes)
            )
            _reject(key, f"Not kept: {reason}", request_id=request.request_id, store=store, files=files, now=now)
            return IndexOutcome(rejected=reason, multipart_parts=parts, bytes_read=bytes_read)
        # Recorded now or by an earlier delivery: either way the object may be missing still.
        if not files.put_new(final_key, spool.rewind(), content_type):
            logger.info("Upload stored before (redelivered notification)", extra={"key": final_key})
        files.delete(key)
        logger.info(
            "Diagnostics file stored",
            extra={"request_id": request.request_id, "key": final_key, "size": file.size, "recording": recording},
        )
        return IndexOutcome(file=file, duplicate=recording == "duplicate", multipart_parts=parts, bytes_read=bytes_read)
    finally:
        stored.close()
        if form is not None:
            form.close()
        if raw is not None:
            raw.close()
