"""
The control service's CPU per heartbeat and per watch, one request at a time (issue 16).

The ``nodes`` part of ``bench/scale.py`` measures the service's CPU under 1,000 simulated
nodes; on a shared 2-core machine that figure moves by a third between identical runs.
CPU *time* per request, counted from ``/proc/PID/stat`` while a few keep-alive clients send
one kind of request after another, moves much less. For each kind, this prints the
service's CPU milliseconds per request:

- ``heartbeat``: ``PUT /v1/shoal/state/<uuid>`` repeating the node's last report
  (100 datasets, as ``_scale_nodes.REPORTED``);
- ``watch, at once``: ``GET /v1/shoal/watch?timeout=0&node=<uuid>``;
- ``watch, timed out``: a watch held until its (short) timeout, as an idle agent's is.

    python bench/heartbeat_cost.py [--requests 2000] [--clients 4] [--nodes 100]
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from _common import KeepAlive, Table
from _scale_db import database, node_ids, seed
from _scale_nodes import REPORTED, cpu_seconds, report_body

from tests.processes import ControlProcess


def _run(clients: list[KeepAlive], paths: list[tuple[str, str, Any]], rounds: int) -> None:
    """Each client sends its request ``rounds`` times (one thread per client)."""

    def one(client: KeepAlive, method: str, path: str, body: Any) -> None:
        for _ in range(rounds):
            client.check(method, path, body)

    pairs = zip(clients, paths, strict=True)
    threads = [threading.Thread(target=one, args=(c, *p)) for c, p in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main() -> None:
    """Seed, serve, and measure each kind of request."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--store", default="sqlite")
    args = parser.parse_args()
    table = Table(f"Control CPU per request ({args.store}, {args.nodes} nodes, "
                  f"{args.clients} clients)")
    with database(args.store) as url:
        ids = node_ids(args.nodes)
        placed = seed(url, ids, max(1000, args.nodes))
        control = ControlProcess(url, extra=["--failover-grace", "300"])
        control.start(timeout=300)
        try:
            assert control.process is not None
            pid = control.process.pid
            clients = [KeepAlive(control.port) for _ in range(args.clients)]
            generation = clients[0].check("GET", "/v1/shoal/watch?timeout=0")["configuration"]
            nodes = [(i, n) for i, n in enumerate(ids[: args.clients])]
            bodies = {
                n: report_body(i, [str(d) for d in placed[n][:REPORTED]], generation)
                for i, n in nodes
            }
            for (_, n), client in zip(nodes, clients, strict=True):
                client.check("PUT", f"/v1/shoal/state/{n}", bodies[n])
            rounds = max(1, args.requests // args.clients)
            kinds: list[tuple[str, list[tuple[str, str, Any]], int]] = [
                ("heartbeat (100 datasets)",
                 [("PUT", f"/v1/shoal/state/{n}", bodies[n]) for _, n in nodes], rounds),
                ("watch, at once",
                 [("GET", f"/v1/shoal/watch?timeout=0&node={n}", None) for _, n in nodes],
                 rounds),
                ("watch, timed out (0.02 s)",
                 [("GET", f"/v1/shoal/watch?configuration={generation}&state={10**18}"
                          f"&timeout=0.02&node={n}", None) for _, n in nodes], rounds // 4),
            ]
            for name, paths, count in kinds:
                _run(clients, paths, max(1, count // 10))  # warm up
                cpu, wall = cpu_seconds(pid), time.perf_counter()
                _run(clients, paths, count)
                cpu, wall = cpu_seconds(pid) - cpu, time.perf_counter() - wall
                sent = count * len(paths)
                table.add(f"{name}: service CPU ms per request",
                          [cpu / sent] * sent, wall, control.rss_kib())
                table.note(f"{name}: {cpu / sent * 1000:.3f} ms of service CPU per request, "
                           f"{sent / wall:.0f} requests/s")
        finally:
            control.stop()
    print(table.render(), flush=True)


if __name__ == "__main__":
    main()
