"""ChargePilot (The Mobility House): ``GET /ocpp-logs/site/{id}``.

A source is a *site*: its log holds the OCPP messages of all its chargers, each entry naming its
``charger_id`` and ``connector_id``. ``from``/``to`` (ISO 8601) are required, ``sort_order=asc`` sorts by
``occurrence_time``, ``take`` (at most 1000) and ``skip`` page, ``actions`` filters (comma-separated), and
``count`` in the body is the total for the filter.

Every request is signed (not Bearer): ``x-api-key``, ``x-req-timestamp`` (Unix seconds) and ``x-signature`` =
hex(HMAC-SHA256(key = hex(SHA-256(api secret)), message = ``METHOD:PATH_WITH_QUERY:TIMESTAMP:BODY``)), the
path including the base URL's ``/rest/v1`` prefix and BODY empty for a GET. `ChargepilotSignature` signs
each attempt afresh, so a retried request carries a new timestamp.

The vendor gives its entries no id: the record id is `record_id_for` over the entry's time, charger,
connector, action and payload (the site is the source). An entry is one OCPP exchange: ``payload`` is the
request's, with the extracted request, response and meter fields beside it; they stay in ``raw``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Generator, Iterator
from datetime import timedelta
from typing import Annotated, Any, Final
from urllib.parse import quote

import httpx
from pydantic import (
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

from chargelog import collectors
from chargelog.collectors.base import DiscoveredSource, HttpAdapter, Page, VendorConnection, VendorProfile, Window
from chargelog.collectors.paging import OffsetPaginator
from chargelog.collectors.vendor_http import (
    VendorHttpClient,
    describe_validation_error,
    iso_utc,
    limiter_for,
    parsed_body,
)
from chargelog.models.base import Model
from chargelog.models.records import Direction, LogRecord, connector_id_from, record_id_for

VENDOR: Final = "chargepilot"
MAX_TAKE = 1000
PROFILE = VendorProfile(
    lookback=timedelta(minutes=30),
    settle_delay=timedelta(seconds=30),
    # ChargePilot's docs name no rate limit: 5 a second per worker (rate_limit_requests in the secret sets one).
    requests_per_second=5.0,
    burst=5,
    page_size=MAX_TAKE,
)
# OCPP 1.6 (and its security extension) actions the central system sends; the others in the vendor's list,
# but DataTransfer (either side), the charge point sends.
CSMS_INITIATED: Final = frozenset(
    {
        "CancelReservation",
        "CertificateSigned",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetInstalledCertificateIds",
        "GetLocalListVersion",
        "GetLog",
        "InstallCertificate",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "SignedUpdateFirmware",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
    }
)
EITHER_SIDE: Final = frozenset({"DataTransfer"})


def signing_key(api_secret: str) -> bytes:
    """The HMAC key: the hex SHA-256 digest of the API secret (its 64 hex characters, as bytes)."""
    return hashlib.sha256(api_secret.encode()).hexdigest().encode()


def signature(api_secret: str, method: str, path_with_query: str, timestamp: str, body: str = "") -> str:
    """``x-signature``: hex(HMAC-SHA256(signing_key(secret), ``METHOD:PATH_WITH_QUERY:TIMESTAMP:BODY``))."""
    message = f"{method.upper()}:{path_with_query}:{timestamp}:{body}"
    return hmac.new(signing_key(api_secret), message.encode(), hashlib.sha256).hexdigest()


class ChargepilotSignature(httpx.Auth):
    """Signs every request (and every retry of it) with the API key and secret."""

    def __init__(self, api_key: str, api_secret: str, clock: Callable[[], float] = time.time) -> None:
        self._api_key = api_key
        self._api_secret = api_secret
        self._clock = clock

    def __repr__(self) -> str:
        return "ChargepilotSignature(api_key=***, api_secret=***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        timestamp = str(int(self._clock()))
        path_with_query = request.url.raw_path.decode("ascii")
        body = request.content.decode()
        request.headers["x-api-key"] = self._api_key
        request.headers["x-req-timestamp"] = timestamp
        request.headers["x-signature"] = signature(self._api_secret, request.method, path_with_query, timestamp, body)
        yield request


def _iso_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("occurrence_time must be an ISO 8601 string")
    return value


class _LogPage(Model):
    model_config = ConfigDict(extra="allow")

    ocpp_logs: list[Any]
    count: StrictInt = Field(ge=0)


class _SiteItem(Model):
    model_config = ConfigDict(extra="allow")

    id: StrictStr | StrictInt
    name: StrictStr | None = None


class _LogItem(Model):
    model_config = ConfigDict(extra="allow")

    occurrence_time: Annotated[AwareDatetime, BeforeValidator(_iso_text)]
    action: StrictStr | None = None
    payload: dict[str, Any] | None = None
    site_id: StrictStr | None = None
    charger_id: StrictStr = Field(min_length=1)
    connector_id: StrictInt | None = Field(default=None, ge=0)


_SiteList = TypeAdapter(list[_SiteItem])


def direction_of(action: str | None) -> Direction | None:
    """Who sent the request an entry logs: the central system's actions, DataTransfer (either) or the charger."""
    if action is None or action in EITHER_SIDE:
        return None
    return "csms_to_cp" if action in CSMS_INITIATED else "cp_to_csms"


class ChargepilotAdapter(HttpAdapter):
    def __init__(
        self,
        connection: VendorConnection,
        remaining_seconds: Callable[[], float],
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.connection = connection
        profile = connection.profile
        self._page_size = min(MAX_TAKE, max(1, profile.page_size))
        credentials = connection.credentials
        self._http = VendorHttpClient(
            VENDOR,
            connection.base_url,
            headers={"Accept": "application/json"},
            auth=ChargepilotSignature(credentials.get("api_key", ""), credentials.get("api_secret", "")),
            rate_limiter=limiter_for(VENDOR, *connection.pacing()),
            remaining_seconds=remaining_seconds,
            transport=transport,
        )

    def fetch_page(self, source_id: str, window: Window, cursor: str | None, action: str | None = None) -> Page:
        pages = OffsetPaginator(self._page_size, offset_param="skip", limit_param="take").resume(cursor)
        path = f"/ocpp-logs/site/{quote(source_id, safe='')}"
        params: dict[str, Any] = {"from": iso_utc(window.start), "to": iso_utc(window.end), "sort_order": "asc"}
        params |= pages.params()
        if action:
            params["actions"] = action
        body, _ = self._http.get_json(path, params)
        page = parsed_body(VENDOR, path, body, _LogPage.model_validate)
        pages.advance(len(page.ocpp_logs), page.count)
        return Page(
            items=page.ocpp_logs,
            body=body,
            request={"path": path, "params": params},
            next_cursor=pages.cursor,
            items_at="/ocpp_logs",
            total=page.count,
        )

    def discover(self) -> Iterator[DiscoveredSource]:
        """``GET /sites`` (signed): the API key's sites, one bare array, unpaged."""
        path = "/sites"
        body, _ = self._http.get_json(path)
        sites = parsed_body(VENDOR, path, body, _SiteList.validate_python)
        for site in sites:
            yield DiscoveredSource(source_id=str(site.id), kind="site", name=site.name)

    @staticmethod
    def normalize(source_id: str, item: Any) -> LogRecord:
        """Pure: no HTTP and no adapter state, so a replay re-normalizes archived pages with it."""
        try:
            entry = _LogItem.model_validate(item)
        except ValidationError as error:
            raise ValueError(f"not a ChargePilot OCPP log entry: {describe_validation_error(error)}") from error
        if entry.site_id is not None and entry.site_id != source_id:
            raise ValueError(f"entry of site {entry.site_id!r} in the log of site {source_id!r}")
        connector_id = entry.connector_id if entry.connector_id is not None else connector_id_from(entry.payload)
        return LogRecord(
            vendor=VENDOR,
            source_id=source_id,
            charger_id=entry.charger_id,
            site_id=source_id,
            connector_id=connector_id,
            timestamp=entry.occurrence_time,
            kind="ocpp",
            action=entry.action,
            direction=direction_of(entry.action),
            message_type="CALL" if entry.payload is not None else None,
            payload=entry.payload,
            record_id=record_id_for(
                VENDOR,
                source_id,
                None,
                occurrence_time=entry.occurrence_time,
                charger_id=entry.charger_id,
                connector_id=entry.connector_id,
                action=entry.action,
                payload=entry.payload,
            ),
            raw=item,
        )


collectors.register(
    VENDOR,
    PROFILE,
    ChargepilotAdapter,
    required_credentials=("api_key", "api_secret"),
    normalizer=ChargepilotAdapter.normalize,
)
