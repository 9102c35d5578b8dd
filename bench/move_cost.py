"""
The service's CPU per move and per node configuration at 1,000 nodes (issue 16, movesfast).

``python bench/move_cost.py [--store sqlite] [--datasets 10000] [--nodes 1000]
[--rounds 5] [--movers 64] [--getters 16]`` seeds a reported cluster as ``bench/scale.py
--parts moves`` does, starts the service, sends every node's report twice (so that the
service holds every node's heartbeat times in memory, as with 1,000 agents), then measures
the service's CPU (from ``/proc``, so that a loaded machine changes the wall times more
than the figures) over three phases of fixed work:

- ``moves``: ``rounds`` rounds of ``movers`` moves sent at once (each a dataset to the next
  node), in groups as the service makes them;
- ``configurations``: every node's configuration asked for by ``getters`` clients, one move
  every 20 answers (a new generation, as the agents see after each move);
- ``mixed``: ``rounds`` rounds of moves while ``getters`` clients ask for configurations
  (the agents re-fetching during the moves).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import KeepAlive  # noqa: E402
from _scale_moves import (  # noqa: E402
    SERVE,
    _warmed,
    cluster_arguments,
    report_body,
    reported_cluster,
)
from _scale_nodes import cpu_seconds  # noqa: E402

from tests.processes import ControlProcess  # noqa: E402


class Sender:
    """Blocking requests to the service, one keep-alive connection per thread."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._local = threading.local()

    def check(self, method: str, path: str, body: object = None) -> object:
        """Send one request; fail unless it answers 200."""
        if not hasattr(self._local, "client"):
            self._local.client = KeepAlive(self._port)
        return self._local.client.check(method, path, body)


def _moves(ids: list[uuid.UUID], placed: dict[uuid.UUID, list[uuid.UUID]],
           count: int) -> Iterator[tuple[uuid.UUID, uuid.UUID]]:
    """``count`` moves, each of a node's dataset to the next node (a node at most once)."""
    for index in range(count):
        node = ids[index % len(ids)]
        yield placed[node][index // len(ids)], ids[(index + 1) % len(ids)]


def _timed(pid: int, work: Callable[[], int]) -> tuple[float, float, int]:
    """``work()``'s service CPU seconds, wall seconds and requests."""
    cpu, wall = cpu_seconds(pid), time.monotonic()
    requests = work()
    return cpu_seconds(pid) - cpu, time.monotonic() - wall, requests


def main() -> None:
    """Seed, serve, and measure the three phases."""
    parser = cluster_arguments(__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--movers", type=int, default=64)
    parser.add_argument("--getters", type=int, default=16)
    args = parser.parse_args()
    with reported_cluster(args.store, args.datasets, args.nodes) as (url, ids, placed):
        log = tempfile.NamedTemporaryFile(prefix="shoal-movecost-", suffix=".log", delete=False)
        control = ControlProcess(url, extra=SERVE, log_path=log.name).start(timeout=600)
        try:
            _warmed(log.name, timeout=600)
            assert control.process is not None
            pid, send = control.process.pid, Sender(control.port)
            generation = KeepAlive(control.port).check("GET", "/v1/shoal/watch?timeout=0")
            bodies = [report_body(placed[n], generation["configuration"], f"era-{i}")
                      for i, n in enumerate(ids)]
            with ThreadPoolExecutor(8) as pool:
                for _ in range(2):
                    list(pool.map(lambda i: send.check("PUT", f"/v1/shoal/state/{ids[i]}",
                                                       bodies[i]), range(len(ids))))
            plan = iter(_moves(ids, placed, 10 * args.rounds * args.movers + len(ids)))

            def move(_: object = None) -> None:
                dataset_id, primary = next(plan)
                send.check("POST", f"/v1/configuration/datasets/{dataset_id}",
                           {"primary": str(primary)})

            def get(index: int) -> None:
                send.check("GET", f"/v1/shoal/nodes/{ids[index % len(ids)]}/configuration")

            def moves() -> int:
                with ThreadPoolExecutor(args.movers) as pool:
                    for _ in range(args.rounds):
                        list(pool.map(move, range(args.movers)))
                return args.rounds * args.movers

            def configurations() -> int:
                def each(index: int) -> None:
                    if index % 20 == 0:
                        move()
                    get(index)
                with ThreadPoolExecutor(args.getters) as pool:
                    list(pool.map(each, range(len(ids))))
                return len(ids) + len(ids) // 20

            def mixed() -> int:
                done = threading.Event()
                gets = [0] * args.getters

                def getter(k: int) -> None:
                    while not done.is_set():
                        get(k * 97 + gets[k])
                        gets[k] += 1
                with ThreadPoolExecutor(args.getters) as pool:
                    running = [pool.submit(getter, k) for k in range(args.getters)]
                    try:
                        count = moves()
                    finally:
                        done.set()
                    for each in running:
                        each.result()
                print(f"  mixed: {sum(gets)} configurations during {count} moves")
                return count + sum(gets)

            for name, work in (("moves", moves), ("configurations", configurations),
                               ("mixed", mixed)):
                cpu, wall, requests = _timed(pid, work)
                print(f"{name}: {requests} requests in {wall:.1f} s, service CPU {cpu:.2f} s "
                      f"= {cpu / requests * 1000:.2f} ms per request "
                      f"(load {open('/proc/loadavg').read().split()[0]})", flush=True)
        finally:
            control.stop()
            os.unlink(log.name)


if __name__ == "__main__":
    main()
