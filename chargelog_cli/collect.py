"""`chargelog collect` and `chargelog backfill`: run collection in this process, with progress bars.

They use the same engine as the worker Lambda, against whatever AWS the environment points at: the local
stack (export what `chargelog local` prints) or a deployed stack (export its resource names).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from chargelog import collectors
from chargelog.models.jobs import CollectionJob
from chargelog.settings import Settings, get_settings
from chargelog.vendors import Vendor

if TYPE_CHECKING:
    # The engine is imported where a job runs: importing it builds the Powertools logger, which `chargelog local`
    # must leave until the functions' environment (POWERTOOLS_SERVICE_NAME, ..._METRICS_NAMESPACE) is set.
    from chargelog.logic.collection import JobOutcome, Progress

BAR_STEPS = 1000


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as error:
        missing = sorted({str(e["loc"][0]) for e in error.errors() if e["type"] == "missing"})
        raise SystemExit(
            f"chargelog: error: {', '.join(missing) or 'settings'} not set: export what `chargelog local` prints, "
            "or the deployed stack's resource names (see README)"
        ) from error


def parse_time(text: str) -> datetime:
    """An ISO date or datetime; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"chargelog: error: {text!r} is not an ISO date or time (e.g. 2026-11-20T08:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def progress_bar(label: str) -> Any:
    """The CLI's progress bar of a long run: per mille of the work, on stderr, with a postfix of counts."""
    from tqdm import tqdm

    return tqdm(
        total=BAR_STEPS,
        desc=label,
        unit="‰",
        leave=True,
        file=sys.stderr,
        dynamic_ncols=True,
        bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}",
    )


def _run_with_bar(job: CollectionJob, label: str) -> tuple[JobOutcome | None, str | None]:
    from chargelog import stores
    from chargelog.logic.collection import JobRunner

    with progress_bar(label) as bar:

        def on_progress(progress: Progress) -> None:
            bar.n = int(progress.fraction * BAR_STEPS)
            bar.set_postfix(records=progress.records_stored, pages=progress.pages_fetched, refresh=False)
            bar.refresh()

        try:
            outcome = JobRunner(
                job, remaining_seconds=lambda: float("inf"), on_progress=on_progress, stores=stores.collection()
            ).run()
        except Exception as error:
            return None, f"{type(error).__name__}: {error}"
        bar.n = BAR_STEPS
        bar.refresh()
        return outcome, None


def _summary_line(job: CollectionJob, outcome: JobOutcome | None, error: str | None) -> str:
    name = f"{job.vendor}/{job.source_id}"
    if error:
        return f"{name}: FAILED {error}"
    assert outcome is not None
    line = (
        f"{name}: {outcome.status}, {outcome.records_stored} records, {outcome.records_quarantined} quarantined, "
        f"{outcome.pages_fetched} pages, {outcome.vendor_requests} requests"
    )
    if not outcome.complete:
        line += " (records changed while paging: the next run reads that range again)"
    return line + (f" - {outcome.detail}" if outcome.detail else "")


def collect(vendor: str | None, source_id: str | None) -> int:
    """One scheduled pass over the enabled sources (optionally one vendor or source), to completion."""
    from chargelog import stores

    load_settings()
    now = datetime.now(UTC)
    sources = [
        s
        for s in stores.sources().list(vendor=vendor, enabled_only=True)
        if source_id is None or s.source_id == source_id
    ]
    if not sources:
        print("chargelog: no enabled sources match; add one with `chargelog sources add`.", file=sys.stderr)
        return 1
    failures = 0
    for source in sources:
        if not collectors.has_adapter(source.vendor):
            print(f"{source.vendor}/{source.source_id}: skipped, no collector for {source.vendor} yet")
            continue
        job = CollectionJob(vendor=source.vendor, source_id=source.source_id, scheduled_at=now)
        outcome, error = _run_with_bar(job, f"{source.vendor}/{source.source_id}")
        failures += error is not None
        print(_summary_line(job, outcome, error))
    return 1 if failures else 0


def backfill(vendor: Vendor, source_id: str, start: datetime, end: datetime, action: str | None = None) -> int:
    """Read a past range of one source (registered or not), optionally of one OCPP action only; the
    high-water mark is left alone."""
    load_settings()
    if end < start:
        raise SystemExit("chargelog: error: --to is before --from")
    if not collectors.has_adapter(vendor):
        raise SystemExit(f"chargelog: error: there is no collector for {vendor} yet")
    try:
        job = CollectionJob.backfill(vendor, source_id, start, end, datetime.now(UTC), action)
    except ValidationError as invalid:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'job'}: {e['msg']}" for e in invalid.errors())
        raise SystemExit(f"chargelog: error: {problems}") from None
    outcome, error = _run_with_bar(job, f"{vendor}/{source_id}")
    print(_summary_line(job, outcome, error))
    return 1 if error else 0


def add_arguments(commands: Any, vendors: tuple[str, ...]) -> None:
    collect_parser = commands.add_parser("collect", help="run one scheduled collection pass to completion")
    collect_parser.add_argument("--vendor", choices=vendors)
    collect_parser.add_argument("--source", help="only this source id")
    backfill_parser = commands.add_parser("backfill", help="read a past range of one source")
    backfill_parser.add_argument("vendor", choices=vendors)
    backfill_parser.add_argument("source_id")
    backfill_parser.add_argument("--from", dest="start", required=True, type=parse_time, help="ISO date/time (UTC)")
    backfill_parser.add_argument("--to", dest="end", required=True, type=parse_time, help="ISO date/time (UTC)")
    backfill_parser.add_argument("--action", help="only this OCPP action, e.g. BootNotification")
