"""
How fast the agents act: create and move on loop devices, convergence at scale.

With a real control service and two ``shoal agent run`` processes on one
loopback pool (root only): 30 trials of create -> mounted (from the API call
until the state shows the dataset mounted on its primary, followed through
the watch) and of move A -> B (until mounted on B), beside the raw OS work of
the same operations (truncate + losetup + mkfs.ext4 + mount; umount +
losetup -d + losetup + mount). Then, in process on the fake backend: 1,000
datasets over 10 agents (the real loop, the fake client) until all are
mounted and reported; and ``calculate_changes`` for one node with 1,000
datasets.

    sudo .venv/bin/python bench/move.py [--trials 30] [--skip-real]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from uuid import UUID

from _common import KeepAlive, Table, percentile
from _fleet import converge_fleet, time_calculate_changes

from tests.agent.functional.cluster import AgentProcess, LocalCluster, release

MiB = 1024 * 1024
SIZE = 64 * MiB


def run(argv: list[str]) -> str:
    """Run a command, failing loudly; returns its stdout."""
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def raw_baseline(base: str, trials: int) -> tuple[list[float], list[float]]:
    """The OS work alone: per-trial seconds of a create and of a move (detach, re-attach)."""
    creates, moves = [], []
    for trial in range(trials):
        image, mount = os.path.join(base, f"raw-{trial}.img"), os.path.join(base, f"raw-{trial}")
        os.makedirs(mount)
        start = time.perf_counter()
        run(["truncate", "-s", str(SIZE), image])
        device = run(["losetup", "--find", "--show", image]).strip()
        run(["mkfs.ext4", "-q", device])
        run(["mount", device, mount])
        creates.append(time.perf_counter() - start)
        start = time.perf_counter()
        run(["umount", mount])
        run(["losetup", "-d", device])
        device = run(["losetup", "--find", "--show", image]).strip()
        run(["mount", device, mount])
        moves.append(time.perf_counter() - start)
        run(["umount", mount])
        run(["losetup", "-d", device])
        os.unlink(image)
    return creates, moves


class StateFollower:
    """Follows ``/v1/state/datasets`` through the watch, on one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.client = KeepAlive(port)
        self.versions = self.client.check("GET", "/v1/shoal/watch?timeout=0")

    def wait_mounted(self, dataset_id: UUID, agent: AgentProcess, timeout: float = 30) -> None:
        """Return as soon as the state shows the dataset mounted on ``agent``."""
        deadline = time.perf_counter() + timeout
        path = agent.mount_path(dataset_id)
        while time.perf_counter() < deadline:
            for entry in self.client.check("GET", "/v1/state/datasets"):
                if entry["dataset_id"] == str(dataset_id) and entry.get("path") == path:
                    return
            v = self.versions
            query = f"configuration={v['configuration']}&state={v['state']}&timeout=5"
            self.versions = self.client.check("GET", f"/v1/shoal/watch?{query}")
        raise RuntimeError(f"{dataset_id} not mounted on {agent.name} within {timeout} s")


def agent_trials(cluster: LocalCluster, trials: int) -> tuple[list[float], list[float]]:
    """Per-trial seconds of create -> mounted and of move A -> B -> mounted on B."""
    one, two = cluster.agents["node1"], cluster.agents["node2"]
    follower = StateFollower(cluster.control.port)
    writer = KeepAlive(cluster.control.port)
    creates, moves = [], []
    for trial in range(trials):
        source, target = (one, two) if trial % 2 == 0 else (two, one)
        body = {"primary": str(source.uuid), "maximum_size": SIZE}
        start = time.perf_counter()
        created = writer.check("POST", "/v1/configuration/datasets", body, 201)
        dataset_id = UUID(created["dataset_id"])
        follower.wait_mounted(dataset_id, source)
        creates.append(time.perf_counter() - start)
        start = time.perf_counter()
        writer.check("POST", f"/v1/configuration/datasets/{dataset_id}",
                     {"primary": str(target.uuid)})
        follower.wait_mounted(dataset_id, target)
        moves.append(time.perf_counter() - start)
        writer.check("DELETE", f"/v1/configuration/datasets/{dataset_id}")
        deadline = time.perf_counter() + 30
        while not cluster.gone(dataset_id):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{dataset_id} was not purged")
            time.sleep(0.01)
    return creates, moves


def real_rows(table: Table, trials: int) -> list[str]:
    """Measure on loop devices; adds rows to ``table`` and returns summary lines."""
    base = tempfile.mkdtemp(prefix="shoal-bench-move-")
    cluster = LocalCluster(base, node_timeout=30.0, failover_grace=None)
    try:
        raw_creates, raw_moves = raw_baseline(base, trials)
        cluster.start()
        time.sleep(1.0)  # let both agents finish their first passes
        creates, moves = agent_trials(cluster, trials)
    finally:
        cluster.close()
        release(base)
        shutil.rmtree(base, ignore_errors=True)
    table.add("raw OS create (truncate+losetup+mkfs+mount)", raw_creates, None, None)
    table.add("agent create -> mounted", creates, None, None)
    table.add("raw OS move (umount+losetup -d+losetup+mount)", raw_moves, None, None)
    table.add("agent move A -> B mounted", moves, None, None)
    move_base, create_base = percentile(raw_moves, 0.5), percentile(raw_creates, 0.5)
    move_p50, create_p50 = percentile(moves, 0.5), percentile(creates, 0.5)
    move_target = 1.5 * move_base + 0.100
    return [
        f"move overhead ratio p50/baseline p50: {move_p50 / move_base:.1f}x "
        f"(target p50 < 1.5 x {move_base * 1000:.1f} ms + 100 ms = {move_target * 1000:.0f} ms: "
        f"{'met' if move_p50 < move_target else 'MISSED'})",
        f"create overhead ratio p50/baseline p50: {create_p50 / create_base:.1f}x "
        f"(target p50 < 250 ms: {'met' if create_p50 < 0.250 else 'MISSED'})",
    ]


def main() -> None:
    """Run every measurement and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--skip-real", action="store_true", help="skip the loop-device part")
    args = parser.parse_args()
    table = Table("Agent convergence (bench/move.py)")
    notes: list[str] = []
    if args.skip_real:
        notes.append("loop-device trials skipped (--skip-real)")
    elif os.geteuid() != 0:
        notes.append("loop-device trials skipped: not root")
    else:
        notes.extend(real_rows(table, args.trials))
    fleet = converge_fleet(datasets=1000, nodes=10)
    table.add("1,000 datasets / 10 agents (fake) all converged", [fleet.seconds], None, None)
    notes.append(
        f"1,000 datasets converged in {fleet.seconds:.2f} s, {fleet.passes} passes "
        f"(target < 10 s: {'met' if fleet.seconds < 10 else 'MISSED'})"
    )
    for name, samples in time_calculate_changes(1000, runs=50).items():
        table.add(f"calculate_changes, 1 node, 1,000 datasets ({name})", samples, None, None)
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        notes.append(f"calculate_changes ({name}) p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"
                     f" (target < 10 ms at p50: {'met' if p50 < 0.010 else 'MISSED'})")
    print(table.render())
    print()
    for note in notes:
        print(f"- {note}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
