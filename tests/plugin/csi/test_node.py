"""The Node and Identity services over the real API in memory: their answers before any mount."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import grpc
import pytest

from control.errors import Unavailable
from control.runners import synchronous_runner
from plugin.csi.controller import ControllerService
from plugin.csi.node import CAPABILITIES, NodeService
from plugin.csi.proto import csi_pb2 as csi
from plugin.csi.server import IdentityService
from tests.plugin.csi.test_controller import call, capability, create, refused
from tests.plugin.harness import NODE1, NODE2, Cluster, make_cluster

Code = grpc.StatusCode


class Here:
    """This node for the service: node1, mounting below /mnt/node1."""

    def __init__(self, uuid: UUID, mount_root: str) -> None:
        self.uuid = uuid
        self.root = mount_root

    def __call__(self) -> UUID:
        return self.uuid

    def mount_root(self) -> str:
        return self.root


@pytest.fixture
def cluster() -> Cluster:
    """Two registered nodes (node1, node2) and their fake agents."""
    return make_cluster()


@pytest.fixture
def node(cluster: Cluster) -> NodeService:
    """node1's Node service (its blocking work runs inline)."""
    return NodeService(cluster.client, cluster.clock, Here(NODE1, "/mnt/node1"),
                       cluster.agents[NODE1].guard(), synchronous_runner, stage_timeout=5.0,
                       max_volumes=7)


def test_node_info_is_the_uuid_labels_and_limit(node: NodeService) -> None:
    """NodeGetInfo: the node's uuid, its hostname label as a segment, --max-volumes."""
    info = call(node, "NodeGetInfo")
    assert (info.node_id, info.max_volumes_per_node) == (str(NODE1), 7)
    assert info.accessible_topology.segments["kubernetes.io/hostname"] == "node1"


def test_capabilities_are_the_advertised_list(node: NodeService) -> None:
    """NodeGetCapabilities names exactly :data:`CAPABILITIES`."""
    response = call(node, "NodeGetCapabilities")
    assert tuple(c.rpc.type for c in response.capabilities) == CAPABILITIES


def test_staging_a_volume_published_elsewhere_is_refused(
    cluster: Cluster, node: NodeService
) -> None:
    """A volume published to node2 cannot be staged on node1 (FAILED_PRECONDITION)."""
    controller = ControllerService(cluster.client, cluster.clock)
    volume = create(controller)
    call(controller, "ControllerPublishVolume", volume_id=volume.volume_id, node_id=str(NODE2),
         volume_capability=capability())
    error = refused(node, "NodeStageVolume", volume_id=volume.volume_id,
                    staging_target_path="/staging", volume_capability=capability())
    assert error.code is Code.FAILED_PRECONDITION and "ControllerPublishVolume" in error.message


@pytest.mark.parametrize(("rpc", "fields", "code"), [
    ("NodeStageVolume", {"staging_target_path": "/s", "volume_capability": capability()},
     Code.INVALID_ARGUMENT),
    ("NodeStageVolume", {"volume_id": "nope", "staging_target_path": "/s",
                         "volume_capability": capability()}, Code.NOT_FOUND),
    ("NodePublishVolume", {"volume_id": "v", "staging_target_path": "/s",
                           "volume_capability": capability()}, Code.INVALID_ARGUMENT),
    ("NodeGetVolumeStats", {"volume_id": "nope", "volume_path": "/p"}, Code.NOT_FOUND),
    ("NodeUnpublishVolume", {"volume_id": "v"}, Code.INVALID_ARGUMENT),
])
def test_bad_requests(node: NodeService, rpc: str, fields: dict[str, Any], code: Any) -> None:
    """Missing fields and unknown volumes are refused with the spec's codes."""
    assert refused(node, rpc, **fields).code is code


def test_identity(cluster: Cluster) -> None:
    """The driver's name; CONTROLLER_SERVICE only where the controller runs; Probe's readiness."""
    kinds = csi.PluginCapability.Service.Type

    def services(identity: IdentityService) -> set[int]:
        answer = call(identity, "GetPluginCapabilities")
        return {c.service.type for c in answer.capabilities if c.HasField("service")}

    both = IdentityService(cluster.client, controller=True)
    assert call(both, "GetPluginInfo").name == "csi.shoal.io"
    assert kinds.CONTROLLER_SERVICE in services(both)
    assert kinds.CONTROLLER_SERVICE not in services(IdentityService(cluster.client, False))
    assert call(both, "Probe").ready.value is True

    def unknown() -> None:
        raise Unavailable("This node is not known yet.")

    assert call(IdentityService(cluster.client, False, unknown), "Probe").ready.value is False


def test_a_reported_mount_this_node_refuses_is_failed_precondition(
    cluster: Cluster, node: NodeService
) -> None:
    """The agent reports the volume mounted here, but the kernel shows no such mount: refused."""
    controller = ControllerService(cluster.client, cluster.clock)
    volume = create(controller)
    call(controller, "ControllerPublishVolume", volume_id=volume.volume_id, node_id=str(NODE1),
         volume_capability=capability())
    cluster.converge(NODE1)
    cluster.agents[NODE1].kernel_mounts = []
    error = refused(node, "NodeStageVolume", volume_id=volume.volume_id,
                    staging_target_path="/staging", volume_capability=capability())
    assert error.code is Code.FAILED_PRECONDITION and "nothing is mounted there" in error.message


def test_a_reader_stages_its_own_mount(cluster: Cluster) -> None:
    """A ReadOnlyMany volume is staged on its reader from the reader's own report: past the
    publication check, to this node's mount checks (which refuse it here, the kernel showing
    no mount)."""
    controller = ControllerService(cluster.client, cluster.clock)
    rox = capability("MULTI_NODE_READER_ONLY")
    volume = call(controller, "CreateVolume", name="shared", volume_capabilities=[rox]).volume
    dataset_id = UUID(volume.volume_id)
    primary = cluster.control.store.dataset(dataset_id).primary
    reader, name = (NODE2, "node2") if primary == NODE1 else (NODE1, "node1")
    for here in (primary, reader):
        call(controller, "ControllerPublishVolume", volume_id=volume.volume_id,
             node_id=str(here), volume_capability=rox, readonly=True)
        cluster.converge(NODE1, NODE2)
    assert cluster.control.store.dataset(dataset_id).readers == {reader}
    assert reader in cluster.mounted_on(dataset_id)
    node = NodeService(cluster.client, cluster.clock, Here(reader, f"/mnt/{name}"),
                       cluster.agents[reader].guard(), synchronous_runner, stage_timeout=5.0)
    cluster.agents[reader].kernel_mounts = []
    error = refused(node, "NodeStageVolume", volume_id=volume.volume_id,
                    staging_target_path="/staging", volume_capability=rox)
    assert error.code is Code.FAILED_PRECONDITION and "nothing is mounted there" in error.message
