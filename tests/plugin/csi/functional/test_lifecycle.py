"""
Our own gRPC suite, driven as kubelet and the external sidecars drive a driver, on loop devices.

One controller process and a node process per node, over a real control
service and real loopback agents: provision, attach, stage, publish and write;
unpublish, unstage and detach; publish on another node and find the data;
snapshot, restore and read it on a third node; grow the volume online while
it is published.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from tests.agent.functional.cluster import LocalCluster, read_marker, write_marker
from tests.plugin.csi.harness import Csi, CsiProcess, MiB
from tests.processes import http_json, wait_until

pytestmark = pytest.mark.functional

SIZE = 320 * MiB
"""xfs needs 300 MiB, and grows online with CAP_SYS_ADMIN alone (a container may lack
ext4's CAP_SYS_RESOURCE)."""


class Node:
    """A node as kubelet sees it: its driver's client, its id and its own staging paths."""

    def __init__(self, driver: CsiProcess, workdir: str, name: str) -> None:
        self.csi = Csi(driver.endpoint)
        self.id = self.csi.node.NodeGetInfo(self.csi.pb.NodeGetInfoRequest()).node_id
        self.root = os.path.join(workdir, "kubelet", name)

    def staging(self, volume_id: str) -> str:
        """The staging path kubelet would give ``volume_id`` here (it makes it)."""
        path = os.path.join(self.root, "staging", volume_id)
        os.makedirs(path, exist_ok=True)
        return path

    def target(self, volume_id: str, pod: str) -> str:
        """A pod's target path for ``volume_id`` (its parent exists, as kubelet leaves it)."""
        parent = os.path.join(self.root, "pods", pod)
        os.makedirs(parent, exist_ok=True)
        return os.path.join(parent, volume_id)


def attach_and_mount(controller: Csi, node: Node, volume_id: str, pod: str, cap: Any) -> str:
    """ControllerPublish to ``node``, then NodeStage and NodePublish there; the target path."""
    pb = controller.pb
    published = controller.controller.ControllerPublishVolume(pb.ControllerPublishVolumeRequest(
        volume_id=volume_id, node_id=node.id, volume_capability=cap))
    staging = node.staging(volume_id)
    node.csi.node.NodeStageVolume(pb.NodeStageVolumeRequest(
        volume_id=volume_id, staging_target_path=staging, volume_capability=cap,
        publish_context=published.publish_context), timeout=120)
    target = node.target(volume_id, pod)
    node.csi.node.NodePublishVolume(pb.NodePublishVolumeRequest(
        volume_id=volume_id, staging_target_path=staging, target_path=target,
        volume_capability=cap, publish_context=published.publish_context))
    return target


def unmount_and_detach(controller: Csi, node: Node, volume_id: str, target: str) -> None:
    """NodeUnpublish, NodeUnstage on ``node``, then ControllerUnpublish."""
    pb = controller.pb
    node.csi.node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(
        volume_id=volume_id, target_path=target))
    node.csi.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(
        volume_id=volume_id, staging_target_path=node.staging(volume_id)))
    controller.controller.ControllerUnpublishVolume(pb.ControllerUnpublishVolumeRequest(
        volume_id=volume_id, node_id=node.id))


def used_bytes(node: Node, volume_id: str, path: str) -> dict[str, Any]:
    """NodeGetVolumeStats' byte usage and condition."""
    pb = node.csi.pb
    stats = node.csi.node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(
        volume_id=volume_id, volume_path=path))
    usage = next(u for u in stats.usage if u.unit == pb.VolumeUsage.BYTES)
    return {"total": usage.total, "abnormal": stats.volume_condition.abnormal}


def test_volume_lifecycle_across_nodes(
    cluster: LocalCluster, drivers: Callable[..., CsiProcess], workdir: str
) -> None:
    """Write on node1, read on node2, restore a snapshot on node3, grow online on node3."""
    controller = Csi(drivers("node1", mode="controller").endpoint)
    nodes = {name: Node(drivers(name, mode="node"), workdir, name)
             for name in ("node1", "node2", "node3")}
    pb = controller.pb
    cap = controller.mount_capability()

    # 1. provision, attach, stage, publish, and write
    volume = controller.controller.CreateVolume(pb.CreateVolumeRequest(
        name="pvc-data", volume_capabilities=[cap], parameters={"fs": "xfs"},
        capacity_range=pb.CapacityRange(required_bytes=SIZE))).volume
    target = attach_and_mount(controller, nodes["node1"], volume.volume_id, "pod-a", cap)
    write_marker(os.path.join(target, "marker"), b"written on node1")
    assert used_bytes(nodes["node1"], volume.volume_id, target)["abnormal"] is False

    # 2. unpublish, unstage and detach: nothing of it is left at the pod's paths
    unmount_and_detach(controller, nodes["node1"], volume.volume_id, target)
    assert not os.path.exists(target)
    assert not os.path.ismount(nodes["node1"].staging(volume.volume_id))

    # 3. publish on another node: the data is there
    target2 = attach_and_mount(controller, nodes["node2"], volume.volume_id, "pod-b", cap)
    assert read_marker(os.path.join(target2, "marker")) == b"written on node1"
    status = controller.controller.ControllerGetVolume(
        pb.ControllerGetVolumeRequest(volume_id=volume.volume_id)).status
    assert list(status.published_node_ids) == [nodes["node2"].id]

    # 4. snapshot, then restore on a third path (node3)
    snapshot = controller.controller.CreateSnapshot(pb.CreateSnapshotRequest(
        source_volume_id=volume.volume_id, name="snap-1"), timeout=120).snapshot
    assert snapshot.ready_to_use
    source = pb.VolumeContentSource(
        snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=snapshot.snapshot_id))
    restored = controller.controller.CreateVolume(pb.CreateVolumeRequest(
        name="pvc-restored", volume_capabilities=[cap], volume_content_source=source)).volume
    assert restored.content_source.snapshot.snapshot_id == snapshot.snapshot_id
    target3 = attach_and_mount(controller, nodes["node3"], restored.volume_id, "pod-c", cap)
    assert read_marker(os.path.join(target3, "marker")) == b"written on node1"

    # 5. expand online while published
    before = used_bytes(nodes["node3"], restored.volume_id, target3)["total"]
    grown = controller.controller.ControllerExpandVolume(pb.ControllerExpandVolumeRequest(
        volume_id=restored.volume_id,
        capacity_range=pb.CapacityRange(required_bytes=SIZE + 64 * MiB)))
    assert grown.capacity_bytes == SIZE + 64 * MiB and grown.node_expansion_required
    nodes["node3"].csi.node.NodeExpandVolume(pb.NodeExpandVolumeRequest(
        volume_id=restored.volume_id, volume_path=target3,
        capacity_range=pb.CapacityRange(required_bytes=SIZE + 64 * MiB)), timeout=120)
    after = used_bytes(nodes["node3"], restored.volume_id, target3)["total"]
    assert after >= before + 60 * MiB
    assert read_marker(os.path.join(target3, "marker")) == b"written on node1"

    for name, path, volume_id in (("node2", target2, volume.volume_id),
                                  ("node3", target3, restored.volume_id)):
        unmount_and_detach(controller, nodes[name], volume_id, path)
    for volume_id in (restored.volume_id, volume.volume_id):
        controller.controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=volume_id))
    listed = controller.controller.ListVolumes(pb.ListVolumesRequest())
    assert [e.volume.volume_id for e in listed.entries] == []


def _mounted_devices() -> set[str]:
    """The ``major:minor`` of every filesystem mounted on this machine (mountinfo's third field)."""
    with open("/proc/self/mountinfo") as f:
        return {line.split()[2] for line in f}


def _write_raw(path: str, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_raw(path: str, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def _detach_waits_for_the_pod(
    cluster: LocalCluster, controller: Csi, nodes: dict[str, Node], volume_id: str, cap: Any,
    target: str,
) -> None:
    """While node2's pod has the raw device bound at ``target``: NodeUnstageVolume is refused
    (FAILED_PRECONDITION, naming it), and a move to node1 after ControllerUnpublishVolume
    waits, node2's agent reporting why it does not detach; the move is then taken back."""
    pb, node2 = controller.pb, nodes["node2"]
    with pytest.raises(grpc.RpcError) as refused:
        node2.csi.node.NodeUnstageVolume(pb.NodeUnstageVolumeRequest(
            volume_id=volume_id, staging_target_path=node2.staging(volume_id)))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert target in (refused.value.details() or "")
    controller.controller.ControllerUnpublishVolume(pb.ControllerUnpublishVolumeRequest(
        volume_id=volume_id, node_id=node2.id))
    controller.controller.ControllerPublishVolume(pb.ControllerPublishVolumeRequest(
        volume_id=volume_id, node_id=nodes["node1"].id, volume_capability=cap))
    url = f"{cluster.url}/v1/shoal/conditions?dataset={volume_id}"
    wait_until(lambda: "device_in_use" in json.dumps(http_json("GET", url)[2]), 60,
               "node2's agent to report the bound device")
    assert stat.S_ISBLK(os.stat(target).st_mode)  # still attached there, the pod's device
    controller.controller.ControllerUnpublishVolume(pb.ControllerUnpublishVolumeRequest(
        volume_id=volume_id, node_id=nodes["node1"].id))
    controller.controller.ControllerPublishVolume(pb.ControllerPublishVolumeRequest(
        volume_id=volume_id, node_id=node2.id, volume_capability=cap))


def test_raw_block_volume_moves_between_nodes(
    cluster: LocalCluster, drivers: Callable[..., CsiProcess], workdir: str
) -> None:
    """A block volume is raw, never formatted or mounted; bytes written on node1 read on node2."""
    controller = Csi(drivers("node1", mode="controller").endpoint)
    nodes = {name: Node(drivers(name, mode="node"), workdir, name) for name in ("node1", "node2")}
    pb = controller.pb
    cap = controller.block_capability()
    volume = controller.controller.CreateVolume(pb.CreateVolumeRequest(
        name="pvc-raw", volume_capabilities=[cap], parameters={"fs": "xfs"},
        capacity_range=pb.CapacityRange(required_bytes=64 * MiB))).volume
    assert volume.volume_context["filesystem"] == "raw"

    target = attach_and_mount(controller, nodes["node1"], volume.volume_id, "pod-a", cap)
    device = os.stat(target)
    assert stat.S_ISBLK(device.st_mode)
    number = f"{os.major(device.st_rdev)}:{os.minor(device.st_rdev)}"
    assert number not in _mounted_devices()  # the agent mounted nothing of it
    head = _read_raw(target, 0, 4096)
    assert head[:4] != b"XFSB" and head[1080:1082] != b"\x53\xef"  # no xfs, no ext4
    payload = b"raw bytes from node1 " * 100
    _write_raw(target, 3 * MiB + 512, payload)
    unmount_and_detach(controller, nodes["node1"], volume.volume_id, target)
    assert not os.path.exists(target)

    target2 = attach_and_mount(controller, nodes["node2"], volume.volume_id, "pod-b", cap)
    assert _read_raw(target2, 3 * MiB + 512, len(payload)) == payload
    device2 = os.stat(target2)
    assert f"{os.major(device2.st_rdev)}:{os.minor(device2.st_rdev)}" not in _mounted_devices()
    _detach_waits_for_the_pod(cluster, controller, nodes, volume.volume_id, cap, target2)
    assert _read_raw(target2, 3 * MiB + 512, len(payload)) == payload

    mount = controller.mount_capability()
    with pytest.raises(grpc.RpcError) as refused:
        controller.controller.ControllerPublishVolume(pb.ControllerPublishVolumeRequest(
            volume_id=volume.volume_id, node_id=nodes["node2"].id, volume_capability=mount))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw block volume" in (refused.value.details() or "")

    snapshot = controller.controller.CreateSnapshot(pb.CreateSnapshotRequest(
        source_volume_id=volume.volume_id, name="raw-snap"), timeout=120).snapshot
    source = pb.VolumeContentSource(
        snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=snapshot.snapshot_id))
    restored = controller.controller.CreateVolume(pb.CreateVolumeRequest(
        name="pvc-raw-restored", volume_capabilities=[cap], volume_content_source=source)).volume
    assert restored.volume_context["filesystem"] == "raw"
