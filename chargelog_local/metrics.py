"""The functions' CloudWatch metrics on the local stack: the EMF lines they print, kept instead of shown.

On AWS, Powertools prints each metric blob (CloudWatch Embedded Metric Format: one JSON object holding ``"_aws"``)
to stdout, and CloudWatch Logs turns it into metrics. Here every function runs in this process, so `EmfTee` stands
in for stdout: EMF lines go to a `MetricsLog` (in memory, and appended to an NDJSON file under the local state
directory), everything else goes on to the terminal. ``GET /local/metrics`` (the local gateway only) and `chargelog
metrics` show the latest value of each metric per vendor, so what the alarms read can be seen without AWS.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from pathlib import Path
from typing import Any, TextIO

EMF_START = '{"_aws"'
# Kept in memory: the latest blobs (the file keeps them all).
MEMORY_BLOBS = 10_000


def latest_values(blobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per metric and vendor (``-`` for none), the last value written: ``metric``, ``vendor``, ``value``, ``unit``,
    ``at`` (the blob's timestamp, epoch milliseconds) and the blob's other dimensions."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for blob in blobs:
        aws = blob.get("_aws") or {}
        for directive in aws.get("CloudWatchMetrics") or []:
            dimensions = {name for names in directive.get("Dimensions") or [] for name in names}
            for definition in directive.get("Metrics") or []:
                name = definition.get("Name")
                values = blob.get(name)
                if not name or values is None:
                    continue
                value = values[-1] if isinstance(values, list) else values
                vendor = str(blob.get("vendor", "-"))
                latest[(name, vendor)] = {
                    "metric": name,
                    "vendor": vendor,
                    "value": value,
                    "unit": definition.get("Unit", ""),
                    "at": aws.get("Timestamp"),
                    "namespace": directive.get("Namespace"),
                    "dimensions": {key: blob.get(key) for key in sorted(dimensions)},
                }
    return [latest[key] for key in sorted(latest)]


class MetricsLog:
    """The EMF blobs the functions wrote, in order: the latest in memory, all of them in ``path`` (NDJSON)."""

    def __init__(self, path: Path | None = None, keep: int = MEMORY_BLOBS) -> None:
        self.path = path
        self._blobs: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, blob: dict[str, Any]) -> None:
        with self._lock:
            self._blobs.append(blob)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as file:
                    file.write(json.dumps(blob, separators=(",", ":")) + "\n")

    def blobs(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._blobs)

    def latest(self) -> list[dict[str, Any]]:
        return latest_values(self.blobs())


class EmfTee:
    """A stdout that keeps EMF lines in a MetricsLog and writes everything else to ``stream``.

    ``print`` writes a line's text and its newline in two calls, and the functions print from their own threads:
    a thread that wrote an EMF blob has its next newline swallowed, so nothing of it reaches the terminal."""

    def __init__(self, stream: TextIO, log: MetricsLog) -> None:
        self._stream = stream
        self._log = log
        self._threads = threading.local()

    def write(self, text: str) -> int:
        if getattr(self._threads, "swallow_newline", False):
            self._threads.swallow_newline = False
            if text == "\n":
                return len(text)
        stripped = text.lstrip()
        if stripped.startswith(EMF_START):
            try:
                blob = json.loads(stripped)
            except ValueError:
                return self._stream.write(text)
            if isinstance(blob, dict):
                self._log.add(blob)
                self._threads.swallow_newline = not text.endswith("\n")
                return len(text)
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno... of the real stream
        return getattr(self._stream, name)
