"""
A client under load: creates datasets through the real client, logging every acknowledgement.

    python -m tests.replicaload URLS NODE[,NODE...] LOG [--interval S]

``URLS`` names the control replicas (comma-separated, as ``SHOAL_URL``); the
client fails over between them. Each create is logged as
``ok DATASET_ID START END`` once the service acknowledged it, or
``error START END MESSAGE`` (times are ``time.monotonic()``, shared by every
process on the machine). The log is line-buffered, so a test reading it sees
every acknowledgement the writer received. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from uuid import UUID

from tests.processes import ROOT


def main(argv: Sequence[str] | None = None) -> None:
    """Create datasets on the given nodes in turn until stopped."""
    parser = argparse.ArgumentParser()
    parser.add_argument("urls")
    parser.add_argument("nodes")
    parser.add_argument("log")
    parser.add_argument("--interval", type=float, default=0.0)
    args = parser.parse_args(argv)
    from twisted.internet import reactor, task

    from control.client.http import HTTPClient

    nodes = [UUID(n) for n in args.nodes.split(",")]
    client = HTTPClient(args.urls, reactor=reactor, request_timeout=10.0)
    out = open(args.log, "a", buffering=1)

    async def run(_: object) -> None:
        n = 0
        while True:
            start = time.monotonic()
            try:
                made = await client.create_dataset(nodes[n % len(nodes)], 64 * 1024 * 1024)
                out.write(f"ok {made.dataset_id} {start} {time.monotonic()}\n")
            except Exception as e:  # noqa: BLE001 - every failure is logged, then we go on
                message = str(e).replace("\n", " ")[:200]
                out.write(f"error {start} {time.monotonic()} {message}\n")
            n += 1
            if args.interval:
                await task.deferLater(reactor, args.interval, lambda: None)

    from twisted.internet.defer import Deferred

    def start(r: object) -> Deferred[None]:
        return Deferred.fromCoroutine(run(r))

    task.react(start)


def acknowledged(log_path: str) -> list[tuple[UUID, float, float]]:
    """``(dataset id, start, end)`` of every create the writer saw acknowledged."""
    found = []
    with open(log_path) as log:
        for line in log:
            words = line.split()
            if len(words) == 4 and words[0] == "ok":
                found.append((UUID(words[1]), float(words[2]), float(words[3])))
    return found


def errors(log_path: str) -> list[str]:
    """Every failed create's line."""
    with open(log_path) as log:
        return [line.strip() for line in log if line.startswith("error")]


class LoadProcess:
    """A ``tests.replicaload`` child process."""

    def __init__(self, urls: Sequence[str], nodes: Sequence[UUID], log_path: str,
                 interval: float = 0.0) -> None:
        self.log_path = log_path
        open(log_path, "w").close()
        command = [sys.executable, "-m", "tests.replicaload", ",".join(urls),
                   ",".join(str(n) for n in nodes), log_path, "--interval", str(interval)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                                        stderr=open(log_path + ".err", "w"))

    def stop(self) -> None:
        """Stop the writer (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    os.chdir(ROOT)
    main()
