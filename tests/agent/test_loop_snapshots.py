"""
The real loop makes, reports and destroys snapshots, restores, clones and grows.

The simulated cluster of :mod:`agent.testing`: real loops over the fake
backend and filesystems, talking to the real in-memory store through the real
client, so every request goes in as an operator's would.
"""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from attrs import evolve
from structlog.testing import capture_logs

from agent.changes import actions
from agent.fs.fake import FakeFilesystems
from agent.testing import SimulatedCluster
from control.model import (
    MINIMUM_DATASET_SIZE,
    Dataset,
    DatasetSnapshot,
    DataSource,
    ReportedSnapshot,
    SourceKind,
)


@pytest.fixture
def cluster() -> SimulatedCluster:
    """One node over the fake backend."""
    return SimulatedCluster(1)


def fs(cluster: SimulatedCluster) -> FakeFilesystems:
    """The node's filesystems."""
    return cluster.nodes[0].filesystems


def path_of(cluster: SimulatedCluster, dataset_id: UUID, name: str) -> str:
    """A file in the dataset's mount."""
    return f"{cluster.mount_root}/{dataset_id}/{name}"


def reported(cluster: SimulatedCluster) -> tuple[ReportedSnapshot, ...]:
    """The snapshots the node last reported (only those still pending: unready or deleted)."""
    return cluster.store.cluster_state().reports[cluster.nodes[0].node_uuid].snapshots


def rounds(cluster: SimulatedCluster, count: int = 6) -> None:
    """A few passes of the node."""
    for _ in range(count):
        cluster.round()


def snapshot_of(cluster: SimulatedCluster, dataset_id: UUID) -> DatasetSnapshot:
    """Ask the store for a snapshot of ``dataset_id``, as ``shoal snapshot create`` does."""
    request = DatasetSnapshot(uuid4(), "nightly", dataset_id, 0.0, cluster.nodes[0].node_uuid)
    record, created, _ = cluster.store.create_snapshot(request, None, now=cluster.clock.seconds())
    assert created and record.node == cluster.nodes[0].node_uuid
    return record


def test_snapshot_made_reported_and_restored(
    cluster: SimulatedCluster
) -> None:
    """A mounted dataset is snapshotted (thawed after), reported, and restores independently."""
    source = cluster.create(0)
    cluster.converge(10)
    fs(cluster).write_file(path_of(cluster, source, "m"), b"before")
    record = snapshot_of(cluster, source)
    rounds(cluster)
    made = cluster.store.snapshot(record.snapshot_id)
    assert made is not None and made.ready and made.size == MINIMUM_DATASET_SIZE
    assert not fs(cluster).is_frozen(f"{cluster.mount_root}/{source}")
    fs(cluster).write_file(path_of(cluster, source, "m"), b"after")
    restored = Dataset(
        uuid4(),
        cluster.nodes[0].node_uuid,
        maximum_size=2 * MINIMUM_DATASET_SIZE,
        source=DataSource(SourceKind.SNAPSHOT, record.snapshot_id),
    )
    cluster.store.create_dataset(restored, None)
    rounds(cluster, 8)
    assert fs(cluster).read_file(path_of(cluster, restored.dataset_id, "m")) == b"before"
    fs(cluster).write_file(path_of(cluster, restored.dataset_id, "m"), b"restored")
    assert fs(cluster).read_file(path_of(cluster, source, "m")) == b"after"
    info = fs(cluster).filesystem_info(f"/dev/fake/{cluster.volume_of[restored.dataset_id]}")
    assert info is not None and info.size == 2 * MINIMUM_DATASET_SIZE


def test_deleted_snapshot_destroyed_and_no_longer_reported(
    cluster: SimulatedCluster
) -> None:
    """A deleted snapshot is destroyed; the report lists it until it is gone."""
    source = cluster.create(0)
    cluster.converge(10)
    record = snapshot_of(cluster, source)
    rounds(cluster)
    cluster.store.delete_snapshot(record.snapshot_id, None, cluster.clock.seconds())
    rounds(cluster)
    assert cluster.nodes[0].truth.list_snapshots() == []
    assert reported(cluster) == ()
    assert cluster.storage.volumes[cluster.volume_of[source]].dataset_id == source


def test_failed_snapshot_thaws_and_is_retried(
    cluster: SimulatedCluster
) -> None:
    """A snapshot that fails leaves the source thawed, says why, and is made by a later pass."""
    source = cluster.create(0)
    cluster.converge(10)
    cluster.storage.inject_failure("create_snapshot", OSError(5, "I/O error"))
    record = snapshot_of(cluster, source)
    cluster.round()
    assert not fs(cluster).is_frozen(f"{cluster.mount_root}/{source}")
    assert [c.step for c in cluster.failures] == ["snapshot"]
    assert reported(cluster) == ()
    rounds(cluster)
    made = cluster.store.snapshot(record.snapshot_id)
    assert made is not None and made.ready
    assert [s.snapshot_id for s in cluster.nodes[0].truth.list_snapshots()] == [
        str(record.snapshot_id)
    ]


def test_clone_larger_is_independent_and_grown(
    cluster: SimulatedCluster
) -> None:
    """A clone of a mounted dataset has its data, a grown filesystem, and its own future."""
    source = cluster.create(0)
    cluster.converge(10)
    fs(cluster).write_file(path_of(cluster, source, "m"), b"shared past")
    clone = Dataset(
        uuid4(),
        cluster.nodes[0].node_uuid,
        maximum_size=4 * MINIMUM_DATASET_SIZE,
        source=DataSource(SourceKind.DATASET, source),
    )
    cluster.store.create_dataset(clone, None)
    rounds(cluster, 8)
    assert fs(cluster).read_file(path_of(cluster, clone.dataset_id, "m")) == b"shared past"
    fs(cluster).write_file(path_of(cluster, clone.dataset_id, "m"), b"clone only")
    assert fs(cluster).read_file(path_of(cluster, source, "m")) == b"shared past"
    device = f"/dev/fake/{cluster.volume_of[clone.dataset_id]}"
    info = fs(cluster).filesystem_info(device)
    assert info is not None and info.size == 4 * MINIMUM_DATASET_SIZE


def test_resize_grows_volume_and_filesystem_online(
    cluster: SimulatedCluster
) -> None:
    """A larger maximum size grows the mounted volume, then its filesystem, keeping the data."""
    dataset = cluster.create(0)
    cluster.converge(10)
    fs(cluster).write_file(path_of(cluster, dataset, "m"), b"kept")
    cluster.store.resize_dataset(dataset, 3 * MINIMUM_DATASET_SIZE, None, cluster.clock.seconds())
    rounds(cluster)
    blockdevice_id = cluster.volume_of[dataset]
    assert cluster.storage.volumes[blockdevice_id].size == 3 * MINIMUM_DATASET_SIZE
    info = fs(cluster).filesystem_info(f"/dev/fake/{blockdevice_id}")
    assert info is not None and info.size == 3 * MINIMUM_DATASET_SIZE
    assert fs(cluster).read_file(path_of(cluster, dataset, "m")) == b"kept"
    assert actions(cluster.pass_node(0)) == []


def test_snapshot_is_ready_after_the_pass_that_made_it(
    cluster: SimulatedCluster
) -> None:
    """The pass that makes a snapshot reports it, so it is ready with no further pass."""
    source = cluster.create(0)
    cluster.converge(10)
    record = snapshot_of(cluster, source)
    assert [type(c).__name__ for c in actions(cluster.pass_node(0))] == ["CreateSnapshot"]
    made = cluster.store.snapshot(record.snapshot_id)
    assert made is not None and made.ready and made.size == MINIMUM_DATASET_SIZE
    assert actions(cluster.pass_node(0)) == []


def test_snapshot_pass_reports_once_after_the_snapshot(
    cluster: SimulatedCluster
) -> None:
    """The pass that makes a snapshot sends one report, once it is made (none while the
    filesystem is frozen): the state moves on by one, to the report listing the snapshot."""
    source = cluster.create(0)
    cluster.converge(10)
    record = snapshot_of(cluster, source)
    before = cluster.store.versions()
    assert [type(c).__name__ for c in actions(cluster.pass_node(0))] == ["CreateSnapshot"]
    assert cluster.store.versions().state == before.state + 1
    report = cluster.store.cluster_state().reports[cluster.nodes[0].node_uuid]
    assert report.generation == before.configuration
    made = cluster.store.snapshot(record.snapshot_id)
    assert made is not None and made.ready


def test_failed_snapshot_pass_still_reports_its_observation(
    cluster: SimulatedCluster
) -> None:
    """A snapshot pass whose snapshot fails still reports its observation (at the generation
    it fetched), once the action failed (the failure itself is reported by the next pass)."""
    source = cluster.create(0)
    cluster.converge(10)
    cluster.storage.inject_failure("create_snapshot", OSError(5, "I/O error"))
    snapshot_of(cluster, source)
    generation = cluster.store.versions().configuration
    cluster.pass_node(0)
    report = cluster.store.cluster_state().reports[cluster.nodes[0].node_uuid]
    assert report.generation == generation


def test_snapshot_pass_freezes_ahead_of_its_observation(
    cluster: SimulatedCluster
) -> None:
    """The pass woken for a snapshot of a dataset it last saw mounted starts the freeze once
    the configuration is fetched (ahead of its changes), makes the copy in it, and leaves
    the filesystem thawed."""
    source = cluster.create(0)
    cluster.converge(10)
    path = f"{cluster.mount_root}/{source}"
    snapshot_of(cluster, source)
    filesystems = fs(cluster)
    with capture_logs() as logs:
        assert [type(c).__name__ for c in actions(cluster.pass_node(0))] == ["CreateSnapshot"]
    assert [e["path"] for e in logs if e["event"] == "agent.freeze_ahead"] == [path]
    assert not filesystems.is_frozen(path)
    assert not cluster.nodes[0].loop.executor.has_freezes_ahead()


def test_move_away_with_a_snapshot_freezes_nothing_ahead() -> None:
    """A configuration that moves a mounted dataset away and asks for its snapshot in one
    pass starts no freeze ahead: the pass unmounts and detaches it, unblocked, and leaves
    nothing frozen; the snapshot is not copied in that pass."""
    cluster = SimulatedCluster(2)
    source = cluster.create(0)
    cluster.converge(10)
    snapshot_of(cluster, source)
    cluster.move(source, 1)
    with capture_logs() as logs:
        done = [type(c).__name__ for c in actions(cluster.pass_node(0))]
    assert done == ["UnmountFilesystem", "DetachVolume"]
    assert [e for e in logs if e["event"] == "agent.freeze_ahead"] == []
    assert [e for e in logs if e["event"] == "agent.change.failed"] == []
    assert cluster.nodes[0].filesystems.mounts() == []
    assert not cluster.nodes[0].loop.executor.has_freezes_ahead()


def test_freezes_ahead_are_thawed_before_a_pass_that_unmounts() -> None:
    """When the fresh observation shows an unmount to make that the previous one did not
    (a dataset mounted here since, moved away), the freeze started ahead is thawed before
    any change runs; the snapshot is then made in a freeze of its own."""
    cluster = SimulatedCluster(2)
    source, other = cluster.create(0), cluster.create(0)
    cluster.converge(10)
    loop = cluster.nodes[0].loop
    seen = loop.memory.last_seen
    assert seen is not None and other in seen.datasets
    loop.memory = evolve(loop.memory, last_seen=evolve(seen, datasets=seen.datasets.remove(other)))
    record = snapshot_of(cluster, source)
    cluster.move(other, 1)
    with capture_logs() as logs:
        done = [type(c).__name__ for c in actions(cluster.pass_node(0))]
    assert sorted(done) == ["CreateSnapshot", "DetachVolume", "UnmountFilesystem"]
    events = [(e["event"], e.get("change")) for e in logs]
    path = f"{cluster.mount_root}/{source}"
    assert [e["path"] for e in logs if e["event"] == "agent.freeze_ahead"] == [path]
    assert events.index(("agent.thawed_unused", None)) < events.index(
        ("agent.change.done", "UnmountFilesystem")
    )
    assert not cluster.nodes[0].filesystems.is_frozen(path)
    cluster.pass_node(0)
    made = cluster.store.snapshot(record.snapshot_id)
    assert made is not None and made.ready
