"""`chargelog exports create|show`: a whole log query written to a file in the background (`POST /exports`), and
its state (`GET /exports/{id}`), with the tier that answers it.

The tier says where the export reads its records: ``hot``, the table (the range starts within the hot window,
HotRetentionDays), or ``archive``, the record archive in S3 (it starts earlier, or has no start).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from chargelog.vendors import VENDORS
from chargelog_cli.logs import _positive, parse_aware_time

if TYPE_CHECKING:
    from chargelog_cli.client import ChargelogClient

TIERS = {
    "hot": "the table (the range starts within the hot window)",
    "archive": "the record archive in S3 (the range starts before the hot window)",
}
FINISHED = ("done", "failed")
POLL_SECONDS = 5.0
# Options whose values go into the body under the same name.
FILTERS = ("direction", "message_type", "message_id", "status", "vendor", "transaction_id", "connector_status", "kind")


def add_arguments(commands: Any) -> list[argparse.ArgumentParser]:
    """The `exports` command and its actions; returns the actions' parsers (each needs the API options)."""
    exports: argparse.ArgumentParser = commands.add_parser(
        "exports",
        help="export a query's log records to a file, and follow the export",
        description="Export every log record of a charger, a site or the fleet (filtered like `chargelog logs`) to "
        "one NDJSON or CSV file in the background. Ranges starting within the hot window read the table, older "
        "ones the record archive; `create` and `show` print which tier answers. Example: "
        "`chargelog exports create CP-0001 --from 2026-01-01T00:00Z --format csv --wait`.",
    )
    actions = exports.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="queue an export")
    scope = create.add_mutually_exclusive_group(required=True)
    scope.add_argument("charger", nargs="?", metavar="CHARGER", help="the charger id")
    scope.add_argument("--site", metavar="SITE", help="a site's records instead of one charger's")
    scope.add_argument("--fleet", action="store_true", help="every charger's records of the --action(s)")
    create.add_argument("--from", dest="start", type=parse_aware_time, help="ISO 8601 time with offset or Z")
    create.add_argument("--to", dest="end", type=parse_aware_time, help="ISO 8601 time with offset or Z (inclusive)")
    create.add_argument(
        "--action", dest="actions", action="append", metavar="ACTION", help="OCPP action; repeat for several"
    )
    create.add_argument("--direction", choices=("cp_to_csms", "csms_to_cp"), help="who sent the message")
    create.add_argument("--message-type", choices=("CALL", "CALLRESULT", "CALLERROR"))
    create.add_argument("--message-id", help="the OCPP message id")
    create.add_argument("--status", help="status, or a CALLERROR's error code")
    create.add_argument("--vendor", choices=VENDORS, help="only records read from this vendor")
    create.add_argument("--transaction-id", help="OCPP transaction id, whatever the vendor")
    create.add_argument("--connector-status", help="connector status a StatusNotification reports")
    create.add_argument("--kind", choices=("ocpp", "status"), help="OCPP messages or vendor status records")
    create.add_argument("--order", choices=("asc", "desc"), default="asc", help="time order (default asc)")
    create.add_argument("--format", choices=("ndjson", "csv"), default="ndjson", help="file format (default ndjson)")
    create.add_argument("--wait", action="store_true", help="poll until the export is done or failed")
    create.add_argument(
        "--wait-seconds", type=_positive, default=900, metavar="N", help="give up waiting after N seconds (900)"
    )
    create.add_argument("--json", action="store_true", help="print the export as JSON")
    show = actions.add_parser("show", help="an export's state, tier, counts and (once done) download link")
    show.add_argument("export_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print the export as JSON")
    return [create, show]


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    """The body of POST /exports for the command's arguments."""
    body: dict[str, Any] = {"order": args.order, "format": args.format}
    if args.charger:
        body["charger_id"] = args.charger
    elif args.site:
        body["site_id"] = args.site
    if args.start:
        body["from"] = args.start.isoformat()
    if args.end:
        body["to"] = args.end.isoformat()
    if args.actions:
        body["actions"] = args.actions
    for name in FILTERS:
        if (value := getattr(args, name)) is not None:
            body[name] = value
    return body


def describe(export: dict[str, Any]) -> str:
    """An export in a few lines: id, state, tier (and what it means), counts, the link or the error."""
    tier = export.get("tier", "hot")
    lines = [
        f"Export {export['id']}: {export['state']} ({export['format']})",
        f"  tier: {tier} - read from {TIERS.get(tier, tier)}",
    ]
    if export["state"] == "done":
        lines.append(f"  records: {export['records']:,}, bytes: {export['bytes']:,}")
    if export.get("download_url"):
        lines.append(f"  download (until {export.get('download_expires_at')}): {export['download_url']}")
    if export.get("error"):
        lines.append(f"  error: {export['error']}")
    return "\n".join(lines) + "\n"


def _print(export: dict[str, Any], args: argparse.Namespace, out: TextIO) -> None:
    out.write(json.dumps(export, indent=2) + "\n" if args.json else describe(export))


def run_exports(
    client: ChargelogClient,
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    sleep: Callable[[float], None] | None = None,
    poll_seconds: float = POLL_SECONDS,
) -> int:
    """Run `exports create` or `exports show`; 1 when a waited-for export failed or did not finish in time."""
    if args.action == "show":
        _print(client.request("GET", f"/exports/{quote(args.export_id, safe='')}"), args, out)
        return 0
    export = client.request("POST", "/exports", json=request_body(args))
    if not args.wait:
        _print(export, args, out)
        return 0
    pause = sleep or _pause
    err.write(f"Export {export['id']} queued (tier: {export['tier']}); waiting...\n")
    deadline = time.monotonic() + args.wait_seconds
    while export["state"] not in FINISHED and time.monotonic() < deadline:
        pause(poll_seconds)
        export = client.request("GET", f"/exports/{quote(export['id'], safe='')}")
    _print(export, args, out)
    if export["state"] not in FINISHED:
        err.write(f"chargelog: error: export {export['id']} is still {export['state']} after {args.wait_seconds} s\n")
    return 0 if export["state"] == "done" else 1
