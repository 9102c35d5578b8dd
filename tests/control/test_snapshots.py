"""The pure rules of snapshots, restores, clones and resize (control/snapshots.py)."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from attrs import evolve

from control import snapshots as snap
from control.errors import Conflict, InvalidRequest, NotAllowed, NotFound
from control.model import (
    MINIMUM_DATASET_SIZE,
    Dataset,
    DatasetSnapshot,
    DataSource,
    NodeState,
    ReportedSnapshot,
    SourceKind,
)

A = UUID("aaaaaaaa-0000-4000-8000-000000000001")
B = UUID("bbbbbbbb-0000-4000-8000-000000000002")
C = UUID("cccccccc-0000-4000-8000-000000000003")
GiB = 1024**3
SOURCE = Dataset(uuid4(), A, GiB, {"name": "db"}, filesystem="xfs")


def _snapshot(**kw: object) -> DatasetSnapshot:
    fields: dict = {"snapshot_id": uuid4(), "name": "n", "dataset_id": SOURCE.dataset_id,
                    "created": 1.0, "node": A}
    fields.update(kw)
    return DatasetSnapshot(**fields)


class TestCreate:
    """Create is idempotent by name, refuses clashes and dead sources, and picks the node."""

    def test_new_snapshot_in_charge_of_primary(self) -> None:
        """A new snapshot is in charge of the source's primary, with its filesystem."""
        asked = _snapshot(node=C)
        made, created = snap.create_snapshot(SOURCE, None, asked)
        assert created and made == evolve(asked, node=A, filesystem="xfs")

    def test_same_name_same_dataset_is_the_existing_one(self) -> None:
        """The live snapshot of that name and dataset is answered, not created."""
        existing = _snapshot()
        assert snap.create_snapshot(SOURCE, existing, _snapshot()) == (existing, False)

    def test_same_name_other_dataset_refused(self) -> None:
        """Another dataset's live snapshot name is a conflict naming it."""
        with pytest.raises(Conflict, match="already used by snapshot"):
            snap.create_snapshot(SOURCE, _snapshot(dataset_id=uuid4()), _snapshot())

    def test_unknown_and_deleted_sources_refused(self) -> None:
        """404 for an unknown dataset, 409 for a deleted one."""
        with pytest.raises(NotFound):
            snap.create_snapshot(None, None, _snapshot())
        with pytest.raises(Conflict, match="deleted"):
            snap.create_snapshot(evolve(SOURCE, deleted=True), None, _snapshot())

    @pytest.mark.parametrize("name", ["", "a/b", " x", "x ", "a\x00", "x" * 254])
    def test_bad_names_refused(self, name: str) -> None:
        """Empty, slashed, blank-edged, NUL or over-long names are refused."""
        with pytest.raises(InvalidRequest):
            snap.check_name(name)

    def test_default_name(self) -> None:
        """The default name is the dataset's name and the snapshot id's prefix."""
        snapshot_id = UUID("12345678-0000-4000-8000-000000000000")
        assert snap.default_name(snapshot_id, SOURCE) == "db-12345678"


def test_delete_refused_while_a_restore_is_pending() -> None:
    """A snapshot whose restore no node reports yet is kept (409); reported, it may go."""
    existing = _snapshot(ready=True)
    restore = Dataset(uuid4(), A, GiB, source=DataSource(SourceKind.SNAPSHOT,
                                                         existing.snapshot_id))
    pending = snap.restoring(existing.snapshot_id, [restore, SOURCE], [NodeState(A)])
    assert pending == [restore]
    with pytest.raises(Conflict, match="being restored"):
        snap.delete_snapshot(existing, existing.snapshot_id, 3, pending)
    seen = NodeState(A, datasets={restore.dataset_id: object()})
    assert snap.restoring(existing.snapshot_id, [restore], [seen]) == []
    assert snap.delete_snapshot(existing, existing.snapshot_id, 3).deleted_generation == 3


def test_clones_to_make_for_another_primary() -> None:
    """The source's primary is sent a clone destined for another node until a node reports
    the clone's volume; never a clone it is primary of, nor one of a deleted source."""
    clone = Dataset(uuid4(), B, GiB, source=DataSource(SourceKind.DATASET, SOURCE.dataset_id))
    local = Dataset(uuid4(), A, GiB, source=DataSource(SourceKind.DATASET, SOURCE.dataset_id))
    restore = Dataset(uuid4(), B, GiB, source=DataSource(SourceKind.SNAPSHOT, uuid4()))
    everything = {d.dataset_id: d for d in (SOURCE, clone, local, restore)}
    assert snap.clones_to_make(A, everything, [NodeState(A)]) == [clone]
    assert snap.clones_to_make(B, everything, [NodeState(A)]) == []
    seen = NodeState(B, datasets={clone.dataset_id: object()})
    assert snap.clones_to_make(A, everything, [seen]) == []
    gone = {**everything, SOURCE.dataset_id: evolve(SOURCE, deleted=True)}
    assert snap.clones_to_make(A, gone, []) == []
    dropped = {**everything, clone.dataset_id: evolve(clone, deleted=True)}
    assert snap.clones_to_make(A, dropped, []) == []


class TestReadiness:
    """Reports make snapshots ready; deleted ones are purged once gone."""

    def test_reported_snapshot_becomes_ready_with_size(self) -> None:
        """Any node's report of a pending snapshot makes it ready with the reported size."""
        pending, other = _snapshot(), _snapshot()
        report = NodeState(B, snapshots=(ReportedSnapshot(pending.snapshot_id, GiB),))
        assert snap.seen_ready([pending, other], [report]) == [
            evolve(pending, ready=True, size=GiB)]

    def test_deleted_or_ready_ones_unchanged(self) -> None:
        """A deleted or already ready snapshot is not made ready again."""
        gone, ready = _snapshot(deleted=True), _snapshot(ready=True, size=1)
        seen = tuple(ReportedSnapshot(s.snapshot_id, GiB) for s in (gone, ready))
        assert snap.seen_ready([gone, ready], [NodeState(A, snapshots=seen)]) == []

    def test_purge_needs_node_caught_up_and_snapshot_gone(self) -> None:
        """A deleted snapshot goes once its node, in its era and caught up, reports it gone."""
        deleted = _snapshot(deleted=True, deleted_generation=5)
        eras = {A: "e1"}
        stale = NodeState(A, era="e1", generation=4)
        fresh = NodeState(A, era="e1", generation=5)
        other_era = NodeState(A, era="e0", generation=9)
        still = evolve(fresh, snapshots=(ReportedSnapshot(deleted.snapshot_id, 1),))
        assert not snap.purgeable(deleted, [stale], eras, None)
        assert not snap.purgeable(deleted, [other_era], eras, None)
        assert not snap.purgeable(deleted, [still], eras, None)
        assert snap.purgeable(deleted, [fresh], eras, None)
        assert not snap.purgeable(_snapshot(), [fresh], eras, None)

    def test_purge_by_source_primary_after_takeover(self) -> None:
        """After a takeover, the source's current primary catching up is enough."""
        deleted = _snapshot(deleted=True, deleted_generation=5)
        report = NodeState(B, era="e2", generation=6)
        assert snap.purgeable(deleted, [report], {B: "e2"}, B)
        assert not snap.purgeable(deleted, [report], {B: "e2"}, C)


class TestInCharge:
    """The recorded node while live, else the source's live primary, else any live node."""

    def test_recorded_node_while_live(self) -> None:
        """The recorded node keeps the snapshot while it is live."""
        assert snap.in_charge(_snapshot(), evolve(SOURCE, primary=B), frozenset({A, B})) == A

    def test_source_primary_takes_over(self) -> None:
        """A silent node's snapshot goes to the source's live primary."""
        assert snap.in_charge(_snapshot(), evolve(SOURCE, primary=B), frozenset({B, C})) == B

    def test_any_live_node_when_source_is_gone(self) -> None:
        """Without a live source primary, the first live node by uuid takes it."""
        assert snap.in_charge(_snapshot(), None, frozenset({C, B})) == B
        assert snap.in_charge(_snapshot(), None, frozenset()) == A

    def test_pending_for_lists_unready_and_deleted(self) -> None:
        """A node is given its pending and deleted snapshots, oldest first, not ready ones."""
        first, deleted = _snapshot(created=1.0), _snapshot(created=2.0, ready=True, deleted=True)
        ready = _snapshot(ready=True)
        datasets = {SOURCE.dataset_id: SOURCE}
        found = snap.pending_for(A, [deleted, ready, first], datasets, frozenset({A}))
        assert found == [first, deleted]
        assert snap.pending_for(B, [first], datasets, frozenset({A, B})) == []


class TestSources:
    """Restores and clones: defaults from the source, never smaller, ready snapshots only."""

    def test_restore_defaults(self) -> None:
        """A restore defaults to the snapshot's node, size and filesystem."""
        ready = _snapshot(ready=True, size=GiB, node=B, filesystem="xfs")
        source = DataSource(SourceKind.SNAPSHOT, ready.snapshot_id)
        made = snap.new_from_source(uuid4(), source, ready, None, None, {}, None)
        assert (made.primary, made.maximum_size, made.filesystem, made.source) == (
            B, GiB, "xfs", source)

    def test_clone_larger_on_another_node(self) -> None:
        """A clone may be larger and placed elsewhere."""
        source = DataSource(SourceKind.DATASET, SOURCE.dataset_id)
        made = snap.new_from_source(uuid4(), source, SOURCE, C, 2 * GiB, {}, None)
        assert (made.primary, made.maximum_size) == (C, 2 * GiB)

    def test_refusals(self) -> None:
        """Unknown 404, deleted 409, not ready 409, smaller 400, another filesystem 400."""
        source = DataSource(SourceKind.DATASET, SOURCE.dataset_id)
        with pytest.raises(NotFound):
            snap.new_from_source(uuid4(), source, None, None, None, {}, None)
        with pytest.raises(Conflict, match="deleted"):
            snap.new_from_source(uuid4(), source, evolve(SOURCE, deleted=True), None, None, {},
                                 None)
        pending = _snapshot()
        with pytest.raises(Conflict, match="not ready yet; wait for it"):
            snap.new_from_source(uuid4(), DataSource(SourceKind.SNAPSHOT, pending.snapshot_id),
                                 pending, None, None, {}, None)
        with pytest.raises(InvalidRequest, match="never smaller"):
            snap.new_from_source(uuid4(), source, SOURCE, None, MINIMUM_DATASET_SIZE, {}, None)
        with pytest.raises(InvalidRequest, match="keeps its source's filesystem"):
            snap.new_from_source(uuid4(), source, SOURCE, None, None, {}, "ext4")

    def test_plain_create_needs_primary(self) -> None:
        """Without a source the primary is required; the filesystem defaults to ext4."""
        with pytest.raises(InvalidRequest, match="primary is required"):
            snap.new_from_source(uuid4(), None, None, None, None, {}, None)
        made = snap.new_from_source(uuid4(), None, None, A, None, {}, None)
        assert (made.primary, made.filesystem, made.source) == (A, "ext4", None)

    def test_snapshot_size_rounded_to_a_dataset_size(self) -> None:
        """An odd reported size becomes the next valid dataset size."""
        assert snap.source_size(_snapshot(size=MINIMUM_DATASET_SIZE + 1)) == (
            MINIMUM_DATASET_SIZE + 1024)
        assert snap.source_size(_snapshot(size=10)) == MINIMUM_DATASET_SIZE


class TestResize:
    """Resize grows only, a live dataset of known size."""

    def test_grow_same_and_shrink(self) -> None:
        """Larger grows, the same is unchanged, smaller is refused saying what to do."""
        assert snap.resize_dataset(SOURCE, SOURCE.dataset_id, 2 * GiB).maximum_size == 2 * GiB
        assert snap.resize_dataset(SOURCE, SOURCE.dataset_id, GiB) is SOURCE
        with pytest.raises(InvalidRequest, match="create a\\s+new dataset|only grow"):
            snap.resize_dataset(SOURCE, SOURCE.dataset_id, MINIMUM_DATASET_SIZE)

    def test_refusals(self) -> None:
        """Unknown 404, deleted 405, unknown size 409."""
        with pytest.raises(NotFound):
            snap.resize_dataset(None, SOURCE.dataset_id, GiB)
        with pytest.raises(NotAllowed):
            snap.resize_dataset(evolve(SOURCE, deleted=True), SOURCE.dataset_id, GiB)
        with pytest.raises(Conflict, match="no recorded size"):
            snap.resize_dataset(evolve(SOURCE, maximum_size=None), SOURCE.dataset_id, GiB)
