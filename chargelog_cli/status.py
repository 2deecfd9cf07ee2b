"""`chargelog status CHARGER`: a charger's status timeline from the API (`GET /chargers/{id}/status`), page by page.

`table` (default) shows one line per status: time, vendor, connector and what it reports; `json` one JSON array.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from chargelog_cli.logs import MAX_PAGE_SIZE, _positive, parse_aware_time

if TYPE_CHECKING:
    from chargelog_cli.client import ChargelogClient


def add_arguments(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "status",
        help="print a charger's status timeline",
        description="Print a charger's status timeline: vendor status records (ev.energy) and OCPP "
        "StatusNotifications, in time order. Example: `chargelog status CP-0001 --from 2026-11-20T08:00Z`.",
    )
    parser.add_argument("charger", metavar="CHARGER", help="the charger (or EVSE) id")
    parser.add_argument("--from", dest="start", type=parse_aware_time, help="ISO 8601 time with offset or Z")
    parser.add_argument("--to", dest="end", type=parse_aware_time, help="ISO 8601 time with offset or Z (inclusive)")
    parser.add_argument("--order", choices=("asc", "desc"), default="asc", help="time order (default asc)")
    parser.add_argument("--limit", type=_positive, metavar="N", help="stop after N entries (default: all)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    return parser


def entries(client: ChargelogClient, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every entry of the timeline (up to --limit), following the cursor."""
    params: dict[str, Any] = {"order": args.order}
    if args.start:
        params["from"] = args.start.isoformat()
    if args.end:
        params["to"] = args.end.isoformat()
    path = f"/chargers/{quote(args.charger, safe='')}/status"
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        size = MAX_PAGE_SIZE if args.limit is None else min(MAX_PAGE_SIZE, args.limit - len(found))
        query = params | {"limit": size} | ({"cursor": cursor} if cursor else {})
        body = client.send("GET", path, params=query).json()
        found += body["entries"]
        cursor = body.get("next_cursor")
        if not cursor or (args.limit is not None and len(found) >= args.limit):
            return found


def describe(entry: dict[str, Any]) -> str:
    """What an entry reports, in a few words."""
    if entry.get("kind") == "status":
        plugged = "plugged in" if entry.get("is_plugged_in") else "unplugged"
        charging = f", charging at {entry.get('charge_rate_watts')} W" if entry.get("is_charging") else ""
        return plugged + charging
    error = entry.get("error_code")
    return str(entry.get("connector_status") or "") + (f" ({error})" if error and error != "NoError" else "")


def run_status(client: ChargelogClient, args: argparse.Namespace, out: TextIO) -> int:
    found = entries(client, args)
    if args.format == "json":
        out.write(json.dumps(found, ensure_ascii=False, indent=2) + "\n")
        return 0
    if not found:
        out.write("No status records.\n")
        return 0
    rows = [
        (
            str(entry.get("timestamp", "")),
            str(entry.get("vendor", "")),
            "" if entry.get("connector_id") is None else str(entry["connector_id"]),
            describe(entry),
        )
        for entry in found
    ]
    header = ("TIME (UTC)", "VENDOR", "CONN", "STATUS")
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(3)]
    for row in (header, *rows):
        out.write("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]]) + "\n")
    return 0
