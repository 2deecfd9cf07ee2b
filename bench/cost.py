"""What storing a record costs: every AWS request of scheduled collection and of the main queries, priced.

For each vendor (ocpplab, plugchoice, chargepilot, evenergy) it runs, against moto's server (own process) and the
vendor's simulator (own process, the vendor's realistic traffic at the simulators' default density):
- scheduled collection as deployed: every ScheduleMinutes (template.yaml) the dispatcher's handler runs with the
  schedule's event, and the worker's handler runs each job from the vendor's work queue (as Lambda's SQS event
  source mapping does: receive, invoke, delete), through JobRunner and the stores of chargelog.stores. The first
  pass collects the new sources' initial history; the passes after it are the steady state the figures come from.
  As deployed, the worker runs the charger health detectors on every page it stores (docs/health.md) and the health
  monitor's handler runs every ScheduleMinutes too (after each pass's jobs; reported apart, per pass). With
  ``--no-detectors`` the worker's environment lacks CHARGELOG_ALERT_QUEUE_URL (so chargelog.stores.collection()
  gives it no detectors) and the health monitor does not run: bench/health.py compares the two;
- the API's main queries in-process (api_handler, API Gateway proxy events): a charger's time range, its commonest
  and rarest action, a site, the fleet by those actions, one record.

Every AWS request is counted by botocore event hooks registered on each boto3 session the code creates (nothing in
chargelog changes). DynamoDB requests are sent with ReturnConsumedCapacity=INDEXES (injected before the parameters
are built). moto answers that with a fixed placeholder (1 unit a call, no index breakdown), so the capacity units
are computed from the items' sizes by DynamoDB's documented rules (bench/cost_model.py): from the items the code
wrote (the requests themselves), the items as stored after an update (read back, uncounted), and the items a read
returned. What moto reported is printed beside them. Item layout and index names are not assumed: the key
schema and indexes come from template.yaml, the items from what the code writes. Record items are the items
written with BatchWriteItem (how RecordWriter stores records); the charger health detectors' items are their own
kinds, by partition key: ``health`` (``pk = "HEALTH"``, a charger's state) and ``alerts`` (``pk = "ALERT#<id>"``);
everything else is bookkeeping. SQS requests are also counted per queue (the AlertQueue's: alert notices). The
simulators' traffic is healthy by default (chargelog_simulators.traffic.Behaviour), so alerts should be about none.

Lambda: the wall time of each handler invocation times the function's MemorySize (template.yaml), plus one
request per invocation. The handlers run in this process (moto and the simulators in their own), so the process
time (time.process_time) around an invocation is the function's CPU; both times include the bench's own
accounting in its hooks (sizing items, reading an updated item back), which is measured and reported apart
(``worker``: per 1,000 records, without it; the GB-s figures keep it, an upper bound). Before each invocation the
bench's own heap is frozen out of the garbage collector (gc.freeze), so a collection inside it scans the function's
objects, not the items the bench recorded (a full collection of those took over half a second). Secrets Manager: the
worker caches a vendor's secret for 5 minutes, so the cache is cleared at every pass (one warm worker per vendor,
as on AWS with one pass every 5 minutes).

    .venv/bin/python bench/cost.py                              # 1,000 records per vendor
    .venv/bin/python bench/cost.py --records-per-vendor 500 --json
    .venv/bin/python bench/cost.py --no-detectors                # the worker without charger health detection
    .venv/bin/python bench/cost.py --schedule-minutes 60         # hourly passes: more records a job, fewer jobs
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import math
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cost_model import (
    Prices,
    TableLayout,
    Usage,
    item_size,
    item_write_cost,
    per_million,
    provisioned_break_even,
    read_units,
    request_dollars,
    s3_request_class,
    sqs_billed_requests,
    storage_dollars_per_month,
    stored_bytes,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
REGION = "us-east-1"
VENDORS = ("ocpplab", "plugchoice", "chargepilot", "evenergy")
PASSES = 12  # steady passes after the first: an hour at the default rate
WARM_UP = timedelta(minutes=10)  # traffic before the first pass (what its initial history finds)
PAGE_LIMIT = 100  # API page size of the queries


# ---------------------------------------------------------------------------------------------- simulators


def _simulator(vendor: str, sources: int, start: datetime, end: datetime) -> tuple[Any, str, dict[str, str], list]:
    """A seeded simulator of ``vendor`` with ``sources`` sources of traffic over [start, end]: (simulator, base
    path, credentials, source ids)."""
    if vendor == "ocpplab":
        from chargelog_simulators.ocpplab import OcpplabSimulator

        lab = OcpplabSimulator(seed=12)
        lab.add_token("cost-token", "cost")
        ids = [f"dep-{n:04d}" for n in range(sources)]
        for charger in ids:
            lab.add_charger(charger, "cost")
            lab.seed(charger, start, end)
        return lab, "", {"token": "cost-token"}, ids
    if vendor == "plugchoice":
        from chargelog_simulators.plugchoice import PlugchoiceSimulator

        plug = PlugchoiceSimulator(seed=12, rate_limit_per_minute=None)
        plug.add_token("cost-token", "cost")
        ids = [f"c0ffee00-0000-4000-8000-{n:012d}" for n in range(sources)]
        for n, uuid in enumerate(ids):
            plug.add_charger(uuid, "cost", f"PC-{n}")
            plug.seed(uuid, start, end)
        return plug, "/api", {"token": "cost-token"}, ids
    if vendor == "chargepilot":
        from chargelog_simulators.chargepilot import ChargepilotSimulator

        pilot = ChargepilotSimulator(seed=12)
        pilot.add_api_key("cost-key", "cost-secret")
        ids = [f"site-{n:04d}" for n in range(sources)]
        for n, site in enumerate(ids):
            pilot.add_site(site, "cost-key", f"Depot {n}")
            for c in range(2):
                pilot.add_charger(site, f"{site}-cp{c}")
            pilot.seed(site, start, end)
        return pilot, "/rest/v1", {"api_key": "cost-key", "api_secret": "cost-secret"}, ids
    if vendor == "evenergy":
        from chargelog_simulators.evenergy import EvEnergySimulator

        energy = EvEnergySimulator(seed=12, rate_limit=10**6)
        energy.add_client("cost-client", "cost-secret")
        ids = [f"evse{n:04d}" for n in range(sources)]
        for evse in ids:
            energy.add_evse(evse, "cost-client")
            energy.seed(evse, start, end)
        return energy, "/v2", {"client_id": "cost-client", "client_secret": "cost-secret"}, ids
    raise ValueError(vendor)


def _serve_simulator(vendor: str, records: int, start: datetime, first: datetime, end: datetime) -> None:
    """Child process: as many sources as it takes for ``records`` records in the steady passes (first, end];
    prints the base URL, credentials, source ids and record counts, then serves until stdin closes."""
    from chargelog_simulators.base import SimulatorServer

    probe, _, _, probe_ids = _simulator(vendor, 1, start, end)
    per_source = max(1, _steady_records(probe, first, probe_ids))
    sources = max(1, math.ceil(records / per_source))
    simulator, base_path, credentials, ids = _simulator(vendor, sources, start, end)
    server = SimulatorServer(simulator.wsgi_app)
    url = server.start() + base_path
    steady = _steady_records(simulator, first, ids)
    print(json.dumps({"url": url, "credentials": credentials, "sources": ids, "steady_records": steady}), flush=True)
    sys.stdin.read()
    server.stop()


def _steady_records(simulator: Any, first: datetime, ids: list[str]) -> int:
    """Records served after the first pass: what the steady passes collect."""
    total = 0
    for source in ids:
        for record in simulator.visible_records(source):
            if _record_time(record) > first:
                total += 1
    return total


_TIME_FIELDS = ("timestamp", "occurrence_time", "created_at", "createdAt", "logged_at", "sampled_at", "time", "date")


def _record_time(record: dict[str, Any]) -> datetime:
    """A simulator record's time, whatever the vendor calls it (first ISO-8601 looking field)."""
    for name in _TIME_FIELDS:
        if name in record:
            value = record[name]
            if isinstance(value, int | float):
                return datetime.fromtimestamp(value / (1000 if value > 1e11 else 1), UTC)
            return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    for value in record.values():
        if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT", value):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    raise ValueError(f"no time in {sorted(record)}")


def _start_child(args: list[str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    child = subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        raise RuntimeError(f"simulator child {args} exited")
    return child, json.loads(line)


# ---------------------------------------------------------------------------------------------- request counting


@dataclass
class Tally:
    """What one phase of the run asked of AWS."""

    usage: Usage = field(default_factory=Usage)
    calls: Counter[str] = field(default_factory=Counter)  # "service.Operation" -> requests
    write_units: Counter[str] = field(default_factory=Counter)  # "records/table", "records/gsi1", "other/table"...
    read_units: Counter[str] = field(default_factory=Counter)
    read_units_by_kind: Counter[str] = field(default_factory=Counter)  # "health", "alerts", "other"
    read_requests_by_kind: Counter[str] = field(default_factory=Counter)  # (a batch get: each item)
    s3_bytes: Counter[str] = field(default_factory=Counter)  # "PUT <bucket>/<tier>" -> bytes
    s3_objects: Counter[str] = field(default_factory=Counter)
    reported_units: float = 0.0  # what moto put in ConsumedCapacity
    reported_calls: int = 0
    items_read: int = 0  # DynamoDB items evaluated by Query/Scan/Get
    items_returned: int = 0
    lambda_seconds: Counter[str] = field(default_factory=Counter)
    lambda_invocations: Counter[str] = field(default_factory=Counter)
    # Process time (CPU, every thread of this process) of each function's invocations; and of it, and of their wall
    # time, what the bench's own accounting took (these hooks, reading an updated item back): not the function's.
    lambda_cpu_seconds: Counter[str] = field(default_factory=Counter)
    accounting_seconds: Counter[str] = field(default_factory=Counter)
    accounting_cpu_seconds: Counter[str] = field(default_factory=Counter)
    item_writes: Counter[str] = field(default_factory=Counter)  # "<kind> <operation>" -> items written (succeeded)
    failed_writes: Counter[str] = field(default_factory=Counter)  # ... whose condition failed
    sqs_by_queue: Counter[str] = field(default_factory=Counter)  # "<Operation> <queue logical id>" -> billed requests


def write_kind(key: dict[str, Any], *, record: bool = False) -> str:
    """The kind of a written item, by its partition key (wire form): the charger health detectors' state items
    (``HEALTH``) and alert items (``ALERT#<id>``, docs/health.md); everything else not a record is bookkeeping."""
    pk = next(iter(key.get("pk", {}).values()), "") if isinstance(key.get("pk"), dict) else ""
    if pk == "HEALTH":
        return "health"
    if isinstance(pk, str) and pk.startswith("ALERT#"):
        return "alerts"
    return "records" if record else "bookkeeping"


def _read_kind(key: dict[str, Any]) -> str:
    kind = write_kind(key)
    return "other" if kind == "bookkeeping" else kind


_ACTIVE: list[Recorder] = []  # the recorder the hooks report to (health.py measures with several, one at a time)


class Recorder:
    """Counts and sizes every AWS request of every boto3 session created after ``install``."""

    def __init__(self, layout: TableLayout, inspect: Any, bucket_names: Callable[[], dict[str, str]]) -> None:
        self.layout = layout
        self._inspect = inspect  # an unhooked DynamoDB client, to read an item back after an update
        self._bucket_names = bucket_names  # physical bucket name -> template logical id
        self.queue_names: dict[str, str] = {}  # queue URL -> template logical id
        self._active_invocations = 0
        self._accounting = [0.0, 0.0]  # wall, CPU seconds the hooks took while an invocation ran
        self._lock = threading.RLock()
        self.phase = "setup"
        self.tallies: dict[str, Tally] = defaultdict(Tally)
        self.shadow: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}  # (table, key) -> stored item
        self.record_keys: set[tuple[str, tuple[str, ...]]] = set()
        self.first_written: dict[str, set[tuple[str, tuple[str, ...]]]] = defaultdict(set)  # phase -> new records

    # ------------------------------------------------------------------ hooks
    def install(self) -> None:
        """Hook every boto3 session created from now on, reporting to this recorder (to the latest installed: a
        session made while another recorder was installed reports to this one from now on too)."""
        import boto3
        import boto3.session

        first = not _ACTIVE
        _ACTIVE[:] = [self]
        boto3.DEFAULT_SESSION = None
        if not first:
            return
        original = boto3.session.Session.__init__

        def hooked(session: Any, *args: Any, **kwargs: Any) -> None:
            original(session, *args, **kwargs)
            Recorder.register(session.events)

        boto3.session.Session.__init__ = hooked  # type: ignore[method-assign]

    @staticmethod
    def register(events: Any) -> None:
        events.register("before-parameter-build.dynamodb", Recorder._ask_for_capacity)
        events.register("before-call", Recorder._before_call)
        events.register("after-call", lambda **kwargs: _ACTIVE[0]._after_call(**kwargs))

    @staticmethod
    def _ask_for_capacity(params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members and "ReturnConsumedCapacity" not in params:
            params["ReturnConsumedCapacity"] = "INDEXES"

    @staticmethod
    def _before_call(model: Any, params: dict[str, Any], **_: Any) -> None:
        params["context"]["cost_request"] = params

    def _after_call(self, http_response: Any, parsed: dict[str, Any], model: Any, context: Any, **_: Any) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        request = context.get("cost_request") or {}
        service = model.service_model.service_name
        operation = model.name
        ok = 200 <= http_response.status_code < 300
        with self._lock:
            tally = self.tallies[self.phase]
            tally.calls[f"{service}.{operation}"] += 1
            if service == "dynamodb":
                self._dynamodb(tally, operation, request, http_response, ok)
            elif service == "s3":
                self._s3(tally, operation, request, http_response)
            elif service == "sqs":
                body = _body_bytes(request)
                billed = sqs_billed_requests(len(body))
                tally.usage.sqs_requests += billed
                tally.sqs_by_queue[f"{operation} {self._queue_of(body)}"] += billed
            elif service == "secretsmanager":
                tally.usage.secrets_calls += 1
            if self._active_invocations:
                self._accounting[0] += time.perf_counter() - wall
                self._accounting[1] += time.process_time() - cpu

    def _queue_of(self, body: bytes) -> str:
        """The template's name of the queue a request is for (the JSON protocol's QueueUrl)."""
        try:
            url = str(json.loads(body or b"{}").get("QueueUrl", ""))
        except ValueError:
            return "?"
        return self.queue_names.get(url, url.rsplit("/", 1)[-1] or "?")

    # ------------------------------------------------------------------ S3
    def _s3(self, tally: Tally, operation: str, request: dict[str, Any], response: Any) -> None:
        kind = s3_request_class(operation)
        if kind == "PUT":
            tally.usage.s3_put += 1
        elif kind == "GET":
            tally.usage.s3_get += 1
        url = request.get("url", "")
        path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        bucket, _, key = path.partition("/")
        tier = key.split("/", 1)[0] if "/" in key else "(root)"
        where = f"{self._bucket_names().get(bucket, bucket)}/{tier}"
        if operation == "PutObject":
            size = int(request.get("headers", {}).get("Content-Length") or len(_body_bytes(request)))
            tally.s3_bytes[f"PUT {where}"] += size
            tally.s3_objects[f"PUT {where}"] += 1
        elif operation == "GetObject":
            tally.s3_bytes[f"GET {where}"] += int(response.headers.get("content-length", 0))
            tally.s3_objects[f"GET {where}"] += 1

    # ------------------------------------------------------------------ DynamoDB
    def _dynamodb(self, tally: Tally, operation: str, request: dict[str, Any], response: Any, ok: bool) -> None:
        body = json.loads(_body_bytes(request) or b"{}")
        answer = json.loads(response.content or b"{}")
        reported = answer.get("ConsumedCapacity")
        if reported:
            tally.reported_calls += 1
            for entry in reported if isinstance(reported, list) else [reported]:
                tally.reported_units += float(entry.get("CapacityUnits", 0))
        if operation == "BatchWriteItem":
            unprocessed = answer.get("UnprocessedItems", {})
            for table, requests in body.get("RequestItems", {}).items():
                skipped = [json.dumps(r, sort_keys=True) for r in unprocessed.get(table, [])]
                for entry in requests:
                    if json.dumps(entry, sort_keys=True) in skipped:
                        continue
                    if "PutRequest" in entry:
                        self._write(tally, table, entry["PutRequest"]["Item"], "put", ok=True, record=True)
                    else:
                        self._write(tally, table, entry["DeleteRequest"]["Key"], "delete", ok=True, record=True)
        elif operation == "PutItem":
            self._write(tally, body["TableName"], body["Item"], "put", ok)
        elif operation == "UpdateItem":
            self._write(tally, body["TableName"], body["Key"], "update", ok)
        elif operation == "DeleteItem":
            self._write(tally, body["TableName"], body["Key"], "delete", ok)
        elif operation == "TransactWriteItems":
            for entry in body.get("TransactItems", []):
                ((kind, spec),) = entry.items()
                table = spec["TableName"]
                if kind == "Put":
                    self._write(tally, table, spec["Item"], "put", ok, transactional=True)
                elif kind in ("Update", "Delete"):
                    self._write(tally, table, spec["Key"], kind.lower(), ok, transactional=True)
                else:  # ConditionCheck: a read of the item, billed as a write
                    kind = write_kind(spec["Key"])
                    group = "check" if kind == "bookkeeping" else kind
                    self._count_write(tally, table, group, item_write_cost(self.layout, None, None, succeeded=False))
        elif operation == "GetItem":
            item = answer.get("Item")
            stored = self.shadow.get((body["TableName"], self.layout.key_of(body["Key"]))) if item else None
            size = item_size(stored or item) if item else 0
            units = read_units(size, body.get("ConsistentRead", False))
            self._count_read(tally, body["TableName"], "table", units, 1 if item else 0, _read_kind(body["Key"]))
        elif operation in ("Query", "Scan") and ok:
            self._query(tally, body, answer)
        elif operation == "BatchGetItem" and ok:
            # Billed per item, as a GetItem of each: its size rounded up to 4 KB.
            for table, items in answer.get("Responses", {}).items():
                consistent = body.get("RequestItems", {}).get(table, {}).get("ConsistentRead", False)
                for item in items:
                    stored = self.shadow.get((table, self.layout.key_of(item)))
                    units = read_units(item_size(stored or item), consistent)
                    self._count_read(tally, table, "table (batch get)", units, 1, _read_kind(item))

    def _query(self, tally: Tally, body: dict[str, Any], answer: dict[str, Any]) -> None:
        table = body["TableName"]
        index = next((i for i in self.layout.indexes if i.name == body.get("IndexName")), None)
        sizes = []
        for item in answer.get("Items", []):
            stored = self.shadow.get((table, self.layout.key_of(item)))
            copy = (self.layout.projected(index, stored) if index else stored) if stored else None
            sizes.append(item_size(copy or item))
        scanned = int(answer.get("ScannedCount", len(sizes)))
        unseen = max(0, scanned - len(sizes))  # read, then dropped by a filter: sized like those returned
        average = sum(sizes) / len(sizes) if sizes else self._average_record(index)
        total = sum(sizes) + unseen * average
        units = read_units(math.ceil(total), body.get("ConsistentRead", False))
        # The partition read: the key condition's values (a Query of HEALTH reads the health states).
        values = [v for v in body.get("ExpressionAttributeValues", {}).values() if isinstance(v, dict) and "S" in v]
        kind = next((k for v in values if (k := _read_kind({"pk": v})) != "other"), "other")
        self._count_read(tally, table, index.name if index else "table", units, scanned, kind)

    def _average_record(self, index: Any) -> float:
        sizes = []
        for key in list(self.record_keys)[:500]:
            stored = self.shadow.get(key)
            copy = (self.layout.projected(index, stored) if index else stored) if stored else None
            if copy:
                sizes.append(item_size(copy))
        return sum(sizes) / len(sizes) if sizes else 0.0

    def _write(
        self,
        tally: Tally,
        table: str,
        item_or_key: dict[str, Any],
        kind: str,
        ok: bool,
        *,
        record: bool = False,
        transactional: bool = False,
    ) -> None:
        key = (table, self.layout.key_of(item_or_key))
        before = self.shadow.get(key)
        if kind == "put":
            after: dict[str, Any] | None = item_or_key
        elif kind == "delete":
            after = None
        else:  # an update: read the item back (strongly consistent, not counted)
            read = self._inspect.get_item(TableName=table, Key=item_or_key, ConsistentRead=True)
            after = read.get("Item")
        cost = item_write_cost(self.layout, before, after, succeeded=ok, transactional=transactional)
        if ok:
            if after is None:
                self.shadow.pop(key, None)
            else:
                self.shadow[key] = after
        group = write_kind(item_or_key, record=record)
        if group == "records":
            if key not in self.record_keys:
                self.record_keys.add(key)
                self.first_written[self.phase].add(key)
                group = "records (first write)"
            else:
                group = "records (rewrite)"
        (tally.item_writes if ok else tally.failed_writes)[f"{group} {kind}"] += 1
        self._count_write(tally, table, group, cost)

    @staticmethod
    def _count_write(tally: Tally, table: str, group: str, cost: Any) -> None:
        tally.write_units[f"{group}/table"] += cost.table
        for index, units in cost.indexes.items():
            tally.write_units[f"{group}/{index}"] += units
        tally.usage.write_units += cost.total

    @staticmethod
    def _count_read(tally: Tally, table: str, where: str, units: float, read: int, kind: str = "other") -> None:
        tally.read_units[where] += units
        tally.read_units_by_kind[kind] += units
        tally.read_requests_by_kind[kind] += 1
        tally.usage.read_units += units
        tally.items_read += read

    # ------------------------------------------------------------------ Lambda
    @contextmanager
    def invocation(self, function: str, memory_mb: int) -> Iterator[None]:
        """One invocation of ``function``: its wall time (billed as GB-s) and its process time (CPU). Both include
        the bench's accounting in these hooks, which is also kept apart (``accounting_*``) to be taken off."""
        # The bench's own heap (the items it recorded, other runs' objects) is frozen out of the garbage collector,
        # so that a collection during the invocation scans what the function made (as in its own Lambda process),
        # not this process's bookkeeping: a full collection of it took over half a second.
        gc.freeze()
        began, began_cpu = time.perf_counter(), time.process_time()
        accounted = tuple(self._accounting)
        self._active_invocations += 1
        try:
            yield
        finally:
            self._active_invocations -= 1
            seconds = time.perf_counter() - began
            cpu = time.process_time() - began_cpu
            with self._lock:
                tally = self.tallies[self.phase]
                tally.lambda_seconds[function] += seconds
                tally.lambda_cpu_seconds[function] += cpu
                tally.accounting_seconds[function] += self._accounting[0] - accounted[0]
                tally.accounting_cpu_seconds[function] += self._accounting[1] - accounted[1]
                tally.lambda_invocations[function] += 1
                tally.usage.lambda_gb_seconds += seconds * memory_mb / 1024
                tally.usage.lambda_requests += 1


def _body_bytes(request: dict[str, Any]) -> bytes:
    body = request.get("body", b"")
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if hasattr(body, "getvalue"):
        return bytes(body.getvalue())
    if hasattr(body, "read") and hasattr(body, "seek"):
        position = body.tell()
        data = body.read()
        body.seek(position)
        return data if isinstance(data, bytes) else str(data).encode()
    return b""


# ---------------------------------------------------------------------------------------------- the template


def _template() -> dict[str, Any]:
    from chargelog_local.template import load_template

    return load_template()


def _table_layout(template: dict[str, Any]) -> TableLayout:
    tables = [r for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    return TableLayout.from_template(tables[0]["Properties"])


def _memory_mb(template: dict[str, Any], function: str) -> int:
    default = template.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
    return int(template["Resources"][function]["Properties"].get("MemorySize", default))


def _schedule_seconds(template: dict[str, Any]) -> int:
    return int(template["Parameters"]["ScheduleMinutes"]["Default"]) * 60


def _retention_days(template: dict[str, Any]) -> dict[str, int]:
    """How long each store keeps a record (the template's defaults): the table its hot window, the S3 buckets theirs."""
    parameters = template["Parameters"]
    return {
        "dynamodb": int(parameters["HotRetentionDays"]["Default"]),
        "RawBucket": int(parameters["RawRetentionDays"]["Default"]),
        "RecordArchiveBucket": int(parameters["ArchiveRetentionDays"]["Default"]),
    }


def _over_retention(
    stored_db: float, s3_per_record: dict[str, float], prices: Prices, retention: dict[str, int]
) -> dict[str, float]:
    """Storing a million records for as long as each store keeps them: the table for the hot window, each bucket's
    bytes for its own retention (a bucket the template names no retention for: the archive's)."""
    month = 30.4
    s3 = sum(
        storage_dollars_per_month(0, size * 1e6, prices)["s3"]
        * retention.get(where.split("/")[0], retention["RecordArchiveBucket"])
        / month
        for where, size in s3_per_record.items()
    )
    return {
        "dynamodb": storage_dollars_per_month(stored_db * 1e6, 0, prices)["dynamodb"] * retention["dynamodb"] / month,
        "s3": s3,
    }


# ---------------------------------------------------------------------------------------------- one vendor


@dataclass
class VendorRun:
    vendor: str
    sources: int
    steady_records_served: int
    records: dict[str, int]  # phase -> new records stored
    record_items: list[dict[str, Any]]  # every record item as stored (wire form)
    detectors: bool = True  # the charger health detectors ran (the worker had CHARGELOG_ALERT_QUEUE_URL)
    chargers: int = 0  # chargers in the charger index at the end


def _proxy_event(method: str, path: str, query: dict[str, str]) -> dict[str, Any]:
    event = json.loads((REPO / "events" / "api_get_charger_logs.json").read_text())
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = event["resource"] = path
    event["pathParameters"] = None
    event["queryStringParameters"] = query or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    return event


def run_vendor(
    vendor: str,
    records: int,
    recorder: Recorder,
    template: dict[str, Any],
    moto_url: str,
    *,
    detectors: bool = True,
    queries: bool = True,
    stack_name: str | None = None,
    schedule_seconds: int | None = None,
) -> VendorRun:
    """Scheduled collection from ``vendor``'s simulator (a first pass, then PASSES steady ones), then the queries.

    ``detectors``: as deployed, the worker runs the charger health detectors on every stored page (its environment
    names the AlertQueue: CHARGELOG_ALERT_QUEUE_URL) and the health monitor function runs every ScheduleMinutes too
    (after each pass's jobs; phase ``<vendor>/monitor``, apart from the passes' figures). False: the worker's
    environment without CHARGELOG_ALERT_QUEUE_URL (detection off) and no health monitor.

    ``schedule_seconds``: the passes' interval (ScheduleMinutes), the template's default unless given; the functions'
    CHARGELOG_SCHEDULE_MINUTES says the same, as a deployment with that ScheduleMinutes would."""
    from aws_lambda_powertools.utilities import parameters
    from processes import stop_child

    import dispatcher_handler
    import health_monitor_handler
    import worker_handler
    from chargelog import aws, stores
    from chargelog.logic import sources
    from chargelog.models.sources import SourceCreate
    from chargelog.settings import get_settings
    from chargelog_local.lambdas import LocalLambdaContext
    from chargelog_local.provision import function_environment, provision
    from chargelog_local.triggers import scheduled_event, sqs_event

    interval = schedule_seconds or _schedule_seconds(template)
    first = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(seconds=interval * (PASSES + 2))
    start, end = first - WARM_UP, first + timedelta(seconds=interval * PASSES)
    simulator, info = _start_child(
        ["--serve-simulator", vendor, str(records), start.isoformat(), first.isoformat(), end.isoformat()]
    )
    try:
        recorder.phase = "setup"
        stack = provision(template, stack_name or f"cost-{vendor}", REGION)
        os.environ.update(function_environment(template, stack))
        os.environ["CHARGELOG_SCHEDULE_MINUTES"] = f"{interval / 60:g}"
        if not detectors:
            os.environ["CHARGELOG_ALERT_QUEUE_URL"] = ""  # stores.collection(): no health detectors in the worker
        get_settings.cache_clear()
        aws.reset()
        buckets = {
            stack.refs[name]: name for name, r in template["Resources"].items() if r["Type"] == "AWS::S3::Bucket"
        }
        recorder._bucket_names = lambda: buckets
        recorder.queue_names.update(
            {stack.refs[name]: name for name, r in template["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}
        )
        prefix = vendor.capitalize()
        secret = {"base_url": info["url"], **info["credentials"], "requests_per_second": 10_000, "burst": 10_000}
        aws.client("secretsmanager").put_secret_value(
            SecretId=stack.refs[f"{prefix}Secret"], SecretString=json.dumps(secret)
        )
        for source_id in info["sources"]:
            sources.create_source(
                SourceCreate.model_validate({"vendor": vendor, "source_id": source_id}), store=stores.sources()
            )
        queue, arn = stack.refs[f"{prefix}WorkQueue"], stack.attributes[(f"{prefix}WorkQueue", "Arn")]
        sqs = aws.client("sqs")
        dispatcher_mb, worker_mb = _memory_mb(template, "DispatcherFunction"), _memory_mb(template, "WorkerFunction")
        monitor_mb = _memory_mb(template, "HealthMonitorFunction")
        for n in range(PASSES + 1):
            recorder.phase = f"{vendor}/first" if n == 0 else f"{vendor}/steady"
            parameters.clear_caches()  # a pass every 5 minutes: the worker's 5-minute secret cache has run out
            now = first + timedelta(seconds=interval * n)
            context = LocalLambdaContext("DispatcherFunction", dispatcher_mb, 60, REGION)
            with recorder.invocation("DispatcherFunction", dispatcher_mb):
                dispatcher_handler.lambda_handler(scheduled_event("cost-schedule", REGION, now), context)
            while True:  # the event source mapping: batches of one (BatchSize: 1), deleted when done
                messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, AttributeNames=["All"]).get(
                    "Messages", []
                )
                if not messages:
                    break
                context = LocalLambdaContext("WorkerFunction", worker_mb, 900, REGION)
                with recorder.invocation("WorkerFunction", worker_mb):
                    result = worker_handler.lambda_handler(sqs_event(messages, arn, REGION), context)
                if result.get("batchItemFailures"):
                    raise RuntimeError(f"{vendor}: a job failed: {result}")
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=messages[0]["ReceiptHandle"])
            if detectors:  # the health monitor's schedule: every ScheduleMinutes, like the dispatcher's
                recorder.phase = f"{vendor}/first" if n == 0 else f"{vendor}/monitor"
                context = LocalLambdaContext("HealthMonitorFunction", monitor_mb, 120, REGION)
                with recorder.invocation("HealthMonitorFunction", monitor_mb):
                    health_monitor_handler.lambda_handler(scheduled_event("cost-health", REGION, now), context)
        if queries:
            recorder.phase = f"{vendor}/queries"
            _queries(vendor, recorder, template)
        recorder.phase = "setup"
        chargers = sum(1 for _ in stores.records().charger_index())
        table = stack.refs["Table"]
        items = [
            item for (name, _), item in recorder.shadow.items() if name == table and (name, _) in recorder.record_keys
        ]
    finally:
        stop_child(simulator)
    counts = {
        phase.split("/")[1]: len(keys) for phase, keys in recorder.first_written.items() if phase.startswith(vendor)
    }
    return VendorRun(vendor, len(info["sources"]), info["steady_records"], counts, items, detectors, chargers)


QUERY_NAMES = (
    "charger time range",
    "charger, commonest action",
    "charger, rarest action",
    "site",
    "fleet, commonest action",
    "fleet, rarest action",
    "one record",
)


def _queries(vendor: str, recorder: Recorder, template: dict[str, Any]) -> None:
    """The API's main queries, in-process; each one its own phase ``<vendor>/query/<name>``."""
    import api_handler
    from chargelog_local.lambdas import LocalLambdaContext

    memory = _memory_mb(template, "ApiFunction")

    def call(name: str, path: str, query: dict[str, str]) -> dict[str, Any]:
        recorder.phase = f"{vendor}/query/{name}"
        context = LocalLambdaContext("ApiFunction", memory, 29, REGION)
        with recorder.invocation("ApiFunction", memory):
            response = api_handler.lambda_handler(_proxy_event("GET", path, query), context)
        text = response.get("body") or ""
        if response.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        if response["statusCode"] != 200:
            raise RuntimeError(f"GET {path} {query}: {response['statusCode']} {text[:300]}")
        answer = json.loads(text)
        # What the API returned: a page's records, or one record (items read per item returned compares with it).
        recorder.tallies[recorder.phase].items_returned += len(_entries(answer)) if "records" in answer else 1
        return answer

    recorder.phase = f"{vendor}/query/setup"
    chargers = call("setup", "/chargers", {})["chargers"]
    charger = chargers[0]
    span = {"from": charger["first_record_at"], "to": charger["last_record_at"], "limit": str(PAGE_LIMIT)}
    page = call("charger time range", f"/chargers/{charger['charger_id']}/logs", span)
    entries = _entries(page)
    actions = Counter(e.get("action") for e in entries if e.get("action"))
    # The commonest action of the charger's first page (MeterValues, where there are meter values: read from the
    # charger's partition) and its rarest (read through index gsi1); fleet-wide, both through gsi3.
    ranked = [action for action, _ in actions.most_common()]
    for label, action in (("commonest", ranked[0]), ("rarest", ranked[-1])) if ranked else ():
        call(f"charger, {label} action", f"/chargers/{charger['charger_id']}/logs", span | {"action": action})
        day = {"from": charger["last_record_at"][:10] + "T00:00:00Z", "to": charger["last_record_at"], "action": action}
        call(f"fleet, {label} action", "/logs", day | {"limit": str(PAGE_LIMIT)})
    site = next((c.get("site_id") for c in chargers if c.get("site_id")), None)
    if site:
        call("site", f"/sites/{site}/logs", span)
    if entries:  # in-process: the path as API Gateway hands it over, decoded
        call("one record", f"/chargers/{charger['charger_id']}/logs/{entries[0]['id']}", {})


def _entries(page: dict[str, Any]) -> list[dict[str, Any]]:
    for value in page.values():
        if isinstance(value, list) and (not value or isinstance(value[0], dict)):
            return value
    return []


# ---------------------------------------------------------------------------------------------- figures


def _merge(tallies: dict[str, Tally], predicate: Callable[[str], bool]) -> Tally:
    merged = Tally()
    for phase, tally in tallies.items():
        if not predicate(phase):
            continue
        merged.usage.add(tally.usage)
        for name in (
            "calls",
            "write_units",
            "read_units",
            "read_units_by_kind",
            "read_requests_by_kind",
            "s3_bytes",
            "s3_objects",
            "lambda_seconds",
            "lambda_invocations",
            "lambda_cpu_seconds",
            "accounting_seconds",
            "accounting_cpu_seconds",
            "item_writes",
            "failed_writes",
            "sqs_by_queue",
        ):
            getattr(merged, name).update(getattr(tally, name))
        merged.reported_units += tally.reported_units
        merged.reported_calls += tally.reported_calls
        merged.items_read += tally.items_read
        merged.items_returned += tally.items_returned
    return merged


def _item_figures(layout: TableLayout, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Average bytes of a record item: its size, and what it is billed for in storage (table and index copies)."""
    if not items:
        return {"items": 0}
    stored: Counter[str] = Counter()
    present: Counter[str] = Counter()
    for item in items:
        for where, size in stored_bytes(layout, item).items():
            stored[where] += size
            present[where] += 1
    return {
        "items": len(items),
        "item_bytes": sum(item_size(i) for i in items) / len(items),
        "stored_bytes_per_record": {where: total / len(items) for where, total in stored.items()},
        "share_in": {where: present[where] / len(items) for where in stored},
        "stored_bytes_per_record_total": sum(stored.values()) / len(items),
    }


HEALTH_KINDS = ("health", "alerts")  # write-unit kinds of the charger health detectors (write_kind)
WORKER = "WorkerFunction"
MONITOR = "HealthMonitorFunction"


def _worker_figures(steady: Tally, records: int) -> dict[str, Any]:
    """The worker's invocations in the steady passes: wall and process (CPU) time, with and without the bench's
    accounting (its hooks run inside the invocations), per 1,000 records stored."""
    wall, cpu = steady.lambda_seconds[WORKER], steady.lambda_cpu_seconds[WORKER]
    net_wall, net_cpu = wall - steady.accounting_seconds[WORKER], cpu - steady.accounting_cpu_seconds[WORKER]
    per_1000 = 1000 / records if records else 0.0
    return {
        "jobs": steady.lambda_invocations[WORKER],
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "accounting_wall_seconds": steady.accounting_seconds[WORKER],
        "accounting_cpu_seconds": steady.accounting_cpu_seconds[WORKER],
        "net_wall_seconds_per_1000_records": net_wall * per_1000,
        "net_cpu_seconds_per_1000_records": net_cpu * per_1000,
    }


def _health_figures(
    runs: list[VendorRun], steady: Tally, monitor: Tally, records: int, prices: Prices, schedule_seconds: int
) -> dict[str, Any]:
    """What the charger health detectors asked of AWS in the steady passes (the worker's share, per record and per
    job), and the health monitor's passes (per pass and per charger)."""
    write_units = sum(v for k, v in steady.write_units.items() if k.split("/")[0] in HEALTH_KINDS)
    read_units = sum(steady.read_units_by_kind[k] for k in HEALTH_KINDS)
    notices = sum(v for k, v in steady.sqs_by_queue.items() if k.endswith(" AlertQueue"))
    jobs = steady.lambda_invocations[WORKER]
    chargers = sum(run.chargers for run in runs)
    days = PASSES * schedule_seconds / 86400
    dollars = {
        "dynamodb": write_units * prices.dynamodb_write_unit + read_units * prices.dynamodb_read_unit,
        "sqs": notices * prices.sqs_request,
    }
    passes = monitor.lambda_invocations[MONITOR]
    charger_passes = sum(run.chargers for run in runs) * PASSES if passes else 0  # each vendor's stack its own pass
    monitor_dollars = request_dollars(monitor.usage, prices)
    passes_per_month = 30.4 * 86400 / schedule_seconds
    return {
        "detectors": all(run.detectors for run in runs),
        "chargers": chargers,
        "write_units_per_record": write_units / records if records else None,
        "write_units_by_kind_per_record": {
            k: v / records for k, v in sorted(steady.write_units.items()) if k.split("/")[0] in HEALTH_KINDS
        }
        if records
        else {},
        "read_units_per_record": read_units / records if records else None,
        "state_reads": steady.read_requests_by_kind["health"],
        "state_writes": steady.item_writes["health put"],
        "state_write_conflicts": steady.failed_writes["health put"],
        "state_writes_per_job": steady.item_writes["health put"] / jobs if jobs else None,
        "state_writes_per_charger_day": steady.item_writes["health put"] / chargers / days if chargers else None,
        "alerts_opened": steady.item_writes["alerts put"],
        "alerts_resolved": steady.item_writes["alerts update"],
        "alert_queue_requests": notices,
        "dollars_per_million_records": per_million(dollars, records),
        "monitor": {
            "passes": passes,
            "write_units_per_pass": monitor.usage.write_units / passes if passes else None,
            "read_units_per_pass": monitor.usage.read_units / passes if passes else None,
            "lambda_seconds_per_pass": monitor.lambda_seconds[MONITOR] / passes if passes else None,
            "state_writes": monitor.item_writes["health put"],
            "alerts_opened": monitor.item_writes["alerts put"],
            "alerts_resolved": monitor.item_writes["alerts update"],
            "dollars_per_pass": {k: v / passes for k, v in monitor_dollars.items()} if passes else {},
            # With this bench's few chargers a pass's invocation (and its queries' minimum units) dominates.
            "dollars_per_charger_month": sum(monitor_dollars.values()) / charger_passes * passes_per_month
            if charger_passes
            else None,
        },
    }


def figures(
    name: str,
    recorder: Recorder,
    runs: list[VendorRun],
    layout: TableLayout,
    prices: Prices,
    retention_days: dict[str, int],
    schedule_seconds: int = 300,
) -> dict[str, Any]:
    vendors = {run.vendor for run in runs}
    steady = _merge(recorder.tallies, lambda p: p.split("/")[0] in vendors and p.endswith("/steady"))
    monitor = _merge(recorder.tallies, lambda p: p.split("/")[0] in vendors and p.endswith("/monitor"))
    collection = _merge(
        recorder.tallies, lambda p: p.split("/")[0] in vendors and p.split("/")[1] in ("first", "steady")
    )
    new_steady = sum(run.records.get("steady", 0) for run in runs)
    new_all = sum(sum(run.records.values()) for run in runs)
    items = [item for run in runs for item in run.record_items]
    item_figures = _item_figures(layout, items)
    s3_per_record = {
        where.removeprefix("PUT "): size / new_all
        for where, size in collection.s3_bytes.items()
        if where.startswith("PUT")
    }
    dollars = request_dollars(steady.usage, prices)
    queries: dict[str, Any] = {}
    for query in QUERY_NAMES:
        tally = _merge(recorder.tallies, lambda p, q=query: p.split("/")[0] in vendors and p.endswith(f"/query/{q}"))
        if not tally.calls:
            continue
        count = sum(1 for p in recorder.tallies if p.split("/")[0] in vendors and p.endswith(f"/query/{query}"))
        queries[query] = {
            "pages": count,
            "read_units_per_page": tally.usage.read_units / count,
            "items_read": tally.items_read,
            "items_returned": tally.items_returned,
            "items_read_per_item_returned": tally.items_read / tally.items_returned if tally.items_returned else None,
            "dynamodb_requests_per_page": sum(v for k, v in tally.calls.items() if k.startswith("dynamodb.")) / count,
            "lambda_ms_per_page": 1000 * sum(tally.lambda_seconds.values()) / count,
        }
    stored_db = item_figures.get("stored_bytes_per_record_total", 0.0)
    stored_s3 = sum(s3_per_record.values())
    storage_month = storage_dollars_per_month(stored_db * 1e6, stored_s3 * 1e6, prices)
    return {
        "name": name,
        "vendors": sorted(vendors),
        "sources": sum(run.sources for run in runs),
        "records": {
            "steady": new_steady,
            "first_pass": new_all - new_steady,
            "served_in_steady_passes": sum(run.steady_records_served for run in runs),
        },
        "write_units_per_record": steady.usage.write_units / new_steady if new_steady else None,
        "write_units_by_kind_per_record": {k: v / new_steady for k, v in sorted(steady.write_units.items())}
        if new_steady
        else {},
        "read_units_per_record": steady.usage.read_units / new_steady if new_steady else None,
        "item": item_figures,
        "s3_bytes_per_record": s3_per_record,
        "requests_per_record": {k: v / new_steady for k, v in sorted(steady.calls.items())} if new_steady else {},
        "lambda": {
            "invocations": dict(steady.lambda_invocations),
            "seconds": dict(steady.lambda_seconds),
            "cpu_seconds": dict(steady.lambda_cpu_seconds),
            "gb_seconds_per_record": steady.usage.lambda_gb_seconds / new_steady if new_steady else None,
        },
        "worker": _worker_figures(steady, new_steady),
        "health": _health_figures(runs, steady, monitor, new_steady, prices, schedule_seconds),
        "read_units_by_kind_per_record": {k: v / new_steady for k, v in sorted(steady.read_units_by_kind.items())}
        if new_steady
        else {},
        "sqs_requests_by_queue": dict(steady.sqs_by_queue),
        "usage_steady": asdict(steady.usage),
        "dollars_per_million_records": per_million(dollars, new_steady),
        "storage_dollars_per_million_records_per_month": storage_month,
        "storage_dollars_per_million_records_over_retention": _over_retention(
            stored_db, s3_per_record, prices, retention_days
        ),
        "queries": queries,
        "capacity_source": {
            "computed": "every WRU/RRU figure (item sizes, DynamoDB's documented rules)",
            "moto_reported_units": steady.reported_units,
            "moto_reported_calls": steady.reported_calls,
            "dynamodb_calls": sum(v for k, v in steady.calls.items() if k.startswith("dynamodb.")),
        },
    }


def _render_health(health: dict[str, Any]) -> list[str]:
    if not health["detectors"]:
        return ["  charger health: detectors off (the worker without CHARGELOG_ALERT_QUEUE_URL; no health monitor)"]
    per_job = health["state_writes_per_job"]
    per_day = health["state_writes_per_charger_day"]
    alerts = health["alerts_opened"] + health["alerts_resolved"] + health["monitor"]["alerts_opened"]
    lines = [
        f"  charger health (worker): {health['write_units_per_record']:.3f} WRU, {health['read_units_per_record']:.3f} "
        f"RRU per record; {health['state_reads']} state reads, {health['state_writes']} state writes "
        f"({per_job if per_job is None else round(per_job, 2)} per job, "
        f"{per_day if per_day is None else round(per_day)} per charger-day, {health['chargers']} chargers), "
        f"{health['state_write_conflicts']} conflicts; alerts opened {health['alerts_opened']}, resolved "
        f"{health['alerts_resolved']}; AlertQueue requests {health['alert_queue_requests']}; $ per million records "
        + ", ".join(f"{k} {v:.3f}" for k, v in health["dollars_per_million_records"].items()),
        "    the simulators' traffic is healthy by default (chargelog_simulators.traffic.Behaviour): alerts are "
        + ("~0 as expected" if alerts <= 1 else f"{alerts}, not ~0: look at them"),
    ]
    monitor = health["monitor"]
    if monitor["passes"]:
        per_charger = monitor["dollars_per_charger_month"]
        lines.append(
            f"  health monitor: {monitor['passes']} passes, per pass {monitor['write_units_per_pass']:.2f} WRU, "
            f"{monitor['read_units_per_pass']:.2f} RRU, {monitor['lambda_seconds_per_pass']:.3f} s; "
            f"{monitor['state_writes']} state writes, alerts opened {monitor['alerts_opened']}, resolved "
            f"{monitor['alerts_resolved']}; $ per charger-month "
            f"{per_charger if per_charger is None else round(per_charger, 5)} (this bench's few chargers: the "
            "invocation dominates)"
        )
    return lines


def render(result: dict[str, Any]) -> str:
    lines = [
        f"== {result['name']}: {result['sources']} sources, {result['records']['steady']:,} records in the steady "
        f"passes ({result['records']['first_pass']:,} in the first)"
    ]
    if not result["records"]["steady"]:
        return lines[0] + "  (no records)"
    item = result["item"]
    lines.append(
        f"  WRU per record {result['write_units_per_record']:.2f} (computed), "
        f"RRU per record {result['read_units_per_record']:.2f}"
    )
    for kind, units in result["write_units_by_kind_per_record"].items():
        lines.append(f"    {kind:<34} {units:6.2f}")
    stored = ", ".join(f"{k} {v:,.0f}" for k, v in item["stored_bytes_per_record"].items())
    lines.append(
        f"  item {item['item_bytes']:,.0f} B; DynamoDB bytes per record incl. index copies and overhead "
        f"{item['stored_bytes_per_record_total']:,.0f} B ({stored})"
    )
    shares = ", ".join(f"{k} {v:.0%}" for k, v in item["share_in"].items() if k != "table")
    lines.append(f"  record items in each index: {shares}")
    tiers = ", ".join(f"{k} {v:,.0f} B" for k, v in result["s3_bytes_per_record"].items())
    lines.append(f"  S3 bytes per record by tier: {tiers}")
    per_record = ", ".join(f"{k} {v:.3f}" for k, v in result["requests_per_record"].items())
    lines.append(f"  AWS requests per record: {per_record}")
    lam = result["lambda"]
    lines.append(f"  Lambda GB-s per record {lam['gb_seconds_per_record']:.5f} (invocations {lam['invocations']})")
    worker = result["worker"]
    lines.append(
        f"  worker per 1,000 records: CPU {worker['net_cpu_seconds_per_1000_records']:.3f} s, wall "
        f"{worker['net_wall_seconds_per_1000_records']:.3f} s (without the bench's accounting: "
        f"{worker['accounting_cpu_seconds']:.2f} s CPU, {worker['accounting_wall_seconds']:.2f} s wall of "
        f"{worker['cpu_seconds']:.2f} s, {worker['wall_seconds']:.2f} s)"
    )
    lines.extend(_render_health(result["health"]))
    cost = result["dollars_per_million_records"]
    lines.append("  $ per million records collected: " + ", ".join(f"{k} {v:.2f}" for k, v in cost.items()))
    storage = result["storage_dollars_per_million_records_per_month"]
    lines.append("  storage $ per million records per month: " + ", ".join(f"{k} {v:.3f}" for k, v in storage.items()))
    kept = result["storage_dollars_per_million_records_over_retention"]
    lines.append(
        "  storage $ per million records for as long as each store keeps them (table: the hot window): "
        + ", ".join(f"{k} {v:.3f}" for k, v in kept.items())
    )
    for name, q in result["queries"].items():
        ratio = q["items_read_per_item_returned"]
        lines.append(
            f"  query {name:<20} RRU/page {q['read_units_per_page']:6.2f}  read {q['items_read']:>5} returned "
            f"{q['items_returned']:>4}  read/returned {ratio if ratio is None else round(ratio, 2)}"
        )
    source = result["capacity_source"]
    lines.append(
        f"  moto reported {source['moto_reported_units']:.0f} units on {source['moto_reported_calls']} of "
        f"{source['dynamodb_calls']} DynamoDB calls (a placeholder: figures above are computed)"
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def function_paths() -> None:
    """The handlers' folders on sys.path (as Lambda has a function's code at the root)."""
    for path in ("functions/api", "functions/dispatcher", "functions/worker", "functions/health_monitor"):
        if str(REPO / path) not in sys.path:
            sys.path.insert(0, str(REPO / path))


def aws_environment(moto_url: str) -> dict[str, str]:
    """The process's environment for AWS (moto's server) and Powertools (quiet: no traces, metrics, info logs)."""
    return {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "chargelog",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }


def main() -> int:
    if len(sys.argv) == 7 and sys.argv[1] == "--serve-simulator":
        vendor, records, *moments = sys.argv[2:]
        start, first, end = (datetime.fromisoformat(m) for m in moments)
        _serve_simulator(vendor, int(records), start, first, end)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--records-per-vendor",
        type=int,
        default=1000,
        help="records in each vendor's steady passes (at the template's interval)",
    )
    parser.add_argument("--vendors", nargs="+", default=list(VENDORS), choices=VENDORS)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--no-detectors",
        action="store_true",
        help="without the charger health detectors: the worker's environment without CHARGELOG_ALERT_QUEUE_URL, "
        "and no health monitor passes (bench/health.py compares both)",
    )
    parser.add_argument(
        "--schedule-minutes",
        type=float,
        help="the passes' interval (ScheduleMinutes; default: the template's). The simulators' density stays as at "
        "the template's interval: the records asked scale with the passes' span",
    )
    args = parser.parse_args()

    function_paths()
    from processes import start_moto, stop_child

    moto, moto_url = start_moto()
    os.environ.update(aws_environment(moto_url))
    template = _template()
    layout = _table_layout(template)
    prices = Prices()
    interval = round(args.schedule_minutes * 60) if args.schedule_minutes else _schedule_seconds(template)
    # The same records an hour at any interval: a longer interval's passes span more of the simulators' traffic.
    records_per_vendor = round(args.records_per_vendor * interval / _schedule_seconds(template))
    try:
        import boto3

        inspect = boto3.session.Session().client("dynamodb", region_name=REGION)  # made before the hooks: unhooked
        recorder = Recorder(layout, inspect, dict)
        recorder.install()
        from chargelog import aws

        aws.reset()
        runs = []
        for vendor in args.vendors:
            began = time.perf_counter()
            runs.append(
                run_vendor(
                    vendor,
                    records_per_vendor,
                    recorder,
                    template,
                    moto_url,
                    detectors=not args.no_detectors,
                    schedule_seconds=interval,
                )
            )
            if not args.json:
                print(f"[{vendor} done in {time.perf_counter() - began:.0f} s]", file=sys.stderr, flush=True)
    finally:
        stop_child(moto)
    retention = _retention_days(template)
    results = [figures(run.vendor, recorder, [run], layout, prices, retention, interval) for run in runs]
    results.append(figures("overall", recorder, runs, layout, prices, retention, interval))
    report = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "records_per_vendor": records_per_vendor,
        "detectors": not args.no_detectors,
        "schedule_seconds": interval,
        "steady_passes": PASSES,
        "retention_days": retention,
        "indexes": [asdict(index) for index in layout.indexes],
        "prices": asdict(prices),
        "provisioned_break_even_utilisation": provisioned_break_even(prices),
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"cost-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(
            f"Python {report['python']} on {report['machine']}; schedule every {report['schedule_seconds']} s, "
            f"{PASSES} steady passes; retention (days) {retention}; prices: docs/cost.md"
        )
        for result in results:
            print(render(result))
        print(f"results: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
