"""A node dies with its volume published: the CO publishes it on another node, data intact."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import grpc
import pytest

from tests.agent.functional.cluster import LocalCluster, read_marker, write_marker
from tests.plugin.csi.functional.conftest import cluster_reason
from tests.plugin.csi.functional.test_lifecycle import Node, attach_and_mount
from tests.plugin.csi.harness import Csi, CsiProcess, MiB, kill
from tests.plugin.functional.conftest import skip_or_fail
from tests.processes import ControlProcess, wait_until

pytestmark = pytest.mark.functional

GRACE = 3.0
"""The control service's failover grace: a dead node is fenced this long after it went silent."""


@pytest.fixture
def cluster(workdir: str) -> Iterator[LocalCluster]:
    """node1 and node2 over a control service with a short failover grace."""
    skip_or_fail(cluster_reason())
    local = LocalCluster(workdir, names=("node1", "node2"))
    local.control = ControlProcess(
        f"sqlite:///{os.path.join(workdir, 'control.db')}",
        extra=["--failover-grace", str(GRACE)], log_path=os.path.join(workdir, "control.log"),
    )
    try:
        yield local.start()
    finally:
        local.close()


def test_node_failure_mid_publish(
    cluster: LocalCluster, drivers: Callable[..., CsiProcess], workdir: str
) -> None:
    """node1 dies with the volume published; once it is fenced, node2 gets it with its data."""
    controller = Csi(drivers("node2", mode="controller").endpoint)
    node1_driver = drivers("node1", mode="node")
    nodes = {"node1": Node(node1_driver, workdir, "node1"),
             "node2": Node(drivers("node2", mode="node"), workdir, "node2")}
    pb = controller.pb
    cap = controller.mount_capability()
    one = pb.Topology(segments={"kubernetes.io/hostname": "node1"})
    volume = controller.controller.CreateVolume(pb.CreateVolumeRequest(
        name="pvc-failover", volume_capabilities=[cap],
        capacity_range=pb.CapacityRange(required_bytes=64 * MiB),
        accessibility_requirements=pb.TopologyRequirement(requisite=[one], preferred=[one]),
    )).volume
    target = attach_and_mount(controller, nodes["node1"], volume.volume_id, "pod-a", cap)
    write_marker(os.path.join(target, "marker"), b"before node1 died")

    cluster.agents["node1"].kill()
    kill(node1_driver)

    def published_on_node2() -> bool:
        """ControllerPublish to node2, as the CO retries it: refused until node1 is fenced."""
        try:
            controller.controller.ControllerPublishVolume(pb.ControllerPublishVolumeRequest(
                volume_id=volume.volume_id, node_id=nodes["node2"].id, volume_capability=cap))
        except grpc.RpcError as e:
            assert e.code() is grpc.StatusCode.FAILED_PRECONDITION, e.details()
            assert "node1" in (e.details() or "")
            return False
        return True

    wait_until(published_on_node2, 60, "node1 fenced and the volume published on node2",
               interval=0.5)
    target2 = attach_and_mount(controller, nodes["node2"], volume.volume_id, "pod-b", cap)
    assert read_marker(os.path.join(target2, "marker")) == b"before node1 died"
    status = controller.controller.ControllerGetVolume(
        pb.ControllerGetVolumeRequest(volume_id=volume.volume_id)).status
    assert list(status.published_node_ids) == [nodes["node2"].id]
