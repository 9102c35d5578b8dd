"""Reports written a group at a time, only what changed (:mod:`control.store.report_writes`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from uuid import UUID, uuid4

import pytest
from attrs import evolve

from control.errors import Conflict
from control.model import DatasetState, NodeState, VolumeStatus
from control.store.migrate import upgrade
from control.store.report_writes import (
    SameDatasets,
    changed_columns,
    dataset_changes,
    datasets_patch,
)
from control.store.sql import SQLStore
from tests.control.store.conformance import NOW, add_dataset, add_node, report


@pytest.fixture
def open_fast(sql_url: str) -> Iterator[Callable[[], SQLStore]]:
    """Opens stores keeping heartbeats in memory on one migrated database."""
    upgrade(sql_url)
    opened: list[SQLStore] = []

    def open_() -> SQLStore:
        opened.append(SQLStore(sql_url, seen_in_memory=True))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


def _floor(sql_url: str, node: object) -> tuple[float | None, float | None]:
    """What a store opened now (a restart) reads of when ``node`` was seen and reported."""
    other = SQLStore(sql_url)
    try:
        state = other.cluster_state()
        return state.nodes[node].last_seen, state.reports[node].reported_at  # type: ignore[index]
    finally:
        other.close()


def test_an_unchanged_report_is_not_written_after_writes(
    open_fast: Callable[[], SQLStore], sql_url: str
) -> None:
    """With nothing left to purge or settle, a report repeating the last one is kept in
    memory even after configuration writes moved the generation: the database keeps the
    floor until the flush, while the store answers with the new time at once."""
    store = open_fast()
    a = add_node(store)
    dataset = add_dataset(store, a)
    generation = store.versions().configuration
    store.report_state(report(a, generation, dataset.dataset_id, at=NOW + 1))
    add_dataset(store, a)
    store.move_dataset(dataset.dataset_id, a, None, NOW)
    assert store.report_state(report(a, generation, dataset.dataset_id, at=NOW + 2)) is False
    assert _floor(sql_url, a) == (NOW + 1, NOW + 1)
    state = store.cluster_state()
    assert (state.nodes[a].last_seen, state.reports[a].reported_at) == (NOW + 2, NOW + 2)
    assert store.flush_seen() == 1
    assert _floor(sql_url, a) == (NOW + 2, NOW + 2)


def test_a_restart_loses_only_unflushed_times(
    open_fast: Callable[[], SQLStore], sql_url: str
) -> None:
    """After a crash, a store reads every observation reported (they are written at once)
    and the times as last flushed: only when the node was last heard is older."""
    store = open_fast()
    a = add_node(store)
    dataset = add_dataset(store, a)
    generation = store.versions().configuration
    store.report_state(report(a, generation, at=NOW + 1))
    store.report_state(report(a, generation, dataset.dataset_id, at=NOW + 2))
    store.report_state(report(a, generation, dataset.dataset_id, at=NOW + 3))  # in memory
    restarted = SQLStore(sql_url)
    try:
        state = restarted.cluster_state()
        assert set(state.reports[a].datasets) == {dataset.dataset_id}
        assert state.reports[a].generation == generation
        assert (state.nodes[a].last_seen, state.reports[a].reported_at) == (NOW + 2, NOW + 2)
    finally:
        restarted.close()


def test_a_pending_deletion_sends_unchanged_reports_to_the_database(
    open_fast: Callable[[], SQLStore], sql_url: str
) -> None:
    """While a deleted dataset waits to be purged, a report repeating the last one after
    the generation moved is written (it runs the purge), not kept in memory."""
    store = open_fast()
    a, b = add_node(store), add_node(store, host="10.0.0.2")
    dataset = add_dataset(store, a)
    generation = store.versions().configuration
    store.report_state(report(b, generation, dataset.dataset_id, at=NOW + 1))
    store.delete_dataset(dataset.dataset_id, None, NOW)
    store.report_state(report(b, generation, dataset.dataset_id, at=NOW + 2))
    assert _floor(sql_url, b) == (NOW + 2, NOW + 2)


def test_paths_are_checked_again_after_the_mount_root_moved(
    open_fast: Callable[[], SQLStore],
) -> None:
    """A report repeating one accepted under the old mount root is refused once the node
    registered another: the paths it shares with the last report are checked again."""
    store = open_fast()
    a = add_node(store)
    dataset = add_dataset(store, a)
    generation = store.versions().configuration
    store.report_state(report(a, generation, dataset.dataset_id, at=NOW + 1))
    node = store.cluster_state().nodes[a]
    store.register_node(evolve(node, mount_root="/n", last_seen=NOW + 2))
    with pytest.raises(Conflict):
        store.report_state(report(a, generation, dataset.dataset_id, at=NOW + 3))


def test_a_bad_path_among_repeated_states_is_refused(open_fast: Callable[[], SQLStore]) -> None:
    """A report that repeats most of the last one but adds a path outside the mount root is
    refused, and records nothing."""
    store = open_fast()
    a = add_node(store)
    first, second = add_dataset(store, a), add_dataset(store, a)
    generation = store.versions().configuration
    good = report(a, generation, first.dataset_id, at=NOW + 1)
    store.report_state(good)
    bad = DatasetState(second.dataset_id, VolumeStatus.MOUNTED, None, "/dev/b", "/elsewhere/x")
    with pytest.raises(Conflict):
        store.report_state(evolve(good, datasets=good.datasets.set(second.dataset_id, bad),
                                  reported_at=NOW + 2))
    assert set(store.cluster_state().reports[a].datasets) == {first.dataset_id}


def _states(*ids: object) -> dict[object, DatasetState]:
    return {i: DatasetState(i, VolumeStatus.MOUNTED, None, "/dev/b", f"/m/{i}") for i in ids}


def test_dataset_changes_finds_added_changed_and_gone() -> None:
    """The ids whose state differs, was added, or is gone; none for the same datasets."""
    node = uuid4()
    kept, changed, gone, added = uuid4(), uuid4(), uuid4(), uuid4()
    old = NodeState(node, "e", 1, _states(kept, changed, gone))
    after = {**_states(kept, added), changed: DatasetState(changed, VolumeStatus.ATTACHED)}
    assert dataset_changes(old, evolve(old, datasets=after)) == {changed, gone, added}
    assert dataset_changes(old, evolve(old, reported_at=NOW)) == frozenset()
    assert dataset_changes(old, NodeState(node, "e", 1, _states(kept, changed, gone))) == set()
    assert dataset_changes(None, old) is None


def test_changed_columns_are_only_those_that_changed() -> None:
    """A report that only acknowledges a new generation writes the generation and its time,
    not its datasets; one with another dataset state writes the datasets too."""
    node, one = uuid4(), uuid4()
    old = NodeState(node, "e", 1, _states(one), reported_at=NOW)
    assert changed_columns(old, evolve(old, generation=2, reported_at=NOW + 1)) == {
        "generation": 2, "reported_at": NOW + 1,
    }
    moved = evolve(old, datasets={one: DatasetState(one, VolumeStatus.ATTACHED)})
    assert set(changed_columns(old, moved)) == {"datasets", "reported_at"}


def test_same_datasets_remembers_an_equal_pair() -> None:
    """Equal maps found once are known equal by identity next time; a change is still found."""
    node, one = uuid4(), uuid4()
    stored = NodeState(node, "e", 1, _states(one))
    again = NodeState(node, "e", 1, _states(one), reported_at=NOW)
    same = SameDatasets()
    assert same.changes(stored, again) == frozenset()
    assert same.changes(stored, evolve(again, reported_at=NOW + 1)) == frozenset()
    moved = evolve(again, datasets={one: DatasetState(one, VolumeStatus.ATTACHED)})
    assert same.changes(stored, moved) == {one}
    assert same.changes(None, again) is None


def test_a_few_changed_datasets_are_patched_in_the_row(
    open_fast: Callable[[], SQLStore], sql_url: str
) -> None:
    """A report changing, adding or dropping a few of many datasets patches them in its row
    in the database (:func:`datasets_patch`), and a store opened afterwards (a restart)
    reads each report exactly as sent."""
    store = open_fast()
    node = add_node(store)
    ids = [add_dataset(store, node).dataset_id for _ in range(18)]
    generation = store.versions().configuration

    def sent(at: float, held: list[UUID], attached: frozenset[UUID] = frozenset()) -> NodeState:
        states = {
            i: DatasetState(i, VolumeStatus.ATTACHED, 1024, f"/dev/{i}") if i in attached
            else DatasetState(i, VolumeStatus.MOUNTED, 1024, f"/dev/{i}", f"/m/{i}")
            for i in held
        }
        return NodeState(node, "era", generation, states, reported_at=at)

    sequence = [
        sent(NOW, ids[:16]),
        sent(NOW + 1, ids[:16], frozenset(ids[:1])),  # one changed
        sent(NOW + 2, ids[:17], frozenset(ids[:1])),  # one added
        sent(NOW + 3, ids[1:17], frozenset()),  # one dropped
        sent(NOW + 4, ids[2:18], frozenset(ids[5:6])),  # dropped, added and changed at once
    ]
    for before, after in zip(sequence, sequence[1:], strict=False):
        assert datasets_patch(
            "sqlite", after, dataset_changes(before, after) or frozenset()
        ) is not None
    for report_ in sequence:
        store.cluster_state()  # diffed against the cached state, as in the service
        store.report_state(report_)
        restarted = SQLStore(sql_url)
        try:
            assert restarted.cluster_state().reports[node] == report_
        finally:
            restarted.close()


def test_many_changed_datasets_are_written_whole() -> None:
    """A report changing many of its datasets (or most of a few) is written whole: no patch."""
    node = uuid4()
    ids = [uuid4() for _ in range(8)]
    new = NodeState(node, "e", 1, _states(*ids))
    assert datasets_patch("sqlite", new, frozenset(ids[:2])) is not None
    assert datasets_patch("sqlite", new, frozenset(ids[:3])) is None
    assert datasets_patch("sqlite", new, frozenset()) is None
    assert datasets_patch("mysql", new, frozenset(ids[:1])) is None
    many = NodeState(node, "e", 1, _states(*(uuid4() for _ in range(2000))))
    assert datasets_patch("postgresql", many, frozenset(list(many.datasets)[:256])) is not None
    assert datasets_patch("postgresql", many, frozenset(list(many.datasets)[:257])) is None


def test_dataset_changes_by_identity_checks_the_key() -> None:
    """A state object found in the old report under another dataset's key is still a change."""
    node, one, two = uuid4(), uuid4(), uuid4()
    states = _states(one, two)
    old = NodeState(node, "e", 1, states)
    swapped = evolve(old, datasets={one: states[two], two: states[two]})
    assert dataset_changes(old, swapped) == {one}
    assert dataset_changes(old, evolve(old, datasets=dict(states))) == frozenset()
