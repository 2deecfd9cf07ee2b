"""`chargelog replay`: rebuilds records from archived pages in-process, shows progress and a summary, records the
replay for GET /collectors, and refuses bad input in one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chargelog import stores
from chargelog.dal.archive import RawArchive
from chargelog.dal.records import charger_items, record_from_item
from chargelog_cli.main import main
from chargelog_local.provision import LocalStack

NOW = datetime.now(UTC).replace(microsecond=0)
SOURCE = "dep-7"


def archive_page(stack: LocalStack, fetched_at: datetime, times: list[datetime]) -> None:
    """One OCPPLAB page as the worker archives it: records at ``times``, fetched at ``fetched_at``."""
    data = [
        {
            "direction": "cp_to_csms",
            "action": "Heartbeat",
            "message": json.dumps([2, f"m{at.timestamp():.0f}", "Heartbeat", {}]),
            "timestamp": at.isoformat(),
        }
        for at in times
    ]
    body = {"data": data, "total": len(data), "limit": 1000, "offset": 0}
    RawArchive(stack.refs["RawBucket"]).put_page(
        "ocpplab", SOURCE, "job0123456789", fetched_at, {"path": "/logs"}, body, 1, "/data"
    )


def stored_times(stack: LocalStack) -> list[str]:
    return [record_from_item(item)["timestamp"] for item in charger_items(stack.refs["Table"], SOURCE)]


def test_replay_rebuilds_the_range_and_prints_a_summary(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    hours = [NOW - timedelta(hours=n) for n in (5, 4, 3, 2)]
    archive_page(stack, hours[1] + timedelta(minutes=1), hours[:2])
    archive_page(stack, hours[3] + timedelta(minutes=1), hours[1:])  # re-reads the record of 4 hours back
    arguments = [
        "replay",
        "ocpplab",
        SOURCE,
        "--from",
        (NOW - timedelta(hours=4, minutes=30)).isoformat(),
        "--to",
        (NOW - timedelta(hours=2, minutes=30)).isoformat(),
    ]

    assert main(arguments) == 0

    out, err = capsys.readouterr()
    assert len(stored_times(stack)) == 2  # 4 and 3 hours back
    assert f"ocpplab/{SOURCE}: replay " in out
    assert "done, 2 pages read, 2 records in the range, 2 written (new or changed), 0 quarantined" in out
    assert "100%" in err  # the progress bar, on stderr
    (replay,) = stores.replays().list("ocpplab", SOURCE)
    assert (replay.state, replay.pages_read, replay.records_written) == ("done", 2, 2)

    assert main(arguments) == 0
    out, _ = capsys.readouterr()
    assert "2 records in the range, 0 written" in out


def test_fetched_to_leaves_later_pages_out(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    archive_page(stack, NOW - timedelta(hours=3), [NOW - timedelta(hours=3, minutes=1)])
    archive_page(stack, NOW - timedelta(hours=1), [NOW - timedelta(hours=1, minutes=1)])
    start, end = (NOW - timedelta(hours=4)).isoformat(), NOW.isoformat()
    fetched_to = (NOW - timedelta(hours=2)).isoformat()
    assert main(["replay", "ocpplab", SOURCE, "--from", start, "--to", end, "--fetched-to", fetched_to]) == 0
    assert "1 pages read" in capsys.readouterr().out
    assert len(stored_times(stack)) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--from", "yesterday", "--to", "2026-11-20T01:00:00Z"], "'yesterday' is not an ISO date or time"),
        (["--from", "2026-11-20T02:00:00Z", "--to", "2026-11-20T01:00:00Z"], "is not before 'to'"),
        (["--from", "2020-01-01T00:00:00Z", "--to", "2020-01-02T00:00:00Z"], "RawRetentionDays"),
        ("future", "in the future"),
        ("fetched before from", "'fetched_to'"),
    ],
)
def test_bad_input_is_one_line(stack: LocalStack, options: Any, message: str) -> None:
    recent = ["--from", (NOW - timedelta(hours=3)).isoformat(), "--to", (NOW - timedelta(hours=1)).isoformat()]
    options = (
        {
            "future": ["--from", recent[1], "--to", (NOW + timedelta(hours=1)).isoformat()],
            "fetched before from": [*recent, "--fetched-to", (NOW - timedelta(hours=4)).isoformat()],
        }.get(options, options)
        if isinstance(options, str)
        else options
    )
    with pytest.raises(SystemExit) as exit_:
        main(["replay", "ocpplab", SOURCE, *options])
    text = str(exit_.value.code)
    assert text.startswith("chargelog: error: ")
    assert message in text
    assert "\n" not in text
    assert list(stores.replays().list()) == []
