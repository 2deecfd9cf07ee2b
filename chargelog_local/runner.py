"""`chargelog local`: the whole application on one machine.

moto's server on 127.0.0.1 stands in for AWS; the template's tables, buckets, queues and secrets are
created in it from the template's own definitions; the template's functions run in this process behind
a local API Gateway, schedules and SQS pollers. Vendors without a configured URL point at a built-in
simulator.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chargelog import aws
from chargelog_local import template as tpl
from chargelog_local.gateway import LocalApiGateway
from chargelog_local.lambdas import LocalFunction
from chargelog_local.metrics import EmfTee, MetricsLog
from chargelog_local.provision import LocalStack, function_environment, provision
from chargelog_local.triggers import ScheduleTrigger, SqsTrigger

VENDOR_TAG = "chargelog:vendor"
# How long Ctrl-C waits for the invocations under way to end before it stops the services they call.
STOP_GRACE_SECONDS = 10.0
# Environment variable suffix -> key in the vendor's secret.
CREDENTIAL_VARIABLES = {
    "URL": "base_url",
    "TOKEN": "token",
    "API_KEY": "api_key",
    "API_SECRET": "api_secret",
    "CLIENT_ID": "client_id",
    "CLIENT_SECRET": "client_secret",
}
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

# vendor -> starts the vendor's simulator on 127.0.0.1 and returns (base URL, credentials, stop).
SimulatorStarter = Callable[[], tuple[str, dict[str, str], Callable[[], None]]]


def _start_ocpplab() -> tuple[str, dict[str, str], Callable[[], None]]:
    from chargelog_simulators.ocpplab import start_local

    return start_local()


def _start_chargepilot() -> tuple[str, dict[str, str], Callable[[], None]]:
    from chargelog_simulators.chargepilot import start_local

    return start_local()


def _start_plugchoice() -> tuple[str, dict[str, str], Callable[[], None]]:
    from chargelog_simulators.plugchoice import start_local

    return start_local()


def _start_evenergy() -> tuple[str, dict[str, str], Callable[[], None]]:
    from chargelog_simulators.evenergy import start_local

    return start_local()


SIMULATORS: dict[str, SimulatorStarter] = {
    "ocpplab": _start_ocpplab,
    "plugchoice": _start_plugchoice,
    "chargepilot": _start_chargepilot,
    "evenergy": _start_evenergy,
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalOptions:
    port: int = 3000
    schedule_seconds: float = 60.0
    # Each scheduled pass discovers the vendors' sources (the simulators' fleets) and registers them.
    discover_sources: bool = True
    stack_name: str = "chargelog-local"
    region: str = "us-east-1"
    api_key: str | None = None
    upload_port: int = 0  # the upload API's port; 0: any free one
    template_path: Path = tpl.TEMPLATE_PATH
    # Where the run keeps its files (the functions' metrics, metrics.ndjson); None: a new temporary directory.
    state_dir: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass
class VendorConnection:
    vendor: str
    base_url: str
    simulated: bool


class LocalRunner:
    def __init__(self, options: LocalOptions) -> None:
        self.options = options
        self.api_key = options.api_key or options.environ.get("CHARGELOG_API_KEY") or secrets.token_urlsafe(24)
        self._stop = threading.Event()
        self._stoppers: list[Callable[[], None]] = []
        self.template = tpl.load_template(options.template_path)
        self.functions: dict[str, LocalFunction] = {}
        self.connections: list[VendorConnection] = []
        self.stack: LocalStack | None = None
        self.moto_url = ""
        self.function_environment: dict[str, str] = {}
        self.api_url = ""
        self.upload_url = ""
        self.state_dir = options.state_dir or Path(tempfile.mkdtemp(prefix="chargelog-local-"))
        self.metrics_log = MetricsLog(self.state_dir / "metrics.ndjson")

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        self._keep_metrics()
        self._start_moto()
        self.stack = provision(self.template, self.options.stack_name, self.options.region, self._parameter_overrides())
        self._configure_vendors(self.stack)
        self._export_function_environment(self.stack)
        specs = tpl.functions(self.template)
        self.functions = {spec.logical_id: LocalFunction(spec, self.options.region) for spec in specs}
        self._start_uploads(self.stack)
        self._start_api(specs)
        self._start_triggers(specs, self.stack)

    def _keep_metrics(self) -> None:
        """The functions' EMF lines (Powertools prints them to stdout) go to the metrics log, not the terminal."""
        real_stdout = sys.stdout
        sys.stdout = EmfTee(real_stdout, self.metrics_log)

        def restore() -> None:
            sys.stdout = real_stdout

        self._stoppers.append(restore)

    def _parameter_overrides(self) -> dict[str, str]:
        return {"Stage": "local", "DiscoverSources": "true" if self.options.discover_sources else "false"}

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        from chargelog_local import moto_dynamodb

        moto_dynamodb.serialize()  # each DynamoDB request atomic, as on AWS (see the module)
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        self._stoppers.append(server.stop)
        self.moto_url = f"http://127.0.0.1:{port}"
        # Everything below, and every handler, reaches moto through the standard variables. Real AWS
        # credentials from the caller's shell are replaced so nothing local can touch a real account.
        os.environ.update(LOCAL_CREDENTIALS)
        os.environ["AWS_ENDPOINT_URL"] = self.moto_url
        os.environ["AWS_DEFAULT_REGION"] = self.options.region
        os.environ.pop("AWS_PROFILE", None)
        aws.reset()

    def _configure_vendors(self, stack: LocalStack) -> None:
        """Write each vendor's secret from CHARGELOG_<VENDOR>_* or point it at the vendor's simulator."""
        client = aws.client("secretsmanager")
        for name in stack.of_type("AWS::SecretsManager::Secret"):
            vendor = stack.tags[name].get(VENDOR_TAG)
            if not vendor:
                continue
            secret = json.loads(client.get_secret_value(SecretId=stack.refs[name])["SecretString"])
            prefix = f"CHARGELOG_{vendor.upper()}_"
            configured = {
                key: self.options.environ[prefix + suffix]
                for suffix, key in CREDENTIAL_VARIABLES.items()
                if self.options.environ.get(prefix + suffix)
            }
            simulated = not configured and vendor in SIMULATORS  # any setting given: the real vendor
            if simulated:
                base_url, credentials, stop = SIMULATORS[vendor]()
                self._stoppers.append(stop)
                configured = {"base_url": base_url, **credentials}
            secret.update(configured)
            client.put_secret_value(SecretId=stack.refs[name], SecretString=json.dumps(secret))
            self.connections.append(VendorConnection(vendor, secret.get("base_url", ""), simulated))

    def _export_function_environment(self, stack: LocalStack) -> None:
        """Set the functions' environment (from the template) in this process, where they run."""
        environment = function_environment(self.template, stack)
        self.function_environment = dict(environment)
        environment.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        # Metrics on: their EMF lines are kept (chargelog_local.metrics), as CloudWatch would turn them into metrics.
        environment.setdefault("POWERTOOLS_METRICS_DISABLED", "false")
        os.environ.update(environment)
        from chargelog.settings import get_settings

        get_settings.cache_clear()

    def _start_api(self, specs: list[tpl.FunctionSpec]) -> None:
        from werkzeug.serving import make_server

        gateway = LocalApiGateway(
            functions=self.functions,
            routes=[route for spec in specs for route in spec.routes],
            api_key=self.api_key,
            gateway_responses=tpl.gateway_responses(self.template),
            binary_media_types=tpl.binary_media_types(self.template),
            stage="local",
            region=self.options.region,
            metrics_log=self.metrics_log,
        )
        server = make_server("127.0.0.1", self.options.port, gateway, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="api", daemon=True)
        thread.start()
        self._stoppers.append(server.shutdown)
        self.api_url = f"http://127.0.0.1:{server.server_port}"

    def _start_uploads(self, stack: LocalStack) -> None:
        """The upload API (UploadApi's DefinitionBody) on its own port; the API function's upload addresses use it."""
        from werkzeug.serving import make_server

        from chargelog_local.uploads import upload_gateways

        for gateway in upload_gateways(self.template, stack, self.functions, stage="local"):
            server = make_server("127.0.0.1", self.options.upload_port, gateway, threaded=True)
            threading.Thread(target=server.serve_forever, name=gateway.api.logical_id, daemon=True).start()
            self._stoppers.append(server.shutdown)
            self.upload_url = f"http://127.0.0.1:{server.server_port}"
        if self.upload_url:
            self.function_environment["CHARGELOG_UPLOAD_BASE_URL"] = self.upload_url
            os.environ["CHARGELOG_UPLOAD_BASE_URL"] = self.upload_url
            from chargelog.settings import get_settings

            get_settings.cache_clear()

    def _start_triggers(self, specs: list[tpl.FunctionSpec], stack: LocalStack) -> None:
        resolver = stack.resolver()
        for spec in specs:
            function = self.functions[spec.logical_id]
            if self.options.schedule_seconds > 0:
                for rule in spec.schedules:
                    # The first pass runs right away, so the discovered fleet shows within seconds of the start.
                    ScheduleTrigger(
                        function,
                        rule,
                        self.options.schedule_seconds,
                        self.options.region,
                        self._stop,
                        fire_at_start=True,
                    ).start()
            # Each SQS event source polls on its own, running up to its MaximumConcurrency invocations at once.
            for number, (queue_arn_expr, batch_size, reports) in enumerate(spec.queues):
                queue_arn = resolver.resolve(queue_arn_expr)
                queue_url = stack.refs[stack.logical_id_of_arn(queue_arn)]
                SqsTrigger(
                    function,
                    queue_url,
                    queue_arn,
                    batch_size,
                    reports,
                    self.options.region,
                    self._stop,
                    concurrency=spec.concurrency_of(number),
                ).start()

    # ------------------------------------------------------------------ report and stop
    def banner(self) -> str:
        assert self.stack is not None
        lines = [
            "chargelog local stack is running.",
            f"  API:      {self.api_url}",
            f"  Viewer:   {self.api_url}/ui/  (the web viewer: give it the API key below)",
            f"  API docs: {self.api_url}/docs  (Swagger UI: Authorize with the API key)",
            f"  API key:  {self.api_key}",
            f"  Uploads:  {self.upload_url or '(no upload API in the template)'}  (diagnostics upload addresses)",
            f"  AWS (moto server): {self.moto_url}",
            f"  Metrics:  {self.metrics_log.path} (latest per vendor: `chargelog metrics`, GET /local/metrics)",
            f"  Schedules fire every {self.options.schedule_seconds:g} s"
            if self.options.schedule_seconds > 0
            else "  Schedules are off (--schedule-seconds 0)",
            "  Each pass discovers and registers the vendors' sources (--no-discover-sources: register by hand)"
            if self.options.discover_sources
            else "  Source discovery is off: register sources with POST /sources",
        ]
        for omission in self.stack.local_omissions:
            lines.append(f"  Not applied locally: {omission}")
        for connection in self.connections:
            where = "built-in simulator" if connection.simulated else "configured"
            lines.append(f"  {connection.vendor:<12} {connection.base_url or '(no URL set)'} ({where})")
        lines += [
            "",
            "In a second shell:",
            f"  export CHARGELOG_API_URL={self.api_url}",
            f"  export CHARGELOG_API_KEY={self.api_key}",
            f"  export AWS_ENDPOINT_URL={self.moto_url} AWS_DEFAULT_REGION={self.options.region}",
            "  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing",
            *(
                f"  export {key}={value}"
                for key, value in sorted(self.function_environment.items())
                if key.startswith("CHARGELOG_")
            ),
            "",
            f'  curl -H "x-api-key: $CHARGELOG_API_KEY" {self.api_url}/sources',
            "Ctrl-C stops everything.",
        ]
        return "\n".join(lines)

    def stop(self) -> None:
        self._stop.set()
        for function in self.functions.values():
            function.shutdown()
        # An invocation under way ends before the services it calls stop, and before "stopped." is printed: its
        # last lines (logs, metrics) come out before that line, never after it.
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for function in self.functions.values():
            if not function.wait_idle(deadline - time.monotonic()):
                print(
                    f"chargelog local: {function.name} still running after {STOP_GRACE_SECONDS:.0f} s; stopping anyway"
                )
        for stopper in reversed(self._stoppers):
            try:
                stopper()
            except Exception as error:
                print(f"chargelog local: while stopping: {error}")

    def wait(self) -> None:
        """Block until SIGINT or SIGTERM."""
        received = threading.Event()

        def _on_signal(signum: int, _frame: Any) -> None:
            received.set()

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        while not received.wait(0.5):
            pass


def run(options: LocalOptions) -> int:
    line_format = "%(asctime)s %(name)s %(levelname)s %(message)s"
    logging.basicConfig(level=logging.INFO, format=line_format)
    # moto's and this API's servers would log every request; the gateway logs its own lines.
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The stack's own lines (gateways, triggers) get a handler of their own: the functions' Powertools Logger (service
    # "chargelog") puts a filter on the root's handlers that drops every logger whose name contains "chargelog", so
    # through the root they would never print.
    own_lines = logging.StreamHandler()
    own_lines.setFormatter(logging.Formatter(line_format))
    stack_logger = logging.getLogger("chargelog_local")
    stack_logger.addHandler(own_lines)
    stack_logger.propagate = False
    runner = LocalRunner(options)
    try:
        runner.start()
    except OSError as error:
        runner.stop()
        raise SystemExit(f"chargelog local: cannot start: {error}") from error
    print(runner.banner(), flush=True)
    try:
        runner.wait()
    finally:
        print("chargelog local: stopping...", flush=True)
        runner.stop()
    print("chargelog local: stopped.", flush=True)
    return 0
