"""The pure failover planner: liveness, fences, failovers, drains, holds and unfences."""

from __future__ import annotations

from uuid import UUID

import pytest
from attrs import evolve
from hypothesis import given
from hypothesis import strategies as st

from control import failover
from control.errors import InvalidRequest
from control.failover import (
    FenceNode,
    HoldDataset,
    MarkLiveness,
    Memory,
    MoveDataset,
    ReleaseLease,
    UnfenceNode,
    choose_target,
    plan,
    visible_state,
)
from control.liveness import FailoverSettings, Liveness, liveness
from control.model import (
    Capacity,
    ClusterState,
    Configuration,
    Dataset,
    DatasetState,
    Fence,
    Lease,
    Node,
    NodeState,
    VolumeStatus,
)

T = 1_000.0
A, B, C = UUID(int=1), UUID(int=2), UUID(int=3)
D1, D2 = UUID(int=101), UUID(int=102)
G = FailoverSettings(grace=10.0)
SHARED = Capacity("pool", total=100, free=50, shared=True)
AUTO = Fence(at=T, reason="silent", actor="failover", automatic=True)


def node(uuid: UUID, seen: float = T, **kwargs: object) -> Node:
    """A node last seen at ``seen``."""
    return Node(uuid, f"h{uuid.int}", "era", last_seen=seen, **kwargs)  # type: ignore[arg-type]


def state(*nodes: Node, capacity: dict[UUID, Capacity] | None = None,
          held: dict[UUID, dict[UUID, VolumeStatus]] | None = None) -> ClusterState:
    """Nodes, each reporting ``capacity`` (default: the shared pool) and ``held`` volumes."""
    capacity = capacity or {}
    held = held or {}
    reports = {
        n.uuid: NodeState(
            n.uuid, "era", 0,
            {d: DatasetState(d, s) for d, s in held.get(n.uuid, {}).items()},
            n.last_seen, capacity=capacity.get(n.uuid, SHARED),
        )
        for n in nodes
    }
    return ClusterState(1, {n.uuid: n for n in nodes}, reports)


def config(*datasets: Dataset, leases: tuple[Lease, ...] = ()) -> Configuration:
    """A configuration of ``datasets`` and ``leases``."""
    return Configuration(
        3, {d.dataset_id: d for d in datasets}, {x.dataset_id: x for x in leases}
    )


def kinds(decisions: tuple[object, ...]) -> list[str]:
    """The decisions' class names."""
    return [type(d).__name__ for d in decisions]


def test_settings_derive_lease_and_heartbeat() -> None:
    """The node lease is half the grace; the heartbeat a fifth, at most 5 s."""
    assert (G.node_lease, G.heartbeat, G.suspect_after) == (5.0, 2.0, 4.0)
    short = FailoverSettings(grace=3.0)
    assert (short.node_lease, short.heartbeat) == (1.5, 0.6)
    long = FailoverSettings(grace=300.0)
    assert (long.heartbeat, long.suspect_after, long.seen_flush) == (5.0, 10.0, 1.0)
    with pytest.raises(InvalidRequest):
        FailoverSettings(grace=0.5)


def test_liveness_counts_from_start() -> None:
    """Silence counts from the later of last seen and the service's start."""
    old = node(A, seen=T - 100)
    assert liveness(old, T, G, started=T - 200) is Liveness.DEAD
    assert liveness(old, T, G, started=T - 5) is Liveness.SUSPECT
    assert liveness(old, T, G, started=T) is Liveness.LIVE


def test_quiet_cluster_plans_nothing() -> None:
    """Live nodes and their datasets: no decisions."""
    decided = plan(config(Dataset(D1, A)), state(node(A), node(B)), T + 1, G, T)
    assert decided.decisions == ()


def test_dead_node_fenced_and_dataset_failed_over() -> None:
    """A node silent for the grace is fenced, its lease released, its dataset moved."""
    c = config(Dataset(D1, A), leases=(Lease(D1, A, None),))
    s = state(node(A, seen=T), node(B, seen=T + 10))
    decided = plan(c, s, T + 10, G, T)
    assert kinds(decided.decisions) == [
        "MarkLiveness", "FenceNode", "ReleaseLease", "MoveDataset"
    ]
    fence = decided.decisions[1]
    assert isinstance(fence, FenceNode) and fence.silent_since == T and fence.fence.automatic
    assert "10.0 s" in fence.fence.reason
    assert decided.decisions[2] == ReleaseLease(D1, A, decided.decisions[2].reason)  # type: ignore[union-attr]
    move = decided.decisions[3]
    assert isinstance(move, MoveDataset) and (move.from_node, move.to_node) == (A, B)
    assert move.kind == "failed_over"


def test_suspect_is_an_event_once() -> None:
    """Two missed heartbeats make a node suspect, told once."""
    s = state(node(A, seen=T), node(B, seen=T + 5))
    first = plan(config(), s, T + 5, G, T)
    assert first.decisions == (MarkLiveness(A, Liveness.SUSPECT, 5.0),)
    assert plan(config(), s, T + 6, G, T, first.memory).decisions == ()


def test_target_ranking() -> None:
    """Most free capacity wins, then fewest primaries, then the smallest uuid."""
    big = evolve(SHARED, free=90)
    s = state(node(A), node(B), node(C), capacity={B: SHARED, C: big})
    assert choose_target(A, SHARED, s, {}, T, G, T) == C
    s = state(node(A), node(B), node(C))
    assert choose_target(A, SHARED, s, {B: 2, C: 1}, T, G, T) == C
    assert choose_target(A, SHARED, s, {}, T, G, T) == B


def test_target_never_fenced_draining_dead_or_other_backend() -> None:
    """No candidate is fenced, draining, not live, or on another or a local backend."""
    other = Capacity("other", free=99)
    local = evolve(SHARED, shared=False)
    s = state(node(A), node(B, fence=AUTO), node(C, draining=True))
    assert choose_target(A, SHARED, s, {}, T, G, T) is None
    s = state(node(A), node(B, seen=T - 5), node(C), capacity={C: other})
    assert choose_target(A, SHARED, s, {}, T, G, T - 100) is None
    s = state(node(A), node(B), capacity={B: local})
    assert choose_target(A, SHARED, s, {}, T, G, T) is None


@pytest.mark.parametrize(
    ("dataset", "capacity", "why"),
    [
        (Dataset(D1, A, failover=False), SHARED, "failover is off"),
        (Dataset(D1, A), evolve(SHARED, shared=False), "node-local"),
        (Dataset(D1, A, failover=True), evolve(SHARED, shared=False), "node-local"),
    ],
)
def test_dataset_held_on_fenced_node(dataset: Dataset, capacity: Capacity, why: str) -> None:
    """A dataset with failover off, or on a node-local backend, stays, and the plan says why."""
    s = state(node(A, fence=AUTO), node(B), capacity={A: capacity, B: capacity})
    decided = plan(config(dataset), s, T, G, T)
    assert kinds(decided.decisions) == ["HoldDataset"]
    held = decided.decisions[0]
    assert isinstance(held, HoldDataset) and why in held.reason
    assert plan(config(dataset), s, T, G, T, decided.memory).decisions == ()


def test_longer_dataset_grace_waits() -> None:
    """A dataset with a longer grace stays on the fenced node until that much silence."""
    dataset = Dataset(D1, A, failover_grace=30.0)
    s = state(node(A, seen=T - 20, fence=AUTO), node(B, seen=T))
    assert "MoveDataset" not in kinds(plan(config(dataset), s, T, G, T - 100).decisions)
    later = state(node(A, seen=T - 20, fence=AUTO), node(B, seen=T + 10))
    assert "MoveDataset" in kinds(plan(config(dataset), later, T + 10, G, T - 100).decisions)


def test_operator_fence_fails_over_at_once() -> None:
    """An operator's fence of a live node moves its failover datasets right away."""
    manual = Fence(at=T, reason="maintenance", actor="alice")
    decided = plan(config(Dataset(D1, A)), state(node(A, fence=manual), node(B)), T, G, T)
    assert kinds(decided.decisions) == ["MoveDataset"]


def test_drain_moves_unleased_datasets_only() -> None:
    """A draining node's unleased datasets move (kind moved); leased ones wait."""
    c = config(Dataset(D1, A, failover=False), Dataset(D2, A), leases=(Lease(D2, A, None),))
    decided = plan(c, state(node(A, draining=True), node(B)), T, G, T)
    assert decided.decisions == (MoveDataset(D1, A, B, "node h1 is draining", "moved"),)


def test_automatic_fence_lifted_when_back_clean() -> None:
    """A node that registered again and reports nothing foreign is unfenced; else not."""
    rejoined = evolve(AUTO, rejoined_at=T + 20)
    c = config(Dataset(D1, B))
    clean = state(node(A, seen=T + 21, fence=rejoined), node(B, seen=T + 21))
    decided = plan(c, clean, T + 21, G, T)
    assert [d for d in decided.decisions if isinstance(d, UnfenceNode)] == [
        UnfenceNode(A, rejoined, decided.decisions[-1].reason)  # type: ignore[union-attr]
    ]
    dirty = state(
        node(A, seen=T + 21, fence=rejoined), node(B, seen=T + 21),
        held={A: {D1: VolumeStatus.MOUNTED}},
    )
    assert not any(isinstance(d, UnfenceNode) for d in plan(c, dirty, T + 21, G, T).decisions)
    not_rejoined = state(node(A, seen=T + 21, fence=AUTO), node(B, seen=T + 21))
    assert not any(
        isinstance(d, UnfenceNode) for d in plan(c, not_rejoined, T + 21, G, T).decisions
    )
    manual = state(node(A, seen=T + 21, fence=evolve(rejoined, automatic=False)), node(B))
    assert not any(isinstance(d, UnfenceNode) for d in plan(c, manual, T + 21, G, T).decisions)


def test_restart_gives_fresh_grace() -> None:
    """After a restart, a node silent since long before it is not fenced within the grace."""
    s = state(node(A, seen=T - 1000), node(B, seen=T + 9))
    assert not any(
        isinstance(d, FenceNode) for d in plan(config(), s, T + 9, G, T, Memory()).decisions
    )
    assert any(isinstance(d, FenceNode) for d in plan(config(), s, T + 10, G, T).decisions)


def test_visible_state_hides_fenced_nodes_foreign_volumes() -> None:
    """A fenced node's report of a dataset now primary elsewhere is left out of listings."""
    c = config(Dataset(D1, B), Dataset(D2, A))
    s = state(
        node(A, fence=AUTO), node(B),
        held={A: {D1: VolumeStatus.MOUNTED, D2: VolumeStatus.MOUNTED}},
    )
    shown = visible_state(s, c)
    assert set(shown.reports[A].datasets) == {D2}
    unfenced = state(node(A), node(B), held={A: {D1: VolumeStatus.MOUNTED}})
    assert visible_state(unfenced, c) == unfenced


def test_node_holding_a_lease_gets_the_dataset() -> None:
    """The node whose plugin leased the dataset is the target; a leaseholder that cannot
    take it holds the dataset, saying so."""
    c = config(Dataset(D1, A), leases=(Lease(D1, C, None),))
    s = state(node(A, fence=AUTO), node(B), node(C), capacity={B: evolve(SHARED, free=99)})
    moves = [d for d in plan(c, s, T, G, T).decisions if isinstance(d, MoveDataset)]
    assert [(m.dataset_id, m.to_node) for m in moves] == [(D1, C)]
    s = state(node(A, fence=AUTO), node(B), node(C, draining=True))
    held = [d for d in plan(c, s, T, G, T).decisions if isinstance(d, HoldDataset)]
    assert len(held) == 1 and "holds a lease" in held[0].reason


@given(st.lists(st.uuids(), unique=True, max_size=30))
def test_nodes_are_taken_in_the_order_of_their_ids_as_text(ids: list[UUID]) -> None:
    """A pass takes nodes (and leases) in the order of their ids written out, as it always
    did, though it sorts them by number."""
    nodes = [Node(uuid=node_uuid, host="h") for node_uuid in ids]
    assert [n.uuid for n in failover._sorted(nodes)] == sorted(ids, key=str)
    assert sorted(((i, None) for i in ids), key=failover._key) == [
        (i, None) for i in sorted(ids, key=str)
    ]
