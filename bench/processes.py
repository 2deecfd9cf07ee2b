"""Child processes the benchmarks run beside themselves: moto's server, simulators.

Each benchmark keeps AWS (moto's server) in its own process, so the process being measured does only
chargelog's work. Run the benchmarks as scripts (`python bench/query.py`): this folder is then on sys.path.
"""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from chargelog_local.runner import free_port


def start_moto() -> tuple[subprocess.Popen[str], str]:
    """moto's server on a free 127.0.0.1 port, in a child process; returns it and its URL once it answers."""
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return child, f"http://127.0.0.1:{port}"
        except httpx.TransportError:
            time.sleep(0.1)
    stop_child(child)
    raise RuntimeError("moto server did not start")


def stop_child(child: subprocess.Popen[str]) -> None:
    """Stop a child process: close its stdin, SIGTERM, and SIGKILL if it takes more than 10 s."""
    if child.stdin:
        child.stdin.close()
    child.terminate()
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:  # a busy moto server can take its time over SIGTERM
        child.kill()
        child.wait()
