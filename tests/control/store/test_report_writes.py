"""Reports written a group at a time, only what changed (:mod:`control.store.report_writes`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest
from attrs import evolve
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from control.errors import Conflict
from control.model import DatasetState, Node, NodeState, VolumeStatus
from control.store.engine import make_engine
from control.store.report_writes import (
    PathsChecked,
    SameDatasets,
    changed_columns,
    dataset_changes,
    judge_reports,
)
from control.store.sql import SQLStore
from tests.control.store.conformance import NOW, add_dataset, add_node, report


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


def test_a_repeated_report_is_held_once(open_fast: Callable[[], SQLStore]) -> None:
    """After a restart, a report repeating the stored one (decoded again: equal states, other
    objects) is answered as a heartbeat, and the store then holds the decoded states in place
    of the equal ones it read: one copy of them, not two; a change is still found."""
    first = open_fast()
    a = add_node(first)
    ids = [add_dataset(first, a).dataset_id for _ in range(3)]
    generation = first.versions().configuration
    first.report_state(report(a, generation, *ids, at=NOW + 1))
    store = open_fast()
    read = store.cluster_state().reports[a].datasets
    again = report(a, generation, *ids, at=NOW + 2)
    assert again.datasets == read and again.datasets is not read
    assert store.report_state(again) is False
    assert store.cluster_state().reports[a].datasets is again.datasets
    assert store.report_state(evolve(again, reported_at=NOW + 3)) is False
    moved = report(a, generation, *ids[:2], at=NOW + 4)
    assert store.report_state(moved) is True
    assert set(store.cluster_state().reports[a].datasets) == set(ids[:2])


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
    """A report that only acknowledges a new generation writes the generation and its time;
    one with another dataset state writes no column but its time (its datasets are rows)."""
    node, one = uuid4(), uuid4()
    old = NodeState(node, "e", 1, _states(one), reported_at=NOW)
    assert changed_columns(old, evolve(old, generation=2, reported_at=NOW + 1)) == {
        "generation": 2, "reported_at": NOW + 1,
    }
    moved = evolve(old, datasets={one: DatasetState(one, VolumeStatus.ATTACHED)})
    assert changed_columns(old, moved) == {"reported_at": NOW}


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


def test_a_changed_report_writes_only_the_rows_that_changed(
    open_fast: Callable[[], SQLStore], sql_url: str
) -> None:
    """A report changing, adding or dropping a few of many datasets writes only their rows
    in ``node_datasets`` (the others keep theirs), and a store opened afterwards (a restart)
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
    stored: dict[str, tuple[Any, ...]] = {}
    for previous, report_ in zip([None, *sequence], sequence, strict=False):
        store.cluster_state()  # diffed against the cached state, as in the service
        store.report_state(report_)
        now = _dataset_rows(sql_url, node)
        assert set(now) == {str(i) for i in report_.datasets}
        if previous is not None:
            touched = {i for i in now.keys() | stored.keys() if now.get(i) != stored.get(i)}
            assert touched == {str(i) for i in dataset_changes(previous, report_) or ()}
            assert 0 < len(touched) < 4
        stored = now
        restarted = SQLStore(sql_url)
        try:
            assert restarted.cluster_state().reports[node] == report_
        finally:
            restarted.close()


def _dataset_rows(sql_url: str, node: UUID) -> dict[str, tuple[Any, ...]]:
    """Each of ``node``'s ``node_datasets`` rows by dataset id, with its SQLite ``rowid`` or
    PostgreSQL ``ctid`` (a row written again, even with the same values, gets another)."""
    engine = make_engine(sql_url)
    where = "rowid" if engine.dialect.name == "sqlite" else "ctid::text"
    try:
        with engine.connect() as connection:
            found = connection.execute(text(
                f"SELECT dataset_id, status, path, {where} FROM node_datasets "
                "WHERE node_uuid = :n"
            ), {"n": str(node)}).all()
    finally:
        engine.dispose()
    return {row[0]: tuple(row[1:]) for row in found}


def test_old_report_column_writes_are_refused(open_fast: Callable[[], SQLStore],
                                              sql_url: str) -> None:
    """A write of ``node_states.datasets`` (by a replica of the release before the datasets
    moved into rows) is refused by the database rather than lost."""
    store = open_fast()
    node = add_node(store)
    store.report_state(NodeState(node, "era", store.versions().configuration, {},
                                 reported_at=NOW))
    engine = make_engine(sql_url)
    try:
        for statement in (
            "UPDATE node_states SET datasets = '{}' WHERE node_uuid = :n",
            "UPDATE node_states SET datasets = NULL WHERE node_uuid = :n",
        ):
            with pytest.raises(DBAPIError, match="node_datasets"), engine.begin() as connection:
                connection.execute(text(statement), {"n": str(node)})
        with pytest.raises(DBAPIError, match="node_datasets"), engine.begin() as connection:
            connection.execute(text("DELETE FROM node_states WHERE node_uuid = :n"),
                               {"n": str(node)})
            connection.execute(text(
                "INSERT INTO node_states (node_uuid, era, generation, datasets) "
                "VALUES (:n, 'era', 1, '{}')"
            ), {"n": str(node)})
    finally:
        engine.dispose()
    assert store.cluster_state().reports[node].era == "era"


def test_dataset_changes_by_identity_checks_the_key() -> None:
    """A state object found in the old report under another dataset's key is still a change."""
    node, one, two = uuid4(), uuid4(), uuid4()
    states = _states(one, two)
    old = NodeState(node, "e", 1, states)
    swapped = evolve(old, datasets={one: states[two], two: states[two]})
    assert dataset_changes(old, swapped) == {one}
    assert dataset_changes(old, evolve(old, datasets=dict(states))) == frozenset()


def test_a_group_of_changed_reports_is_read_back_after_a_restart(
    open_fast: Callable[[], SQLStore], sql_url: str
) -> None:
    """Reports written as one group (two nodes, one of them twice) leave each node's rows as
    its last report says: a restarted store reads exactly those."""
    store = open_fast()
    a, b = add_node(store), add_node(store, host="10.0.0.2")
    held = {n: [add_dataset(store, n).dataset_id for _ in range(6)] for n in (a, b)}
    generation = store.versions().configuration
    first = {n: NodeState(n, "era", generation, _states(*held[n]), reported_at=NOW) for n in held}
    store.report_states([(first[a], None), (first[b], None)])
    store.cluster_state()
    one, two = held[a][0], held[a][1]
    again = evolve(first[a], datasets=first[a].datasets.set(
        one, DatasetState(one, VolumeStatus.ATTACHED, None, "/dev/b")), reported_at=NOW + 1)
    last = evolve(again, datasets=again.datasets.remove(two), reported_at=NOW + 2)
    gone = evolve(first[b], datasets={}, reported_at=NOW + 1)
    assert store.report_states([(again, None), (gone, None), (last, None)]) == [True] * 3
    restarted = SQLStore(sql_url)
    try:
        reports = restarted.cluster_state().reports
        assert reports[a] == last
        assert reports[b] == gone
    finally:
        restarted.close()
    assert set(_dataset_rows(sql_url, a)) == {str(i) for i in last.datasets}
    assert _dataset_rows(sql_url, b) == {}


_HELD = [UUID(f"{n:08x}-0000-4000-8000-{n:012x}") for n in range(1, 6)]


@st.composite
def _report_sequences(draw: st.DrawFn) -> list[NodeState]:
    """Reports of one node, each holding some of five datasets, attached or mounted."""
    found = []
    for at in range(draw(st.integers(1, 5))):
        states = {}
        for dataset_id in draw(st.lists(st.sampled_from(_HELD), unique=True)):
            states[dataset_id] = (
                DatasetState(dataset_id, VolumeStatus.MOUNTED, None, "/dev/b", f"/m/{dataset_id}")
                if draw(st.booleans())
                else DatasetState(dataset_id, VolumeStatus.ATTACHED, None, "/dev/b")
            )
        found.append(NodeState(_NODE.uuid, "era", 5, states, reported_at=NOW + at))
    return found


_NODE = Node(uuid=UUID(int=7), host="10.0.0.1", era="era", last_seen=NOW, mount_root="/m")


@settings(max_examples=200, deadline=None)
@given(_report_sequences(), st.one_of(st.none(), _report_sequences().map(lambda r: r[0])))
def test_a_group_knows_each_nodes_changes_from_its_stored_report(
    reports: list[NodeState], stored: NodeState | None
) -> None:
    """However many reports of a node a group holds, what it records as the node's changed
    datasets is :func:`dataset_changes` from the report stored before the group to the newest."""
    group, before, _ = judge_reports(
        [(report, None) for report in reports], 5,
        lambda uuid: _NODE, lambda uuid: stored, PathsChecked(),
    )
    for uuid, newest in group.changed.items():
        assert group.changes[uuid] == dataset_changes(before[uuid], newest)
