"""The Controller service against the real API in memory (the real client, fake agents)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import grpc
import pytest

from control.classes import StorageClass
from control.client.testing import result_of
from control.model import UNBOUND, Condition, ConditionKind, NodeState
from control.topology import BindingMode
from plugin.csi.controller import CAPABILITIES, ControllerService
from plugin.csi.errors import CsiError
from plugin.csi.proto import csi_pb2 as csi
from tests.plugin.harness import NODE1, NODE2, START, Cluster, make_cluster, start

MiB = 1024 * 1024
Code = grpc.StatusCode


@pytest.fixture
def cluster() -> Cluster:
    """Two registered nodes (node1, node2) and their fake agents."""
    return make_cluster()


@pytest.fixture
def controller(cluster: Cluster) -> ControllerService:
    """The controller over the cluster's client; CreateSnapshot does not wait."""
    return ControllerService(cluster.client, cluster.clock, 128 * MiB, snapshot_wait=0.0)


def call(service: Any, rpc: str, **fields: Any) -> Any:
    """Run one RPC to its end and return the response."""
    request = getattr(csi, f"{rpc}Request")(**fields)
    return result_of(start(getattr(service, rpc)(request)))


def refused(service: Any, rpc: str, **fields: Any) -> CsiError:
    """The CsiError one RPC fails with."""
    with pytest.raises(CsiError) as caught:
        call(service, rpc, **fields)
    return caught.value


def capability(mode: str = "SINGLE_NODE_WRITER") -> Any:
    """A mount capability."""
    cap = csi.VolumeCapability()
    cap.mount.SetInParent()
    cap.access_mode.mode = csi.VolumeCapability.AccessMode.Mode.Value(mode)
    return cap


def create(service: Any, name: str = "pvc-1", size: int = 0, **fields: Any) -> Any:
    """CreateVolume ``name`` with a mount capability; returns the Volume."""
    return call(service, "CreateVolume", name=name, volume_capabilities=[capability()],
                capacity_range=csi.CapacityRange(required_bytes=size), **fields).volume


class TestCreateVolume:
    """CreateVolume is a dataset create, idempotent by name."""

    def test_the_same_name_answers_the_same_volume(self, controller: ControllerService) -> None:
        """A repeat with the same settings gives the same volume id and size."""
        first = create(controller, size=100 * MiB)
        again = create(controller, size=100 * MiB)
        assert (again.volume_id, again.capacity_bytes) == (first.volume_id, 100 * MiB)

    def test_an_incompatible_repeat_is_already_exists(
        self, controller: ControllerService
    ) -> None:
        """The same name with a size the volume cannot meet is ALREADY_EXISTS, saying why."""
        create(controller, size=100 * MiB)
        error = refused(controller, "CreateVolume", name="pvc-1",
                        volume_capabilities=[capability()],
                        capacity_range=csi.CapacityRange(required_bytes=200 * MiB))
        assert error.code is Code.ALREADY_EXISTS and "pvc-1" in error.message

    def test_default_size_and_small_requests_round_up(self, controller: ControllerService) -> None:
        """No size gives the default; a tiny one the 64 MiB minimum."""
        assert create(controller, "a").capacity_bytes == 128 * MiB
        assert create(controller, "b", size=1).capacity_bytes == 64 * MiB

    def test_a_limit_below_the_minimum_is_out_of_range(
        self, controller: ControllerService
    ) -> None:
        """limit_bytes under 64 MiB cannot be met."""
        error = refused(controller, "CreateVolume", name="x", volume_capabilities=[capability()],
                        capacity_range=csi.CapacityRange(required_bytes=1, limit_bytes=MiB))
        assert error.code is Code.OUT_OF_RANGE

    @pytest.mark.parametrize(("fields", "what"), [
        ({"volume_capabilities": [capability()]}, "name"),
        ({"name": "x"}, "volume capabilities"),
        ({"name": "x", "volume_capabilities": [capability("MULTI_NODE_MULTI_WRITER")]},
         "MULTI_NODE_MULTI_WRITER"),
        ({"name": "x", "volume_capabilities": [capability()], "parameters": {"tier": "1"}},
         "'tier'"),
    ])
    def test_bad_requests_are_invalid_argument(
        self, controller: ControllerService, fields: dict[str, Any], what: str
    ) -> None:
        """Missing fields, multi-node modes and unknown parameters are refused, named."""
        error = refused(controller, "CreateVolume", **fields)
        assert error.code is Code.INVALID_ARGUMENT and what in error.message

    def test_accessibility_requirements_choose_the_node(
        self, cluster: Cluster, controller: ControllerService
    ) -> None:
        """A preferred topology (node2's hostname) places the dataset on node2."""
        wanted = csi.Topology(segments={"kubernetes.io/hostname": "node2"})
        requirement = csi.TopologyRequirement(requisite=[wanted], preferred=[wanted])
        volume = create(controller, accessibility_requirements=requirement)
        dataset = next(d for d in cluster.datasets() if str(d.dataset_id) == volume.volume_id)
        assert dataset.primary == NODE2

    def test_an_unmet_topology_is_resource_exhausted(self, controller: ControllerService) -> None:
        """A requisite topology no node lies in cannot be provisioned."""
        nowhere = csi.Topology(segments={"topology.kubernetes.io/zone": "mars"})
        error = refused(controller, "CreateVolume", name="x", volume_capabilities=[capability()],
                        accessibility_requirements=csi.TopologyRequirement(requisite=[nowhere]))
        assert error.code is Code.RESOURCE_EXHAUSTED

    def test_an_unknown_source_snapshot_is_not_found(self, controller: ControllerService) -> None:
        """A content source naming no snapshot is NOT_FOUND."""
        source = csi.VolumeContentSource(
            snapshot=csi.VolumeContentSource.SnapshotSource(snapshot_id="nope"))
        error = refused(controller, "CreateVolume", name="x", volume_capabilities=[capability()],
                        volume_content_source=source)
        assert error.code is Code.NOT_FOUND


class TestPublish:
    """ControllerPublish binds or moves the dataset, under the node's lease."""

    def test_publish_moves_and_leases(
        self, cluster: Cluster, controller: ControllerService
    ) -> None:
        """Publishing to node2 makes node2 the primary and the lease holder; repeats are fine."""
        volume = create(controller)
        for _ in range(2):
            call(controller, "ControllerPublishVolume", volume_id=volume.volume_id,
                 node_id=str(NODE2), volume_capability=capability())
        dataset = next(d for d in cluster.datasets() if str(d.dataset_id) == volume.volume_id)
        assert (dataset.primary, cluster.lease_holder(dataset.dataset_id)) == (NODE2, NODE2)

    def test_another_holder_is_failed_precondition_naming_it(
        self, controller: ControllerService
    ) -> None:
        """A volume published to node2 cannot be published to node1; the message names node2."""
        volume = create(controller)
        call(controller, "ControllerPublishVolume", volume_id=volume.volume_id,
             node_id=str(NODE2), volume_capability=capability())
        error = refused(controller, "ControllerPublishVolume", volume_id=volume.volume_id,
                        node_id=str(NODE1), volume_capability=capability())
        assert error.code is Code.FAILED_PRECONDITION and "node2" in error.message

    def test_delete_waits_for_unpublish(self, cluster: Cluster, controller: Any) -> None:
        """DeleteVolume of a published volume is refused; after unpublish it deletes, twice."""
        volume = create(controller)
        call(controller, "ControllerPublishVolume", volume_id=volume.volume_id,
             node_id=str(NODE1), volume_capability=capability())
        error = refused(controller, "DeleteVolume", volume_id=volume.volume_id)
        assert error.code is Code.FAILED_PRECONDITION
        call(controller, "ControllerUnpublishVolume", volume_id=volume.volume_id,
             node_id=str(NODE1))
        call(controller, "DeleteVolume", volume_id=volume.volume_id)
        call(controller, "DeleteVolume", volume_id=volume.volume_id)
        assert cluster.datasets() == []

    def test_unknown_volume_and_node_are_not_found(self, controller: ControllerService) -> None:
        """Publishing an unknown volume, or to an unknown node, is NOT_FOUND."""
        volume = create(controller)
        assert refused(controller, "ControllerPublishVolume", volume_id="v", node_id=str(NODE1),
                       volume_capability=capability()).code is Code.NOT_FOUND
        assert refused(controller, "ControllerPublishVolume", volume_id=volume.volume_id,
                       node_id="n", volume_capability=capability()).code is Code.NOT_FOUND


class TestListing:
    """ListVolumes pages, GetCapabilities lists what is served, snapshots are listed."""

    def test_pages_cover_every_volume_once(self, controller: ControllerService) -> None:
        """Pages of two walk three volumes; a token not given is ABORTED."""
        made = {create(controller, f"v{i}").volume_id for i in range(3)}
        first = call(controller, "ListVolumes", max_entries=2)
        second = call(controller, "ListVolumes", max_entries=2, starting_token=first.next_token)
        seen = [e.volume.volume_id for e in [*first.entries, *second.entries]]
        assert (sorted(seen), second.next_token) == (sorted(made), "")
        error = refused(controller, "ListVolumes", starting_token="bogus")
        assert error.code is Code.ABORTED

    def test_capabilities_are_the_advertised_list(self, controller: ControllerService) -> None:
        """ControllerGetCapabilities names exactly :data:`CAPABILITIES`."""
        response = call(controller, "ControllerGetCapabilities")
        assert tuple(c.rpc.type for c in response.capabilities) == CAPABILITIES

    def test_snapshot_by_name_is_idempotent_and_listed(self, controller: Any) -> None:
        """CreateSnapshot twice gives one snapshot; ListSnapshots finds it by source volume."""
        volume = create(controller)
        one = call(controller, "CreateSnapshot", source_volume_id=volume.volume_id, name="s1")
        two = call(controller, "CreateSnapshot", source_volume_id=volume.volume_id, name="s1")
        assert one.snapshot.snapshot_id == two.snapshot.snapshot_id
        listed = call(controller, "ListSnapshots", source_volume_id=volume.volume_id)
        assert [e.snapshot.snapshot_id for e in listed.entries] == [one.snapshot.snapshot_id]
        other = create(controller, "pvc-2")
        error = refused(controller, "CreateSnapshot", source_volume_id=other.volume_id,
                        name="s1")
        assert error.code is Code.ALREADY_EXISTS


def test_wait_for_first_consumer_binds_at_publish(cluster: Cluster, controller: Any) -> None:
    """A WaitForFirstConsumer class's volume is created unbound, bound where published, and
    a repeat of its CreateVolume (class included) answers it."""
    cls = StorageClass("wffc", binding_mode=BindingMode.WAIT, default_size=256 * MiB)
    result_of(cluster.client.create_class(cls))
    volume = create(controller, parameters={"class": "wffc"})
    dataset = next(d for d in cluster.datasets() if str(d.dataset_id) == volume.volume_id)
    assert (dataset.primary, dataset.maximum_size, list(volume.accessible_topology)) == (
        UNBOUND, 256 * MiB, [])
    call(controller, "ControllerPublishVolume", volume_id=volume.volume_id, node_id=str(NODE2),
         volume_capability=capability())
    full = result_of(cluster.client.node_configuration(NODE2, [UUID(volume.volume_id)]))
    assert [(d.primary, d.storage_class) for d in full.datasets] == [(NODE2, "wffc")]
    assert create(controller, parameters={"class": "wffc"}).volume_id == volume.volume_id


def test_volume_condition_follows_the_agents_errors(cluster: Cluster, controller: Any) -> None:
    """An error an agent reports for the dataset makes the volume abnormal, with its message."""
    volume = create(controller)
    healthy = call(controller, "ControllerGetVolume", volume_id=volume.volume_id)
    assert healthy.status.volume_condition.abnormal is False
    failing = Condition(UUID(volume.volume_id), ConditionKind.ERROR, "mount_failed",
                        "mount failed: bad superblock", START, "mount")
    result_of(cluster.client.report_state(
        NodeState(NODE1, generation=1, conditions=(failing,))))
    sick = call(controller, "ControllerGetVolume", volume_id=volume.volume_id)
    assert sick.status.volume_condition.abnormal is True
    assert "bad superblock" in sick.status.volume_condition.message
    listed = call(controller, "ListVolumes")
    assert [e.status.volume_condition.abnormal for e in listed.entries] == [True]


class TestReadOnlyMany:
    """MULTI_NODE_READER_ONLY: a ReadOnlyMany volume, its primary's and its readers'."""

    def _published(self, cluster: Cluster, controller: ControllerService) -> Any:
        """A ReadOnlyMany volume published to node1 (its primary) and then to node2."""
        rox = capability("MULTI_NODE_READER_ONLY")
        volume = call(controller, "CreateVolume", name="shared", volume_capabilities=[rox],
                      capacity_range=csi.CapacityRange(required_bytes=64 * MiB)).volume
        for node in (NODE1, NODE2):
            call(controller, "ControllerPublishVolume", volume_id=volume.volume_id,
                 node_id=str(node), volume_capability=rox, readonly=True)
            cluster.converge(NODE1, NODE2)
        return volume

    def test_a_second_node_is_added_as_a_reader(
        self, cluster: Cluster, controller: ControllerService
    ) -> None:
        """The first publication binds the volume (lease and primary), the second adds a reader:
        no move, both nodes listed as published, and both agents mount it."""
        volume = self._published(cluster, controller)
        dataset_id = UUID(volume.volume_id)
        dataset = cluster.control.store.dataset(dataset_id)
        assert (dataset.access_mode.value, dataset.primary) == ("ReadOnlyMany", NODE1)
        assert dataset.readers == {NODE2} and cluster.lease_holder(dataset_id) == NODE1
        status = call(controller, "ControllerGetVolume", volume_id=volume.volume_id).status
        assert list(status.published_node_ids) == [str(NODE1), str(NODE2)]
        assert sorted(cluster.mounted_on(dataset_id), key=str) == sorted([NODE1, NODE2], key=str)

    def test_unpublishing_a_reader_removes_it_and_delete_waits_for_it(
        self, cluster: Cluster, controller: ControllerService
    ) -> None:
        """DeleteVolume is refused while a reader has the volume; ControllerUnpublishVolume on
        the reader's node removes it (the primary keeps its lease)."""
        volume = self._published(cluster, controller)
        dataset_id = UUID(volume.volume_id)
        call(controller, "ControllerUnpublishVolume", volume_id=volume.volume_id,
             node_id=str(NODE1))
        error = refused(controller, "DeleteVolume", volume_id=volume.volume_id)
        assert error.code is Code.FAILED_PRECONDITION and "read-only" in error.message
        call(controller, "ControllerUnpublishVolume", volume_id=volume.volume_id,
             node_id=str(NODE2))
        dataset = cluster.control.store.dataset(dataset_id)
        assert dataset.readers == frozenset() and cluster.lease_holder(dataset_id) is None
        call(controller, "DeleteVolume", volume_id=volume.volume_id)

    def test_modes_the_volume_cannot_serve_are_refused(self, controller: ControllerService) -> None:
        """A writer mode on a ReadOnlyMany volume, and MULTI_NODE_READER_ONLY on a ReadWriteOnce
        one, are INVALID_ARGUMENT, saying why."""
        rox = capability("MULTI_NODE_READER_ONLY")
        shared = call(controller, "CreateVolume", name="shared", volume_capabilities=[rox]).volume
        error = refused(controller, "ControllerPublishVolume", volume_id=shared.volume_id,
                        node_id=str(NODE1), volume_capability=capability())
        assert error.code is Code.INVALID_ARGUMENT and "ReadOnlyMany" in error.message
        single = create(controller, "single")
        error = refused(controller, "ControllerPublishVolume", volume_id=single.volume_id,
                        node_id=str(NODE1), volume_capability=rox)
        assert error.code is Code.INVALID_ARGUMENT and "MULTI_NODE_READER_ONLY" in error.message
