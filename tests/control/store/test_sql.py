"""The SQL store passes the conformance suite on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from uuid import uuid4

import pytest
from attrs import evolve
from sqlalchemy import text

from control.errors import ShoalError
from control.model import Dataset, DatasetState, Fence, Lease, Node, NodeState, VolumeStatus
from control.store.interface import NewDataset
from control.store.sql import SQLStore
from control.store.state_cache import StateCache
from tests.control.store.class_conformance import ClassConformance, ReleaseConformance
from tests.control.store.conformance import NOW, StoreConformance
from tests.control.store.failover_conformance import FailoverConformance
from tests.control.store.group_conformance import GroupConformance
from tests.control.store.move_group_conformance import MoveGroupConformance
from tests.control.store.report_conformance import ReportGroupConformance
from tests.control.store.revocation_conformance import RevocationConformance
from tests.control.store.snapshot_conformance import SnapshotConformance


class TestSQLStore(
    ClassConformance, ReleaseConformance, StoreConformance, SnapshotConformance,
    FailoverConformance,
    RevocationConformance,
    GroupConformance,
    MoveGroupConformance,
    ReportGroupConformance,
):
    """SQLStore against the Store contract, on each database."""

    @pytest.fixture
    def store(self, open_sql: Callable[[], SQLStore]) -> SQLStore:
        """An empty store on a freshly migrated database."""
        return open_sql()

    @pytest.fixture
    def with_retention(self, open_sql: Callable[..., SQLStore]) -> Callable[..., SQLStore]:
        """Opens an empty store keeping the given event history."""
        return open_sql

    @pytest.fixture
    def reopen(self, open_sql: Callable[[], SQLStore]) -> Callable[[], SQLStore]:
        """Opens another store on the same database."""
        return open_sql


def test_cached_configuration_matches_database(open_sql: Callable[[], SQLStore]) -> None:
    """After each kind of write, the cached configuration equals a fresh store's reading."""
    store = open_sql()
    node = store.register_node(Node(uuid=uuid4(), host="h")).uuid
    steps: list[Callable[[], object]] = []
    dataset = Dataset(dataset_id=uuid4(), primary=node)
    steps.append(lambda: store.create_dataset(dataset, None))
    steps.append(lambda: store.acquire_lease(Lease(dataset.dataset_id, node, NOW + 1), None, NOW))
    steps.append(lambda: store.move_dataset(dataset.dataset_id, node, None, NOW))
    steps.append(lambda: store.release_lease(dataset.dataset_id, None, NOW))
    steps.append(lambda: store.delete_dataset(dataset.dataset_id, None, NOW))
    steps.append(lambda: store.report_state(NodeState(node_uuid=node, generation=5)))
    for step in steps:
        store.configuration(NOW)
        step()
        fresh = open_sql()
        assert store.configuration(NOW) == fresh.configuration(NOW)
        assert store.datasets_for_node(node, frozenset()) == fresh.datasets_for_node(
            node, frozenset()
        )
        fresh.close()
    assert store.configuration(NOW).datasets == {}


def test_report_diffed_against_previous_stores_as_full_write(
    open_sql: Callable[[], SQLStore],
) -> None:
    """Reports taken against the cached previous one (unchanged: only when it was sent is
    written) leave the state a cold store reads, and the one a store without caches writes."""
    warm, cold = open_sql(), open_sql()
    node = warm.register_node(Node(uuid=uuid4(), host="h", era="e", mount_root="/m")).uuid
    ids = [warm.create_dataset(Dataset(dataset_id=uuid4(), primary=node), None)[0].dataset_id
           for _ in range(3)]

    def report(at: float, attached: int) -> NodeState:
        states = {
            i: DatasetState(i, VolumeStatus.ATTACHED, device=f"/dev/x{n}") if n < attached
            else DatasetState(i, VolumeStatus.MOUNTED, device=f"/dev/x{n}", path=f"/m/{i}")
            for n, i in enumerate(ids)
        }
        return NodeState(node_uuid=node, era="e", generation=3, datasets=states, reported_at=at)

    sequence = [report(NOW, 3), report(NOW + 1, 3), report(NOW + 2, 1), report(NOW + 3, 1),
                report(NOW + 4, 0)]
    for sent in sequence:
        warm.cluster_state()  # the cache is warm: the report is diffed against it
        warm.report_state(sent)
        fresh = open_sql()
        assert warm.cluster_state() == fresh.cluster_state()
        assert fresh.cluster_state().reports[node] == sent
        fresh.close()
    for sent in sequence:  # a store that never read the state decodes each previous report
        cold._state_cache = StateCache()
        cold.report_state(evolve(sent, reported_at=sent.reported_at + 10))
    assert open_sql().cluster_state().reports[node] == evolve(sequence[-1], reported_at=NOW + 14)


def test_cached_cluster_state_matches_database(open_sql: Callable[[], SQLStore]) -> None:
    """After each kind of state write, the cached actual state equals a fresh store's reading."""
    store = open_sql()
    node = Node(uuid=uuid4(), host="h", last_seen=NOW)
    uuid = store.register_node(node).uuid
    dataset = Dataset(dataset_id=uuid4(), primary=uuid)
    fence = Fence(at=NOW + 3, reason="test", actor="t")
    steps: list[Callable[[], object]] = [
        lambda: store.create_dataset(dataset, None),
        lambda: store.report_state(NodeState(node_uuid=uuid, generation=1, reported_at=NOW)),
        lambda: store.report_state(NodeState(node_uuid=uuid, generation=1, reported_at=NOW + 1)),
        lambda: store.register_node(evolve(node, last_seen=NOW + 2)),
        lambda: store.fence_node(uuid, fence),
        lambda: store.register_node(evolve(node, last_seen=NOW + 4)),
        lambda: store.unfence_node(uuid, NOW + 5, actor="t", reason="test"),
        lambda: store.set_draining(uuid, True, NOW + 6),
        lambda: store.delete_dataset(dataset.dataset_id, None, NOW + 7),
        lambda: store.report_state(NodeState(node_uuid=uuid, generation=2, reported_at=NOW + 8)),
        lambda: store.register_node(Node(uuid=uuid4(), host="other", last_seen=NOW + 9)),
    ]
    for step in steps:
        store.cluster_state()
        step()
        assert store.cluster_state() == open_sql().cluster_state()


def test_cluster_state_sees_another_store_write(open_sql: Callable[[], SQLStore]) -> None:
    """A store's cached actual state is never served after another replica's write."""
    here, there = open_sql(), open_sql()
    uuid = here.register_node(Node(uuid=uuid4(), host="h", last_seen=NOW)).uuid
    here.cluster_state()
    there.report_state(NodeState(node_uuid=uuid, generation=0, reported_at=NOW + 1))
    assert here.cluster_state().reports[uuid].reported_at == NOW + 1
    there.report_state(NodeState(node_uuid=uuid, generation=0, reported_at=NOW + 2))
    seen = here.cluster_state()
    assert (seen.reports[uuid].reported_at, seen.nodes[uuid].last_seen) == (NOW + 2, NOW + 2)
    there.set_draining(uuid, True, NOW + 3)
    assert here.cluster_state().nodes[uuid].draining is True
    assert here.cluster_state() == there.cluster_state()


def test_broken_create_in_group_fails_alone(open_sql: Callable[[], SQLStore]) -> None:
    """A create the database cannot store (not a refusal) fails alone; its group is stored."""
    store = open_sql()
    node = store.register_node(Node(uuid=uuid4(), host="h")).uuid
    good = [NewDataset(Dataset(dataset_id=uuid4(), primary=node)) for _ in range(2)]
    broken = NewDataset(Dataset(dataset_id=uuid4(), primary=node, maximum_size=2**70))
    answers = store.create_datasets([good[0], broken, good[1]])
    assert isinstance(answers[1], Exception) and not isinstance(answers[1], ShoalError)
    assert [a[0] for a in (answers[0], answers[2])] == [g.dataset for g in good]  # type: ignore[index]
    fresh = open_sql()
    assert broken.dataset.dataset_id not in fresh.configuration(NOW).datasets
    assert all(g.dataset.dataset_id in fresh.configuration(NOW).datasets for g in good)


def test_group_is_durable(open_sql: Callable[[], SQLStore]) -> None:
    """What a group answered stored is there for another store on the same database."""
    store = open_sql()
    node = store.register_node(Node(uuid=uuid4(), host="h")).uuid
    creates = [NewDataset(Dataset(dataset_id=uuid4(), primary=node)) for _ in range(3)]
    answers = store.create_datasets(creates)
    other = open_sql()
    assert other.versions().configuration == answers[-1][1]  # type: ignore[index]
    for create in creates:
        assert other.dataset(create.dataset.dataset_id) is not None


def test_listing_item_written_by_a_replica_not_knowing_it_is_not_shown(
    open_sql: Callable[[], SQLStore],
) -> None:
    """A replica of the previous release (during a rolling upgrade) updating a row without
    its stored listing item leaves the item cleared, and the listing shows the row as it is."""
    store = open_sql()
    node, other = (store.register_node(Node(uuid=uuid4(), host=h)).uuid for h in ("a", "b"))
    first, second = (store.create_dataset(Dataset(dataset_id=uuid4(), primary=node), None)[0]
                     for _ in range(2))
    with store._engine.begin() as connection:
        connection.execute(
            text('UPDATE datasets SET "primary" = :p, metadata = :m WHERE dataset_id = :d'),
            {"p": str(other), "m": '{"name": "moved"}', "d": str(first.dataset_id)},
        )
        connection.execute(
            text("UPDATE datasets SET deleted = :t WHERE dataset_id = :d"),
            {"t": True, "d": str(second.dataset_id)},
        )
        connection.execute(text("UPDATE cluster SET generation = generation + 1"))
    listed = {d["dataset_id"]: d for d in json.loads(store.dataset_listing()[1])}
    assert listed[str(first.dataset_id)]["primary"] == str(other)
    assert listed[str(first.dataset_id)]["metadata"] == {"name": "moved"}
    assert listed[str(second.dataset_id)]["deleted"] is True
    fresh = open_sql()
    assert store.dataset_listing()[1] == fresh.dataset_listing()[1]
    store.move_dataset(first.dataset_id, node, None, NOW)  # a write of this release: stored again
    with store._engine.connect() as connection:
        stored = connection.execute(text("SELECT listing FROM datasets WHERE dataset_id = :d"),
                                    {"d": str(first.dataset_id)}).scalar_one()
    assert json.loads(stored)["primary"] == str(node)
    fresh.close()
