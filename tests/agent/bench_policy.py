"""
Time calculate_changes for one node with 1,000 datasets (not a test: run it).

    .venv/bin/python -m tests.agent.bench_policy

Budget: under 10 ms per call, both when everything must be created and in the
steady state where everything is already mounted.
"""

from __future__ import annotations

import timeit
from uuid import UUID

from agent.backends.interface import BlockDeviceVolume
from agent.discovery import LocalState, classify, mount_point
from agent.fs.interface import Mount
from agent.policy import ClusterView, calculate_changes
from control.model import Dataset

ME = UUID(int=1)
HERE = "i-here"
ROOT = "/shoal"
COUNT = 1000


def scenarios() -> dict[str, tuple]:
    """(desired, local) for a fresh node and for a converged one."""
    ids = [UUID(int=1000 + i) for i in range(COUNT)]
    desired = {i: Dataset(i, ME) for i in ids}
    volumes = [BlockDeviceVolume(f"b{n}", 1 << 30, UUID(int=9), i, HERE) for n, i in enumerate(ids)]
    devices = {v.blockdevice_id: f"/dev/{v.blockdevice_id}" for v in volumes}
    mounts = [Mount(devices[v.blockdevice_id], mount_point(ROOT, v.dataset_id)) for v in volumes]
    fresh = classify([], HERE, {}, frozenset(), [], ROOT)
    steady = classify(volumes, HERE, devices, frozenset(devices.values()), mounts, ROOT)
    return {"fresh": (desired, fresh), "steady": (desired, steady)}


def main() -> None:
    """Print the mean time of calculate_changes per scenario."""
    view = ClusterView(ME)
    for name, (desired, local) in scenarios().items():
        runs = 50

        def once(d: dict = desired, lo: LocalState = local) -> None:
            calculate_changes(d, view, lo, HERE, ROOT)

        total = timeit.timeit(once, number=runs)
        print(f"{name}: {total / runs * 1000:.2f} ms per call ({COUNT} datasets)")


if __name__ == "__main__":
    main()
