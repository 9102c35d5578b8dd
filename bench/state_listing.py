"""
Reads of the actual state at 1,000 and 10,000 reported datasets (issues 13 and 16).

Seeds a SQLite database with the datasets (in one transaction, through the store's own
writes), starts a real control service on it, registers two nodes that report every dataset
mounted (half each), then times over HTTP:

- ``GET /v1/state/datasets``, ``/v1/shoal/nodes`` and ``/v1/shoal/conditions``, each
  *cold* (right after a state report that changed something, so the state version moved)
  and *warm* (again and again, nothing changed);
- a state report that changes one dataset's status (the write that makes the reads cold).

    python bench/state_listing.py [--datasets 1000 10000] [--cold 10] [--warm 30]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid

from _common import KeepAlive, Table, timed

from control.model import Dataset
from control.store import queries as q
from control.store.migrate import upgrade
from control.store.sql import SQLStore
from tests.processes import ControlProcess

SIZE = 64 * 1024 * 1024
MOUNT_ROOT = "/m"
READS = ("/v1/state/datasets", "/v1/shoal/nodes", "/v1/shoal/conditions")


def seed(url: str, nodes: list[uuid.UUID], count: int) -> dict[uuid.UUID, list[str]]:
    """Store ``count`` datasets, alternately on each node, in one write; returns ids by node."""
    upgrade(url)
    store = SQLStore(url)
    placed: dict[uuid.UUID, list[str]] = {node: [] for node in nodes}
    try:
        with store._write() as (connection, generation, state_version):
            for index in range(count):
                node = nodes[index % len(nodes)]
                dataset = Dataset(dataset_id=uuid.uuid4(), primary=node, maximum_size=SIZE,
                                  metadata={"name": f"db-{index:05d}"})
                q.put_dataset(connection, dataset, exists=False)
                placed[node].append(str(dataset.dataset_id))
            q.write_counters(connection, generation + 1, state_version)
    finally:
        store.close()
    return placed


def report(client: KeepAlive, node: uuid.UUID, index: int, ids: list[str],
           attached: int = -1) -> None:
    """Report every dataset of ``ids`` mounted on ``node`` (but number ``attached``)."""
    generation = int(client.check("GET", "/v1/shoal/watch?timeout=0")["configuration"])
    datasets = [
        {"dataset_id": d, "status": "attached" if n == attached else "mounted",
         "maximum_size": SIZE, "device": f"/dev/loop{n}"}
        | ({} if n == attached else {"path": f"{MOUNT_ROOT}/{d}"})
        for n, d in enumerate(ids)
    ]
    capacity = {"backend": "loopback", "total": 2**40, "free": 2**39,
                "maximum_volume_size": 2**39, "shared": True, "snapshot_method": "copy"}
    body = {"era": f"era-{index}", "generation": generation, "datasets": datasets,
            "conditions": [], "capacity": capacity}
    client.check("PUT", f"/v1/shoal/state/{node}", body)


def register(client: KeepAlive, nodes: list[uuid.UUID]) -> None:
    """Register the nodes (named, with a mount root)."""
    for index, node in enumerate(nodes):
        body = {"host": f"10.0.0.{index + 1}", "era": f"era-{index}",
                "labels": {"name": f"node{index + 1}"}, "mount_root": MOUNT_ROOT}
        client.check("PUT", f"/v1/shoal/nodes/{node}", body)


def measure(table: Table, count: int, cold: int, warm: int) -> None:
    """Add the rows of ``count`` datasets to ``table``."""
    nodes = [uuid.uuid4(), uuid.uuid4()]
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{os.path.join(directory, 'bench.db')}"
        placed = seed(url, nodes, count)
        service = ControlProcess(
            url, extra=["--failover-grace", "86400", "--node-timeout", "86400"]
        ).start()
        try:
            client = KeepAlive(service.port)
            register(client, nodes)
            for index, node in enumerate(nodes):
                report(client, node, index, placed[node])
            turn = iter(range(10**9))

            def change() -> None:
                report(client, nodes[0], 0, placed[nodes[0]], attached=next(turn) % 50)

            reported, wall = timed(change, cold)
            table.add(f"{count}: state report (one dataset changed)", reported, wall,
                      service.rss_kib())
            for path in READS:
                samples = []
                for _ in range(cold):
                    change()
                    samples += timed(lambda path=path: client.check("GET", path), 1)[0]
                table.add(f"{count}: GET {path} cold", samples, None, None)
                client.check("GET", path)
                samples, wall = timed(lambda path=path: client.check("GET", path), warm)
                table.add(f"{count}: GET {path} warm", samples, wall, service.rss_kib())
        finally:
            service.stop()


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--warm", type=int, default=30)
    args = parser.parse_args()
    table = Table("Reads of the actual state, SQLite, one control service")
    for count in args.datasets:
        measure(table, count, args.cold, args.warm)
    print(table.render())


if __name__ == "__main__":
    main()
