"""`chargelog metrics`: the latest value of each metric the local stack's functions wrote, per vendor.

Reads ``GET /local/metrics`` of a running `chargelog local` (its own route, not the deployed API's): the EMF lines the
functions printed, as CloudWatch would chart them. On AWS the same metrics are in CloudWatch (namespace chargelog).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from chargelog_cli.client import ChargelogClient

COLUMNS = ("METRIC", "VENDOR", "VALUE", "UNIT", "AT")


def add_arguments(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "metrics",
        help="show the latest value of each metric per vendor (local stack)",
        description="Show the latest value of each metric the functions of a running `chargelog local` wrote, per "
        "vendor: what CloudWatch would chart and the alarms read. Example: `chargelog metrics --vendor ocpplab`.",
    )
    parser.add_argument("--metric", help="only this metric (e.g. CollectorLagSeconds)")
    parser.add_argument("--vendor", help="only this vendor ('-' for metrics without one)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    return parser


def _value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _at(epoch_ms: Any) -> str:
    if not isinstance(epoch_ms, int | float):
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_metrics(client: ChargelogClient, args: argparse.Namespace, out: TextIO) -> int:
    found: list[dict[str, Any]] = client.send("GET", "/local/metrics").json()["metrics"]
    found = [
        row
        for row in found
        if (args.metric is None or row["metric"] == args.metric)
        and (args.vendor is None or row["vendor"] == args.vendor)
    ]
    if args.format == "json":
        print(json.dumps(found, indent=2), file=out)
        return 0
    if not found:
        print("No metrics written yet.", file=out)
        return 0
    rows = [[row["metric"], row["vendor"], _value(row["value"]), row["unit"], _at(row["at"])] for row in found]
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip(), file=out)
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)
    return 0
