"""A single-writer volume stays on one target path, even across a restart of the node driver."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from tests.agent.functional.cluster import LocalCluster
from tests.plugin.csi.functional.test_lifecycle import Node, attach_and_mount
from tests.plugin.csi.harness import Csi, CsiProcess, MiB

pytestmark = pytest.mark.functional


@pytest.mark.parametrize("cluster", [("node1",)], indirect=True)
def test_single_writer_survives_a_driver_restart(
    cluster: LocalCluster, drivers: Callable[..., CsiProcess], workdir: str
) -> None:
    """After the node driver restarts, a second target of the published volume is refused."""
    driver = drivers("node1")
    csi = Csi(driver.endpoint)
    pb = csi.pb
    cap = csi.mount_capability("SINGLE_NODE_SINGLE_WRITER")
    volume = csi.controller.CreateVolume(pb.CreateVolumeRequest(
        name="pvc-solo", volume_capabilities=[cap],
        capacity_range=pb.CapacityRange(required_bytes=64 * MiB))).volume
    node = Node(driver, workdir, "node1")
    attach_and_mount(csi, node, volume.volume_id, "pod-a", cap)
    csi.channel.close()
    node.csi.channel.close()
    driver.stop()
    restarted = Node(driver.start(), workdir, "node1")
    with pytest.raises(grpc.RpcError) as caught:
        restarted.csi.node.NodePublishVolume(pb.NodePublishVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=restarted.staging(volume.volume_id),
            target_path=restarted.target(volume.volume_id, "pod-b"), volume_capability=cap))
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "pod-a" in (caught.value.details() or "")
