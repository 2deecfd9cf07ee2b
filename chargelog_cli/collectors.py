"""`chargelog collectors`: collector health from the API (`GET /collectors`), one line per source, lag in words.

    ocpplab dep-3f9c2a71: 3 h 12 min behind, last error 401 Unauthorized
    plugchoice 6f1d2c3b-...: 4 min behind

then the work queues and the dead-letter queue in a short footer. `--format json` prints the API's body instead
(with `--vendor`, only that vendor's sources and queue, and the dead-letter queue).

Exit status, for scripts: 0 when every collector is healthy; ``UNHEALTHY_EXIT`` (3) when an enabled source is
failing, backing off or more than ``--max-lag-minutes`` behind, or jobs wait in the dead-letter queue; 1 when the
API cannot be reached or answers an error; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from chargelog.vendors import VENDORS
from chargelog_cli.logs import _positive

if TYPE_CHECKING:
    from chargelog_cli.client import ChargelogClient

UNHEALTHY_EXIT = 3
DEFAULT_MAX_LAG_MINUTES = 60
DEAD_LETTER_QUEUE = "dead-letter"


def add_arguments(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "collectors",
        help="show collector health: each source's lag, last error, queues",
        description="Show collector health (GET /collectors): one line per source with how far behind it is and "
        f"its last error, then the queues. Exits {UNHEALTHY_EXIT} when an enabled source is failing, backing off "
        "or more than --max-lag-minutes behind, or jobs wait in the dead-letter queue; 0 when all is well. "
        "Example: `chargelog collectors --vendor ocpplab --max-lag-minutes 30`.",
    )
    parser.add_argument("--vendor", choices=VENDORS, help="only this vendor's sources (and its queue)")
    parser.add_argument(
        "--max-lag-minutes",
        type=_positive,
        default=DEFAULT_MAX_LAG_MINUTES,
        metavar="N",
        help=f"an enabled source further behind than this is unhealthy (default {DEFAULT_MAX_LAG_MINUTES})",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    return parser


def duration_in_words(seconds: float) -> str:
    """A duration as an operator reads it, in whole units: seconds under a minute ("45 s"), minutes under an hour
    ("4 min"), hours and minutes under a day ("3 h 12 min"), then days and hours ("2 d 3 h"); a second unit of 0 is
    left out ("2 d"). A negative duration (a mark ahead of this clock) is "0 s"."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3_600:
        return f"{whole // 60} min"
    if whole < 86_400:
        hours, minutes = whole // 3_600, whole % 3_600 // 60
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = whole // 86_400, whole % 86_400 // 3_600
    return f"{days} d" + (f" {hours} h" if hours else "")


def _report_for(body: dict[str, Any], vendor: str | None) -> dict[str, Any]:
    if vendor is None:
        return body
    return {
        **body,
        "collectors": [row for row in body["collectors"] if row["vendor"] == vendor],
        "queues": [queue for queue in body["queues"] if queue["queue"] in (vendor, DEAD_LETTER_QUEUE)],
    }


def _clock(value: str | None) -> str:
    """An API time as "2026-11-20 14:05 UTC" (the API answers in UTC)."""
    if not value:
        return ""
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")


def _lag_too_high(row: dict[str, Any], max_lag_seconds: float) -> bool:
    lag = row.get("lag_seconds")
    return lag is not None and lag > max_lag_seconds


def needs_attention(row: dict[str, Any], max_lag_seconds: float) -> bool:
    """An enabled source (one the schedule collects) that fails, backs off after failures, or lags more than
    allowed. A disabled source, or the state a removed source left, is left alone: someone chose that. A source
    ``retrying`` (its job met an error after progress and goes on) needs none unless it lags: a flaky vendor costs
    time, and the lag says when that is too much."""
    if row.get("enabled") is not True:
        return False
    return row["status"] in ("failing", "backing_off") or _lag_too_high(row, max_lag_seconds)


def describe(row: dict[str, Any], max_lag_seconds: float) -> str:
    """One source's health in words: where it stands, how far behind, why (its last error)."""
    status = row["status"]
    lag = row.get("lag_seconds")
    parts: list[str] = []
    if status == "unregistered":
        parts.append("not registered (state left by a removed source)")
    elif row.get("enabled") is False:
        parts.append("disabled")
    if status == "no_collector":
        parts.append("no collector for this vendor yet")
    elif status == "never_run":
        queued = row.get("job_queued_at")
        parts.append("never collected" + (f", first job queued {_clock(queued)}" if queued else ""))
    elif lag is None and status != "unregistered":
        parts.append("nothing collected yet")
    if lag is not None:
        # A source not collected yet counts its lag from its registration (logic/lag.py): say it that way.
        waiting = status in ("never_run", "no_collector")
        behind = f"registered {duration_in_words(lag)} ago" if waiting else f"{duration_in_words(lag)} behind"
        if needs_attention(row, max_lag_seconds) and _lag_too_high(row, max_lag_seconds):
            behind += f" (more than {duration_in_words(max_lag_seconds)})"
        parts.append(behind)
    if status == "retrying":
        parts.append("retrying (its job met an error after progress and goes on from its checkpoint)")
    elif status == "failing":
        parts.append(f"failing ({row['consecutive_failures']} in a row)")
    elif status == "backing_off":
        parts.append(
            f"backing off until {_clock(row.get('backoff_until'))} after {row['consecutive_failures']} failures"
        )
    if row.get("running"):
        parts.append("collecting now")
    if row.get("jobs_dead_lettered"):
        parts.append(f"{row['jobs_dead_lettered']} jobs dead-lettered")
    if row.get("last_error") and status in ("retrying", "failing", "backing_off"):
        parts.append(f"last error {' '.join(str(row['last_error']).split())}")
    return f"{row['vendor']} {row['source_id']}: " + ", ".join(parts)


def _queue_in_words(queue: dict[str, Any]) -> str:
    counts = [(queue["visible"], "waiting"), (queue["in_flight"], "running"), (queue["delayed"], "delayed")]
    said = [f"{count} {what}" for count, what in counts if count]
    return f"{queue['queue']} " + (" ".join(said) if said else "empty")


def footer(queues: list[dict[str, Any]]) -> list[str]:
    work = [queue for queue in queues if queue["queue"] != DEAD_LETTER_QUEUE]
    lines = ["Work queues: " + ", ".join(_queue_in_words(queue) for queue in work)] if work else []
    for dead in (queue for queue in queues if queue["queue"] == DEAD_LETTER_QUEUE):
        waiting = dead["visible"] + dead["in_flight"] + dead["delayed"]
        lines.append(
            f"Dead-letter queue: {waiting} jobs (see docs/operations.md to redrive them)"
            if waiting
            else "Dead-letter queue: empty"
        )
    return lines


def dead_lettered(queues: list[dict[str, Any]]) -> int:
    return sum(q["visible"] + q["in_flight"] + q["delayed"] for q in queues if q["queue"] == DEAD_LETTER_QUEUE)


def run_collectors(client: ChargelogClient, args: argparse.Namespace, out: TextIO) -> int:
    report = _report_for(client.request("GET", "/collectors"), args.vendor)
    max_lag_seconds = args.max_lag_minutes * 60.0
    rows: list[dict[str, Any]] = report["collectors"]
    unhealthy = [row for row in rows if needs_attention(row, max_lag_seconds)]
    dead = dead_lettered(report["queues"])
    code = UNHEALTHY_EXIT if unhealthy or dead else 0
    if args.format == "json":
        out.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        return code
    if not rows:
        out.write("No sources registered" + (f" for {args.vendor}" if args.vendor else "") + ".\n")
    for row in rows:
        out.write(describe(row, max_lag_seconds) + "\n")
    for line in footer(report["queues"]):
        out.write(line + "\n")
    if unhealthy:
        out.write(f"{len(unhealthy)} of {len(rows)} sources need attention.\n")
    return code
