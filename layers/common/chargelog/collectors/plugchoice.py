"""Plugchoice API v3: ``GET /v3/chargers/{charger}/logs``; a source is one charger's UUID.

- Paging is Laravel's simple paginator (25 a page, no total): ``links.next`` (or the flat ``next_page_url``)
  until it is null. The cursor is the page number taken from that link; every request is built from the
  window again, so the Bearer token is only ever sent to the configured base URL.
- ``sort=created_at`` (ascending), ``filter[date_from]`` / ``filter[date_to]`` as ``Y-m-d H:i:s`` in UTC.
  The filter has second resolution: ``date_from`` is the window start rounded down to its second and
  ``date_to`` the second after the window end's second, so neither edge can lose a record whether the
  vendor compares inclusively or not and whatever precision its ``created_at`` has. Records just outside
  the window may be read as well; their ids make re-reads upserts.
- Why no record is lost without a total: with ascending ``created_at`` and page numbers, a record added
  while a client pages either lands after the page being read (read later) or before it, which shifts the
  later pages by one: the next page repeats a record already read (an upsert), it skips none. Records only
  vanish from a position if the vendor deletes logs, which it does not. (Plugchoice stamps ``created_at``
  when it stores a log, so new records fall after the window's end anyway: the window stops a settle delay
  before now.)
- ``params`` and ``result`` arrive as objects or as JSON strings (``"[]"`` being PHP's empty array); the
  vendor's numeric ``id`` is the record id. A log is created ``pending`` and updated to ``done`` or
  ``failed`` when the answer comes: the record is keyed on ``created_at`` and ``id``, which do not change,
  so the re-read record replaces the stored one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import quote

from pydantic import ConfigDict, StrictInt, StrictStr, ValidationError

from chargelog import collectors
from chargelog.collectors.base import (
    DiscoveredSource,
    HttpAdapter,
    Page,
    RateLimit,
    VendorConnection,
    VendorProfile,
    Window,
)
from chargelog.collectors.paging import NextUrlPaginator
from chargelog.collectors.vendor_http import (
    VendorHttpClient,
    VendorResponseError,
    describe_validation_error,
    limiter_for,
    parsed_body,
)
from chargelog.models.base import Model
from chargelog.models.records import LogRecord, connector_id_from, record_id_for

VENDOR: Final = "plugchoice"
PAGE_SIZE: Final = 25  # fixed by the vendor
FILTER_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
# 500 requests a minute per user (the vendor's docs), shared by the queue's concurrent workers: each paces at its share
# (VendorProfile.pacing; with the template's two workers about 3.9 a second, bursts of 4).
PROFILE = VendorProfile(
    lookback=timedelta(minutes=30),
    settle_delay=timedelta(seconds=30),
    requests_per_second=4.0,
    burst=4,
    page_size=PAGE_SIZE,
    rate_limit=RateLimit(500, timedelta(minutes=1)),
)
DIRECTIONS: Final[dict[str, Literal["cp_to_csms", "csms_to_cp"]]] = {
    "centralsystem": "cp_to_csms",
    "charger": "csms_to_cp",
}
_VERSION = re.compile(r"(\d+(?:\.\d+)+)")


class _Links(Model):
    model_config = ConfigDict(extra="allow")

    next: StrictStr | None = None


class _LogPage(Model):
    """Either form of Laravel's simple paginator: ``links.next`` or a flat ``next_page_url``."""

    model_config = ConfigDict(extra="allow")

    data: list[Any]
    links: _Links | None = None
    next_page_url: StrictStr | None = None

    def next_url(self) -> str | None:
        if self.links is not None:
            return self.links.next
        return self.next_page_url


class _ChargerItem(Model):
    """One charger of ``GET /v3/chargers``: its ``uuid`` addresses its logs."""

    model_config = ConfigDict(extra="allow")

    uuid: StrictStr
    id: StrictInt | None = None
    identity: StrictStr | None = None
    name: StrictStr | None = None


class _LogItem(Model):
    model_config = ConfigDict(extra="allow")

    id: StrictInt
    status: StrictStr
    version: StrictStr | None = None
    method: StrictStr
    destination: Literal["centralsystem", "charger"]
    params: Any = None
    result: Any = None
    created_at: datetime


def filter_time(moment: datetime) -> str:
    """A ``filter[date_*]`` value: ``Y-m-d H:i:s`` in UTC."""
    return moment.astimezone(UTC).strftime(FILTER_TIME_FORMAT)


def filter_bounds(window: Window) -> tuple[str, str]:
    """``filter[date_from]`` and ``filter[date_to]`` covering every instant of the window (see the module)."""
    start = window.start.astimezone(UTC).replace(microsecond=0)
    end = window.end.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    return filter_time(start), filter_time(end)


def ocpp_version_of(version: str | None) -> str | None:
    """``"1.6"`` from the vendor's ``version`` (``"1.6"``, ``"ocpp1.6"``, ``"OCPP 2.0.1"``...)."""
    match = _VERSION.search(version or "")
    return match.group(1) if match else None


def _json_object(value: Any, name: str) -> dict[str, Any] | None:
    """``params`` / ``result`` as an object: decoded when a JSON string, ``[]`` (PHP's empty array) as {}."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise ValueError(f"{name} is a string but not JSON: {error}") from error
    if value is None or isinstance(value, dict):
        return value
    if value == []:
        return {}
    raise ValueError(f"{name} is a {type(value).__name__}, not an object")


class PlugchoiceAdapter(HttpAdapter):
    def __init__(self, connection: VendorConnection, remaining_seconds: Callable[[], float]) -> None:
        self.connection = connection
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
        # httpx joins this to the base URL's path: ".../api" + "/v3/...".
        path = f"/v3/chargers/{quote(source_id, safe='')}/logs"
        pages = NextUrlPaginator(VENDOR, path).resume(cursor)
        date_from, date_to = filter_bounds(window)
        params: dict[str, Any] = {"sort": "created_at", "filter[date_from]": date_from, "filter[date_to]": date_to}
        params |= pages.params()
        if action:
            params["filter[method]"] = action
        page, body = self._get_page(path, params, pages)
        return Page(
            items=page.data,
            body=body,
            request={"path": path, "params": params},
            next_cursor=pages.cursor,
            items_at="/data",
            total=None,
        )

    def discover(self) -> Iterator[DiscoveredSource]:
        """``GET /v3/chargers``: the chargers the token can see, paged like the logs (``links.next``)."""
        path = "/v3/chargers"
        pages = NextUrlPaginator(VENDOR, path)
        while pages.has_next:
            page, _ = self._get_page(path, pages.params(), pages)
            for item in page.data:
                try:
                    charger = _ChargerItem.model_validate(item)
                except ValidationError as error:
                    raise VendorResponseError(
                        f"{VENDOR} GET {path} listed a charger without a uuid: {describe_validation_error(error)}"
                    ) from error
                details = {"identity": charger.identity} if charger.identity else {}
                if charger.id is not None:
                    details["plugchoice_id"] = str(charger.id)
                yield DiscoveredSource(
                    source_id=charger.uuid, kind="charger", name=charger.name or charger.identity, details=details
                )

    def _get_page(self, path: str, params: dict[str, Any], pages: NextUrlPaginator) -> tuple[_LogPage, Any]:
        """One page of a simple-paginated list and its body; ``pages`` moves on to the page it links to."""
        body, _ = self._http.get_json(path, params)
        page = parsed_body(VENDOR, path, body, _LogPage.model_validate)
        pages.advance(len(page.data), page.next_url())
        return page, body

    @staticmethod
    def normalize(source_id: str, item: Any) -> LogRecord:
        """Pure: no HTTP and no adapter state, so a replay re-normalizes archived pages with it."""
        try:
            entry = _LogItem.model_validate(item)
        except ValidationError as error:
            raise ValueError(f"not a Plugchoice log record: {describe_validation_error(error)}") from error
        payload = _json_object(entry.params, "params")
        result = _json_object(entry.result, "result")
        created_at = entry.created_at if entry.created_at.tzinfo else entry.created_at.replace(tzinfo=UTC)
        return LogRecord(
            vendor=VENDOR,
            source_id=source_id,
            charger_id=source_id,
            connector_id=connector_id_from(payload),
            # created_at, not updated_at: a pending log updated to done keeps its key.
            timestamp=created_at,
            kind="ocpp",
            action=entry.method or None,
            direction=DIRECTIONS[entry.destination],
            status=entry.status or None,
            payload=payload,
            result=result,
            ocpp_version=ocpp_version_of(entry.version),
            record_id=record_id_for(VENDOR, source_id, entry.id),
            raw=item,
        )


collectors.register(
    VENDOR, PROFILE, PlugchoiceAdapter, required_credentials=("token",), normalizer=PlugchoiceAdapter.normalize
)
