"""`chargelog replay`: rebuild a range's records from the raw archive in this process, with a progress bar.

The same engine as the worker's replay jobs (chargelog.logic.replay), against whatever AWS the environment points at
(the local stack, or a deployed stack's resource names, as for `chargelog backfill`). No vendor is called: only the
raw archive is read. The replay is recorded like a queued one, so ``GET /collectors`` lists it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chargelog.errors import ChargelogError
from chargelog_cli.collect import BAR_STEPS, load_settings, parse_time, progress_bar

if TYPE_CHECKING:
    from chargelog.logic.replay import ReplayOutcome, ReplayProgress


def replay(vendor: str, source_id: str, start: datetime, end: datetime, fetched_to: datetime | None = None) -> int:
    """Replay ``[start, end]`` of one source from the pages fetched until ``fetched_to`` (default: now)."""

    from chargelog import stores
    from chargelog.logic.replay import ReplayRunner, new_replay, replay_job

    load_settings()
    try:
        job = replay_job(vendor, source_id, start, end, fetched_to, datetime.now(UTC))
    except ChargelogError as invalid:
        raise SystemExit(f"chargelog: error: {invalid}") from None
    stores.replays().create(new_replay(job))
    name = f"{vendor}/{source_id}"
    with progress_bar(name) as bar:

        def on_progress(progress: ReplayProgress) -> None:
            bar.n = int(progress.fraction * BAR_STEPS)
            bar.set_postfix(pages=progress.outcome.pages_read, written=progress.outcome.records_written, refresh=False)
            bar.refresh()

        try:
            outcome = ReplayRunner(job, lambda: float("inf"), stores.replay(), on_progress=on_progress).run()
        except Exception as error:
            print(f"{name}: FAILED {type(error).__name__}: {error} (replay {job.job_id})")
            return 1
        bar.n = BAR_STEPS
        bar.refresh()
    print(summary_line(name, job.job_id, outcome))
    return 0


def summary_line(name: str, replay_id: str, outcome: ReplayOutcome) -> str:
    line = (
        f"{name}: replay {replay_id} {outcome.status}, {outcome.pages_read} pages read, "
        f"{outcome.records_read} records in the range, {outcome.records_written} written (new or changed), "
        f"{outcome.records_quarantined} quarantined"
    )
    if outcome.pages_unreadable:
        line += f", {outcome.pages_unreadable} pages archived without items_at skipped"
    return line


def add_arguments(commands: Any, vendors: tuple[str, ...]) -> None:
    parser = commands.add_parser(
        "replay", help="rebuild a range's records of one source from the raw archive (no vendor calls)"
    )
    parser.add_argument("vendor", choices=vendors)
    parser.add_argument("source_id")
    parser.add_argument("--from", dest="start", required=True, type=parse_time, help="ISO date/time (UTC)")
    parser.add_argument("--to", dest="end", required=True, type=parse_time, help="ISO date/time (UTC)")
    parser.add_argument(
        "--fetched-to", type=parse_time, help="read only pages fetched by then, ISO date/time (UTC; default: now)"
    )
