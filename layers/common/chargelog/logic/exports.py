"""Exports: a whole log query written to one file in S3, for ranges too big to page through one response at a time.

``create_export`` (POST /exports) checks the query, decides its tier, stores the export as queued and puts it on the
export queue. The tier is where its records are read: a range starting within the table's hot window
(``HotRetentionDays``) reads the table ("hot"), one starting earlier (or with no start) the record archive in S3
("archive"), which keeps every record ``ArchiveRetentionDays``. The export function calls ``run_export``: it reads
the query page after page - hot: the same Queries and the same records as the logs routes, resuming at sort keys
rather than signed cursors; archive: the objects of the range's vendors and UTC days, filtered as the Queries would,
one record per id, in the same order - into a temporary file (the same format and fields either way), uploads that
(boto3 switches to a multipart upload for large files, so memory stays flat), and marks the export done. A
redelivered message for a done export does nothing. ``get_export`` reports the state and, once done, a presigned
download link.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chargelog.dal.exports import ExportFiles, ExportStore
from chargelog.dal.queue import WorkQueue
from chargelog.dal.record_archive import RecordArchiveReader
from chargelog.dal.record_queries import RecordStore, matches
from chargelog.dal.records import FILTERED_FIELDS
from chargelog.errors import NotFoundError
from chargelog.logic import logs
from chargelog.logic.logs import InvalidQueryError, LogFilters, LogQuery, Scope
from chargelog.models.exports import Export, ExportJob, ExportRequest, ExportStatus, ExportTier
from chargelog.models.keys import timestamp_json, timestamp_key
from chargelog.models.logs import LogEntry, records_csv, records_ndjson
from chargelog.observability import logger
from chargelog.settings import get_settings
from chargelog.vendors import VENDORS

# How long an export and its file are kept: the exports bucket's lifecycle (template.yaml) expires files after
# as many days, so the table never offers a link to a deleted file.
EXPORT_RETENTION_DAYS = 7
DOWNLOAD_URL_SECONDS = 15 * 60
PAGE_SIZE = logs.MAX_LIMIT
# Stop reading with this much Lambda time left, to fail cleanly rather than be killed mid-way.
TIME_RESERVE_SECONDS = 60.0
CONTENT_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
# A range must start this far inside the hot window to read the table: an export runs a little after it is created
# (and SQS may retry it hours later), while records at the window's edge expire.
HOT_TIER_MARGIN = timedelta(hours=6)


class ExportOutOfTimeError(Exception):
    """The query has more records than one run of the export function can read: retrying cannot help."""


def _now() -> datetime:
    return datetime.now(UTC)


def _scope_and_filters(request: ExportRequest) -> tuple[Scope, LogFilters]:
    if request.charger_id is not None:
        scope = Scope("charger", request.charger_id)
    elif request.site_id is not None:
        scope = Scope("site", request.site_id)
    else:
        scope = Scope("fleet")
    filters = LogFilters(
        start=request.start,
        end=request.end,
        actions=tuple(request.actions),
        direction=request.direction,
        message_type=request.message_type,
        status=request.status,
        vendor=request.vendor,
        message_id=request.message_id,
        transaction_id=request.transaction_id,
        connector_status=request.connector_status,
        kind=request.kind,
        order=request.order,
        limit=PAGE_SIZE,
    )
    return scope, filters


def _plan(request: ExportRequest, now: datetime, records: RecordStore | None = None) -> LogQuery:
    """The Queries of an export: the logs routes' own, but a fleet range may span as long as the record archive keeps
    records. With ``records``, a site's chargers are looked up (to run it; without, only checked)."""
    scope, filters = _scope_and_filters(request)
    if records is not None:
        scope = logs.with_site_chargers(scope, records=records)
    kept_days = get_settings().archive_retention_days
    try:
        return logs.plan_query(scope, filters, now, max_fleet_days=kept_days)
    except logs.FleetRangeTooLongError as error:
        raise InvalidQueryError(
            f"A fleet-wide export can span at most {kept_days} days, as long as records are kept."
        ) from error


def tier_of(query: LogQuery, now: datetime) -> ExportTier:
    """Where an export's records are: "hot" (the table) when its range starts within the hot window, with a margin;
    "archive" (the record archive) when it starts earlier or has no start (the table has forgotten older records)."""
    hot_since = now - timedelta(days=get_settings().hot_retention_days) + HOT_TIER_MARGIN
    return "hot" if query.start is not None and query.start >= hot_since else "archive"


def create_export(
    request: ExportRequest,
    now: datetime | None = None,
    *,
    store: ExportStore,
    files: ExportFiles,
    queue: WorkQueue,
) -> ExportStatus:
    """Check the query, store the export as queued and queue it. InvalidQueryError for a query that cannot run."""
    now = now or _now()
    # Checked here, not in the body's schema, so that a body the document allows but that asks for the impossible
    # is a 400, as for the logs routes.
    if request.charger_id is not None and request.site_id is not None:
        raise InvalidQueryError("Give charger_id or site_id, not both (neither: the whole fleet).")
    if request.charger_id is None and request.site_id is None and not request.actions:
        raise InvalidQueryError("A fleet-wide export (neither charger_id nor site_id) needs at least one action.")
    tier = tier_of(_plan(request, now), now)
    export = Export(
        id=uuid.uuid4().hex,
        state="queued",
        tier=tier,
        request=request,
        created_at=now,
        expires_at=int((now + timedelta(days=EXPORT_RETENTION_DAYS)).timestamp()),
    )
    store.create(export)
    try:
        queue.send([ExportJob(export_id=export.id)])
    except Exception as error:
        store.fail(export.id, f"Could not queue the export: {error}", _now())
        raise
    logger.info("Export queued", extra={"export_id": export.id, "format": request.format, "tier": tier})
    return status_of(export, now, files=files)


def status_of(export: Export, now: datetime | None = None, *, files: ExportFiles) -> ExportStatus:
    """What the API shows of an export; a done export gets a fresh presigned download link."""
    now = now or _now()
    download: dict[str, Any] = {}
    if export.state == "done" and export.object_key:
        download = {
            "download_url": files.download_url(export.object_key, DOWNLOAD_URL_SECONDS),
            "download_expires_at": now + timedelta(seconds=DOWNLOAD_URL_SECONDS),
        }
    return ExportStatus(
        id=export.id,
        state=export.state,
        format=export.request.format,
        tier=export.tier,
        request=export.request,
        created_at=export.created_at,
        started_at=export.started_at,
        finished_at=export.finished_at,
        attempts=export.attempts,
        records=export.records,
        bytes=export.bytes,
        error=export.error,
        expires_at=datetime.fromtimestamp(export.expires_at, UTC),
        **download,
    )


def get_export(export_id: str, now: datetime | None = None, *, store: ExportStore, files: ExportFiles) -> ExportStatus:
    now = now or _now()
    export = store.get(export_id)
    # DynamoDB deletes expired items up to days late: an expired one is gone already, as far as clients know.
    if export is None or export.expires_at <= now.timestamp():
        raise NotFoundError(f"No export {export_id!r}; exports are kept {EXPORT_RETENTION_DAYS} days.")
    return status_of(export, now, files=files)


def _pages(
    query: LogQuery, remaining_seconds: Callable[[], float], records: RecordStore
) -> Iterator[list[dict[str, Any]]]:
    """Every record of a query, a page at a time, each page resuming after the previous one's last sort key."""
    after: str | None = None
    while True:
        _check_time(remaining_seconds)
        listed, page = logs.read_page(query, PAGE_SIZE, after, records=records)
        yield listed
        if page.last_key is None:
            return
        if page.last_key == after:
            raise RuntimeError(f"Reading the export's records made no progress after sort key {after!r}")
        after = page.last_key


def _check_time(remaining_seconds: Callable[[], float]) -> None:
    if remaining_seconds() < TIME_RESERVE_SECONDS:
        raise ExportOutOfTimeError(
            "The export has more records than one run can read (15 minutes); split it into shorter ranges."
        )


def _line_fields(line: dict[str, Any]) -> dict[str, Any]:
    """An archive line as the filters see a table item: the extracted fields items copy to their top level, too."""
    extracted = line.get("extracted") or {}
    return line | {name: extracted.get(name) for name in FILTERED_FIELDS}


def _archived_public(line: dict[str, Any]) -> dict[str, Any]:
    """An archive line as an export writes a record: the fields and API id a hot export gives it."""
    return line | {
        "timestamp": timestamp_json(line["timestamp"]),
        "id": f"{line['timestamp']}{logs.ID_SEPARATOR}{line['record_id']}",
    }


def _archive_pages(
    export: Export, remaining_seconds: Callable[[], float], archive: RecordArchiveReader
) -> Iterator[list[dict[str, Any]]]:
    """Every record of an export's query from the record archive, a UTC day at a time (in the query's order): each
    day's objects of the vendors asked for, the lines in the range passing the filters, one per record (a record
    can be in several objects), in time and record id order."""
    request, created = export.request, export.created_at
    scope, filters = _scope_and_filters(request)
    query = _plan(request, created)  # resolved range; a site's records are matched by the site_id their lines hold
    start = query.start or created - timedelta(days=get_settings().archive_retention_days)
    low = timestamp_key(start)
    high = timestamp_key(query.end) if query.end else None
    wanted = logs.record_filter(scope, filters)
    vendors = (filters.vendor,) if filters.vendor else VENDORS
    for day in logs.utc_days(start, query.end or max(created, _now()), filters.order):
        found: dict[tuple[str, str, str], dict[str, Any]] = {}
        for vendor in vendors:
            for line in archive.day_lines(vendor, day):
                _check_time(remaining_seconds)
                moment = str(line["timestamp"])
                if moment < low or (high is not None and moment > high):
                    continue
                if wanted is None or matches(wanted, _line_fields(line)):
                    found[(moment, str(line["record_id"]), str(line["charger_id"]))] = line
        ordered = [found[key] for key in sorted(found, reverse=filters.order == "desc")]
        for begin in range(0, len(ordered), PAGE_SIZE):
            yield [_archived_public(line) for line in ordered[begin : begin + PAGE_SIZE]]


def _write_file(
    export: Export,
    path: Path,
    remaining_seconds: Callable[[], float],
    records: RecordStore,
    archive: RecordArchiveReader,
) -> int:
    """Write every record of the export's query to ``path``, page by page, from its tier; returns how many."""
    request = export.request
    if export.tier == "archive":
        pages = _archive_pages(export, remaining_seconds, archive)
    else:
        query = _plan(request, export.created_at, records)  # its own creation time: a retry exports the same range
        pages = _pages(query, remaining_seconds, records)
    written = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        if request.format == "csv":
            out.write(records_csv((), header=True))
        for page in pages:
            entries = [LogEntry.model_validate(record) for record in page]
            out.write(records_csv(entries, header=False) if request.format == "csv" else records_ndjson(entries))
            written += len(entries)
    return written


def run_export(
    export_id: str,
    remaining_seconds: Callable[[], float],
    *,
    store: ExportStore,
    files: ExportFiles,
    records: RecordStore,
    archive: RecordArchiveReader,
) -> Export | None:
    """Run one export to the end: done, or failed with the reason. None when there was nothing to run: the
    export is done already (a redelivered message) or gone.

    An error retrying may cure (S3 or DynamoDB failing) is recorded and raised again, so SQS redelivers the
    message; an export too large for one run, or whose query no longer holds, is recorded as failed and not
    retried.
    """
    export = store.get(export_id)
    if export is None:
        logger.warning("Export not found: expired, or never stored", extra={"export_id": export_id})
        return None
    running = store.start(export_id, _now()) if export.state != "done" else None
    if running is None:  # done already (now or in the meantime, by another delivery of the message)
        logger.info("Export already done; a redelivered message is ignored", extra={"export_id": export_id})
        return None
    started = time.monotonic()
    fmt = running.request.format
    key = ExportFiles.key(export_id, fmt)
    try:
        with tempfile.TemporaryDirectory(prefix="chargelog-export-") as directory:
            path = Path(directory) / f"chargelog-export-{export_id}.{fmt}"
            written = _write_file(running, path, remaining_seconds, records, archive)
            size = path.stat().st_size
            files.upload(path, key, CONTENT_TYPES[fmt], path.name)
    except (ExportOutOfTimeError, InvalidQueryError) as error:
        logger.warning("Export failed; retrying cannot help", extra={"error": str(error)})
        return store.fail(export_id, str(error), _now())
    except Exception as error:
        logger.exception("Export failed; SQS will redeliver it")
        store.fail(export_id, f"{type(error).__name__}: {error}", _now())
        raise
    done = store.finish(export_id, key, written, size, _now())
    logger.info(
        "Export done",
        extra={
            "records": written,
            "bytes": size,
            "seconds": round(time.monotonic() - started, 3),
            "format": fmt,
            "tier": running.tier,
        },
    )
    return done or store.get(export_id)
