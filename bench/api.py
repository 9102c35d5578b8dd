"""
REST API latency with 10,000 datasets stored, on SQLite and on PostgreSQL.

Starts a real control service per database, seeds 10,000 datasets through the
API, then measures with a keep-alive client: create, move and list latency,
watch wake-up latency (from sending a write to the waiting watch answering),
and the service's resident memory.

    python bench/api.py [--datasets 10000] [--samples 300] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from _common import KeepAlive, Table, timed

from tests.processes import ControlProcess, fresh_postgres_database, postgres_available

SIZE = 64 * 1024 * 1024


def register_nodes(client: KeepAlive, count: int) -> list[str]:
    """Register ``count`` nodes; returns their uuids."""
    nodes = [str(uuid.uuid4()) for _ in range(count)]
    for i, node in enumerate(nodes):
        client.check(
            "PUT", f"/v1/shoal/nodes/{node}", {"host": f"10.0.0.{i + 1}", "era": None, "labels": {}}
        )
    return nodes


def seed(port: int, primary: str, count: int, workers: int = 4) -> tuple[list[float], float]:
    """Create ``count`` datasets over ``workers`` keep-alive connections."""

    def create_many(n: int) -> list[float]:
        client = KeepAlive(port)
        body = {"primary": primary, "maximum_size": SIZE}
        return timed(lambda: client.check("POST", "/v1/configuration/datasets", body, 201), n)[0]

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        shares = [count // workers + (i < count % workers) for i in range(workers)]
        samples = [s for chunk in pool.map(create_many, shares) for s in chunk]
    return samples, time.perf_counter() - start


def watch_wakeups(port: int, dataset: str, nodes: list[str], n: int) -> list[float]:
    """Time from sending a move to a waiting watch answering, ``n`` times."""
    writer, samples = KeepAlive(port), []
    for i in range(n):
        generation = int(
            writer.request("GET", "/v1/shoal/watch?configuration=0&state=0")[1]["configuration"]
        )
        answered = threading.Event()

        def wait(gen: int = generation, answered: threading.Event = answered) -> None:
            KeepAlive(port).check(
                "GET", f"/v1/shoal/watch?configuration={gen}&state=1000000000&timeout=30"
            )
            answered.set()

        watcher = threading.Thread(target=wait)
        watcher.start()
        time.sleep(0.02)  # let the watch reach the service before the write
        start = time.perf_counter()
        writer.check("POST", f"/v1/configuration/datasets/{dataset}", {"primary": nodes[i % 2]})
        answered.wait(30)
        samples.append(time.perf_counter() - start)
        watcher.join()
    return samples


def list_after_writes(
    client: KeepAlive, ids: list[str], nodes: list[str], n: int
) -> list[float]:
    """Time listings that each follow a write, so nothing of the last listing is reused whole."""
    samples = []
    for i in range(n):
        client.check("POST", f"/v1/configuration/datasets/{ids[i]}", {"primary": nodes[i % 2]})
        samples.extend(timed(lambda: client.check("GET", "/v1/configuration/datasets"), 1)[0])
    return samples


def run(database: str, label: str, datasets: int, samples: int, table: Table) -> None:
    """Benchmark one control service on ``database``."""
    service = ControlProcess(database).start()
    try:
        client = KeepAlive(service.port)
        nodes = register_nodes(client, 2)
        seeded, wall = seed(service.port, nodes[0], datasets)
        table.add(f"{label}: seed {datasets} creates (4 clients)", seeded, wall, None)
        body = {"primary": nodes[0], "maximum_size": SIZE}
        creates, wall = timed(
            lambda: client.check("POST", "/v1/configuration/datasets", body, 201), samples
        )
        table.add(f"{label}: create", creates, wall, None)
        ids = [d["dataset_id"] for d in client.check("GET", "/v1/configuration/datasets")]
        moves = iter(range(samples))
        moved, wall = timed(
            lambda: client.check(
                "POST", f"/v1/configuration/datasets/{ids[next(moves)]}", {"primary": nodes[1]}
            ),
            samples,
        )
        table.add(f"{label}: move", moved, wall, None)
        listed, wall = timed(lambda: client.check("GET", "/v1/configuration/datasets"), 30)
        table.add(f"{label}: list {len(ids)} datasets", listed, wall, None)
        fresh = list_after_writes(client, ids, nodes, 30)
        table.add(f"{label}: list {len(ids)}, each after a move", fresh, None, None)
        wakeups = watch_wakeups(service.port, ids[-1], nodes, 50)
        table.add(f"{label}: watch wake-up after a write", wakeups, None, service.rss_kib())
    finally:
        service.stop()


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    table = Table(f"REST API with {args.datasets} datasets stored")
    with tempfile.TemporaryDirectory() as directory:
        sqlite = f"sqlite:///{os.path.join(directory, 'bench.db')}"
        run(sqlite, "SQLite", args.datasets, args.samples, table)
    if args.skip_postgres:
        print("(PostgreSQL skipped: --skip-postgres)")
    elif not postgres_available():
        print("(PostgreSQL skipped: not reachable on 127.0.0.1:5432)")
    else:
        run(
            fresh_postgres_database("shoal_bench"), "PostgreSQL", args.datasets, args.samples, table
        )
    print(table.render())


if __name__ == "__main__":
    main()
