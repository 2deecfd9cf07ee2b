"""Diagnostics requests: issue an upload address for a charger's log file, and follow what became of it.

``create_request`` (POST /diagnostics/requests) makes the request id, derives its secret from the upload token key
(`derive_secret`), builds the upload address (``remote_location``), takes the charger's next OCPP request id, stores
the request (only the secret's SHA-256, not the address) and returns the GetLog (2.0.1) and GetDiagnostics (1.6)
payloads that send the address. ``get_request`` rebuilds the address the same way (a request stored before kept
its address: that one is shown). ``get_request`` and
``list_requests`` report each request's state, merged from what the upload path recorded (attempts, files, rejected
uploads) and what the charger itself reported in the collected logs:

- ``uploaded``: a file was recorded;
- ``failed``: no file, and the charger's latest LogStatusNotification (2.0.1, same ``requestId``) or
  DiagnosticsStatusNotification (1.6, which carries no request id: any between the request and an hour after its
  expiry) reports a failure, or the last upload was rejected (malformed, empty) and nothing was tried since;
- ``uploading``: an upload was let through, or the charger reported Uploading / Uploaded;
- ``expired``: the address expired with none of the above;
- ``requested``: otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from chargelog.dal.diagnostics import DiagnosticsFiles, DiagnosticsStore
from chargelog.dal.secrets import Secret
from chargelog.errors import ChargelogError, NotFoundError
from chargelog.logic.cursors import decode_cursor, encode_cursor, query_digest
from chargelog.models.diagnostics import (
    MAX_REMOTE_LOCATION_LENGTH,
    REQUEST_ID_PATTERN,
    DiagnosticsFile,
    DiagnosticsFileView,
    DiagnosticsRequest,
    DiagnosticsRequestDetail,
    DiagnosticsRequestList,
    DiagnosticsRequestSummary,
    NewDiagnosticsRequest,
    RequestState,
    StatusNotification,
    derive_secret,
    format_token,
    new_request_id,
    remote_location,
    secret_matches,
    secret_sha256,
)
from chargelog.models.extracted import extract_fields
from chargelog.observability import logger
from chargelog.settings import get_settings

DOWNLOAD_URL_SECONDS: Final = 15 * 60
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 100
LOG_STATUS: Final = "LogStatusNotification"
DIAGNOSTICS_STATUS: Final = "DiagnosticsStatusNotification"
FAILURE_STATUSES: Final = frozenset(
    {"BadMessage", "NotSupportedOperation", "PermissionDenied", "UploadFailure", "UploadFailed"}
)
PROGRESS_STATUSES: Final = frozenset({"Uploading", "Uploaded"})
# Status notifications read per action and page: a charger sends a handful per request.
MAX_NOTIFICATIONS: Final = 1000
# A charger reports a failed upload after its last try, which may come just after the address expired.
REPORT_GRACE: Final = timedelta(hours=1)


class InvalidDiagnosticsRequestError(ChargelogError):
    status = 400
    title = "Bad Request"


class UploadsNotConfiguredError(ChargelogError):
    status = 503
    title = "Service Unavailable"


def _now() -> datetime:
    return datetime.now(UTC)


def _ocpp_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def getlog_payload(request: DiagnosticsRequest, location: str) -> dict[str, Any]:
    """The OCPP 2.0.1 GetLog request that sends the request's upload address."""
    log: dict[str, Any] = {"remoteLocation": location}
    if request.oldest_timestamp:
        log["oldestTimestamp"] = _ocpp_time(request.oldest_timestamp)
    if request.latest_timestamp:
        log["latestTimestamp"] = _ocpp_time(request.latest_timestamp)
    payload: dict[str, Any] = {"logType": request.log_type, "requestId": request.ocpp_request_id, "log": log}
    if request.retries is not None:
        payload["retries"] = request.retries
    if request.retry_interval is not None:
        payload["retryInterval"] = request.retry_interval
    return payload


def getdiagnostics_payload(request: DiagnosticsRequest, location: str) -> dict[str, Any]:
    """The OCPP 1.6 GetDiagnostics request that sends the request's upload address."""
    payload: dict[str, Any] = {"location": location}
    if request.retries is not None:
        payload["retries"] = request.retries
    if request.retry_interval is not None:
        payload["retryInterval"] = request.retry_interval
    if request.oldest_timestamp:
        payload["startTime"] = _ocpp_time(request.oldest_timestamp)
    if request.latest_timestamp:
        payload["stopTime"] = _ocpp_time(request.latest_timestamp)
    return payload


# ---------------------------------------------------------------------------------------------- lifecycle


@dataclass(frozen=True)
class _Window:
    start: datetime
    end: datetime


def _notifications(store: DiagnosticsStore, charger_id: str, window: _Window) -> list[StatusNotification]:
    """The charger's status notifications of either version in a time window, oldest first."""
    found: list[StatusNotification] = []
    for action in (LOG_STATUS, DIAGNOSTICS_STATUS):
        for record in store.charger_action_records(
            charger_id, action, window.start, window.end, max_items=MAX_NOTIFICATIONS
        ):
            if record.get("direction") == "csms_to_cp":
                continue  # the CSMS's answer logged under the action: not the charger's report
            # The normalizer reads either payload spelling (camelCase, or OCPPLAB's snake_case), also for records
            # stored before `extracted` was.
            fields = extract_fields(action, record.get("message_type"), record.get("payload"), None)
            if fields.diagnostics_status is None:
                continue  # a CALLRESULT logged under the action carries no status
            found.append(
                StatusNotification(
                    timestamp=record["timestamp"],
                    action=action,
                    status=fields.diagnostics_status,
                    ocpp_request_id=fields.log_request_id,
                )
            )
    return sorted(found, key=lambda notification: notification.timestamp)


def _window_of(requests: list[DiagnosticsRequest], now: datetime) -> _Window | None:
    if not requests:
        return None
    start = min(request.requested_at for request in requests)
    end = min(now, max(request.upload_expires_at for request in requests) + REPORT_GRACE)
    return _Window(start, end) if start <= end else None


def notifications_for(request: DiagnosticsRequest, notifications: list[StatusNotification]) -> list[StatusNotification]:
    """Those about this request: a LogStatusNotification with its requestId, or a DiagnosticsStatusNotification
    (which names no request), sent between the request and an hour after its expiry."""
    return [
        notification
        for notification in notifications
        if request.requested_at <= notification.timestamp <= request.upload_expires_at + REPORT_GRACE
        and (notification.action != LOG_STATUS or notification.ocpp_request_id == request.ocpp_request_id)
    ]


def state_of(
    request: DiagnosticsRequest, has_file: bool, notifications: list[StatusNotification], now: datetime
) -> RequestState:
    """The request's state (see the module's docstring); ``notifications`` are this request's, oldest first."""
    if has_file:
        return "uploaded"
    latest = notifications[-1].status if notifications else None
    rejected = request.last_upload_error is not None and (
        request.last_attempt_at is None
        or request.last_upload_error_at is None
        or request.last_upload_error_at >= request.last_attempt_at
    )
    if latest in FAILURE_STATUSES or rejected:
        return "failed"
    if request.upload_attempts > 0 or latest in PROGRESS_STATUSES:
        return "uploading"
    if now >= request.upload_expires_at:
        return "expired"
    return "requested"


def _summary_fields(request: DiagnosticsRequest, state: RequestState) -> dict[str, Any]:
    fields = request.model_dump(
        include=set(DiagnosticsRequestSummary.model_fields) - {"state"},
    )
    return fields | {"state": state}


def _file_view(file: DiagnosticsFile, now: datetime, downloads: DiagnosticsFiles) -> DiagnosticsFileView:
    kept_until = file.received_at + timedelta(days=get_settings().diagnostics_retention_days)
    download: dict[str, Any] = {"download_url": None}
    if now < kept_until:
        download = {
            "download_url": downloads.download_url(file.key, file.filename, DOWNLOAD_URL_SECONDS),
            "download_expires_at": now + timedelta(seconds=DOWNLOAD_URL_SECONDS),
        }
    return DiagnosticsFileView(
        **file.model_dump(include=set(DiagnosticsFileView.model_fields)), kept_until=kept_until, **download
    )


def _upload_key(token_key: Secret) -> str:
    if not token_key.name:
        raise UploadsNotConfiguredError("Diagnostics uploads are not configured here (no upload token key).")
    return token_key.text()


def address_of(request: DiagnosticsRequest, token_key: Secret) -> str | None:
    """The request's upload address: the one it stored (requests made before secrets were derived), else rebuilt
    from the key; None if the key no longer gives the secret whose hash the request holds (the key was replaced),
    or uploads are not configured here."""
    if request.remote_location is not None:
        return request.remote_location
    base_url = get_settings().upload_base_url
    if not base_url or not token_key.name:
        return None
    secret = derive_secret(token_key.text(), request.request_id)
    if not secret_matches(secret, request.secret_sha256):
        return None
    return remote_location(base_url, request.charger_id, format_token(request.request_id, secret))


def _detail(
    request: DiagnosticsRequest,
    location: str | None,
    files: list[DiagnosticsFile],
    notifications: list[StatusNotification],
    now: datetime,
    downloads: DiagnosticsFiles,
) -> DiagnosticsRequestDetail:
    state = state_of(request, bool(files), notifications, now)
    return DiagnosticsRequestDetail(
        **_summary_fields(request, state),
        remote_location=location,
        getlog=getlog_payload(request, location) if location else None,
        getdiagnostics=getdiagnostics_payload(request, location) if location else None,
        files=[_file_view(file, now, downloads) for file in files],
        status_notifications=notifications,
    )


# ---------------------------------------------------------------------------------------------- operations


def create_request(
    body: NewDiagnosticsRequest,
    now: datetime | None = None,
    *,
    store: DiagnosticsStore,
    files: DiagnosticsFiles,
    token_key: Secret,
) -> DiagnosticsRequestDetail:
    """Issue an upload address for a charger's log; InvalidDiagnosticsRequestError for a request that cannot be."""
    now = now or _now()
    if not body.charger_id.strip("."):
        raise InvalidDiagnosticsRequestError("A charger id of dots only cannot be a path segment of an upload address.")
    if body.oldest_timestamp and body.latest_timestamp and body.oldest_timestamp > body.latest_timestamp:
        raise InvalidDiagnosticsRequestError("oldest_timestamp is after latest_timestamp.")
    base_url = get_settings().upload_base_url
    if not base_url:
        raise UploadsNotConfiguredError("Diagnostics uploads are not configured here (no upload base URL).")
    request_id = new_request_id()
    secret = derive_secret(_upload_key(token_key), request_id)
    location = remote_location(base_url, body.charger_id, format_token(request_id, secret))
    if len(location) > MAX_REMOTE_LOCATION_LENGTH:
        raise InvalidDiagnosticsRequestError(
            f"The upload address for this charger id would be {len(location)} characters; OCPP allows "
            f"{MAX_REMOTE_LOCATION_LENGTH}. Use the charger's shorter OCPP identity."
        )
    request = DiagnosticsRequest(
        request_id=request_id,
        charger_id=body.charger_id,
        log_type=body.log_type,
        ocpp_request_id=store.next_ocpp_request_id(body.charger_id),
        oldest_timestamp=body.oldest_timestamp,
        latest_timestamp=body.latest_timestamp,
        retries=body.retries,
        retry_interval=body.retry_interval,
        requested_at=now,
        upload_expires_at=now + timedelta(minutes=body.expires_in_minutes),
        secret_sha256=secret_sha256(secret),
    )
    store.put_request(request)
    # Never the address or the secret: the token in it lets anyone upload.
    logger.info(
        "Diagnostics requested",
        extra={
            "request_id": request_id,
            "charger_id": body.charger_id,
            "log_type": body.log_type,
            "ocpp_request_id": request.ocpp_request_id,
        },
    )
    return _detail(request, location, [], [], now, files)


def get_request(
    request_id: str,
    now: datetime | None = None,
    *,
    store: DiagnosticsStore,
    files: DiagnosticsFiles,
    token_key: Secret,
) -> DiagnosticsRequestDetail:
    now = now or _now()
    request = store.get_request(request_id) if re.fullmatch(REQUEST_ID_PATTERN, request_id) else None
    if request is None:
        raise NotFoundError(f"No diagnostics request {request_id!r}.")
    window = _window_of([request], now)
    notifications = notifications_for(request, _notifications(store, request.charger_id, window)) if window else []
    location = address_of(request, token_key)
    return _detail(request, location, store.files_of(request_id), notifications, now, files)


def _list_digest(charger_id: str) -> str:
    return query_digest({"diagnostics": charger_id})


def list_requests(
    charger_id: str,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    now: datetime | None = None,
    *,
    store: DiagnosticsStore,
    cursor_secret: Secret,
) -> DiagnosticsRequestList:
    """A charger's requests, newest first, a page at a time; no upload addresses (they hold the tokens)."""
    now = now or _now()
    digest = _list_digest(charger_id)
    after = decode_cursor(cursor, digest, cursor_secret) if cursor else None
    requests, last = store.requests_of_charger(charger_id, limit=limit, after=after)
    window = _window_of(requests, now)
    notifications = _notifications(store, charger_id, window) if window else []
    summaries = [
        DiagnosticsRequestSummary(
            **_summary_fields(
                request, state_of(request, request.files_received > 0, notifications_for(request, notifications), now)
            )
        )
        for request in requests
    ]
    return DiagnosticsRequestList(
        requests=summaries, next_cursor=encode_cursor(last, digest, cursor_secret) if last else None
    )
