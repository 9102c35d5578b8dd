"""
What a changed state report writes to the database's log, and what it costs the store, at
100,000 datasets over 50 nodes (2,000 datasets per node; issue 16).

In process, on a seeded SQLite or throwaway PostgreSQL database (:mod:`_scale_db`), a node
alternately reports one of its datasets attached and all mounted
(``SQLStore.report_states``, as the service's group commit calls it). Prints the WAL a
changed report writes (SQLite: frames of the ``-wal`` file; PostgreSQL: bytes between
``pg_current_wal_lsn()`` readings) and its p50, wall and CPU: the WAL is a figure the other
processes of a busy machine do not disturb.

    python bench/report_wal.py [--store sqlite postgresql] [--nodes 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _scale_db import database, node_ids, seed
from _scale_reads import seed_reports
from attrs import evolve
from sqlalchemy import text

from control.model import DatasetState, NodeState, VolumeStatus
from control.store.sql import SQLStore

DATASETS = 100_000
LOGGED = 6
"""Reports whose log is measured (few: SQLite checkpoints its log every 1,000 frames)."""
TIMED = 60


def _reports(store: SQLStore, node: object) -> tuple[NodeState, NodeState]:
    """The node's report as stored (at the current generation), and with one dataset attached."""
    full = store.cluster_state().reports[node]  # type: ignore[index]
    full = evolve(full, generation=store.versions().configuration)
    first = sorted(full.datasets, key=str)[0]
    was = full.datasets[first]
    attached = DatasetState(first, VolumeStatus.ATTACHED, was.maximum_size, was.device, None)
    return full, evolve(full, datasets=full.datasets.set(first, attached))


def _send(store: SQLStore, bodies: tuple[NodeState, NodeState], turn: int) -> None:
    report = evolve(bodies[turn % 2], reported_at=time.time())
    if store.report_states([(report, None)]) != [True]:
        raise RuntimeError("the report was not written as a change")


def _logged(store: SQLStore, kind: str, bodies: tuple[NodeState, NodeState]) -> str:
    """The log one changed report writes."""
    with store._engine.connect() as connection:
        if kind == "sqlite":
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            start = connection.execute(text("SELECT pg_current_wal_lsn()")).scalar()
    for turn in range(LOGGED):
        _send(store, bodies, turn + 1)
    with store._engine.connect() as connection:
        if kind == "sqlite":
            _, frames, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            page = connection.exec_driver_sql("PRAGMA page_size").scalar()
            return (f"{frames / LOGGED:.0f} WAL frames "
                    f"({frames * (page + 24) / LOGGED / 1024:.0f} KiB)")
        end = connection.execute(text("SELECT pg_current_wal_lsn()")).scalar()
        size = connection.execute(
            text("SELECT pg_wal_lsn_diff(:a, :b)"), {"a": end, "b": start}
        ).scalar()
        return f"{float(size) / LOGGED / 1024:.0f} KiB of WAL"


def measure(kind: str, nodes: int) -> None:
    """Print the figures of one database."""
    with database(kind) as url:
        ids = node_ids(nodes)
        seed_reports(url, seed(url, ids, DATASETS))
        store = SQLStore(url, seen_in_memory=True)
        try:
            bodies = _reports(store, ids[0])
            for turn in range(4):
                _send(store, bodies, turn + 1)
            logged = _logged(store, kind, bodies)
            walls, cpus = [], []
            for turn in range(TIMED):
                wall, cpu = time.perf_counter(), time.process_time()
                _send(store, bodies, turn + 1)  # LOGGED is even: alternate on from there
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
        finally:
            store.close()
    print(f"{kind}, {DATASETS} datasets / {nodes} nodes: a changed report writes {logged}; "
          f"p50 {1000 * statistics.median(walls):.2f} ms "
          f"(CPU {1000 * statistics.median(cpus):.2f} ms)", flush=True)


def main() -> None:
    """Parse the options and measure each database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--store", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--nodes", type=int, default=50)
    options = parser.parse_args()
    for kind in options.store:
        measure(kind, options.nodes)


if __name__ == "__main__":
    main()
