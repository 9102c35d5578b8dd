"""Failover through the real API and client, with the executor running on a simulated clock."""

from __future__ import annotations

from uuid import UUID

import pytest

from control.client.interface import NodeInfo
from control.client.testing import MemoryControl, result_of
from control.errors import Conflict, InvalidRequest, NotFound
from control.events import EventQuery
from control.model import Capacity, Dataset, DatasetState, NodeState, VolumeStatus

A = UUID("aaaaaaaa-0000-4000-8000-000000000001")
B = UUID("bbbbbbbb-0000-4000-8000-000000000002")
C = UUID("cccccccc-0000-4000-8000-000000000003")
POOL = Capacity("loopback", total=10 * 2**30, free=5 * 2**30, shared=True)


class Cluster:
    """A MemoryControl with failover running, and agents that report by hand."""

    def __init__(self, capacity: Capacity = POOL) -> None:
        self.control = MemoryControl(run_failover=True)
        self.client = self.control.client
        self.capacity = capacity
        for node in (A, B, C):
            self.register(node)
            self.report(node)

    def register(self, node: UUID) -> None:
        """Register ``node`` (again)."""
        result_of(self.client.register_node(node, f"h{str(node)[0]}", "era", {}, "/m"))

    def report(self, node: UUID, **mounted: UUID) -> None:
        """``node`` reports ``mounted`` datasets (name -> id) and the shared pool."""
        generation = result_of(self.client.node_configuration(node)).generation
        held = {
            d: DatasetState(d, VolumeStatus.MOUNTED, path=f"/m/{d}", device="/dev/loop0")
            for d in mounted.values()
        }
        state = NodeState(node, "era", generation, held, capacity=self.capacity)
        result_of(self.client.report_state(state))

    def advance(self, seconds: float, *reporting: UUID) -> None:
        """Let time pass one second at a time; ``reporting`` nodes report each second."""
        for _ in range(int(seconds)):
            self.control.clock.advance(1)
            for node in reporting:
                self.report(node)

    def create(self, node: UUID = A) -> UUID:
        """A new dataset on ``node``; returns its id."""
        return result_of(self.client.create_dataset(node, metadata={"name": "db"})).dataset_id

    def dataset(self, dataset_id: UUID) -> Dataset:
        """The dataset as stored."""
        found = self.control.store.dataset(dataset_id)
        assert found is not None
        return found

    def nodes(self) -> dict[UUID, NodeInfo]:
        """Each node's listing entry."""
        return {n.node.uuid: n for n in result_of(self.client.list_nodes())}


def test_silent_node_fenced_and_dataset_failed_over() -> None:
    """After the grace, a silent node is fenced, its lease released, its dataset moved (epoch+1)."""
    cluster = Cluster()
    dataset_id = cluster.create(A)
    result_of(cluster.client.acquire_lease(dataset_id, A, None))
    cluster.report(A, db=dataset_id)
    cluster.advance(9, B, C)
    assert cluster.dataset(dataset_id).primary == A
    cluster.advance(3, B, C)
    moved = cluster.dataset(dataset_id)
    assert moved.primary in (B, C) and moved.epoch == 1
    assert result_of(cluster.client.list_leases()) == []
    node_a = cluster.nodes()[A]
    assert node_a.node.fence is not None and node_a.node.fence.automatic
    assert node_a.liveness == "dead"
    events = cluster.control.store.events(EventQuery())
    kinds = [(e.kind, e.actor) for e in events if e.actor == "failover"]
    assert ("node_suspect", "failover") in kinds and ("node_dead", "failover") in kinds
    assert kinds[-3:] == [
        ("node_fenced", "failover"), ("lease_released", "failover"), ("failed_over", "failover")
    ]
    configuration = result_of(cluster.client.node_configuration(moved.primary))
    assert [(d.dataset_id, d.epoch) for d in configuration.datasets] == [(dataset_id, 1)]
    assert configuration.fenced_nodes == frozenset({A}) and not configuration.fenced
    assert (configuration.node_lease, configuration.heartbeat) == (5.0, 2.0)
    assert result_of(cluster.client.node_configuration(A)).fenced


def test_node_reporting_within_grace_keeps_dataset() -> None:
    """A node that reports again inside the grace causes no fence and no failover."""
    cluster = Cluster()
    dataset_id = cluster.create(A)
    for _ in range(5):
        cluster.advance(8, B, C)
        cluster.report(A, db=dataset_id)
    assert cluster.dataset(dataset_id).primary == A and cluster.dataset(dataset_id).epoch == 0
    assert cluster.nodes()[A].node.fence is None


def test_fenced_node_comes_back_clean_and_is_unfenced() -> None:
    """A fenced node's stale mount is hidden; after it registers and reports clean, it is
    unfenced automatically, with an event saying why."""
    cluster = Cluster()
    dataset_id = cluster.create(A)
    cluster.report(A, db=dataset_id)
    cluster.advance(12, B, C)
    new_primary = cluster.dataset(dataset_id).primary
    cluster.report(new_primary, db=dataset_id)
    state = result_of(cluster.client.list_state_datasets())
    assert [(s.dataset_id, s.primary) for s in state] == [(dataset_id, new_primary)]
    with pytest.raises(Conflict, match="still reports dataset"):
        result_of(cluster.client.unfence_node(A))
    cluster.register(A)
    cluster.report(A)
    cluster.advance(2, A, B, C)
    assert cluster.nodes()[A].node.fence is None
    unfenced = cluster.control.store.events(EventQuery(node_uuid=A))[-1]
    assert (unfenced.kind, unfenced.actor) == ("node_unfenced", "failover")


def test_failover_off_stays_and_says_why() -> None:
    """A dataset with failover off stays on its fenced node, and its conditions say why."""
    cluster = Cluster()
    dataset_id = cluster.create(A)
    options = result_of(cluster.client.set_failover(dataset_id, False, 30.0))
    assert (options.enabled, options.grace, options.effective_grace) == (False, 30.0, 30.0)
    assert result_of(cluster.client.get_failover(dataset_id)) == options
    with pytest.raises(NotFound):
        result_of(cluster.client.get_failover(UUID(int=9)))
    cluster.advance(12, B, C)
    assert cluster.dataset(dataset_id).primary == A
    conditions = result_of(cluster.client.list_conditions(dataset_id))
    assert [(c.node_uuid, c.condition.reason) for c in conditions] == [(A, "failover_held")]
    assert "failover is off" in conditions[0].condition.message
    held = cluster.control.store.events(EventQuery(dataset_id=dataset_id))[-1]
    assert held.kind == "failover_held"


def test_node_local_backend_never_fails_over() -> None:
    """By default a dataset on a node-local backend stays on its fenced node."""
    cluster = Cluster(Capacity("local", free=10, shared=False))
    dataset_id = cluster.create(A)
    cluster.advance(12, B, C)
    assert cluster.dataset(dataset_id).primary == A


def test_operator_fence_unfence_and_drain() -> None:
    """An operator fences (failover at once), unfences, and drains a node."""
    cluster = Cluster()
    dataset_id = cluster.create(A)
    fenced = result_of(cluster.client.fence_node(A, "disk replaced"))
    assert fenced.node.fence.reason == "disk replaced" and not fenced.node.fence.automatic
    cluster.advance(2, A, B, C)
    moved = cluster.dataset(dataset_id)
    assert moved.primary != A and moved.epoch == 1
    with pytest.raises(Conflict, match="fenced"):
        result_of(cluster.client.move_dataset(dataset_id, A))
    unfenced = result_of(cluster.client.unfence_node(A))
    assert unfenced.node.fence is None
    drained = result_of(cluster.client.drain_node(moved.primary))
    assert drained.node.draining
    cluster.advance(2, A, B, C)
    again = cluster.dataset(dataset_id)
    assert again.primary not in (moved.primary,) and again.epoch == 2
    assert not result_of(cluster.client.drain_node(moved.primary, False)).node.draining
    kinds = [e.kind for e in cluster.control.store.events(EventQuery(dataset_id=dataset_id))]
    assert kinds[-2:] == ["failed_over", "moved"]


def test_refusals_are_for_people() -> None:
    """Unknown nodes are 404; a bad grace 400; placing on a draining node 409."""
    cluster = Cluster()
    ghost = UUID(int=7)
    with pytest.raises(NotFound, match="not registered"):
        result_of(cluster.client.fence_node(ghost))
    with pytest.raises(NotFound):
        result_of(cluster.client.drain_node(ghost))
    dataset_id = cluster.create(A)
    with pytest.raises(InvalidRequest):
        result_of(cluster.client.set_failover(dataset_id, True, -3.0))
    result_of(cluster.client.drain_node(B))
    with pytest.raises(Conflict, match="draining"):
        result_of(cluster.client.create_dataset(B))


def test_epoch_grows_on_operator_moves() -> None:
    """A Flocker v1 move to a new primary grows the epoch the agents see."""
    cluster = Cluster()
    dataset_id = cluster.create(A)
    result_of(cluster.client.move_dataset(dataset_id, B))
    result_of(cluster.client.move_dataset(dataset_id, B))
    configuration = result_of(cluster.client.node_configuration(B))
    assert [d.epoch for d in configuration.datasets] == [1]
