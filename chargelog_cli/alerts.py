"""`chargelog alerts` and `chargelog health CHARGER`: charger health from the API.

`alerts` lists the alerts (`GET /alerts`), newest opened first, following cursors up to --limit:

    OPENED (UTC)      KIND               CHARGER  CONN  SUMMARY                               STATE
    2026-11-20 08:50  boot_loop          CP-1           3 boots in 12 min                     open
    2026-11-20 08:30  connector_faulted  CP-1     2     Faulted (GroundFailure) for 6 min     resolved 2026-11-20 09:02

`health` shows one charger (`GET /chargers/{id}/health`): its last record and how long ago, its heartbeat interval,
each connector's status and since when, and its open alerts. Exit status, for scripts: ``OPEN_ALERTS_EXIT`` (3) when
the charger has open alerts, 0 when it has none; 1 when the API cannot be reached or answers an error (an unknown
charger is a 404); 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from chargelog.models.alerts import ALERT_KINDS
from chargelog.vendors import VENDORS
from chargelog_cli.collectors import duration_in_words
from chargelog_cli.logs import MAX_PAGE_SIZE, _positive, parse_aware_time

if TYPE_CHECKING:
    from chargelog_cli.client import ChargelogClient

OPEN_ALERTS_EXIT = 3
DEFAULT_LIMIT = 100
STATES = ("open", "resolved", "all")
_AGO = re.compile(r"(\d+)\s*(m|min|h|d|w)")
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# The widest a table column grows; longer values are cut with "…".
COLUMN_LIMITS = {"CHARGER": 24, "SUMMARY": 60}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A time ago (``30m``, ``24h``, ``7d``, ``2w``) or an ISO 8601 time with offset."""
    match = _AGO.fullmatch(text.strip())
    if match:
        amount, unit = match.groups()
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        return parse_aware_time(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a time ago (30m, 24h, 7d, 2w) nor an ISO 8601 time with offset "
            "(e.g. 2026-11-20T08:00:00Z)"
        ) from None


def add_arguments(commands: Any) -> list[argparse.ArgumentParser]:
    """The `alerts` and `health` commands; returns their parsers (each needs the API options)."""
    alerts: argparse.ArgumentParser = commands.add_parser(
        "alerts",
        help="list alerts on misbehaving chargers, newest first",
        description="List the alerts chargelog opened on misbehaving chargers (GET /alerts), newest opened first. "
        "Examples: `chargelog alerts`, `chargelog alerts --state all --charger CP-0001 --since 7d`.",
    )
    alerts.add_argument("--state", choices=STATES, default="open", help="which alerts (default open)")
    alerts.add_argument("--charger", metavar="ID", help="only this charger's alerts")
    alerts.add_argument("--site", metavar="ID", help="only the alerts of this site's chargers")
    alerts.add_argument("--vendor", choices=VENDORS, help="only alerts on this vendor's records")
    alerts.add_argument("--kind", choices=ALERT_KINDS, help="only this kind of alert (docs/health.md)")
    alerts.add_argument(
        "--since",
        type=parse_since,
        metavar="WHEN",
        help="only alerts opened since then: a time ago (30m, 24h, 7d) or an ISO 8601 time with offset",
    )
    alerts.add_argument(
        "--limit",
        type=_positive,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N alerts (default {DEFAULT_LIMIT})",
    )
    alerts.add_argument("--json", action="store_true", help="print the alerts as one JSON array")
    health: argparse.ArgumentParser = commands.add_parser(
        "health",
        help="show a charger's health: last record, connectors, open alerts",
        description="Show a charger's health (GET /chargers/{id}/health): its last record and how long ago, its "
        "heartbeat interval, each connector's status and since when, and its open alerts. Exits "
        f"{OPEN_ALERTS_EXIT} when the charger has open alerts, 0 when it has none (1 when the API answers an "
        "error, e.g. an unknown charger). Example: `chargelog health CP-0001`.",
    )
    health.add_argument("charger", metavar="CHARGER", help="the charger (or EVSE) id")
    health.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    return [alerts, health]


# ---------------------------------------------------------------------------------------------- chargelog alerts


def _alert_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.state != "all":
        params["state"] = args.state
    for option, name in (("charger", "charger_id"), ("site", "site_id"), ("vendor", "vendor"), ("kind", "kind")):
        if getattr(args, option):
            params[name] = getattr(args, option)
    if args.since:
        params["from"] = args.since.isoformat()
    return params


def fetch_alerts(client: ChargelogClient, args: argparse.Namespace) -> tuple[list[dict[str, Any]], bool]:
    """The alerts, up to --limit, following the cursor; and whether more are left."""
    params = _alert_params(args)
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        size = min(MAX_PAGE_SIZE, args.limit - len(found))
        query = params | {"limit": size} | ({"cursor": cursor} if cursor else {})
        body = client.send("GET", "/alerts", params=query).json()
        found += body["alerts"]
        cursor = body.get("next_cursor")
        if not cursor:
            return found, False
        if len(found) >= args.limit:
            return found, True


def _clock(value: str | None) -> str:
    """An API time as "2026-11-20 14:05" (UTC: the API answers in UTC)."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _state(alert: dict[str, Any]) -> str:
    if alert["state"] == "resolved":
        return f"resolved {_clock(alert.get('resolved_at'))}".rstrip()
    return str(alert["state"])


def alert_rows(alerts: list[dict[str, Any]]) -> list[str]:
    """Aligned lines, a header first."""
    columns = ("OPENED (UTC)", "KIND", "CHARGER", "CONN", "SUMMARY", "STATE")
    rows = [
        (
            _clock(alert.get("opened_at")),
            str(alert["kind"]),
            str(alert["charger_id"]),
            "" if alert.get("connector_id") is None else str(alert["connector_id"]),
            " ".join(str(alert.get("summary") or "").split()),
            _state(alert),
        )
        for alert in alerts
    ]
    widths = [
        max(len(name), *(min(len(row[n]), COLUMN_LIMITS.get(name, 1_000)) for row in rows))
        for n, name in enumerate(columns)
    ]

    def line(cells: tuple[str, ...]) -> str:
        parts = []
        for cell, width in zip(cells[:-1], widths, strict=False):
            parts.append((cell[: width - 1] + "…" if len(cell) > width else cell).ljust(width))
        return "  ".join([*parts, cells[-1]]).rstrip()

    return [line(columns), *(line(row) for row in rows)]


def run_alerts(client: ChargelogClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    alerts, more = fetch_alerts(client, args)
    if args.json:
        out.write(json.dumps(alerts, ensure_ascii=False, indent=2) + "\n")
    elif not alerts:
        which = "" if args.state == "all" else f"{args.state} "
        out.write(f"No {which}alerts.\n")
    else:
        out.writelines(line + "\n" for line in alert_rows(alerts))
    if more:
        err.write(f"More alerts than --limit {args.limit}: raise it, or narrow the query.\n")
    return 0


# ---------------------------------------------------------------------------------------------- chargelog health


def _ago(value: str, now: datetime) -> str:
    return duration_in_words((now - datetime.fromisoformat(value)).total_seconds())


def describe_health(health: dict[str, Any], now: datetime) -> list[str]:
    """A charger's health in lines, as `chargelog health` prints it."""
    source = " ".join(str(health[name]) for name in ("vendor", "source_id") if health.get(name))
    if health.get("site_id"):
        source += f", site {health['site_id']}"
    lines = [f"{health['charger_id']}" + (f" ({source})" if source else "")]
    last = health.get("last_record_at")
    lines.append(f"Last record: {_clock(last)} UTC ({_ago(last, now)} ago)" if last else "Last record: none")
    interval = health.get("heartbeat_interval_seconds")
    lines.append(f"Heartbeat interval: {interval} s" if interval is not None else "Heartbeat interval: unknown")
    connectors = health.get("connectors") or []
    if connectors:
        lines.append("Connectors:")
        for connector in connectors:
            error = connector.get("error_code")
            status = str(connector["status"]) + (f" ({error})" if error and error != "NoError" else "")
            since = connector["since"]
            lines.append(f"  {connector['connector_id']}  {status} since {_clock(since)} UTC (for {_ago(since, now)})")
    else:
        lines.append("Connectors: no status reported yet")
    alerts = health.get("open_alerts") or []
    if alerts:
        lines.append(f"Open alerts: {len(alerts)}")
        lines.extend("  " + line for line in alert_rows(alerts))
    else:
        lines.append("Open alerts: none")
    return lines


def run_health(client: ChargelogClient, args: argparse.Namespace, out: TextIO) -> int:
    health = client.request("GET", f"/chargers/{quote(args.charger, safe='')}/health")
    code = OPEN_ALERTS_EXIT if health.get("open_alerts") else 0
    if args.json:
        out.write(json.dumps(health, ensure_ascii=False, indent=2) + "\n")
        return code
    out.writelines(line + "\n" for line in describe_health(health, datetime.now(UTC)))
    return code
