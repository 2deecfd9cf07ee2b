"""Entry point of the `chargelog` command."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chargelog.vendors import VENDORS

if TYPE_CHECKING:
    from chargelog_cli.client import ChargelogClient


def _add_api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-url",
        default=os.environ.get("CHARGELOG_API_URL"),
        help="API base URL (default: $CHARGELOG_API_URL, printed by `chargelog local`)",
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("CHARGELOG_API_KEY"), help="API key (default: $CHARGELOG_API_KEY)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chargelog", description="EV charger log collector.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    local = commands.add_parser("local", help="run the whole stack locally (moto, simulators, API, schedules)")
    local.add_argument("--port", type=int, default=3000, help="API port on 127.0.0.1 (default 3000)")
    local.add_argument(
        "--schedule-seconds",
        type=float,
        default=60.0,
        help="fire the template's schedules this often, the first time at start; 0 turns them off (default 60)",
    )
    local.add_argument(
        "--no-discover-sources",
        dest="discover_sources",
        action="store_false",
        help="do not discover and register the vendors' sources on each pass (register them with POST /sources)",
    )

    from chargelog_cli.collect import add_arguments as add_collect_arguments

    add_collect_arguments(commands, VENDORS)

    from chargelog_cli.replay import add_arguments as add_replay_arguments

    add_replay_arguments(commands, VENDORS)

    from chargelog_cli.logs import add_arguments as add_logs_arguments

    _add_api_options(add_logs_arguments(commands))

    from chargelog_cli.diagnostics import add_arguments as add_diagnostics_arguments

    for diagnostics_action in add_diagnostics_arguments(commands):
        _add_api_options(diagnostics_action)

    from chargelog_cli.exports import add_arguments as add_exports_arguments

    for exports_action in add_exports_arguments(commands):
        _add_api_options(exports_action)

    from chargelog_cli.status import add_arguments as add_status_arguments

    _add_api_options(add_status_arguments(commands))

    from chargelog_cli.metrics import add_arguments as add_metrics_arguments

    _add_api_options(add_metrics_arguments(commands))
    from chargelog_cli.collectors import add_arguments as add_collectors_arguments

    _add_api_options(add_collectors_arguments(commands))

    from chargelog_cli.alerts import add_arguments as add_alerts_arguments

    for alerts_command in add_alerts_arguments(commands):
        _add_api_options(alerts_command)

    sources = commands.add_parser("sources", help="manage what chargelog collects")
    source_commands = sources.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = source_commands.add_parser("add", help="register a charger, site or EVSE")
    add.add_argument("vendor", choices=VENDORS)
    add.add_argument("source_id", help="the vendor's id of the charger, site or EVSE")
    add.add_argument("--name", help="display name (default: the source id)")
    add.add_argument("--disabled", action="store_true", help="register without collecting yet")
    listing = source_commands.add_parser("list", help="list registered sources")
    listing.add_argument("--vendor", choices=VENDORS)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    remove = source_commands.add_parser("remove", help="unregister a source")
    remove.add_argument("vendor", choices=VENDORS)
    remove.add_argument("source_id")
    discover = source_commands.add_parser(
        "discover", help="list the chargers, sites or EVSEs a vendor's credentials see, and register the new ones"
    )
    discover.add_argument("vendor", choices=VENDORS)
    discover.add_argument("--dry-run", action="store_true", help="only list them; register nothing")
    discover.add_argument("--json", action="store_true", help="print JSON instead of a table")
    for action in ("enable", "disable"):
        toggle = source_commands.add_parser(action, help=f"{action} collection of a source")
        toggle.add_argument("vendor", choices=VENDORS)
        toggle.add_argument("source_id")
    for sub in (add, listing, remove, *source_commands.choices.values()):
        if not any(a.dest == "api_url" for a in sub._actions):
            _add_api_options(sub)
    return parser


def _print_sources(sources: list[dict[str, Any]]) -> None:
    if not sources:
        print("No sources registered.")
        return
    columns = ("vendor", "source_id", "kind", "enabled", "name")
    rows = [[str(source[c]) for c in columns] for source in sources]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _print_discovered(result: dict[str, Any]) -> None:
    sources = result["sources"]
    if not sources:
        print(f"{result['vendor']} lists no sources for these credentials.")
        return

    def status(source: dict[str, Any]) -> str:
        if source["registered"]:
            return "registered"
        if source["known"]:
            return "known, " + ("enabled" if source["enabled"] else "disabled")
        return "not registered"

    columns = ("SOURCE_ID", "KIND", "NAME", "DETAILS", "STATUS")
    rows = [
        [
            source["source_id"],
            source["kind"],
            source["name"],
            ", ".join(f"{k}={v}" for k, v in sorted(source["details"].items())),
            status(source),
        ]
        for source in sources
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if result["dry_run"]:
        print(f"{len(sources)} found; dry run, nothing registered.")
    else:
        print(f"{len(sources)} found, {result['registered']} newly registered.")
    for skipped in result.get("skipped") or []:
        print(f"Left out {skipped!r}: not a valid source id.", file=sys.stderr)


def _client(args: argparse.Namespace) -> ChargelogClient:
    from chargelog_cli.client import ChargelogClient

    if not args.api_url or not args.api_key:
        raise SystemExit(
            "chargelog: error: set --api-url and --api-key, or CHARGELOG_API_URL and CHARGELOG_API_KEY "
            "(`chargelog local` prints them)"
        )
    return ChargelogClient(args.api_url, args.api_key)


def _run_logs(args: argparse.Namespace) -> int:
    from chargelog_cli.logs import run_logs

    with _client(args) as client:
        return run_logs(client, args, sys.stdout, sys.stderr)


def _run_diagnostics(args: argparse.Namespace) -> int:
    from chargelog_cli.diagnostics import run_diagnostics

    with _client(args) as client:
        return run_diagnostics(client, args, sys.stdout, sys.stderr)


def _run_exports(args: argparse.Namespace) -> int:
    from chargelog_cli.exports import run_exports

    with _client(args) as client:
        return run_exports(client, args, sys.stdout, sys.stderr)


def _run_status(args: argparse.Namespace) -> int:
    from chargelog_cli.status import run_status

    with _client(args) as client:
        return run_status(client, args, sys.stdout)


def _run_metrics(args: argparse.Namespace) -> int:
    from chargelog_cli.metrics import run_metrics

    with _client(args) as client:
        return run_metrics(client, args, sys.stdout)


def _run_collectors(args: argparse.Namespace) -> int:
    from chargelog_cli.collectors import run_collectors

    with _client(args) as client:
        return run_collectors(client, args, sys.stdout)


def _run_alerts(args: argparse.Namespace) -> int:
    from chargelog_cli.alerts import run_alerts

    with _client(args) as client:
        return run_alerts(client, args, sys.stdout, sys.stderr)


def _run_health(args: argparse.Namespace) -> int:
    from chargelog_cli.alerts import run_health

    with _client(args) as client:
        return run_health(client, args, sys.stdout)


def _run_sources(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.action == "add":
            source = client.add_source(args.vendor, args.source_id, args.name, not args.disabled)
            print(f"Added {source['vendor']}/{source['source_id']} ({source['kind']}, {source['name']}).")
        elif args.action == "list":
            sources = client.list_sources(args.vendor)
            if args.json:
                print(json.dumps(sources, indent=2))
            else:
                _print_sources(sources)
        elif args.action == "discover":
            result = client.discover_sources(args.vendor, register=not args.dry_run)
            if args.json:
                print(json.dumps(result, indent=2))
            else:
                _print_discovered(result)
        elif args.action == "remove":
            client.remove_source(args.vendor, args.source_id)
            print(f"Removed {args.vendor}/{args.source_id}.")
        else:
            source = client.update_source(args.vendor, args.source_id, enabled=args.action == "enable")
            state = "enabled" if source["enabled"] else "disabled"
            print(f"{source['vendor']}/{source['source_id']} is {state}.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "local":
        from chargelog_local.runner import LocalOptions, run

        return run(
            LocalOptions(port=args.port, schedule_seconds=args.schedule_seconds, discover_sources=args.discover_sources)
        )
    if args.command == "collect":
        from chargelog_cli.collect import collect

        return collect(args.vendor, args.source)
    if args.command == "backfill":
        from chargelog_cli.collect import backfill

        return backfill(args.vendor, args.source_id, args.start, args.end, args.action)
    if args.command == "replay":
        from chargelog_cli.replay import replay

        return replay(args.vendor, args.source_id, args.start, args.end, args.fetched_to)
    from chargelog_cli.client import ApiError

    try:
        if args.command == "logs":
            return _run_logs(args)
        if args.command == "diagnostics":
            return _run_diagnostics(args)
        if args.command == "status":
            return _run_status(args)
        if args.command == "exports":
            return _run_exports(args)
        if args.command == "metrics":
            return _run_metrics(args)
        if args.command == "collectors":
            return _run_collectors(args)
        if args.command == "alerts":
            return _run_alerts(args)
        if args.command == "health":
            return _run_health(args)
        return _run_sources(args)
    except ApiError as error:
        print(f"chargelog: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader left (`chargelog logs ... | head`, `chargelog sources list | head`): stop quietly, as other
        # Unix tools do. Point stdout at /dev/null so Python's own flush at exit does not fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
