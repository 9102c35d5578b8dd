"""
The real loop makes, reports and destroys snapshots, restores, clones and grows.

The control service's snapshot records are not in the store yet, nor does it
keep a dataset's source, filesystem or a resize (another branch adds them),
so :class:`SnapshotsDouble` puts them into the configuration answer of the
real client, in memory. Everything else is the simulated cluster of
:mod:`agent.testing`: real loops over the fake backend and filesystems.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from attrs import evolve
from twisted.internet.defer import Deferred

from agent.changes import actions
from agent.fs.fake import FakeFilesystems
from agent.testing import SimulatedCluster
from control.client.interface import NodeConfiguration
from control.model import (
    MINIMUM_DATASET_SIZE,
    Dataset,
    DatasetSnapshot,
    DataSource,
    Node,
    ReportedSnapshot,
    SourceKind,
)

MiB = 2**20


class SnapshotsDouble:
    """The real client, whose configuration answers carry the given snapshots and sizes."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.snapshots: tuple[DatasetSnapshot, ...] = ()
        self.sizes: dict[UUID, int] = {}
        self.datasets: dict[UUID, Dataset] = {}

    def node_configuration(self, node_uuid: UUID, also: Any = ()) -> Deferred[NodeConfiguration]:
        """The real answer with this double's snapshots and resized datasets."""

        def amend(answer: NodeConfiguration) -> NodeConfiguration:
            datasets = [
                evolve(
                    self.datasets.get(d.dataset_id, d),
                    maximum_size=self.sizes.get(d.dataset_id, d.maximum_size),
                )
                for d in answer.datasets
            ]
            return answer._replace(datasets=datasets, snapshots=self.snapshots)

        return self.client.node_configuration(node_uuid, also).addCallback(amend)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture
def cluster() -> SimulatedCluster:
    """One node over the fake backend."""
    return SimulatedCluster(1)


@pytest.fixture
def double(cluster: SimulatedCluster) -> SnapshotsDouble:
    """The node's client, with snapshots in its configuration answers."""
    loop = cluster.nodes[0].loop
    loop.client = SnapshotsDouble(loop.client)
    assert isinstance(loop.client, SnapshotsDouble)
    return loop.client


def fs(cluster: SimulatedCluster) -> FakeFilesystems:
    """The node's filesystems."""
    return cluster.nodes[0].filesystems


def path_of(cluster: SimulatedCluster, dataset_id: UUID, name: str) -> str:
    """A file in the dataset's mount."""
    return f"{cluster.mount_root}/{dataset_id}/{name}"


def touch(cluster: SimulatedCluster) -> None:
    """Bump the configuration generation (as a snapshot write would), so agents fetch again."""
    bystander = UUID(int=99)
    cluster.store.register_node(Node(uuid=bystander, host="bystander", era="x", last_seen=0.0))
    cluster.store.create_dataset(Dataset(uuid4(), bystander), None)


def reported(cluster: SimulatedCluster) -> tuple[ReportedSnapshot, ...]:
    """The snapshots the node last reported to the control service."""
    return cluster.store.cluster_state().reports[cluster.nodes[0].node_uuid].snapshots


def rounds(cluster: SimulatedCluster, count: int = 6) -> None:
    """A few passes of the node."""
    for _ in range(count):
        cluster.round()


def snapshot_of(cluster: SimulatedCluster, dataset_id: UUID, **kw: Any) -> DatasetSnapshot:
    """A snapshot record of ``dataset_id`` the node is in charge of."""
    return DatasetSnapshot(
        kw.pop("snapshot_id", uuid4()), "nightly", dataset_id, 1.0, cluster.nodes[0].node_uuid, **kw
    )


def test_snapshot_made_reported_and_restored(
    cluster: SimulatedCluster, double: SnapshotsDouble
) -> None:
    """A mounted dataset is snapshotted (thawed after), reported, and restores independently."""
    source = cluster.create(0)
    cluster.converge(10)
    fs(cluster).write_file(path_of(cluster, source, "m"), b"before")
    record = snapshot_of(cluster, source)
    double.snapshots = (record,)
    touch(cluster)
    rounds(cluster)
    assert reported(cluster) == (ReportedSnapshot(record.snapshot_id, MINIMUM_DATASET_SIZE),)
    assert not fs(cluster).is_frozen(f"{cluster.mount_root}/{source}")
    fs(cluster).write_file(path_of(cluster, source, "m"), b"after")
    restored = Dataset(
        uuid4(),
        cluster.nodes[0].node_uuid,
        maximum_size=2 * MINIMUM_DATASET_SIZE,
        source=DataSource(SourceKind.SNAPSHOT, record.snapshot_id),
    )
    cluster.store.create_dataset(restored, None)
    double.datasets[restored.dataset_id] = restored
    rounds(cluster, 8)
    assert fs(cluster).read_file(path_of(cluster, restored.dataset_id, "m")) == b"before"
    fs(cluster).write_file(path_of(cluster, restored.dataset_id, "m"), b"restored")
    assert fs(cluster).read_file(path_of(cluster, source, "m")) == b"after"
    info = fs(cluster).filesystem_info(f"/dev/fake/{cluster.volume_of[restored.dataset_id]}")
    assert info is not None and info.size == 2 * MINIMUM_DATASET_SIZE


def test_deleted_snapshot_destroyed_and_no_longer_reported(
    cluster: SimulatedCluster, double: SnapshotsDouble
) -> None:
    """A deleted snapshot is destroyed; the report lists it until it is gone."""
    source = cluster.create(0)
    cluster.converge(10)
    record = snapshot_of(cluster, source)
    double.snapshots = (record,)
    touch(cluster)
    rounds(cluster)
    double.snapshots = (evolve(record, ready=True, deleted=True),)
    touch(cluster)
    rounds(cluster)
    assert cluster.nodes[0].truth.list_snapshots() == []
    assert reported(cluster) == ()
    assert cluster.storage.volumes[cluster.volume_of[source]].dataset_id == source


def test_failed_snapshot_thaws_and_is_retried(
    cluster: SimulatedCluster, double: SnapshotsDouble
) -> None:
    """A snapshot that fails leaves the source thawed, says why, and is made by a later pass."""
    source = cluster.create(0)
    cluster.converge(10)
    cluster.storage.inject_failure("create_snapshot", OSError(5, "I/O error"))
    record = snapshot_of(cluster, source)
    double.snapshots = (record,)
    touch(cluster)
    cluster.round()
    assert not fs(cluster).is_frozen(f"{cluster.mount_root}/{source}")
    assert [c.step for c in cluster.failures] == ["snapshot"]
    assert reported(cluster) == ()
    rounds(cluster)
    assert [s.snapshot_id for s in reported(cluster)] == [record.snapshot_id]


def test_clone_larger_is_independent_and_grown(
    cluster: SimulatedCluster, double: SnapshotsDouble
) -> None:
    """A clone of a mounted dataset has its data, a grown filesystem, and its own future."""
    source = cluster.create(0)
    cluster.converge(10)
    fs(cluster).write_file(path_of(cluster, source, "m"), b"shared past")
    clone = Dataset(
        uuid4(),
        cluster.nodes[0].node_uuid,
        maximum_size=4 * MINIMUM_DATASET_SIZE,
        filesystem="xfs",
        source=DataSource(SourceKind.DATASET, source),
    )
    cluster.store.create_dataset(clone, None)
    double.datasets[clone.dataset_id] = clone
    rounds(cluster, 8)
    assert fs(cluster).read_file(path_of(cluster, clone.dataset_id, "m")) == b"shared past"
    fs(cluster).write_file(path_of(cluster, clone.dataset_id, "m"), b"clone only")
    assert fs(cluster).read_file(path_of(cluster, source, "m")) == b"shared past"
    device = f"/dev/fake/{cluster.volume_of[clone.dataset_id]}"
    info = fs(cluster).filesystem_info(device)
    assert info is not None and info.size == 4 * MINIMUM_DATASET_SIZE


def test_resize_grows_volume_and_filesystem_online(
    cluster: SimulatedCluster, double: SnapshotsDouble
) -> None:
    """A larger maximum size grows the mounted volume, then its filesystem, keeping the data."""
    dataset = cluster.create(0)
    cluster.converge(10)
    fs(cluster).write_file(path_of(cluster, dataset, "m"), b"kept")
    double.sizes[dataset] = 3 * MINIMUM_DATASET_SIZE
    touch(cluster)
    rounds(cluster)
    blockdevice_id = cluster.volume_of[dataset]
    assert cluster.storage.volumes[blockdevice_id].size == 3 * MINIMUM_DATASET_SIZE
    info = fs(cluster).filesystem_info(f"/dev/fake/{blockdevice_id}")
    assert info is not None and info.size == 3 * MINIMUM_DATASET_SIZE
    assert fs(cluster).read_file(path_of(cluster, dataset, "m")) == b"kept"
    assert actions(cluster.pass_node(0)) == []
