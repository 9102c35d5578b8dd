"""
How fast the CSI driver answers, on loop devices: the four figures of docs/csi.md.

With a real control service, two ``shoal agent run`` processes on one loopback
pool, one ``shoal csi serve --mode controller`` and a ``--mode node`` process
per node (root only), each trial times, as a CO's gRPC client sees it:

- CreateVolume to ready: the call, then until the state shows the new volume
  mounted on its node (followed through the watch);
- CreateSnapshot to ready_to_use: the driver answers once the snapshot is ready;
- ControllerPublishVolume to the other node, then NodeStageVolume there returning
  (a move, through CSI);
- NodePublishVolume (the bind mount at the pod's target path).

Beside them, the same agents without the driver (``bench/move.py``'s REST trials):
create -> mounted and move -> mounted, so the driver's own share can be read off.

    sudo .venv/bin/python bench/csi.py [--trials 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from uuid import UUID

from _common import Table, percentile
from move import StateFollower, agent_trials

from tests.agent.functional.cluster import LocalCluster, release
from tests.plugin.csi.harness import Csi, CsiProcess, MiB

TARGETS = {
    "CreateVolume to ready": 0.150,
    "CreateSnapshot to ready_to_use": 0.150,
    "ControllerPublish to a new node + NodeStage": 0.150,
    "NodePublish": 0.020,
}


def start_drivers(cluster: LocalCluster, base: str) -> dict[str, CsiProcess]:
    """A controller process and a node process per agent."""
    found = {}
    for name, mode, agent in [("controller", "controller", "node1"),
                              *((n, "node", n) for n in cluster.agents)]:
        found[name] = CsiProcess(
            cluster.url, os.path.join(base, f"{name}.sock"), mode,
            os.path.join(base, f"csi-{name}.log"),
            extra=("--agent-state-dir", cluster.agents[agent].state_dir),
        ).start()
    return found


def trials(cluster: LocalCluster, drivers: dict[str, CsiProcess], base: str, n: int
           ) -> dict[str, list[float]]:
    """Per-trial seconds of each scenario of :data:`TARGETS`."""
    controller = Csi(drivers["controller"].endpoint)
    nodes = {name: Csi(drivers[name].endpoint) for name in ("node1", "node2")}
    ids = {name: csi.node.NodeGetInfo(csi.pb.NodeGetInfoRequest()).node_id
           for name, csi in nodes.items()}
    pb, cap = controller.pb, controller.mount_capability()
    follower = StateFollower(cluster.control.port)
    one = pb.Topology(segments={"kubernetes.io/hostname": "node1"})
    samples: dict[str, list[float]] = {scenario: [] for scenario in TARGETS}
    for trial in range(n):
        start = time.perf_counter()
        volume = controller.controller.CreateVolume(pb.CreateVolumeRequest(
            name=f"bench-{trial}", volume_capabilities=[cap],
            capacity_range=pb.CapacityRange(required_bytes=64 * MiB),
            accessibility_requirements=pb.TopologyRequirement(requisite=[one], preferred=[one]),
        )).volume
        follower.wait_mounted(UUID(volume.volume_id), cluster.agents["node1"])
        samples["CreateVolume to ready"].append(time.perf_counter() - start)

        start = time.perf_counter()
        snapshot = controller.controller.CreateSnapshot(pb.CreateSnapshotRequest(
            source_volume_id=volume.volume_id, name=f"bench-snap-{trial}")).snapshot
        samples["CreateSnapshot to ready_to_use"].append(time.perf_counter() - start)
        assert snapshot.ready_to_use, snapshot

        staging = os.path.join(base, "kubelet", "staging", volume.volume_id)
        target = os.path.join(base, "kubelet", "pods", volume.volume_id)
        os.makedirs(staging)
        start = time.perf_counter()
        controller.controller.ControllerPublishVolume(pb.ControllerPublishVolumeRequest(
            volume_id=volume.volume_id, node_id=ids["node2"], volume_capability=cap))
        nodes["node2"].node.NodeStageVolume(pb.NodeStageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=staging, volume_capability=cap))
        samples["ControllerPublish to a new node + NodeStage"].append(time.perf_counter() - start)

        start = time.perf_counter()
        nodes["node2"].node.NodePublishVolume(pb.NodePublishVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=staging, target_path=target,
            volume_capability=cap))
        samples["NodePublish"].append(time.perf_counter() - start)

        nodes["node2"].node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(
            volume_id=volume.volume_id, target_path=target))
        nodes["node2"].node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=staging))
        controller.controller.ControllerUnpublishVolume(pb.ControllerUnpublishVolumeRequest(
            volume_id=volume.volume_id, node_id=ids["node2"]))
        controller.controller.DeleteSnapshot(pb.DeleteSnapshotRequest(
            snapshot_id=snapshot.snapshot_id))
        controller.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=volume.volume_id))
        deadline = time.perf_counter() + 60
        while not cluster.gone(UUID(volume.volume_id)):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{volume.volume_id} was not purged")
            time.sleep(0.01)
    return samples


def main() -> None:
    """Run the trials and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    table = Table("CSI driver (bench/csi.py)")
    if os.geteuid() != 0:
        print("- loop-device trials skipped: not root")
        return
    base = tempfile.mkdtemp(prefix="shoal-bench-csi-")
    cluster = LocalCluster(base, node_timeout=30.0)
    drivers: dict[str, CsiProcess] = {}
    try:
        cluster.start()
        drivers = start_drivers(cluster, base)
        time.sleep(1.0)  # let the agents finish their first passes
        started = time.perf_counter()
        samples = trials(cluster, drivers, base, args.trials)
        wall = time.perf_counter() - started
        rest_creates, rest_moves = agent_trials(cluster, args.trials)
        memory = {name: d.rss_kib() for name, d in drivers.items()}
    finally:
        for driver in drivers.values():
            driver.stop()
        cluster.close()
        release(base)
        shutil.rmtree(base, ignore_errors=True)
    for scenario, found in samples.items():
        rss = memory["controller"] if "Create" in scenario else memory["node2"]
        table.add(scenario, found, sum(found) or wall, rss)
    table.add("baseline: REST create -> mounted (no CSI)", rest_creates, None, None)
    table.add("baseline: REST move -> mounted (no CSI)", rest_moves, None, None)
    print(table.render())
    print()
    for scenario, target in TARGETS.items():
        p50 = percentile(samples[scenario], 0.5)
        verdict = "met" if p50 < target else "MISSED"
        print(f"- {scenario}: p50 {p50 * 1000:.1f} ms (target < {target * 1000:.0f} ms: {verdict})")
    print(f"- driver RSS: controller {memory['controller'] / 1024:.0f} MiB, "
          f"node {memory['node2'] / 1024:.0f} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
