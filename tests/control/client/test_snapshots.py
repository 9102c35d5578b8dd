"""The client's snapshot, restore, clone and resize calls against the real API in memory."""

from __future__ import annotations

from uuid import uuid4

import pytest

from control.client.testing import MemoryControl, result_of
from control.errors import Conflict, InvalidRequest, NotFound
from control.model import (
    DatasetState,
    DataSource,
    NodeState,
    ReportedSnapshot,
    SourceKind,
    VolumeStatus,
)

GiB = 1024**3


@pytest.fixture
def control() -> MemoryControl:
    """A control service in memory with one node."""
    return MemoryControl()


def test_snapshot_restore_clone_resize(control: MemoryControl) -> None:
    """Each call round-trips its records and refusals through the real API."""
    client = control.client
    node = uuid4()
    result_of(client.register_node(node, "node1", "e1", {}, "/m"))
    dataset = result_of(client.create_dataset(node, GiB, {"name": "db"}))
    made = result_of(client.create_snapshot(dataset.dataset_id, "nightly"))
    assert result_of(client.create_snapshot(dataset.dataset_id, "nightly")) == made
    assert result_of(client.list_snapshots(dataset.dataset_id)) == [made]
    assert result_of(client.list_snapshots(uuid4())) == []
    source = DataSource(SourceKind.SNAPSHOT, made.snapshot_id)
    with pytest.raises(Conflict, match="not ready yet"):
        result_of(client.create_shoal_dataset(source=source))
    seen = (ReportedSnapshot(made.snapshot_id, GiB),)
    result_of(client.report_state(NodeState(node, "e1", 0, snapshots=seen)))
    assert result_of(client.get_snapshot(made.snapshot_id)).ready
    restored = result_of(client.create_shoal_dataset(source=source, metadata={"name": "r"}))
    assert (restored.source, restored.primary, restored.maximum_size) == (source, node, GiB)
    clone = result_of(client.create_shoal_dataset(
        source=DataSource(SourceKind.DATASET, dataset.dataset_id), maximum_size=2 * GiB))
    assert clone.maximum_size == 2 * GiB
    assert result_of(client.resize_dataset(dataset.dataset_id, 3 * GiB)).maximum_size == 3 * GiB
    with pytest.raises(InvalidRequest, match="only grow"):
        result_of(client.resize_dataset(dataset.dataset_id, GiB))
    with pytest.raises(Conflict, match="being restored"):
        result_of(client.delete_snapshot(made.snapshot_id))
    present = {restored.dataset_id: DatasetState(restored.dataset_id, VolumeStatus.PRESENT)}
    generation = control.store.versions().configuration
    result_of(client.report_state(NodeState(node, "e1", generation, present, snapshots=seen)))
    assert result_of(client.delete_snapshot(made.snapshot_id)).deleted
    with pytest.raises(NotFound):
        result_of(client.get_snapshot(uuid4()))
    configuration = result_of(client.node_configuration(node))
    assert [s.snapshot_id for s in configuration.snapshots] == [made.snapshot_id]
    xfs = result_of(client.create_shoal_dataset(primary=node, filesystem="xfs"))
    assert xfs.filesystem == "xfs"
