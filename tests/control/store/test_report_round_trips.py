"""A changed state report in few statements (:meth:`control.store.sql.SQLStore.report_states`):
no heartbeat read first when the cached state shows the change, no reads of what a purge or a
settle would need once the generation is known idle, the datasets it reaches from the cached
configuration, and its writes pipelined; the answers stay those of the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID, uuid4

import pytest
from attrs import evolve
from sqlalchemy import event, text

from control.model import DatasetState, DataSource, NodeState, SourceKind, VolumeStatus
from control.store import queries as q
from control.store.engine import POOL_SIZE
from control.store.sql import SQLStore
from tests.control.store.conformance import NOW, add_dataset, add_node, report


@contextmanager
def _statements(store: SQLStore) -> Iterator[list[str]]:
    """The SQL statements ``store`` runs in the block, in order."""
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(" ".join(str(args[2]).split()))

    event.listen(store._engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store._engine, "before_cursor_execute", record)


def _attached(old: NodeState, dataset_id: UUID) -> NodeState:
    """``old`` with ``dataset_id`` attached instead of mounted, sent later."""
    state = DatasetState(dataset_id, VolumeStatus.ATTACHED, None, "/dev/b")
    return evolve(old, datasets=old.datasets.set(dataset_id, state), reported_at=NOW + 5)


def test_a_changed_report_reads_only_the_locked_counters(
    open_fast: Callable[[], SQLStore], sql_url: str
) -> None:
    """Once a report found nothing to purge or settle at this generation, a changed report
    of a node the cached state holds reads nothing but the counters it locks (no read
    transaction before, no purge or settle reads, its reach from the cached configuration),
    and what it wrote is what a restarted store reads."""
    store = open_fast()
    node = add_node(store)
    held = [add_dataset(store, node).dataset_id for _ in range(3)]
    generation = store.versions().configuration
    first = report(node, generation, *held)
    assert store.report_state(first) is True  # finds the generation idle
    store.cluster_state(), store.configuration(NOW)  # both cached, as in the service
    changed = _attached(first, held[1])
    with _statements(store) as seen:
        assert store.report_state(changed) is True
    selects = [s for s in seen if s.upper().startswith("SELECT")]
    assert all(s.startswith("SELECT cluster.generation") for s in selects)
    # the lock's: on PostgreSQL sent with its BEGIN through the driver, unseen here
    assert len(selects) == (0 if sql_url.startswith("postgresql") else 1)
    restarted = SQLStore(sql_url)
    try:
        assert restarted.cluster_state().reports[node] == changed
        assert restarted.versions() == store.versions()
    finally:
        restarted.close()


def test_a_deletion_after_an_idle_generation_is_purged_by_a_report(
    open_fast: Callable[[], SQLStore],
) -> None:
    """A store that knows its generation idle still purges a dataset another replica
    deleted since (the deletion moved the generation), once no report holds it."""
    store, replica = open_fast(), open_fast()
    node = add_node(store)
    kept, doomed = add_dataset(store, node), add_dataset(store, node)
    generation = store.versions().configuration
    both = report(node, generation, kept.dataset_id, doomed.dataset_id)
    assert store.report_state(both) is True
    assert store.report_state(_attached(both, kept.dataset_id)) is True
    replica.delete_dataset(doomed.dataset_id, None, NOW)
    assert store.dataset(doomed.dataset_id) is not None
    after = store.versions().configuration  # the primary has seen the deletion
    assert store.report_state(report(node, after, kept.dataset_id, at=NOW + 9)) is True
    assert store.dataset(doomed.dataset_id) is None
    assert replica.dataset(doomed.dataset_id) is None


def test_a_report_the_cache_is_behind_on_is_judged_against_the_database(
    open_fast: Callable[[], SQLStore],
) -> None:
    """A report that differs from its node's report in a store's cached state, which another
    replica moved on since, is judged against the stored one: the same facts are answered
    ``False`` and move no state version (and once the store read the newer version, they are
    taken as a heartbeat, not written); other facts are written."""
    store, replica = open_fast(), open_fast()
    node = add_node(store)
    dataset = add_dataset(store, node).dataset_id
    generation = store.versions().configuration
    mounted = report(node, generation, dataset)
    attached = _attached(mounted, dataset)
    assert store.report_state(mounted) is True
    store.cluster_state()
    assert replica.report_state(attached) is True
    version = store.versions().state
    assert store.report_state(evolve(attached, reported_at=NOW + 6)) is False
    assert store.versions().state == version
    with _statements(store) as seen:  # its cache now known behind: tried as a heartbeat
        assert store.report_state(evolve(attached, reported_at=NOW + 7)) is False
    assert not [s for s in seen if s.upper().startswith("UPDATE")]
    assert store.report_state(evolve(mounted, reported_at=NOW + 8)) is True
    assert replica.cluster_state().reports[node].datasets == mounted.datasets


def test_the_cached_reach_is_the_one_read(open_fast: Callable[[], SQLStore]) -> None:
    """The datasets a report reaches, from the cached configuration, are those the database
    gives: the datasets asked about (a deleted one too) and the copies made from them."""
    store = open_fast()
    node = add_node(store)
    source, other, gone = (add_dataset(store, node) for _ in range(3))
    clone = add_dataset(store, node, source=DataSource(SourceKind.DATASET, source.dataset_id))
    add_dataset(store, node, source=DataSource(SourceKind.DATASET, other.dataset_id))
    store.delete_dataset(gone.dataset_id, None, NOW)
    asked = frozenset({source.dataset_id, gone.dataset_id, uuid4()})
    snapshot = store._cache.get(store.versions().configuration)
    if snapshot is None:
        store.configuration(NOW)
        snapshot = store._cache.get(store.versions().configuration)
    assert snapshot is not None
    with store._read() as connection:
        read = q.datasets_reaching(connection, asked)
    found = snapshot.reaching(asked)
    assert sorted(found, key=lambda d: d.dataset_id) == sorted(read, key=lambda d: d.dataset_id)
    assert {d.dataset_id for d in found} == {source.dataset_id, gone.dataset_id,
                                             clone.dataset_id}


def test_versions_leave_every_pooled_connection_transactional(
    open_fast: Callable[[], SQLStore],
) -> None:
    """Reading the counters (outside a transaction on PostgreSQL) leaves no pooled
    connection committing each statement: a write that fails after a statement still
    changes nothing, whichever connection it gets."""
    store = open_fast()
    add_node(store)
    before = store.versions()
    for _ in range(POOL_SIZE + 1):
        assert store.versions() == before
        with pytest.raises(RuntimeError), store._write() as (connection, _, _):
            connection.execute(text("UPDATE cluster SET state_version = state_version + 1"))
            raise RuntimeError("the write fails after its first statement")
    assert store.versions() == before
