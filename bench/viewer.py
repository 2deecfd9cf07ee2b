"""The charger timeline's speed in a real Chromium against the local stack, for a charger with N records.

What runs: `chargelog local` in this process (the browser tests' harness, tests/browser/harness.py: moto server,
the simulators, the API on 127.0.0.1), N records of one busy ocpplab charger written with RecordWriter, and
Debian's headless Chromium through chromium-driver. Per run, a fresh page opens #/chargers/<id> (the key is given
in the page's own form first, outside the timing) and the page measures itself: `timeline-first-render` is a
performance.measure from the view's start to its first page of rows in the DOM. Then the bench scrolls to record
--scroll-to and counts the /logs requests the page made (resource timing entries) and the records they returned.

Reading the figures: moto's Query walks every item of the table (bench/query.py), so each page costs about as
much as the table is big; on DynamoDB a page costs about the same whatever the table's size.

    .venv/bin/python bench/viewer.py                        # N = 20,000, 5 runs, scroll to record 5,000
    .venv/bin/python bench/viewer.py --records 2000 --runs 2 --scroll-to 1000
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the browser tests' harness: one way to start the stack and Chromium

from browser.harness import (  # noqa: E402
    open_viewer,
    start_chrome,
    start_viewer_stack,
    stop_chrome,
    stop_viewer_stack,
    wait_until,
)

CHARGER = "CP-BENCH-VIEWER"
PAGE_SIZE = 200  # ui/timeline.js PAGE_SIZE
ROWS = "#timeline-rows tr[data-record-id]"


def logs_requests(driver, charger: str) -> list[str]:
    return list(
        driver.execute_script(
            "return performance.getEntriesByType('resource').map((e) => e.name)"
            ".filter((n) => n.includes(arguments[0]))",
            f"/chargers/{charger}/logs?",
        )
    )


def one_run(stack, scroll_to: int) -> dict[str, float]:
    driver, profile = start_chrome()
    try:
        open_viewer(driver, stack, "#/fleet")  # gives the key; the timeline is then opened in the same tab
        driver.execute_script("location.hash = arguments[0]", f"#/chargers/{CHARGER}")
        first_ms = wait_until(
            driver,
            lambda d: d.execute_script(
                "return performance.getEntriesByName('timeline-first-render').map((e) => e.duration)[0]"
            ),
            "no first render",
            timeout=120,
        )
        first_requests = len(logs_requests(driver, CHARGER))
        started = time.perf_counter()

        def scrolled(d):
            d.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
            return d.execute_script(f"return document.querySelectorAll('{ROWS}').length") >= scroll_to

        wait_until(driver, scrolled, f"did not reach record {scroll_to}", timeout=1800)
        scroll_seconds = time.perf_counter() - started
        rows = int(driver.execute_script(f"return document.querySelectorAll('{ROWS}').length"))
        requests = len(logs_requests(driver, CHARGER))
        return {
            "first_render_ms": float(first_ms),
            "first_requests": first_requests,
            "scroll_seconds": scroll_seconds,
            "rows": rows,
            "requests": requests,
        }
    finally:
        stop_chrome(driver, profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scroll-to", type=int, default=5_000)
    args = parser.parse_args()
    stack, restore = start_viewer_stack()
    try:
        started = time.perf_counter()
        stack.seed_charger_records(CHARGER, args.records)
        print(f"seeded {args.records} records in {time.perf_counter() - started:.1f} s")
        results = [one_run(stack, args.scroll_to) for _ in range(args.runs)]
    finally:
        stop_viewer_stack(stack.runner, restore)
    firsts = sorted(result["first_render_ms"] for result in results)
    print(f"charger timeline, {args.records} records, page size {PAGE_SIZE}, {args.runs} runs")
    print(
        f"  first render: median {statistics.median(firsts):.0f} ms, min {firsts[0]:.0f} ms, max {firsts[-1]:.0f} ms"
        f" ({results[0]['first_requests']} /logs request)"
    )
    for result in results:
        print(
            f"  scroll to {args.scroll_to}: {result['rows']:.0f} records in {result['requests']:.0f} /logs requests"
            f" (ceil({args.scroll_to}/{PAGE_SIZE}) = {math.ceil(args.scroll_to / PAGE_SIZE)}),"
            f" {result['scroll_seconds']:.1f} s"
        )


if __name__ == "__main__":
    main()
