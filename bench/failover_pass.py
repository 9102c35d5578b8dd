"""
What one failover pass costs the control service, by cluster size.

The executor (:mod:`control.failover_service`) runs a pass twice per
heartbeat (every second by default): it reads the configuration and the
cluster state, plans (pure) and applies. Measured here, in process, for
clusters of ``nodes`` nodes each primary for ``per_node`` datasets (every
node reporting its datasets mounted):

- ``plan, quiet``: the pure planner when nothing is to be done (the usual pass);
- ``pass, quiet (SQLite)``: a whole pass over a SQLite store (reads + plan);
- ``pass, one node dead (SQLite)``: the pass that fences a node and fails
  over all its datasets (one write per dataset), from a fresh copy each time.

    .venv/bin/python bench/failover_pass.py [--nodes 10,50] [--per-node 100] [-n 20]
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import tempfile
from pathlib import Path
from uuid import UUID

import structlog
from _common import Table, timed

from control.failover import Memory, plan
from control.failover_service import run_pass
from control.liveness import FailoverSettings
from control.model import Capacity, Dataset, DatasetState, Node, NodeState, VolumeStatus
from control.store.factory import open_store
from control.store.interface import Store

T = 1_000_000.0
SETTINGS = FailoverSettings()
POOL = Capacity("loopback", total=2**40, free=2**39, shared=True)


def populate(store: Store, nodes: int, per_node: int) -> None:
    """``nodes`` nodes seen at T, each primary for ``per_node`` mounted datasets."""
    for n in range(nodes):
        node = UUID(int=n + 1)
        store.register_node(Node(node, f"n{n}", "era", last_seen=T, mount_root="/m"))
        held = {}
        for i in range(per_node):
            dataset_id = UUID(int=(n + 1) * 1_000_000 + i)
            store.create_dataset(Dataset(dataset_id, node), None, now=T)
            held[dataset_id] = DatasetState(
                dataset_id, VolumeStatus.MOUNTED, path=f"/m/{dataset_id}", device="/dev/loop0"
            )
        generation = store.versions().configuration
        store.report_state(NodeState(node, "era", generation, held, T, capacity=POOL))


def keep_alive(store: Store, nodes: int, at: float, but: int | None = None) -> None:
    """Every node but ``but`` reports (unchanged) at ``at``."""
    for report in store.cluster_state().reports.values():
        if but is not None and report.node_uuid == UUID(int=but):
            continue
        store.report_state(NodeState(
            report.node_uuid, report.era, report.generation, report.datasets, at,
            capacity=report.capacity,
        ))


def rss_kib() -> int:
    """This process's peak resident memory."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(table: Table, nodes: int, per_node: int, n: int, directory: Path) -> None:
    """Add the three scenarios for one cluster size."""
    label = f"{nodes} nodes x {per_node}"
    template = directory / f"template-{nodes}.db"
    store = open_store(f"sqlite:///{template}", upgrade=True)
    populate(store, nodes, per_node)
    keep_alive(store, nodes, T + 5)
    configuration, state = store.configuration(T + 5), store.cluster_state()
    samples, wall = timed(lambda: plan(configuration, state, T + 5, SETTINGS, T), n)
    table.add(f"{label}: plan, quiet", samples, wall, rss_kib())
    memory = Memory()
    samples, wall = timed(lambda: run_pass(store, T + 5, SETTINGS, T, memory), n)
    table.add(f"{label}: pass, quiet (SQLite)", samples, wall, rss_kib())
    keep_alive(store, nodes, T + 16, but=1)
    store.close()
    dead = []
    for i in range(n):
        copy = directory / f"copy-{nodes}-{i}.db"
        shutil.copyfile(template, copy)
        trial = open_store(f"sqlite:///{copy}")
        one, _ = timed(lambda trial=trial: run_pass(trial, T + 16, SETTINGS, T, Memory()), 1)
        moved = [d for d in trial.configuration(T + 16).datasets.values() if d.epoch == 1]
        assert len(moved) == per_node, f"{len(moved)} of {per_node} failed over"
        trial.close()
        dead.extend(one)
    table.add(f"{label}: pass, one node dead (SQLite)", dead, None, rss_kib())


def main() -> None:
    """Run the scenarios and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="10,50", help="cluster sizes, comma-separated")
    parser.add_argument("--per-node", type=int, default=100, help="datasets per node")
    parser.add_argument("-n", type=int, default=20, help="passes per scenario")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    table = Table("One failover pass (bench/failover_pass.py)")
    with tempfile.TemporaryDirectory() as directory:
        for nodes in (int(x) for x in args.nodes.split(",")):
            measure(table, nodes, args.per_node, args.n, Path(directory))
    print(table.render())


if __name__ == "__main__":
    main()
