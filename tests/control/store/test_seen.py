"""Heartbeats in memory with a durable floor (:mod:`control.store.seen`), SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from uuid import UUID

import pytest
from attrs import evolve

from control.errors import Conflict, Forbidden
from control.events import EventRetention
from control.model import ClusterState, Fence, Node, NodeState
from control.store.migrate import upgrade
from control.store.seen import Seen, SeenLog
from control.store.sql import SQLStore
from control.store.state_cache import with_liveness
from tests.control.store.conformance import NOW, StoreConformance, add_dataset, add_node, report
from tests.control.store.failover_conformance import FailoverConformance
from tests.control.store.report_conformance import ReportGroupConformance


@pytest.fixture
def open_fast(sql_url: str) -> Iterator[Callable[..., SQLStore]]:
    """Opens stores keeping heartbeats in memory on one migrated database; ``reopen``
    flushes them all first, as a service does every second and at shutdown."""
    upgrade(sql_url)
    opened: list[SQLStore] = []

    def open_(retention: EventRetention | None = None) -> SQLStore:
        for each in opened:
            each.flush_seen()
        opened.append(SQLStore(sql_url, retention, seen_in_memory=True))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


class TestHeartbeatsInMemory(StoreConformance, FailoverConformance, ReportGroupConformance):
    """The SQL store keeping heartbeats in memory still keeps the Store contract."""

    @pytest.fixture
    def store(self, open_fast: Callable[[], SQLStore]) -> SQLStore:
        """An empty store on a freshly migrated database."""
        return open_fast()

    @pytest.fixture
    def with_retention(self, open_fast: Callable[..., SQLStore]) -> Callable[..., SQLStore]:
        """Opens an empty store keeping the given event history."""
        return open_fast

    @pytest.fixture
    def reopen(self, open_fast: Callable[[], SQLStore]) -> Callable[[], SQLStore]:
        """Opens another store on the same database (after flushing the others)."""
        return open_fast


def _heard(store: SQLStore, node: UUID) -> tuple[float | None, float | None]:
    state = store.cluster_state()
    return state.nodes[node].last_seen, state.reports[node].reported_at


def _plain(sql_url: str) -> SQLStore:
    return SQLStore(sql_url)


def test_a_heartbeat_is_written_only_by_the_flush(open_fast: Callable[[], SQLStore],
                                                  sql_url: str) -> None:
    """The database keeps the floor until the flush; the store itself sees the heartbeat."""
    store = open_fast()
    a = add_node(store)
    store.report_state(report(a, 0, at=NOW + 1))
    store.report_state(report(a, 0, at=NOW + 2))
    other = _plain(sql_url)
    try:
        assert _heard(store, a) == (NOW + 2, NOW + 2)
        assert _heard(other, a) == (NOW + 1, NOW + 1)
        assert store.flush_seen() == 1
        assert _heard(other, a) == (NOW + 2, NOW + 2)
        assert store.flush_seen() == 0
    finally:
        other.close()


def test_a_restart_keeps_the_floor(open_fast: Callable[[], SQLStore], sql_url: str) -> None:
    """A store opened after a crash sees the last flushed heartbeat, not the lost one."""
    store = open_fast()
    a = add_node(store)
    store.report_state(report(a, 0, at=NOW + 1))
    store.report_state(report(a, 0, at=NOW + 2))
    store.flush_seen()
    store.report_state(report(a, 0, at=NOW + 3))  # never flushed: the service "crashes"
    restarted = _plain(sql_url)
    try:
        assert _heard(restarted, a) == (NOW + 2, NOW + 2)
    finally:
        restarted.close()


def test_a_flush_never_moves_times_back(open_fast: Callable[[], SQLStore], sql_url: str) -> None:
    """A replica flushing an older heartbeat leaves a later one another replica wrote."""
    first, second = open_fast(), open_fast()
    a = add_node(first)
    first.report_state(report(a, 0, at=NOW + 1))
    second.report_state(report(a, 0, at=NOW + 5))
    first.report_state(report(a, 0, at=NOW + 3))
    second.flush_seen()
    first.flush_seen()
    other = _plain(sql_url)
    try:
        assert _heard(other, a) == (NOW + 5, NOW + 5)
    finally:
        other.close()


def test_changes_are_written_at_once(open_fast: Callable[[], SQLStore], sql_url: str) -> None:
    """A report with a new observation goes to the database at once, and bumps the version."""
    store = open_fast()
    a = add_node(store)
    dataset = add_dataset(store, a)
    store.report_state(report(a, 1, at=NOW + 1))
    assert store.report_state(report(a, 1, dataset.dataset_id, at=NOW + 2)) is True
    other = _plain(sql_url)
    try:
        assert dataset.dataset_id in other.cluster_state().reports[a].datasets
        assert other.versions() == store.versions()
    finally:
        other.close()


def test_heartbeats_are_refused_as_written_reports_are(open_fast: Callable[[], SQLStore]) -> None:
    """A heartbeat in another era is refused (409), though it would not be written."""
    store = open_fast()
    a = add_node(store)
    store.report_state(report(a, 0, at=NOW + 1))
    with pytest.raises(Conflict):
        store.report_state(report(a, 0, at=NOW + 2, era="another"))
    assert _heard(store, a) == (NOW + 1, NOW + 1)


def test_a_deletion_is_purged_by_the_next_report(open_fast: Callable[[], SQLStore]) -> None:
    """A report saying nothing new after a deletion still purges the deleted dataset."""
    store = open_fast()
    a = add_node(store)
    store.report_state(report(a, 0, at=NOW + 1))
    dataset = add_dataset(store, a)
    _, generation = store.delete_dataset(dataset.dataset_id, None, NOW)
    store.report_state(report(a, generation, at=NOW + 2))
    store.report_state(report(a, generation, at=NOW + 3))
    assert store.dataset(dataset.dataset_id) is None


def test_the_fence_guard_sees_heartbeats_in_memory(open_fast: Callable[[], SQLStore]) -> None:
    """An automatic fence planned on an older silence is skipped after a heartbeat in memory."""
    store = open_fast()
    a = add_node(store)
    store.report_state(report(a, 0, at=NOW + 1))
    store.report_state(report(a, 0, at=NOW + 9))
    fence = Fence(at=NOW + 20, reason="silent", actor="failover", automatic=True)
    node, changed = store.fence_node(a, fence, silent_since=NOW + 1)
    assert (changed, node.fence) == (False, None)


def test_a_failed_flush_sends_heartbeats_to_the_database(open_fast: Callable[[], SQLStore],
                                                         sql_url: str) -> None:
    """Once a flush failed, heartbeats are written at once (so one that cannot be fails)."""
    store = open_fast()
    a = add_node(store)
    store.report_state(report(a, 0, at=NOW + 1))
    assert store._seen is not None
    store._seen.failed({})
    store.report_state(report(a, 0, at=NOW + 2))
    other = _plain(sql_url)
    try:
        assert _heard(other, a) == (NOW + 2, NOW + 2)
    finally:
        other.close()


def test_seen_log_keeps_a_failed_flush_for_the_next() -> None:
    """What a failed flush took comes back with the next take, and health returns on success."""
    log = SeenLog()
    a = UUID(int=1)
    log.saw(a, Seen(1.0, 1.0))
    taken = log.take()
    log.saw(a, Seen(2.0, 2.0))
    log.failed(taken)
    assert not log.healthy
    assert log.take() == {a: Seen(2.0, 2.0)}
    log.flushed()
    assert log.healthy


def test_a_report_from_nowhere_is_written(open_fast: Callable[[], SQLStore]) -> None:
    """The first report of a node is written, never kept in memory only."""
    store = open_fast()
    a = add_node(store)
    assert store.report_state(NodeState(node_uuid=a, era="era", generation=0,
                                        reported_at=NOW + 1)) is True


def test_an_unchanged_registration_is_written_only_by_the_flush(
        open_fast: Callable[[], SQLStore], sql_url: str) -> None:
    """An agent registering again with the same facts moves ``last_seen`` in memory; the
    database has it after the flush, with the report's time left as it was."""
    store = open_fast()
    a = add_node(store)
    store.report_state(report(a, 0, at=NOW + 1))
    node = store.cluster_state().nodes[a]
    store.register_node(evolve(node, last_seen=NOW + 5))
    other = _plain(sql_url)
    try:
        assert _heard(store, a) == (NOW + 5, NOW + 1)
        assert _heard(other, a) == (NOW + 1, NOW + 1)
        assert store.flush_seen() == 1
        assert _heard(other, a) == (NOW + 5, NOW + 1)
    finally:
        other.close()


def test_a_changed_registration_is_written_at_once(open_fast: Callable[[], SQLStore],
                                                   sql_url: str) -> None:
    """A registration with new facts (here labels) goes to the database at once."""
    store = open_fast()
    a = add_node(store)
    node = store.cluster_state().nodes[a]
    store.register_node(evolve(node, labels={"zone": "b"}, last_seen=NOW + 5))
    other = _plain(sql_url)
    try:
        assert other.cluster_state().nodes[a].labels == {"zone": "b"}
        assert other.versions() == store.versions()
    finally:
        other.close()


def test_a_fenced_node_registering_again_is_written(open_fast: Callable[[], SQLStore],
                                                    sql_url: str) -> None:
    """A fenced node's registration records that it rejoined, in the database at once."""
    store = open_fast()
    a = add_node(store)
    fence = Fence(at=NOW + 2, reason="silent", actor="failover", automatic=True)
    store.fence_node(a, fence)
    node = store.cluster_state().nodes[a]
    store.register_node(evolve(node, fence=None, last_seen=NOW + 5))
    other = _plain(sql_url)
    try:
        rejoined = other.cluster_state().nodes[a].fence
        assert rejoined is not None and rejoined.rejoined_at == NOW + 5
    finally:
        other.close()


def test_a_registration_is_refused_as_a_written_one(open_fast: Callable[[], SQLStore]) -> None:
    """A registration from another certificate than the node's is refused (403) though
    it would not be written."""
    store = open_fast()
    a = add_node(store)
    node = store.cluster_state().nodes[a]
    store.register_node(evolve(node, identity="node-a", last_seen=NOW + 1))
    with pytest.raises(Forbidden):
        store.register_node(evolve(node, identity="node-b", last_seen=NOW + 2))
    assert store.cluster_state().nodes[a].last_seen == NOW + 1


def test_times_read_and_heard_are_laid_in_one_pass() -> None:
    """Laying the times read and those heard at once gives the state that laying them one
    after the other gives: each node's later time, a node's report only where it has one."""
    a, b, c = UUID(int=1), UUID(int=2), UUID(int=3)
    state = ClusterState(
        version=1,
        nodes={u: Node(uuid=u, host=str(u), last_seen=1.0) for u in (a, b, c)},
        reports={a: NodeState(node_uuid=a, reported_at=1.0), b: NodeState(node_uuid=b)},
    )
    log = SeenLog()
    log.saw(a, Seen(9.0, 8.0))
    log.saw(b, Seen(2.0, 2.0))
    log.saw(c, Seen(3.0, None))
    log.saw(UUID(int=4), Seen(5.0, 5.0))
    read_seen, read_sent = {a: 4.0, b: 6.0, c: None}, {a: 4.0, b: None}
    one_pass = with_liveness(state, *log.times(state, read_seen, read_sent))
    assert one_pass == log.state(with_liveness(state, read_seen, read_sent))
    assert [one_pass.nodes[u].last_seen for u in (a, b, c)] == [9.0, 6.0, 3.0]
    assert [one_pass.reports[u].reported_at for u in (a, b)] == [8.0, 2.0]
    only_a = with_liveness(state, *log.times(state, {}, {}, only=[a]))
    assert only_a.nodes[b] is state.nodes[b] and only_a.nodes[a].last_seen == 9.0
