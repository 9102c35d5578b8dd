"""A node index built whole equals the one advanced write by write, whatever the writes."""

from __future__ import annotations

from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import pmap

from control.model import Dataset, DataSource, SourceKind
from control.store.snapshot import NodeIndex, Snapshot

NODES = [UUID(int=n) for n in range(1, 5)]
IDS = [UUID(int=1000 + n) for n in range(12)]

_datasets = st.builds(
    Dataset,
    dataset_id=st.sampled_from(IDS),
    primary=st.sampled_from(NODES),
    source=st.one_of(st.none(), st.builds(DataSource, st.just(SourceKind.DATASET),
                                          st.sampled_from(IDS))),
    readers=st.frozensets(st.sampled_from(NODES), max_size=2),
)
_writes = st.lists(st.one_of(_datasets, st.sampled_from(IDS)), max_size=40)
"""A write stores a dataset (new or replacing the one with its id) or purges an id (if stored)."""


def _apply(snapshot: Snapshot, write: Dataset | UUID) -> Snapshot:
    if isinstance(write, Dataset):
        return snapshot.with_dataset(write)
    if write not in snapshot.datasets:  # only stored datasets are purged
        return snapshot
    return snapshot.without_datasets([write])


@settings(max_examples=300, deadline=None)
@given(st.lists(_datasets, max_size=20), _writes)
def test_whole_index_equals_the_advanced_one(initial: list[Dataset], writes: list) -> None:
    """From an index built whole, each write advances it to the index of the datasets then
    stored, built whole; the empty index advanced by the first datasets equals it too."""
    first = {d.dataset_id: d for d in initial}
    grown = NodeIndex()
    for dataset in first.values():
        grown = grown.replaced(None, dataset)
    assert grown == NodeIndex.of(first.values())
    snapshot = Snapshot(0, pmap(first), pmap())
    for write in writes:
        snapshot = _apply(snapshot, write)
        whole = NodeIndex.of(snapshot.datasets.values())
        assert snapshot.index == whole
        assert {k: set(v) for k, v in snapshot.index.by_primary.items()} == {
            k: set(v) for k, v in whole.by_primary.items()
        }
        assert set(snapshot.index.copies) == set(whole.copies)
        assert set(snapshot.index.read) == set(whole.read)


def test_a_node_set_changes_without_copying_what_was_built() -> None:
    """A node's ids built whole take additions and removals as sets do, and the index they
    were built in is left as it was."""
    node = NODES[0]
    datasets = [Dataset(dataset_id=UUID(int=5000 + n), primary=node) for n in range(3000)]
    whole = NodeIndex.of(datasets)
    extra = Dataset(dataset_id=UUID(int=1), primary=node)
    changed = whole.replaced(None, extra).replaced(datasets[0], None)
    mine = changed.by_primary[node]
    assert len(mine) == 3000 and extra.dataset_id in mine
    assert datasets[0].dataset_id not in mine
    assert set(mine) == {d.dataset_id for d in datasets[1:]} | {extra.dataset_id}
    assert mine == frozenset(mine) and mine.union([UUID(int=2)]) == set(mine) | {UUID(int=2)}
    back = changed.replaced(None, datasets[0]).replaced(extra, None)
    assert back == whole and back.by_primary[node] == whole.by_primary[node]
    assert extra.dataset_id not in whole.by_primary[node]
    assert len(whole.by_primary[node]) == 3000
