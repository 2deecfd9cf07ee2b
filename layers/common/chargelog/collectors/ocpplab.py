"""OCPPLAB Gateway: ``GET /ocpp/chargers/{charger_id}/logs``.

limit/offset paging (limit at most 1000), inclusive ``start_date``/``end_date``, an optional ``event``
(action) filter, ``total`` in the body, Bearer auth. Each record's ``message`` is the raw OCPP-J frame as
a JSON string; a source is one charger deployment id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, Final, Literal
from urllib.parse import quote

from pydantic import AwareDatetime, ConfigDict, StrictInt, StrictStr, ValidationError

from chargelog import collectors
from chargelog.collectors.base import DiscoveredSource, HttpAdapter, Page, VendorConnection, VendorProfile, Window
from chargelog.collectors.paging import OffsetPaginator, PageNumberPaginator
from chargelog.collectors.vendor_http import (
    VendorHttpClient,
    describe_validation_error,
    iso_utc,
    limiter_for,
    parsed_body,
)
from chargelog.models.base import Model
from chargelog.models.records import LogRecord, connector_id_from, record_id_for
from chargelog.ocpp_frames import MalformedFrameError, parse_frame

VENDOR: Final = "ocpplab"
MAX_LIMIT = 1000
CHARGERS_MAX_LIMIT = 100  # of the charger list (GET /ocpp/chargers)
PROFILE = VendorProfile(
    lookback=timedelta(minutes=30),
    settle_delay=timedelta(seconds=30),
    # OCPPLAB's docs name no rate limit: 5 a second per worker (rate_limit_requests in the secret sets one).
    requests_per_second=5.0,
    burst=5,
    page_size=MAX_LIMIT,
)
# Actions that exist in only one OCPP version tell which one a charger speaks.
_ONLY_16 = frozenset({"StartTransaction", "StopTransaction", "DiagnosticsStatusNotification", "GetDiagnostics"})
_ONLY_201 = frozenset({"TransactionEvent", "NotifyEvent", "LogStatusNotification", "GetLog", "NotifyReport"})


class _LogPage(Model):
    model_config = ConfigDict(extra="allow")

    data: list[Any]
    total: StrictInt
    limit: StrictInt
    offset: StrictInt


class _ChargerPage(Model):
    model_config = ConfigDict(extra="allow")

    data: list[Any]
    total: StrictInt | None = None


class _ChargerItem(Model):
    model_config = ConfigDict(extra="allow")

    id: StrictStr
    identity: StrictStr | None = None
    name: StrictStr | None = None


class _LogItem(Model):
    model_config = ConfigDict(extra="allow")

    direction: Literal["cp_to_csms", "csms_to_cp"]
    action: StrictStr | None = None
    message: StrictStr
    timestamp: AwareDatetime


def ocpp_version_of(action: str | None) -> str | None:
    if action in _ONLY_16:
        return "1.6"
    if action in _ONLY_201:
        return "2.0.1"
    return None


class OcpplabAdapter(HttpAdapter):
    def __init__(self, connection: VendorConnection, remaining_seconds: Callable[[], float]) -> None:
        self.connection = connection
        profile = connection.profile
        self._page_size = min(MAX_LIMIT, max(1, profile.page_size))
        self._http = VendorHttpClient(
            VENDOR,
            connection.base_url,
            headers={
                "Authorization": f"Bearer {connection.credentials.get('token', '')}",
                "Accept": "application/json",
            },
            rate_limiter=limiter_for(VENDOR, *connection.pacing()),
            remaining_seconds=remaining_seconds,
        )

    def fetch_page(self, source_id: str, window: Window, cursor: str | None, action: str | None = None) -> Page:
        pages = OffsetPaginator(self._page_size).resume(cursor)
        path = f"/ocpp/chargers/{quote(source_id, safe='')}/logs"
        params: dict[str, Any] = {"start_date": iso_utc(window.start), "end_date": iso_utc(window.end)}
        params |= pages.params()
        if action:
            params["event"] = action
        body, _ = self._http.get_json(path, params)
        page = parsed_body(VENDOR, path, body, _LogPage.model_validate)
        pages.advance(len(page.data), page.total)
        return Page(
            items=page.data,
            body=body,
            request={"path": path, "params": params},
            next_cursor=pages.cursor,
            items_at="/data",
            total=page.total,
        )

    def discover(self) -> Iterator[DiscoveredSource]:
        """``GET /ocpp/chargers?page=&limit=``: the tenant's chargers, 100 a page (the most it gives), pages
        from 1, until the pages hold ``total`` chargers, or a page comes back short or empty."""
        path = "/ocpp/chargers"
        pages = PageNumberPaginator(CHARGERS_MAX_LIMIT)
        while pages.has_next:
            body, _ = self._http.get_json(path, pages.params())
            page = parsed_body(VENDOR, path, body, _ChargerPage.model_validate)
            chargers = parsed_body(VENDOR, path, page.data, lambda data: [_ChargerItem.model_validate(i) for i in data])
            for charger in chargers:
                yield DiscoveredSource(
                    source_id=charger.id,
                    kind="charger",
                    name=charger.name or charger.identity,
                    details={"identity": charger.identity} if charger.identity else {},
                )
            pages.advance(len(chargers), total=page.total)

    @staticmethod
    def normalize(source_id: str, item: Any) -> LogRecord:
        """Pure: no HTTP and no adapter state, so a replay re-normalizes archived pages with it."""
        try:
            entry = _LogItem.model_validate(item)
        except ValidationError as error:
            raise ValueError(f"not an OCPPLAB log record: {describe_validation_error(error)}") from error
        try:
            frame = parse_frame(entry.message)
        except MalformedFrameError as error:
            raise ValueError(f"malformed OCPP-J frame in message: {error}") from error
        action = entry.action or frame.action
        fields: dict[str, Any] = {}
        if frame.message_type == "CALL":
            fields["payload"] = frame.payload
        elif frame.message_type == "CALLRESULT":
            fields["result"] = frame.payload
        else:
            fields["status"] = frame.error_code
            fields["result"] = {
                "errorCode": frame.error_code,
                "errorDescription": frame.error_description,
                "errorDetails": frame.error_details,
            }
        return LogRecord(
            vendor=VENDOR,
            source_id=source_id,
            charger_id=source_id,
            connector_id=connector_id_from(frame.payload),
            timestamp=entry.timestamp,
            kind="ocpp",
            action=action,
            direction=entry.direction,
            message_type=frame.message_type,
            message_id=frame.message_id,
            ocpp_version=ocpp_version_of(action),
            record_id=record_id_for(
                VENDOR, source_id, None, timestamp=entry.timestamp, direction=entry.direction, message=entry.message
            ),
            raw=item,
            **fields,
        )


collectors.register(
    VENDOR, PROFILE, OcpplabAdapter, required_credentials=("token",), normalizer=OcpplabAdapter.normalize
)
