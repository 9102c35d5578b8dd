"""
Conformance cases of snapshots, restores, clones and resize, which every store passes.

Mixed into the store test classes next to :class:`StoreConformance` (same ``store`` fixture).
"""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from attrs import evolve

from control.errors import Conflict, InvalidRequest, NotAllowed, NotFound
from control.events import EventQuery
from control.model import (
    MINIMUM_DATASET_SIZE,
    Dataset,
    DatasetSnapshot,
    DataSource,
    ReportedSnapshot,
    SourceKind,
)
from control.store.interface import Store
from tests.control.store.conformance import NOW, add_dataset, add_node, report

SIZE = 2 * MINIMUM_DATASET_SIZE


def asked(dataset_id: UUID, name: str = "nightly") -> DatasetSnapshot:
    """A snapshot as a client asks for it (the store fills its node)."""
    return DatasetSnapshot(uuid4(), name, dataset_id, NOW, dataset_id)


def make_ready(store: Store, node: UUID, snapshot: DatasetSnapshot, size: int = SIZE) -> None:
    """Have ``node`` report ``snapshot`` made."""
    generation = store.versions().configuration
    made = (ReportedSnapshot(snapshot.snapshot_id, size),)
    seen = evolve(report(node, generation), snapshots=made)
    store.report_state(seen)


class SnapshotConformance:
    """Snapshot records, restore and clone sources, and resize, in any store."""

    def test_create_snapshot(self, store: Store) -> None:
        """A snapshot is recorded, in charge of the source's primary, not ready."""
        node = add_node(store)
        dataset = add_dataset(store, node, maximum_size=SIZE, filesystem="xfs")
        before = store.versions().configuration
        stored, created, generation = store.create_snapshot(
            asked(dataset.dataset_id), None, now=NOW
        )
        assert created and generation == before + 1
        assert (stored.node, stored.ready, stored.size) == (node, False, None)
        assert stored.filesystem == "xfs"
        assert store.snapshot(stored.snapshot_id) == stored
        assert store.snapshots() == [stored] == store.snapshots(dataset.dataset_id)
        assert store.snapshots(uuid4()) == []

    def test_create_is_idempotent_by_name(self, store: Store) -> None:
        """The same name of the same dataset is the same snapshot, without a new generation."""
        node = add_node(store)
        dataset = add_dataset(store, node)
        first, _, generation = store.create_snapshot(asked(dataset.dataset_id), None, now=NOW)
        again, created, after = store.create_snapshot(asked(dataset.dataset_id), None, now=NOW)
        assert (again, created, after) == (first, False, generation)

    def test_name_of_another_dataset_refused(self, store: Store) -> None:
        """A live snapshot's name cannot name a snapshot of another dataset (409)."""
        node = add_node(store)
        one, two = add_dataset(store, node), add_dataset(store, node)
        store.create_snapshot(asked(one.dataset_id), None, now=NOW)
        with pytest.raises(Conflict, match="already used by snapshot"):
            store.create_snapshot(asked(two.dataset_id), None, now=NOW)

    def test_snapshot_of_unknown_or_deleted_dataset_refused(self, store: Store) -> None:
        """No snapshot of a dataset that does not exist (404) or is deleted (409)."""
        node = add_node(store)
        dataset = add_dataset(store, node)
        with pytest.raises(NotFound):
            store.create_snapshot(asked(uuid4()), None, now=NOW)
        store.delete_dataset(dataset.dataset_id, None, NOW)
        with pytest.raises(Conflict, match="deleted"):
            store.create_snapshot(asked(dataset.dataset_id), None, now=NOW)
        assert store.snapshots() == []

    def test_report_marks_ready_with_size(self, store: Store) -> None:
        """A node reporting the snapshot makes it ready with its size and records the event."""
        node = add_node(store)
        dataset = add_dataset(store, node)
        stored, _, _ = store.create_snapshot(asked(dataset.dataset_id), None, now=NOW)
        before = store.versions().configuration
        make_ready(store, node, stored)
        ready = store.snapshot(stored.snapshot_id)
        assert ready is not None and (ready.ready, ready.size) == (True, SIZE)
        assert store.versions().configuration == before + 1
        kinds = [e.kind for e in store.events(EventQuery(dataset_id=dataset.dataset_id))]
        assert kinds[-2:] == ["snapshot_created", "snapshot_ready"]

    def test_deleting_dataset_keeps_snapshots(self, store: Store) -> None:
        """A snapshot outlives its dataset, even once the dataset's record is purged."""
        node = add_node(store)
        dataset = add_dataset(store, node)
        stored, _, _ = store.create_snapshot(asked(dataset.dataset_id), None, now=NOW)
        make_ready(store, node, stored)
        store.delete_dataset(dataset.dataset_id, None, NOW)
        store.report_state(report(node, store.versions().configuration))
        assert store.dataset(dataset.dataset_id) is None
        kept = store.snapshot(stored.snapshot_id)
        assert kept is not None and kept.ready and not kept.deleted

    def test_delete_snapshot_then_purge_once_gone(self, store: Store) -> None:
        """A deleted snapshot stays until its node, caught up, no longer reports it."""
        node = add_node(store)
        dataset = add_dataset(store, node)
        stored, _, _ = store.create_snapshot(asked(dataset.dataset_id), None, now=NOW)
        make_ready(store, node, stored)
        deleted, generation = store.delete_snapshot(stored.snapshot_id, None, NOW)
        assert deleted.deleted and store.delete_snapshot(stored.snapshot_id, None, NOW) == (
            deleted, generation)
        make_ready(store, node, stored)  # still there: kept
        assert store.snapshot(stored.snapshot_id) is not None
        store.report_state(report(node, store.versions().configuration))
        assert store.snapshot(stored.snapshot_id) is None
        with pytest.raises(NotFound):
            store.delete_snapshot(stored.snapshot_id, None, NOW)

    def test_deleted_snapshot_name_reusable(self, store: Store) -> None:
        """A name is unique among live snapshots only."""
        node = add_node(store)
        dataset = add_dataset(store, node)
        first, _, _ = store.create_snapshot(asked(dataset.dataset_id), None, now=NOW)
        store.delete_snapshot(first.snapshot_id, None, NOW)
        second, created, _ = store.create_snapshot(asked(dataset.dataset_id), None, now=NOW)
        assert created and second.snapshot_id != first.snapshot_id

    def test_restore_needs_ready_snapshot(self, store: Store) -> None:
        """A restore of a snapshot not yet ready is refused (409); once ready it is recorded."""
        node = add_node(store)
        dataset = add_dataset(store, node, maximum_size=SIZE)
        stored, _, _ = store.create_snapshot(asked(dataset.dataset_id), None, now=NOW)
        from_snapshot = DataSource(SourceKind.SNAPSHOT, stored.snapshot_id)
        restore = Dataset(uuid4(), node, SIZE, source=from_snapshot)
        with pytest.raises(Conflict, match="not ready yet; wait for it"):
            store.create_dataset(restore, None, now=NOW)
        make_ready(store, node, stored)
        made, _ = store.create_dataset(restore, None, now=NOW, actor="alice")
        assert made.source == restore.source and store.dataset(made.dataset_id) == made
        [event] = store.events(EventQuery(dataset_id=made.dataset_id))
        assert (event.kind, event.actor) == ("restored", "alice")

    def test_snapshot_kept_while_a_restore_is_pending(self, store: Store) -> None:
        """Deleting a snapshot is refused until its restores' volumes are reported."""
        node = add_node(store)
        dataset = add_dataset(store, node, maximum_size=SIZE)
        stored, _, _ = store.create_snapshot(asked(dataset.dataset_id), None, now=NOW)
        make_ready(store, node, stored)
        from_snapshot = DataSource(SourceKind.SNAPSHOT, stored.snapshot_id)
        restored, _ = store.create_dataset(Dataset(uuid4(), node, SIZE, source=from_snapshot),
                                           None, now=NOW)
        with pytest.raises(Conflict, match="being restored"):
            store.delete_snapshot(stored.snapshot_id, None, NOW)
        store.report_state(report(node, store.versions().configuration, restored.dataset_id))
        deleted, _ = store.delete_snapshot(stored.snapshot_id, None, NOW)
        assert deleted.deleted and store.dataset(restored.dataset_id) == restored

    def test_restore_smaller_than_snapshot_refused(self, store: Store) -> None:
        """A restore smaller than the snapshot is refused (400)."""
        node = add_node(store)
        dataset = add_dataset(store, node, maximum_size=SIZE)
        stored, _, _ = store.create_snapshot(asked(dataset.dataset_id), None, now=NOW)
        make_ready(store, node, stored)
        small = Dataset(uuid4(), node, MINIMUM_DATASET_SIZE,
                        source=DataSource(SourceKind.SNAPSHOT, stored.snapshot_id))
        with pytest.raises(InvalidRequest, match="never smaller"):
            store.create_dataset(small, None, now=NOW)

    def test_clone_of_live_dataset(self, store: Store) -> None:
        """A clone of a live dataset is recorded with its source; of an unknown one refused."""
        node = add_node(store)
        dataset = add_dataset(store, node, maximum_size=SIZE, filesystem="xfs")
        clone = Dataset(uuid4(), node, 2 * SIZE, filesystem="xfs",
                        source=DataSource(SourceKind.DATASET, dataset.dataset_id))
        made, _ = store.create_dataset(clone, None, now=NOW)
        assert (made.source, made.filesystem) == (clone.source, "xfs")
        [event] = store.events(EventQuery(dataset_id=made.dataset_id))
        assert event.kind == "cloned"
        with pytest.raises(NotFound):
            store.create_dataset(
                evolve(clone, dataset_id=uuid4(), source=DataSource(SourceKind.DATASET, uuid4())),
                None, now=NOW,
            )

    def test_resize_grows_only(self, store: Store) -> None:
        """Resize grows a dataset; the same size changes nothing; smaller is refused."""
        node = add_node(store)
        dataset = add_dataset(store, node, maximum_size=SIZE)
        grown, generation = store.resize_dataset(dataset.dataset_id, 2 * SIZE, None, NOW,
                                                 actor="bob")
        assert grown.maximum_size == 2 * SIZE and store.dataset(dataset.dataset_id) == grown
        assert store.resize_dataset(dataset.dataset_id, 2 * SIZE, None, NOW) == (grown, generation)
        with pytest.raises(InvalidRequest, match="only grow"):
            store.resize_dataset(dataset.dataset_id, SIZE, None, NOW)
        kinds = [e.kind for e in store.events(EventQuery(dataset_id=dataset.dataset_id))]
        assert kinds.count("resized") == 1

    def test_resize_refusals(self, store: Store) -> None:
        """Resize refuses an unknown (404), unsized (409) or deleted (405) dataset."""
        node = add_node(store)
        with pytest.raises(NotFound):
            store.resize_dataset(uuid4(), SIZE, None, NOW)
        unsized = add_dataset(store, node)
        with pytest.raises(Conflict, match="no recorded size"):
            store.resize_dataset(unsized.dataset_id, SIZE, None, NOW)
        store.delete_dataset(unsized.dataset_id, None, NOW)
        with pytest.raises(NotAllowed):
            store.resize_dataset(unsized.dataset_id, SIZE, None, NOW)

    def test_source_and_filesystem_survive_move_and_delete(self, store: Store) -> None:
        """A dataset's source and filesystem are kept by a move and a delete."""
        node, other = add_node(store), add_node(store, "10.0.0.2")
        source = add_dataset(store, node, maximum_size=SIZE, filesystem="xfs")
        clone = Dataset(uuid4(), node, SIZE, filesystem="xfs",
                        source=DataSource(SourceKind.DATASET, source.dataset_id))
        store.create_dataset(clone, None, now=NOW)
        moved, _ = store.move_dataset(clone.dataset_id, other, None, NOW)
        deleted, _ = store.delete_dataset(clone.dataset_id, None, NOW)
        for found in (moved, deleted, store.configuration(NOW).datasets[clone.dataset_id]):
            assert (found.source, found.filesystem) == (clone.source, "xfs")

    def test_reported_snapshots_kept(self, store: Store) -> None:
        """A report's snapshots are stored as reported."""
        node = add_node(store)
        seen = evolve(report(node, 0), snapshots=(ReportedSnapshot(uuid4(), 5),))
        store.report_state(seen)
        assert store.cluster_state().reports[node].snapshots == seen.snapshots

    def test_source_kept_while_a_clone_is_pending(self, store: Store) -> None:
        """Deleting a dataset is refused until its clones' volumes are reported."""
        node = add_node(store)
        source = add_dataset(store, node, maximum_size=SIZE)
        of_source = DataSource(SourceKind.DATASET, source.dataset_id)
        clone, _ = store.create_dataset(Dataset(uuid4(), node, SIZE, source=of_source), None,
                                        now=NOW)
        with pytest.raises(Conflict, match="being cloned"):
            store.delete_dataset(source.dataset_id, None, NOW)
        store.report_state(report(node, store.versions().configuration, clone.dataset_id))
        deleted, _ = store.delete_dataset(source.dataset_id, None, NOW)
        assert deleted.deleted and store.dataset(clone.dataset_id) == clone
