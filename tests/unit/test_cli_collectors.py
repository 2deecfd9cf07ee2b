"""`chargelog collectors`: the CLI's main() against GET /collectors over HTTP (the local gateway, as `chargelog local`
serves it). One line per source with its lag in words and why it is unhealthy, the queues as a footer, and an exit
status scripts can test: 0 healthy, 3 when a source needs attention or jobs are dead-lettered."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from chargelog import aws, stores
from chargelog.dal.state import CollectorStateStore, Counts
from chargelog.logic import sources
from chargelog.models.jobs import CollectionJob
from chargelog.models.sources import SourceCreate
from chargelog.vendors import VENDORS
from chargelog_cli.collectors import UNHEALTHY_EXIT, duration_in_words
from chargelog_cli.main import main
from chargelog_local.provision import LocalStack
from local_api import Api, serve_api

API_KEY = "cli-collectors-test-key-0123456789"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (-5, "0 s"),  # a mark ahead of this clock
        (0, "0 s"),
        (45, "45 s"),
        (59.9, "59 s"),  # whole units: never rounded up into the next
        (60, "1 min"),
        (4 * 60 + 59, "4 min"),
        (3_599, "59 min"),
        (3_600, "1 h"),
        (3_660, "1 h 1 min"),
        (3 * 3_600 + 12 * 60 + 30, "3 h 12 min"),
        (86_399, "23 h 59 min"),
        (86_400, "1 d"),
        (86_400 + 3_599, "1 d"),
        (2 * 86_400 + 3 * 3_600 + 59 * 60, "2 d 3 h"),
        (400 * 86_400, "400 d"),
    ],
)
def test_a_duration_in_words_keeps_its_two_largest_units(seconds: float, words: str) -> None:
    assert duration_in_words(seconds) == words


@pytest.fixture
def api(stack: LocalStack, template: dict[str, Any]) -> Iterator[Api]:
    with serve_api(template, API_KEY) as served:
        yield served


@pytest.fixture
def states(stack: LocalStack) -> CollectorStateStore:
    return CollectorStateStore(stack.refs["Table"])


def register(vendor: str, source_id: str, enabled: bool = True) -> None:
    body = {"vendor": vendor, "source_id": source_id, "enabled": enabled}
    sources.create_source(SourceCreate.model_validate(body), store=stores.sources())


def collected(states: CollectorStateStore, vendor: str, source_id: str, behind: timedelta) -> None:
    """A job that finished well, its mark ``behind`` now."""
    now = datetime.now(UTC)
    states.acquire_lease(vendor, source_id, "job-ok", now - timedelta(minutes=1), 60)
    states.finish_job(vendor, source_id, "job-ok", now - timedelta(seconds=30), mark=now - behind, counts=Counts())


def failed(states: CollectorStateStore, vendor: str, source_id: str, error: str, backoff: timedelta | None) -> None:
    now = datetime.now(UTC)
    states.acquire_lease(vendor, source_id, "job-bad", now - timedelta(seconds=5), 60)
    states.record_failure(vendor, source_id, "job-bad", error, now, backoff, dead_lettered=False)


def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, api: Api, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("CHARGELOG_API_URL", api.url)
    monkeypatch.setenv("CHARGELOG_API_KEY", API_KEY)
    code = main(["collectors", *args])
    out, err = capsys.readouterr()
    return code, out, err


def lines_by_source(out: str) -> dict[str, str]:
    """The source lines ("vendor source_id: ..."), by "vendor source_id"."""
    found = {}
    for line in out.splitlines():
        head, separator, rest = line.partition(": ")
        if separator and len(head.split()) == 2 and head.split()[0] in VENDORS:
            found[head] = rest
    return found


def test_healthy_sources_say_how_far_behind_they_are_and_exit_0(
    api: Api, states: CollectorStateStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    register("plugchoice", "cp-1")
    collected(states, "plugchoice", "cp-1", timedelta(minutes=4, seconds=10))
    register("ocpplab", "dep-1")
    collected(states, "ocpplab", "dep-1", timedelta(minutes=50))

    code, out, err = run_cli(capsys, monkeypatch, api)

    assert (code, err) == (0, "")
    assert lines_by_source(out) == {"plugchoice cp-1": "4 min behind", "ocpplab dep-1": "50 min behind"}
    assert "Work queues: plugchoice empty, ocpplab empty, chargepilot empty, evenergy empty" in out
    assert "Dead-letter queue: empty" in out
    assert "need attention" not in out


def test_a_failing_source_says_why_and_the_command_exits_3(
    api: Api, states: CollectorStateStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    register("plugchoice", "cp-1")
    collected(states, "plugchoice", "cp-1", timedelta(minutes=4))
    register("ocpplab", "dep-3f9c2a71")
    collected(states, "ocpplab", "dep-3f9c2a71", timedelta(hours=3, minutes=12, seconds=20))
    failed(states, "ocpplab", "dep-3f9c2a71", "VendorHttpError: 401 Unauthorized", backoff=timedelta(0))
    register("chargepilot", "site-1")
    collected(states, "chargepilot", "site-1", timedelta(minutes=2))
    failed(states, "chargepilot", "site-1", "HTTPStatusError: 503\nService Unavailable", backoff=timedelta(hours=1))

    code, out, _ = run_cli(capsys, monkeypatch, api, "--max-lag-minutes", "600")

    assert code == UNHEALTHY_EXIT
    lines = lines_by_source(out)
    assert lines["plugchoice cp-1"] == "4 min behind"
    assert lines["ocpplab dep-3f9c2a71"] == (
        "3 h 12 min behind, failing (1 in a row), last error VendorHttpError: 401 Unauthorized"
    )
    backing_off = lines["chargepilot site-1"]
    assert backing_off.startswith("2 min behind, backing off until ")
    assert backing_off.endswith(" UTC after 1 failures, last error HTTPStatusError: 503 Service Unavailable")
    assert out.rstrip().endswith("2 of 3 sources need attention.")


def test_a_source_retrying_after_progress_says_so_and_needs_no_attention(
    api: Api, states: CollectorStateStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    register("plugchoice", "cp-1")
    collected(states, "plugchoice", "cp-1", timedelta(minutes=6))
    # Its job stored pages, then the vendor's 503s outlasted the client's retries: no failure counted (no backoff).
    failed(states, "plugchoice", "cp-1", "VendorUnavailableError: answered 503", backoff=None)

    code, out, _ = run_cli(capsys, monkeypatch, api)

    assert code == 0
    assert lines_by_source(out)["plugchoice cp-1"] == (
        "6 min behind, retrying (its job met an error after progress and goes on from its checkpoint), "
        "last error VendorUnavailableError: answered 503"
    )
    assert "need attention" not in out


def test_lag_above_the_limit_is_unhealthy_and_the_limit_is_an_option(
    api: Api, states: CollectorStateStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    register("ocpplab", "dep-1")
    collected(states, "ocpplab", "dep-1", timedelta(hours=2, minutes=5))

    code, out, _ = run_cli(capsys, monkeypatch, api)  # default: 60 minutes
    assert code == UNHEALTHY_EXIT
    assert lines_by_source(out)["ocpplab dep-1"] == "2 h 5 min behind (more than 1 h)"

    code, out, _ = run_cli(capsys, monkeypatch, api, "--max-lag-minutes", "130")
    assert code == 0
    assert lines_by_source(out)["ocpplab dep-1"] == "2 h 5 min behind"


def test_disabled_never_collected_and_uncollectable_sources_are_said_plainly(
    api: Api,
    states: CollectorStateStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    without_evenergy_collector: None,
) -> None:
    register("ocpplab", "dep-off", enabled=False)
    collected(states, "ocpplab", "dep-off", timedelta(days=2, hours=3))  # far behind, but someone turned it off
    register("ocpplab", "dep-new")
    register("evenergy", "evse-1")
    states.advance_mark("ocpplab", "dep-gone", datetime.now(UTC) - timedelta(days=5))  # a removed source's state

    code, out, _ = run_cli(capsys, monkeypatch, api)

    assert code == 0
    lines = lines_by_source(out)
    # Not collected yet: the lag counts from the registration a moment ago (seconds, whatever the machine's pace).
    assert re.fullmatch(r"never collected, registered \d+ s ago", lines.pop("ocpplab dep-new"))
    assert re.fullmatch(r"no collector for this vendor yet, registered \d+ s ago", lines.pop("evenergy evse-1"))
    assert lines == {
        "ocpplab dep-off": "disabled, 2 d 3 h behind",
        "ocpplab dep-gone": "not registered (state left by a removed source), 5 d behind",
    }


def test_queued_and_dead_lettered_jobs_show_in_the_footer_and_dead_letters_exit_3(
    api: Api, stack: LocalStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    register("ocpplab", "dep-1")
    sqs = aws.client("sqs")
    job = CollectionJob(vendor="ocpplab", source_id="dep-1", scheduled_at=datetime.now(UTC))
    sqs.send_message(QueueUrl=stack.refs["OcpplabWorkQueue"], MessageBody=job.model_dump_json())
    sqs.send_message(QueueUrl=stack.refs["OcpplabWorkQueue"], MessageBody=job.model_dump_json(), DelaySeconds=300)
    for _ in range(2):
        sqs.send_message(QueueUrl=stack.refs["WorkDeadLetterQueue"], MessageBody=job.model_dump_json())

    code, out, _ = run_cli(capsys, monkeypatch, api)

    assert code == UNHEALTHY_EXIT
    (line,) = lines_by_source(out).items()
    assert line[0] == "ocpplab dep-1"
    assert re.fullmatch(r"never collected, registered \d+ s ago", line[1])
    assert "Work queues: plugchoice empty, ocpplab 1 waiting 1 delayed, chargepilot empty, evenergy empty" in out
    assert "Dead-letter queue: 2 jobs (see docs/operations.md to redrive them)" in out


def test_json_prints_the_api_body_and_vendor_keeps_one_vendor(
    api: Api, states: CollectorStateStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    register("plugchoice", "cp-1")
    collected(states, "plugchoice", "cp-1", timedelta(minutes=4))
    register("ocpplab", "dep-1")
    collected(states, "ocpplab", "dep-1", timedelta(hours=5))

    code, out, _ = run_cli(capsys, monkeypatch, api, "--format", "json")
    body = httpx.get(f"{api.url}/collectors", headers={"x-api-key": API_KEY}).json()

    assert code == UNHEALTHY_EXIT  # ocpplab's 5 h lag: the exit status is the same in JSON
    printed = json.loads(out)
    assert [row["source_id"] for row in printed["collectors"]] == [row["source_id"] for row in body["collectors"]]
    assert printed["queues"] == body["queues"]
    assert set(printed["collectors"][0]) == set(body["collectors"][0])

    code, out, _ = run_cli(capsys, monkeypatch, api, "--format", "json", "--vendor", "plugchoice")
    assert code == 0  # only plugchoice's source, which is fine
    printed = json.loads(out)
    assert [(row["vendor"], row["source_id"]) for row in printed["collectors"]] == [("plugchoice", "cp-1")]
    assert [queue["queue"] for queue in printed["queues"]] == ["plugchoice", "dead-letter"]

    code, out, _ = run_cli(capsys, monkeypatch, api, "--vendor", "chargepilot")
    assert code == 0
    assert out.splitlines()[0] == "No sources registered for chargepilot."
    assert "Work queues: chargepilot empty" in out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--max-lag-minutes", "0"], "argument --max-lag-minutes: '0' is not a positive whole number"),
        (["--max-lag-minutes", "soon"], "argument --max-lag-minutes: 'soon' is not a positive whole number"),
        (["--vendor", "nope"], "argument --vendor: invalid choice: 'nope'"),
        (["--format", "xml"], "argument --format: invalid choice: 'xml'"),
    ],
)
def test_bad_input_is_refused_in_one_line(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["collectors", "--api-url", "http://127.0.0.1:9", "--api-key", "k", *arguments])
    assert exited.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("chargelog collectors: error:")]
    assert len(errors) == 1
    assert message in errors[0]


def test_an_unreachable_api_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["collectors", "--api-url", "http://127.0.0.1:9", "--api-key", "k"])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert err.startswith("chargelog: error: cannot reach http://127.0.0.1:9")
