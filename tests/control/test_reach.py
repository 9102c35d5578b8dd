"""Tests for whom a state report concerns (:mod:`control.reach`)."""

from __future__ import annotations

from uuid import UUID, uuid4

from control.model import Dataset, DatasetState, DataSource, NodeState, SourceKind, VolumeStatus
from control.reach import MOST, changed_datasets, dataset_changes, state_reach

A, B, C, R = (UUID(int=n) for n in (1, 2, 3, 4))


def _state(dataset_id: UUID, status: VolumeStatus = VolumeStatus.ATTACHED) -> DatasetState:
    return DatasetState(dataset_id=dataset_id, status=status, device="/dev/x")


def _report(*states: DatasetState) -> NodeState:
    return NodeState(node_uuid=A, era="e", generation=1,
                     datasets={s.dataset_id: s for s in states})


def test_changes_are_added_changed_and_gone_datasets() -> None:
    """A dataset added, one whose state changed and one gone differ; one alike does not."""
    same, changed, gone, added = uuid4(), uuid4(), uuid4(), uuid4()
    old = _report(_state(same), _state(changed), _state(gone))
    new = _report(_state(same), _state(changed, VolumeStatus.PRESENT), _state(added))
    assert dataset_changes(old, new) == {changed, gone, added}
    assert dataset_changes(None, new) is None


def test_changed_datasets_unknown_or_too_many_is_none() -> None:
    """The union of the nodes' changes; ``None`` when one is unknown or more than MOST."""
    d, e = uuid4(), uuid4()
    assert changed_datasets({A: frozenset({d}), B: frozenset({e})}) == {d, e}
    assert changed_datasets({A: frozenset({d}), B: None}) is None
    assert changed_datasets({A: frozenset(uuid4() for _ in range(MOST + 1))}) is None
    assert changed_datasets({}) == frozenset()


def test_reach_names_the_nodes_datasets_primaries_and_readers() -> None:
    """A changed dataset reaches its primary and readers; an unrelated record is ignored."""
    moved = Dataset(dataset_id=uuid4(), primary=B, readers=frozenset({R}))
    other = Dataset(dataset_id=uuid4(), primary=C)
    reach = state_reach([A], frozenset({moved.dataset_id}), [moved, other])
    assert reach == {A, moved.dataset_id, B, R}


def test_reach_of_a_source_names_its_clones_primary() -> None:
    """A source's change reaches the primary of a dataset cloned from it."""
    source = Dataset(dataset_id=uuid4(), primary=A)
    clone = Dataset(dataset_id=uuid4(), primary=B,
                    source=DataSource(SourceKind.DATASET, source.dataset_id))
    reach = state_reach([A], frozenset({source.dataset_id}), [source, clone])
    assert reach == {A, source.dataset_id, clone.dataset_id, B}


def test_a_copys_change_concerns_everyone() -> None:
    """A changed dataset that is a copy (its source's primary makes it): everyone."""
    clone = Dataset(dataset_id=uuid4(), primary=B,
                    source=DataSource(SourceKind.DATASET, uuid4()))
    assert state_reach([A], frozenset({clone.dataset_id}), [clone]) is None


def test_a_dataset_without_a_record_still_reaches() -> None:
    """A changed dataset with no record (deleted and purged) reaches its id and the node."""
    gone = uuid4()
    assert state_reach([A], frozenset({gone}), []) == {A, gone}
