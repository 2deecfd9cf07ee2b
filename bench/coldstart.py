"""Cold-start benchmark: each handler's init time (module import) against a bare Powertools + boto3 handler.

Every sample is a fresh interpreter (``sys.executable``) that gets the environment a deployed function
has (dummy values, no network), puts the handler's folder and ``layers/common`` at the front of
``sys.path`` (like /var/task and /opt/python on Lambda), then times ``import <handler module>`` with
``time.perf_counter`` -- the Lambda "init" phase: module import plus module-level initialisation. The
child also reports its peak RSS (``ru_maxrss``) right after the import. No handler is invoked.

Handlers are sampled round-robin (one run of each per round, in a shuffled order) so machine noise hits
all of them alike. Bytecode is cached in a private temporary ``pycache_prefix`` (nothing is written into
the source tree) and one untimed warm-up import per handler fills it, so the samples measure imports
from cached bytecode, not compilation.

``--baseline DIR`` also samples the handlers of another checkout (e.g. ``git worktree add /tmp/base <commit>``), each
with that checkout's ``layers/common``, in the same rounds: before/after figures measured under the same load.

    .venv/bin/python bench/coldstart.py --runs 15 [--baseline /tmp/base] [--json bench/results/coldstart.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
LAYER_DIR = ROOT / "layers" / "common"
BARE = "bare_handler"
MARKER = "@@coldstart@@"
CHILD_TIMEOUT_S = 120

# The environment of a deployed function (template.yaml Globals), with dummy values.
FUNCTION_ENV = {
    "CHARGELOG_STAGE": "bench",
    "CHARGELOG_TABLE": "chargelog-bench-table",
    "CHARGELOG_RAW_BUCKET": "chargelog-bench-raw",
    "CHARGELOG_DIAGNOSTICS_BUCKET": "chargelog-bench-diagnostics",
    "CHARGELOG_WORK_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/chargelog-bench-work",
    "CHARGELOG_VENDOR_SECRET_PREFIX": "chargelog-bench/vendors/",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "POWERTOOLS_SERVICE_NAME": "chargelog",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "chargelog",
    "PYDANTIC_DISABLE_PLUGINS": "__all__",
}

# Runs in the child. argv: module name, then the sys.path entries to put first (in order).
CHILD_CODE = f"""
import sys
sys.path[:0] = sys.argv[2:]
import importlib, json, resource, time
name = sys.argv[1]
t0 = time.perf_counter()
importlib.import_module(name)
init_ms = (time.perf_counter() - t0) * 1000.0
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rss_bytes = maxrss if sys.platform == "darwin" else maxrss * 1024
print({MARKER!r} + json.dumps({{"init_ms": init_ms, "maxrss_bytes": rss_bytes}}), flush=True)
"""


@dataclass
class Target:
    name: str
    folder: Path
    layer: Path = LAYER_DIR
    label: str = ""  # "baseline" for another checkout's handler
    samples_ms: list[float] = field(default_factory=list)
    rss_bytes: list[int] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)
    error: str | None = None


class ChildFailed(Exception):
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(f"exit status {returncode}")
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def discover(baseline: Path | None = None) -> list[Target]:
    handlers = sorted(ROOT.glob("functions/*/*_handler.py"))
    targets = [Target(name=path.stem, folder=path.parent) for path in handlers]
    if baseline is not None:
        layer = baseline / "layers" / "common"
        for path in sorted(baseline.glob("functions/*/*_handler.py")):
            targets.append(Target(name=path.stem, folder=path.parent, layer=layer, label="baseline"))
    targets.append(Target(name=BARE, folder=BENCH_DIR))
    return targets


def display_name(target: Target) -> str:
    return f"{target.name} ({target.label})" if target.label else target.name


def child_env(pycache_dir: str) -> dict[str, str]:
    """The parent's environment minus anything AWS/Powertools/chargelog/Python-specific, plus FUNCTION_ENV."""
    drop = ("AWS_", "POWERTOOLS_", "CHARGELOG_", "PYTHON", "_X_AMZN_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(drop)}
    env.update(FUNCTION_ENV)
    env["PYTHONPYCACHEPREFIX"] = pycache_dir
    return env


def run_child(target: Target, env: dict[str, str]) -> tuple[float, int, float]:
    """One fresh interpreter importing the target; returns (init ms, peak RSS bytes, process wall ms)."""
    command = [
        sys.executable,
        "-P",  # no script dir / cwd on sys.path: the child only sees what we put there
        "-c",
        CHILD_CODE,
        target.name,
        str(target.folder),
        str(target.layer),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(
        command,
        env=env,
        cwd=target.folder,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    wall_ms = (time.perf_counter() - t0) * 1000.0
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise ChildFailed(proc.returncode, proc.stdout, proc.stderr)
    result = json.loads(lines[-1][len(MARKER) :])
    return float(result["init_ms"]), int(result["maxrss_bytes"]), wall_ms


def p90(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def summarise(targets: list[Target]) -> list[dict[str, Any]]:
    bare = next(t for t in targets if t.name == BARE)
    bare_median = statistics.median(bare.samples_ms) if bare.samples_ms else None
    rows = []
    for target in targets:
        folder = target.folder.relative_to(ROOT) if target.folder.is_relative_to(ROOT) else target.folder
        row: dict[str, Any] = {"handler": display_name(target), "folder": str(folder)}
        if target.error is not None:
            row["error"] = target.error
        else:
            median_ms = statistics.median(target.samples_ms)
            row.update(
                runs=len(target.samples_ms),
                init_ms_median=median_ms,
                init_ms_p90=p90(target.samples_ms),
                init_ms_min=min(target.samples_ms),
                init_ms_max=max(target.samples_ms),
                maxrss_mb_median=statistics.median(target.rss_bytes) / 2**20,
                process_wall_ms_median=statistics.median(target.wall_ms),
                ratio_to_bare=median_ms / bare_median if bare_median else None,
                init_ms_samples=target.samples_ms,
                maxrss_bytes_samples=target.rss_bytes,
            )
        rows.append(row)
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    headers = ["handler", "runs", "median init ms", "p90 init ms", "median max RSS MB", "init vs bare"]
    table = []
    for row in rows:
        if "error" in row:
            table.append([row["handler"], "0", "FAILED", "-", "-", "-"])
            continue
        ratio = row["ratio_to_bare"]
        table.append(
            [
                row["handler"],
                str(row["runs"]),
                f"{row['init_ms_median']:.1f}",
                f"{row['init_ms_p90']:.1f}",
                f"{row['maxrss_mb_median']:.1f}",
                f"{ratio:.2f}x" if ratio is not None else "n/a",
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in table)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per handler (default: 15)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--seed", type=int, default=None, help="seed for the per-round order shuffle")
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR", help="also sample this checkout's handlers, in the same rounds"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.baseline is not None and not (args.baseline / "functions").is_dir():
        parser.error(f"--baseline {args.baseline}: no functions/ there")

    targets = discover(args.baseline.resolve() if args.baseline is not None else None)
    rng = random.Random(args.seed)
    print(f"Python {platform.python_version()} ({sys.implementation.name}) on {platform.machine()}")
    print(f"interpreter: {sys.executable}")
    print(f"platform: {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"handlers: {', '.join(display_name(t) for t in targets)}; {args.runs} runs each, round-robin")

    with tempfile.TemporaryDirectory(prefix="coldstart-pycache-") as pycache_dir:
        env = child_env(pycache_dir)
        for target in targets:  # untimed warm-up: compiles bytecode into the private cache
            try:
                run_child(target, env)
            except ChildFailed as exc:
                target.error = exc.stderr or exc.stdout or str(exc)
            except subprocess.TimeoutExpired:
                target.error = f"timed out after {CHILD_TIMEOUT_S}s"
        for _ in range(args.runs):
            order = [t for t in targets if t.error is None]
            rng.shuffle(order)
            for target in order:
                try:
                    init_ms, rss, wall_ms = run_child(target, env)
                except ChildFailed as exc:
                    target.error = exc.stderr or exc.stdout or str(exc)
                    continue
                except subprocess.TimeoutExpired:
                    target.error = f"timed out after {CHILD_TIMEOUT_S}s"
                    continue
                target.samples_ms.append(init_ms)
                target.rss_bytes.append(rss)
                target.wall_ms.append(wall_ms)

    rows = summarise(targets)
    print()
    print(render(rows))
    print()
    print("init = import of the handler module in a fresh interpreter (module-level init included);")
    print("MB = 2**20 bytes (peak RSS of the child after import); ratio = median init / bare median.")

    failed = [row for row in rows if "error" in row]
    for row in failed:
        print(f"\n{row['handler']} failed to import:\n{row['error'].rstrip()}", file=sys.stderr)

    if args.json is not None:
        payload = {
            "python": platform.python_version(),
            "implementation": sys.implementation.name,
            "machine": platform.machine(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "executable": sys.executable,
            "runs": args.runs,
            "seed": args.seed,
            "baseline": str(args.baseline) if args.baseline is not None else None,
            "environment": FUNCTION_ENV,
            "results": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
