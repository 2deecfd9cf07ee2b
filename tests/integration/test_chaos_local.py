"""Acceptance (issue 17), small: every vendor flaky at once on the local stack, and every record is stored, none twice.

bench/chaos.py's scenario scaled down to run in about two minutes: `chargelog local` in this process (``LocalRunner``,
schedules every 5 s, each work queue polled with its MaximumConcurrency) against the four vendor simulators, one source
each with about 150 records of history, all answering 30 % 5xx, 20 % 429 and 10 % slow from the moment the sources are
registered, and 15 s of live records. Faults cost time, never records: each vendor's records are all stored (the
record ids its normalizer gives the simulator's records, and the raw forms read back as the API serves them), none
twice, well within the time allowed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaos import Scenario, run_chaos  # bench/ is not a package: on sys.path above

SCENARIO = Scenario(
    sources=1,
    history=150,
    live_seconds=15,
    schedule_seconds=5,
    check_seconds=5,
    target_seconds=240,
    timeout_seconds=300,
)


def test_every_vendor_flaky_at_once_loses_no_record_and_stores_none_twice(tmp_path: Path) -> None:
    said: list[str] = []
    result = run_chaos(SCENARIO, tmp_path / "state", say=said.append)

    report = "\n".join(said)
    assert [vendor.vendor for vendor in result.vendors] == ["ocpplab", "plugchoice", "chargepilot", "evenergy"]
    for vendor in result.vendors:
        assert vendor.records > 100, report
        assert vendor.stored_after_seconds is not None, f"{vendor.vendor} never complete:\n{report}"
        assert (vendor.final["missing"], vendor.final["duplicates"], vendor.final["unknown"]) == (0, 0, 0)
        assert vendor.raw == {"not_stored_as_is": 0, "stored_not_as_the_vendor_has": 0}
        assert vendor.jobs.get("done", 0) >= 1
    assert result.all_stored_after_seconds is not None
    assert result.all_stored_after_seconds <= SCENARIO.target_seconds, report
    # The vendors really were flaky.
    assert sum(vendor.vendor_requests["5xx"] for vendor in result.vendors) > 0
    assert sum(vendor.vendor_requests["429"] for vendor in result.vendors) > 0
    assert result.ok
