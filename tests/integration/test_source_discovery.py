"""Source discovery against the four vendor simulators: each adapter's list paging (auth failures, an empty list,
exactly one full page, a last page of one), registration that never overrides a user, the API route, and the
scheduled discovery job run by the worker."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from copy import replace
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities import parameters

import api_handler
import worker_handler
from chargelog import aws, collectors, stores
from chargelog.collectors import evenergy, vendor_http
from chargelog.collectors.base import VendorAdapter, VendorConnection
from chargelog.collectors.vendor_http import VendorAuthError
from chargelog.logic import discovery, dispatcher, sources
from chargelog.models.jobs import DiscoveryJob
from chargelog.models.sources import SourceCreate, SourceUpdate
from chargelog.vendors import SOURCE_KIND, VENDORS
from chargelog_local.lambdas import LocalLambdaContext
from chargelog_local.provision import LocalStack
from chargelog_local.triggers import sqs_event
from chargelog_simulators.base import SimulatorServer, VendorSimulator
from chargelog_simulators.chargepilot import ChargepilotSimulator
from chargelog_simulators.evenergy import EvEnergySimulator
from chargelog_simulators.ocpplab import OcpplabSimulator
from chargelog_simulators.plugchoice import PlugchoiceSimulator
from conftest import load_event

SECRET_LOGICAL_IDS = {
    "plugchoice": "PlugchoiceSecret",
    "ocpplab": "OcpplabSecret",
    "chargepilot": "ChargepilotSecret",
    "evenergy": "EvenergySecret",
}
QUEUE_LOGICAL_IDS = {
    "plugchoice": "PlugchoiceWorkQueue",
    "ocpplab": "OcpplabWorkQueue",
    "chargepilot": "ChargepilotWorkQueue",
    "evenergy": "EvenergyWorkQueue",
}


@dataclass
class Vendor:
    """One simulator serving ``count`` sources for our credentials (and one for someone else's)."""

    name: str
    simulator: VendorSimulator
    base_url: str
    credentials: dict[str, str]
    source_ids: list[str]

    def secret(self, **changes: str) -> dict[str, str]:
        return {"base_url": self.base_url, **self.credentials, "requests_per_second": "1000"} | changes

    def adapter(self, **credential_changes: str) -> VendorAdapter:
        profile = replace(collectors._ADAPTERS[self.name][0], requests_per_second=1000.0, burst=1000)
        connection = VendorConnection(self.name, self.base_url, self.credentials | credential_changes, profile)
        return collectors.adapter_for(connection, lambda: 900.0)


def _plugchoice(count: int, server: Callable[[Any], str]) -> Vendor:
    simulator = PlugchoiceSimulator(seed=1, rate_limit_per_minute=None)
    simulator.add_token("pc-token", "me")
    simulator.add_token("pc-other", "someone-else")
    simulator.add_charger("c0ffee00-0000-4000-8000-999999999999", "someone-else")
    ids = [f"c0ffee00-0000-4000-8000-{n:012d}" for n in range(count)]
    for n, uuid in enumerate(ids):
        simulator.add_charger(uuid, "me", f"PC-ID-{n}")
    return Vendor("plugchoice", simulator, server(simulator) + "/api", {"token": "pc-token"}, ids)


def _ocpplab(count: int, server: Callable[[Any], str]) -> Vendor:
    simulator = OcpplabSimulator(seed=1)
    simulator.add_token("lab-token", "me")
    simulator.add_charger("dep-other", "someone-else")
    ids = [f"dep-{n:04d}" for n in range(count)]
    for n, charger_id in enumerate(ids):
        simulator.add_charger(charger_id, "me", f"LAB-{n}", f"Bay {n}")
    return Vendor("ocpplab", simulator, server(simulator), {"token": "lab-token"}, ids)


def _chargepilot(count: int, server: Callable[[Any], str]) -> Vendor:
    simulator = ChargepilotSimulator(seed=1)
    simulator.add_api_key("cp-key", "cp-secret")
    simulator.add_api_key("cp-other", "other-secret")
    simulator.add_site("site-other", "cp-other")
    ids = [f"site-{n:04d}" for n in range(count)]
    for n, site_id in enumerate(ids):
        simulator.add_site(site_id, "cp-key", f"Depot {n}")
    credentials = {"api_key": "cp-key", "api_secret": "cp-secret"}
    return Vendor("chargepilot", simulator, server(simulator) + "/rest/v1", credentials, ids)


def _evenergy(count: int, server: Callable[[Any], str]) -> Vendor:
    simulator = EvEnergySimulator(seed=1)
    simulator.add_client("ee-client", "ee-secret")
    simulator.add_client("ee-other", "other-secret")
    simulator.add_evse("evse-other", "ee-other")
    ids = [f"evse{n:04d}" for n in range(count)]
    for evse_id in ids:
        simulator.add_evse(evse_id, "ee-client")
    credentials = {"client_id": "ee-client", "client_secret": "ee-secret"}
    return Vendor("evenergy", simulator, server(simulator) + "/v2", credentials, ids)


BUILDERS = {"plugchoice": _plugchoice, "ocpplab": _ocpplab, "chargepilot": _chargepilot, "evenergy": _evenergy}
# How many sources one page of each vendor's list holds, as the adapter asks for it (ChargePilot's is unpaged).
PAGE_SIZES = {"plugchoice": 25, "ocpplab": 100, "chargepilot": None, "evenergy": 100}
WRONG_CREDENTIALS = {
    "plugchoice": {"token": "wrong"},
    "ocpplab": {"token": "wrong"},
    "chargepilot": {"api_secret": "wrong"},
    "evenergy": {"client_secret": "wrong"},
}

MakeVendor = Callable[[str, int], Vendor]


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vendor_http, "_LIMITERS", {})
    monkeypatch.setattr(evenergy, "_AUTHS", {})
    monkeypatch.setattr(evenergy, "_PACERS", {})
    for vendor in VENDORS:
        collectors.has_adapter(vendor)  # loads the built-in adapters (each loads at its vendor's first use)
    parameters.clear_caches()


@pytest.fixture
def make_vendor() -> Iterator[MakeVendor]:
    servers: list[SimulatorServer] = []

    def serve(simulator: VendorSimulator) -> str:
        server = SimulatorServer(simulator.wsgi_app)
        servers.append(server)
        return server.start()

    yield lambda name, count: BUILDERS[name](count, serve)
    for server in servers:
        server.stop()


# ---------------------------------------------------------------------------------------------- adapters
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_wrong_credentials_are_an_auth_error_naming_the_secret(name: str, make_vendor: MakeVendor) -> None:
    vendor = make_vendor(name, 3)
    adapter = vendor.adapter(**WRONG_CREDENTIALS[name])
    with pytest.raises(VendorAuthError, match=f"check the {name} secret") as raised:
        list(adapter.discover())
    assert "wrong" not in str(raised.value)
    adapter.close()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_an_empty_list_is_one_request_and_nothing_found(name: str, make_vendor: MakeVendor) -> None:
    vendor = make_vendor(name, 0)
    adapter = vendor.adapter()
    assert list(adapter.discover()) == []
    assert adapter.requests_made == 1
    adapter.close()


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("extra", [0, 1], ids=["exactly-one-full-page", "a-last-page-of-one"])
def test_pages_through_the_list_to_its_last_source(name: str, extra: int, make_vendor: MakeVendor) -> None:
    page_size = PAGE_SIZES[name] or 150
    vendor = make_vendor(name, page_size + extra)
    adapter = vendor.adapter()
    found = list(adapter.discover())
    assert [source.source_id for source in found] == vendor.source_ids  # each once, in order, none of another's
    assert {source.kind for source in found} == {SOURCE_KIND[name]}
    assert adapter.requests_made == (1 if PAGE_SIZES[name] is None else 1 + extra)
    adapter.close()


def test_what_a_vendor_tells_of_its_sources_is_kept(make_vendor: MakeVendor) -> None:
    lab = next(iter(make_vendor("ocpplab", 1).adapter().discover()))
    assert (lab.name, dict(lab.details)) == ("Bay 0", {"identity": "LAB-0"})
    plug = next(iter(make_vendor("plugchoice", 1).adapter().discover()))
    assert plug.name == "PC-ID-0"
    assert plug.details["identity"] == "PC-ID-0"
    site = next(iter(make_vendor("chargepilot", 1).adapter().discover()))
    assert site.name == "Depot 0"
    evse = next(iter(make_vendor("evenergy", 1).adapter().discover()))
    assert evse.details["url"].endswith("/evses/evse0000/")


def test_plugchoices_flat_paginator_form_pages_too(make_vendor: MakeVendor) -> None:
    vendor = make_vendor("plugchoice", 26)
    vendor.simulator.flat_paging = True  # type: ignore[attr-defined]
    adapter = vendor.adapter()
    assert len(list(adapter.discover())) == 26
    assert adapter.requests_made == 2


def test_evenergy_reuses_its_token_across_pages_and_calls(make_vendor: MakeVendor) -> None:
    vendor = make_vendor("evenergy", 101)
    first, second = vendor.adapter(), vendor.adapter()
    assert len(list(first.discover())) == 101
    assert len(list(second.discover())) == 101
    assert evenergy._AUTHS
    assert all(auth.tokens_fetched == 1 for auth in evenergy._AUTHS.values())


# ---------------------------------------------------------------------------------------------- logic and API
def _configure(stack: LocalStack, vendor: Vendor, **changes: str) -> None:
    aws.client("secretsmanager").put_secret_value(
        SecretId=stack.refs[SECRET_LOGICAL_IDS[vendor.name]], SecretString=json.dumps(vendor.secret(**changes))
    )
    parameters.clear_caches()


def test_registers_new_sources_and_leaves_known_ones_exactly_as_they_are(
    stack: LocalStack, make_vendor: MakeVendor
) -> None:
    vendor = make_vendor("ocpplab", 3)
    _configure(stack, vendor)
    sources.create_source(
        SourceCreate(vendor="ocpplab", source_id="dep-0001", name="Mine", enabled=False), store=stores.sources()
    )
    dry = discovery.discover_sources(
        "ocpplab",
        register=False,
        remaining_seconds=lambda: 30.0,
        sources=stores.sources(),
        secrets=stores.vendor_secrets(),
    )
    assert dry.dry_run
    assert dry.registered == 0
    assert [(s.source_id, s.registered, s.known, s.enabled) for s in dry.sources] == [
        ("dep-0000", False, False, None),
        ("dep-0001", False, True, False),
        ("dep-0002", False, False, None),
    ]
    assert len(sources.list_sources("ocpplab", store=stores.sources())) == 1  # a dry run registers nothing
    result = discovery.discover_sources(
        "ocpplab",
        register=True,
        remaining_seconds=lambda: 30.0,
        sources=stores.sources(),
        secrets=stores.vendor_secrets(),
    )
    assert result.registered == 2
    assert [(s.source_id, s.registered, s.known, s.enabled) for s in result.sources] == [
        ("dep-0000", True, False, True),
        ("dep-0001", False, True, False),
        ("dep-0002", True, False, True),
    ]
    stored = {s.source_id: s for s in sources.list_sources("ocpplab", store=stores.sources())}
    assert (stored["dep-0001"].name, stored["dep-0001"].enabled) == ("Mine", False)
    assert (stored["dep-0000"].name, stored["dep-0000"].kind, stored["dep-0000"].enabled) == ("Bay 0", "charger", True)
    again = discovery.discover_sources(
        "ocpplab",
        register=True,
        remaining_seconds=lambda: 30.0,
        sources=stores.sources(),
        secrets=stores.vendor_secrets(),
    )
    assert again.registered == 0
    assert all(s.known for s in again.sources)


def _discover_over_api(body: Any, lambda_context: LocalLambdaContext) -> tuple[int, dict[str, Any]]:
    event = load_event("api_create_source")
    event.update(
        {
            "path": "/sources/discover",
            "resource": "/sources/discover",
            "httpMethod": "POST",
            "body": json.dumps(body),
            "isBase64Encoded": False,
        }
    )
    event["requestContext"].update({"resourcePath": "/sources/discover", "path": "/sources/discover"})
    response = api_handler.lambda_handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"])


def test_the_api_discovers_and_registers(
    stack: LocalStack, make_vendor: MakeVendor, lambda_context: LocalLambdaContext
) -> None:
    vendor = make_vendor("chargepilot", 2)
    _configure(stack, vendor)
    status, body = _discover_over_api({"vendor": "chargepilot"}, lambda_context)
    assert status == 200, body
    assert body["registered"] == 2
    assert body["dry_run"] is False
    assert [(s["source_id"], s["kind"], s["name"], s["registered"]) for s in body["sources"]] == [
        ("site-0000", "site", "Depot 0", True),
        ("site-0001", "site", "Depot 1", True),
    ]
    status, body = _discover_over_api({"vendor": "chargepilot", "register": False}, lambda_context)
    assert status == 200
    assert body["dry_run"] is True
    assert body["registered"] == 0


def test_the_api_says_how_to_configure_a_vendor_without_credentials(
    stack: LocalStack, lambda_context: LocalLambdaContext
) -> None:
    status, body = _discover_over_api({"vendor": "plugchoice"}, lambda_context)  # the template's empty token
    assert status == 409
    assert body["title"] == "Vendor Not Configured"
    assert "token" in body["detail"]
    assert "put-secret-value" in body["detail"]


def test_a_vendor_refusing_the_credentials_is_a_502_with_its_message_and_no_secret(
    stack: LocalStack, make_vendor: MakeVendor, lambda_context: LocalLambdaContext
) -> None:
    vendor = make_vendor("evenergy", 2)
    _configure(stack, vendor, client_secret="not-the-secret")
    status, body = _discover_over_api({"vendor": "evenergy"}, lambda_context)
    assert status == 502
    assert "refused the client credentials (401)" in body["detail"]
    assert "not-the-secret" not in json.dumps(body)


@pytest.mark.parametrize("body", [{"vendor": "nope"}, {}, {"vendor": "ocpplab", "register": "yes"}])
def test_the_api_refuses_a_bad_body_with_a_422(
    stack: LocalStack, lambda_context: LocalLambdaContext, body: dict[str, Any]
) -> None:
    status, problem = _discover_over_api(body, lambda_context)
    assert status == 422
    assert problem["errors"]


# ---------------------------------------------------------------------------------------------- scheduled discovery
def _drain(stack: LocalStack, name: str, lambda_context: LocalLambdaContext) -> list[dict[str, Any]]:
    """Run the worker on the vendor's queue until it is empty; returns the job bodies it ran."""
    sqs = aws.client("sqs")
    queue, arn = stack.refs[QUEUE_LOGICAL_IDS[name]], stack.attributes[(QUEUE_LOGICAL_IDS[name], "Arn")]
    ran: list[dict[str, Any]] = []
    for _ in range(50):
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, AttributeNames=["All"]).get(
            "Messages", []
        )
        if not messages:
            return ran
        result = worker_handler.lambda_handler(sqs_event(messages, arn, "us-east-1"), lambda_context)
        assert result["batchItemFailures"] == []
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=messages[0]["ReceiptHandle"])
        ran.append(json.loads(messages[0]["Body"]))
    raise AssertionError("the queue did not drain")


def test_a_scheduled_pass_discovers_registers_and_collects_new_sources_at_once(
    stack: LocalStack, make_vendor: MakeVendor, lambda_context: LocalLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARGELOG_DISCOVER_SOURCES", "true")
    dispatcher.get_settings.cache_clear()
    vendor = make_vendor("ocpplab", 2)
    now = datetime.now(UTC)
    for charger_id in vendor.source_ids:
        vendor.simulator.seed(charger_id, now - timedelta(minutes=30), now)  # type: ignore[attr-defined]
    _configure(stack, vendor)
    summary = dispatcher.dispatch(
        now, sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues()
    )
    assert (summary.enqueued, summary.discoveries, summary.discovery_failures) == (0, 4, 0)
    ran = _drain(stack, "ocpplab", lambda_context)
    assert ran[0]["kind"] == "discover"
    collected = sorted({job["source_id"] for job in ran[1:]})
    assert collected == vendor.source_ids  # collected in the same pass, not on the next
    assert {s.source_id for s in sources.list_sources("ocpplab", enabled_only=True, store=stores.sources())} == set(
        vendor.source_ids
    )
    # The other vendors are not configured (the template's empty credentials): logged, nothing registered.
    for other in ("plugchoice", "chargepilot", "evenergy"):
        assert [job["kind"] for job in _drain(stack, other, lambda_context)] == ["discover"]
        assert sources.list_sources(other, store=stores.sources()) == []


def test_a_failing_vendor_does_not_fail_the_discovery_job_nor_stop_the_others(
    stack: LocalStack, make_vendor: MakeVendor, lambda_context: LocalLambdaContext
) -> None:
    down, up = make_vendor("plugchoice", 1), make_vendor("chargepilot", 1)
    _configure(stack, down, token="revoked")
    _configure(stack, up)
    failed = discovery.run_discovery_job(
        DiscoveryJob(vendor="plugchoice", scheduled_at=datetime.now(UTC)),
        lambda: 900.0,
        sources=stores.sources(),
        secrets=stores.vendor_secrets(),
        queues=stores.work_queues(),
    )
    assert failed.status == "vendor_failed"
    assert "refused the credentials (401)" in failed.detail
    outcome = discovery.run_discovery_job(
        DiscoveryJob(vendor="chargepilot", scheduled_at=datetime.now(UTC)),
        lambda: 900.0,
        sources=stores.sources(),
        secrets=stores.vendor_secrets(),
        queues=stores.work_queues(),
    )
    assert (outcome.status, outcome.found, outcome.registered, outcome.enqueued) == ("done", 1, 1, 1)


def test_without_the_flag_a_pass_queues_no_discovery(stack: LocalStack) -> None:
    assert (
        dispatcher.dispatch(
            datetime.now(UTC), sources=stores.sources(), states=stores.collector_states(), queues=stores.work_queues()
        ).discoveries
        == 0
    )


def test_a_disabled_source_stays_disabled_through_scheduled_discovery(
    stack: LocalStack, make_vendor: MakeVendor, lambda_context: LocalLambdaContext
) -> None:
    vendor = make_vendor("evenergy", 2)
    _configure(stack, vendor)
    discovery.discover_sources(
        "evenergy",
        register=True,
        remaining_seconds=lambda: 30.0,
        sources=stores.sources(),
        secrets=stores.vendor_secrets(),
    )
    sources.update_source("evenergy", "evse0000", SourceUpdate(enabled=False), store=stores.sources())
    outcome = discovery.run_discovery_job(
        DiscoveryJob(vendor="evenergy", scheduled_at=datetime.now(UTC)),
        lambda: 900.0,
        sources=stores.sources(),
        secrets=stores.vendor_secrets(),
        queues=stores.work_queues(),
    )
    assert (outcome.registered, outcome.enqueued) == (0, 0)
    assert [s.enabled for s in sources.list_sources("evenergy", store=stores.sources())] == [False, True]
