"""`chargelog logs`: a charger's (or a site's, or the fleet's) log records from the API, page after page.

Pages are requested as they are printed, following the cursor until the end or until --limit records.
`table` is for reading in a terminal; `json` prints one JSON array; `ndjson` and `csv` pass the API's own
rendering through (the cursor then comes in the X-Next-Cursor header, and the CSV header is printed once).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO
from urllib.parse import quote

if TYPE_CHECKING:
    from chargelog_cli.client import ChargelogClient

Format = Literal["table", "json", "ndjson", "csv"]
FORMATS: tuple[Format, ...] = ("table", "json", "ndjson", "csv")
ACCEPT: dict[Format, str] = {
    "table": "application/json",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv",
}
MAX_PAGE_SIZE = 500  # the API's largest page
ARROWS = {"cp_to_csms": "→ CSMS", "csms_to_cp": "← CSMS"}
# The widest a table column grows; longer values are cut with "…".
COLUMN_LIMITS = {"CHARGER": 24, "ACTION": 30, "MESSAGE ID": 40, "STATUS": 20}


def parse_aware_time(text: str) -> datetime:
    """An ISO 8601 time with a UTC offset or Z; a time without one is refused (whose 08:00 would it be?)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-11-20T08:00:00Z or 2026-11-20T09:00:00+01:00)"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset: add Z for UTC or the offset, e.g. {moment.isoformat()}Z"
        )
    return moment


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _page_size(text: str) -> int:
    value = _positive(text)
    if value > MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"at most {MAX_PAGE_SIZE} (the API's largest page)")
    return value


def add_arguments(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "logs",
        help="print a charger's, a site's or the fleet's log records",
        description="Print log records from the API, following pages until the end or --limit. "
        "Examples: `chargelog logs CP-0001 --from 2026-11-20T08:00Z --action BootNotification`, "
        "`chargelog logs --fleet --action BootNotification --format ndjson`.",
    )
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("charger", nargs="?", metavar="CHARGER", help="the charger id")
    scope.add_argument("--site", metavar="SITE", help="a site's records instead of one charger's")
    scope.add_argument(
        "--fleet", action="store_true", help="every charger's records of the --action(s) (default: last 24 h)"
    )
    parser.add_argument("--from", dest="start", type=parse_aware_time, help="ISO 8601 time with offset or Z")
    parser.add_argument("--to", dest="end", type=parse_aware_time, help="ISO 8601 time with offset or Z (inclusive)")
    parser.add_argument(
        "--action", dest="actions", action="append", metavar="ACTION", help="OCPP action; repeat for several"
    )
    parser.add_argument("--direction", choices=tuple(ARROWS), help="who sent the message")
    parser.add_argument("--message-type", choices=("CALL", "CALLRESULT", "CALLERROR"))
    parser.add_argument("--message-id", help="the OCPP message id (pairs a CALL with its answer)")
    parser.add_argument("--status", help="status, or a CALLERROR's error code")
    parser.add_argument("--transaction-id", help="OCPP transaction id, whatever the vendor")
    parser.add_argument("--connector-status", help="connector status a StatusNotification reports (e.g. Faulted)")
    parser.add_argument("--kind", choices=("ocpp", "status"), help="OCPP messages or vendor status records")
    parser.add_argument("--order", choices=("asc", "desc"), default="asc", help="time order (default asc)")
    parser.add_argument("--limit", type=_positive, metavar="N", help="stop after N records (default: all)")
    parser.add_argument(
        "--page-size",
        type=_page_size,
        default=MAX_PAGE_SIZE,
        metavar="N",
        help=f"records per request (default {MAX_PAGE_SIZE})",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    return parser


@dataclass
class Page:
    records: list[dict[str, Any]] | None  # JSON pages
    text: str  # NDJSON / CSV pages, as the API rendered them
    count: int
    next_cursor: str | None


def _path(args: argparse.Namespace) -> str:
    if args.site:
        return f"/sites/{quote(args.site, safe='')}/logs"
    if args.fleet:
        return "/logs"
    return f"/chargers/{quote(args.charger, safe='')}/logs"


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"order": args.order}
    if args.start:
        params["from"] = args.start.isoformat()
    if args.end:
        params["to"] = args.end.isoformat()
    if args.actions:
        params["action"] = list(args.actions)
    for name in ("direction", "message_type", "message_id", "status", "transaction_id", "connector_status", "kind"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    return params


def _csv_rows(text: str) -> int:
    return max(0, sum(1 for _ in csv.reader(io.StringIO(text))) - 1)  # less the header


def pages(
    client: ChargelogClient,
    path: str,
    params: dict[str, Any],
    fmt: Format,
    limit: int | None,
    page_size: int = MAX_PAGE_SIZE,
) -> Iterator[Page]:
    """The API's pages, one request each, following the cursor until the end or `limit` records."""
    cursor: str | None = None
    total = 0
    while True:
        size = page_size if limit is None else min(page_size, limit - total)
        query = params | {"limit": size} | ({"cursor": cursor} if cursor else {})
        response = client.send("GET", path, accept=ACCEPT[fmt], params=query)
        if fmt in ("table", "json"):
            body = response.json()
            page = Page(body["records"], "", len(body["records"]), body.get("next_cursor"))
        else:
            text = response.text
            count = _csv_rows(text) if fmt == "csv" else sum(1 for line in text.splitlines() if line.strip())
            page = Page(None, text, count, response.headers.get("x-next-cursor"))
        yield page
        total += page.count
        cursor = page.next_cursor
        if not cursor or (limit is not None and total >= limit):
            return


class Writer(Protocol):
    def page(self, page: Page) -> None: ...

    def end(self) -> None: ...


class PassThroughWriter:
    """NDJSON or CSV as the API rendered it; a CSV header only once."""

    def __init__(self, out: TextIO, fmt: Format) -> None:
        self._out = out
        self._skip_header = False
        self._csv = fmt == "csv"

    def page(self, page: Page) -> None:
        text = page.text
        if self._csv:
            if self._skip_header:
                text = text.partition("\n")[2]
            self._skip_header = True
        self._out.write(text)
        self._out.flush()

    def end(self) -> None:
        pass


class JsonArrayWriter:
    """One JSON array of every record, written as the pages arrive."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._written = 0

    def page(self, page: Page) -> None:
        for record in page.records or ():
            self._out.write(("[\n  " if not self._written else ",\n  ") + json.dumps(record, ensure_ascii=False))
            self._written += 1
        self._out.flush()

    def end(self) -> None:
        self._out.write("\n]\n" if self._written else "[]\n")
        self._out.flush()


def _time(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + summarize(value) + "}"
    if isinstance(value, list):
        shown = ", ".join(_short(item) for item in value[:2])
        return "[" + shown + (f", …+{len(value) - 2}" if len(value) > 2 else "") + "]"
    if isinstance(value, str) and value and not any(c.isspace() for c in value):
        return value
    return json.dumps(value, ensure_ascii=False)


def summarize(document: dict[str, Any]) -> str:
    """A payload on one line: key=value, nested objects in braces, long lists cut to two items."""
    return " ".join(f"{key}={_short(value)}" for key, value in document.items())


def _summary(record: dict[str, Any]) -> str:
    parts = [summarize(doc) for doc in (record.get("payload"), record.get("result")) if isinstance(doc, dict)]
    if record.get("payload_ref"):
        parts.append("(large payload: fetch the record by id)")
    return " ⇒ ".join(part for part in parts if part)


class TableWriter:
    """Aligned columns for reading in a terminal; a column widens when a later page has a longer value."""

    def __init__(self, out: TextIO, with_charger: bool) -> None:
        self._out = out
        self._columns = ["TIME (UTC)", *(["CHARGER"] if with_charger else []), "CONN", "DIR", "TYPE", "ACTION"]
        self._columns += ["MESSAGE ID", "STATUS", "PAYLOAD"]
        self._widths = {name: len(name) for name in self._columns}
        self._header_written = False
        self._rows = 0
        self._terminal_width = shutil.get_terminal_size().columns if out.isatty() else None

    def _row(self, record: dict[str, Any]) -> dict[str, str]:
        connector = record.get("connector_id")
        return {
            "TIME (UTC)": _time(str(record.get("timestamp", ""))),
            "CHARGER": str(record.get("charger_id") or ""),
            "CONN": "" if connector is None else str(connector),
            "DIR": ARROWS.get(str(record.get("direction")), ""),
            "TYPE": str(record.get("message_type") or record.get("kind") or ""),
            "ACTION": str(record.get("action") or ""),
            "MESSAGE ID": str(record.get("message_id") or ""),
            "STATUS": str(record.get("status") or ""),
            "PAYLOAD": _summary(record),
        }

    def _line(self, cells: dict[str, str]) -> str:
        parts = []
        for name in self._columns[:-1]:
            value, width = cells[name], self._widths[name]
            if len(value) > width:
                value = value[: width - 1] + "…"
            parts.append(value.ljust(width))
        line = "  ".join([*parts, cells[self._columns[-1]]])
        if self._terminal_width and len(line) > self._terminal_width:
            line = line[: self._terminal_width - 1] + "…"
        return line.rstrip()

    def page(self, page: Page) -> None:
        rows = [self._row(record) for record in page.records or ()]
        for row in rows:
            for name in self._columns[:-1]:
                self._widths[name] = max(self._widths[name], min(len(row[name]), COLUMN_LIMITS.get(name, 1_000)))
        if rows and not self._header_written:
            self._out.write(self._line({name: name for name in self._columns}) + "\n")
            self._header_written = True
        self._out.writelines(self._line(row) + "\n" for row in rows)
        self._rows += len(rows)
        self._out.flush()

    def end(self) -> None:
        if not self._rows:
            self._out.write("No records.\n")


class Progress:
    """A record count on stderr, only when stderr is a terminal."""

    def __init__(self, err: TextIO, limit: int | None) -> None:
        self._err = err if err.isatty() else None
        self._limit = limit
        self._count = 0

    def add(self, count: int) -> None:
        self._count += count
        if self._err:
            of = f" of {self._limit:,}" if self._limit else ""
            self._err.write(f"\r\033[K{self._count:,}{of} records…")
            self._err.flush()

    def end(self) -> None:
        if self._err:
            self._err.write("\r\033[K")
            self._err.flush()


def run_logs(client: ChargelogClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.fleet and not args.actions:
        raise SystemExit("chargelog: error: --fleet needs at least one --action (e.g. --action BootNotification)")
    fmt: Format = args.format
    writer: Writer
    if fmt == "table":
        writer = TableWriter(out, with_charger=not args.charger)
    elif fmt == "json":
        writer = JsonArrayWriter(out)
    else:
        writer = PassThroughWriter(out, fmt)
    progress = Progress(err, args.limit)
    try:
        for page in pages(client, _path(args), _params(args), fmt, args.limit, args.page_size):
            writer.page(page)
            progress.add(page.count)
    finally:
        progress.end()
    writer.end()
    return 0
