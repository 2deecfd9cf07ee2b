"""`chargelog diagnostics request|list|download`: ask a charger for its log file, follow the request, fetch the file."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import httpx

from chargelog_cli.logs import parse_aware_time

if TYPE_CHECKING:
    from chargelog_cli.client import ChargelogClient

LOG_TYPES = ("DiagnosticsLog", "SecurityLog")
LIST_PAGE_SIZE = 100
CHUNK_BYTES = 1 << 16
DOWNLOAD_TIMEOUT_SECONDS = 60.0


class DownloadError(Exception):
    """A file could not be downloaded as it should; the message is one line."""


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return value


def add_arguments(commands: Any) -> list[argparse.ArgumentParser]:
    """The `diagnostics` command and its subcommands; returns the subcommands' parsers (they need API options)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "diagnostics", help="ask a charger for its own log file (GetLog / GetDiagnostics) and download it"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    request = actions.add_parser(
        "request", help="issue an upload address and print the GetLog / GetDiagnostics payloads to send"
    )
    request.add_argument("charger_id", metavar="CHARGER", help="the charger's OCPP identity")
    request.add_argument("--log-type", choices=LOG_TYPES, default="DiagnosticsLog", help="default DiagnosticsLog")
    request.add_argument("--from", dest="start", type=parse_aware_time, help="oldest log entries, ISO 8601 with offset")
    request.add_argument("--to", dest="end", type=parse_aware_time, help="latest log entries, ISO 8601 with offset")
    request.add_argument("--retries", type=_non_negative, help="upload retries the charger may make")
    request.add_argument("--retry-interval", type=_non_negative, help="seconds between retries")
    request.add_argument(
        "--expires-in", type=_non_negative, metavar="MINUTES", help="how long the address works (default 24 h)"
    )
    request.add_argument("--json", action="store_true", help="print the API's whole answer as JSON")
    listing = actions.add_parser("list", help="a charger's diagnostics requests and their states, newest first")
    listing.add_argument("charger_id", metavar="CHARGER")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    download = actions.add_parser("download", help="download every file a request received, checking SHA-256")
    download.add_argument("request_id", metavar="REQUEST_ID")
    download.add_argument(
        "--out", type=Path, default=Path(), help="directory to write to, made if missing (default: here)"
    )
    return [request, listing, download]


# ---------------------------------------------------------------------------------------------- request


def _request(client: ChargelogClient, args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {"charger_id": args.charger_id, "log_type": args.log_type}
    optional = {
        "oldest_timestamp": args.start.isoformat() if args.start else None,
        "latest_timestamp": args.end.isoformat() if args.end else None,
        "retries": args.retries,
        "retry_interval": args.retry_interval,
        "expires_in_minutes": args.expires_in,
    }
    body |= {name: value for name, value in optional.items() if value is not None}
    created = client.request("POST", "/diagnostics/requests", json=body)
    if args.json:
        out.write(json.dumps(created, indent=2) + "\n")
        return 0
    out.write(
        f"Request {created['request_id']} for {created['charger_id']} ({created['log_type']}, OCPP requestId "
        f"{created['ocpp_request_id']}); the address works until {created['upload_expires_at']}.\n"
        "Keep the address to yourself: anyone who has it can upload to this request.\n\n"
        f"remote_location:\n{created['remote_location']}\n\n"
        f"OCPP 2.0.1 GetLog payload:\n{json.dumps(created['getlog'], indent=2)}\n\n"
        f"OCPP 1.6 GetDiagnostics payload:\n{json.dumps(created['getdiagnostics'], indent=2)}\n\n"
        f"Then: chargelog diagnostics download {created['request_id']}\n"
    )
    return 0


# ---------------------------------------------------------------------------------------------- list


def _all_requests(client: ChargelogClient, charger_id: str) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"charger_id": charger_id, "limit": LIST_PAGE_SIZE}
        if cursor:
            params["cursor"] = cursor
        page = client.request("GET", "/diagnostics", params=params)
        requests += page["requests"]
        cursor = page["next_cursor"]
        if not cursor:
            return requests


def _list(client: ChargelogClient, args: argparse.Namespace, out: TextIO) -> int:
    requests = _all_requests(client, args.charger_id)
    if args.json:
        out.write(json.dumps(requests, indent=2) + "\n")
        return 0
    if not requests:
        out.write(f"No diagnostics requests for {args.charger_id}.\n")
        return 0
    columns = ("REQUEST ID", "REQUESTED AT", "LOG TYPE", "OCPP ID", "STATE", "FILES", "EXPIRES AT")
    rows = [
        [
            r["request_id"],
            r["requested_at"],
            r["log_type"],
            str(r["ocpp_request_id"]),
            r["state"],
            str(r["files_received"]),
            r["upload_expires_at"],
        ]
        for r in requests
    ]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    for row in (list(columns), *rows):
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")
    return 0


# ---------------------------------------------------------------------------------------------- download


def _local_names(files: list[dict[str, Any]]) -> list[str]:
    """A safe local name per file: its name, or with its receive time in front where two share a name."""
    from chargelog.models.diagnostics import safe_filename

    names = [safe_filename(file["filename"]) for file in files]
    return [
        name
        if names.count(name) == 1
        else f"{datetime.fromisoformat(file['received_at']).strftime('%Y%m%dT%H%M%S%fZ')}-{name}"
        for name, file in zip(names, files, strict=True)
    ]


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as existing:
        for chunk in iter(lambda: existing.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(file: dict[str, Any], target: Path, err: TextIO) -> bool:
    """Download one file to ``target`` through its presigned link, never over an existing file; True if written,
    False if an identical file is there already. DownloadError if it cannot be, or arrives other than recorded."""
    from tqdm import tqdm

    if target.exists():
        if target.is_file() and _sha256_of(target) == file["sha256"]:
            return False
        raise DownloadError(f"{target} exists and is another file; not overwriting it")
    if not file.get("download_url"):
        raise DownloadError(f"{file['filename']} is no longer kept (deleted after {file['kept_until']})")
    partial = target.with_name(f".{target.name}.part")
    digest = hashlib.sha256()
    try:
        with (
            httpx.stream("GET", file["download_url"], timeout=DOWNLOAD_TIMEOUT_SECONDS) as response,
            partial.open("xb") as written,
            tqdm(total=file["size"], unit="B", unit_scale=True, desc=target.name, file=err, leave=False) as bar,
        ):
            if response.is_error:
                raise DownloadError(f"downloading {file['filename']} failed: HTTP {response.status_code}")
            for chunk in response.iter_bytes(CHUNK_BYTES):
                written.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if digest.hexdigest() != file["sha256"]:
            raise DownloadError(f"{file['filename']} arrived with another SHA-256 than recorded; not kept")
        os.link(partial, target)  # fails if the target appeared meanwhile: never overwrites
    except FileExistsError as error:
        raise DownloadError(f"{error.filename or target} exists; not overwriting it") from None
    except httpx.HTTPError as error:
        raise DownloadError(f"downloading {file['filename']} failed: {error}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return True


def _download(client: ChargelogClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    request = client.request("GET", f"/diagnostics/{args.request_id}")
    files = request["files"]
    if not files:
        raise DownloadError(f"request {args.request_id} has no files yet (state: {request['state']})")
    directory: Path = args.out
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(f"cannot write to {directory}: {error.strerror}") from None
    failures = 0
    for file, name in zip(files, _local_names(files), strict=True):
        target = directory / name
        try:
            written = download_file(file, target, err)
        except DownloadError as error:
            err.write(f"chargelog: error: {error}\n")
            failures += 1
            continue
        note = "" if written else " (already there, same SHA-256)"
        out.write(f"{target}  {file['size']} bytes  sha256 {file['sha256']}{note}\n")
    return 1 if failures else 0


def run_diagnostics(client: ChargelogClient, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        if args.action == "request":
            return _request(client, args, out)
        if args.action == "list":
            return _list(client, args, out)
        return _download(client, args, out, err)
    except DownloadError as error:
        err.write(f"chargelog: error: {error}\n")
        return 1
