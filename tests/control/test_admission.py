"""The admission rules, pure: fed with a cluster state, they refuse or accept a size."""

from __future__ import annotations

from uuid import UUID

import pytest

from control.admission import SIZE_CEILING, check_create, check_move
from control.errors import InvalidRequest
from control.model import Capacity, ClusterState, Dataset, Node, NodeState

GiB = 1024**3
A, B = UUID(int=1), UUID(int=2)
NOW = 100.0


def _state(*capacities: tuple[UUID, Capacity | None, float]) -> ClusterState:
    nodes = {
        u: Node(u, f"h{u.int}", labels={"name": f"node{u.int}"}, last_seen=t)
        for u, _, t in capacities
    }
    reports = {u: NodeState(u, capacity=c) for u, c, _ in capacities}
    return ClusterState(nodes=nodes, reports=reports)


def _pool(maximum: int | None, shared: bool = True) -> Capacity:
    return Capacity("loopback", 4 * GiB, maximum, maximum, shared)


def test_no_reports_accept_up_to_the_ceiling():
    """Without reports any size up to the ceiling passes; above it is refused."""
    check_create(SIZE_CEILING, A, _state(), NOW, 30)
    with pytest.raises(InvalidRequest, match="ceiling"):
        check_create(SIZE_CEILING + 1024, A, _state(), NOW, 30)


def test_nodes_without_a_maximum_do_not_limit():
    """A report with no capacity, or no maximum, limits nothing."""
    state = _state((A, None, NOW), (B, _pool(None), NOW))
    check_create(10 * GiB, A, state, NOW, 30)


def test_largest_live_node_names_itself():
    """Refused above every live node; the message names the node with the most room."""
    state = _state((A, _pool(GiB), NOW), (B, _pool(3 * GiB), NOW), (UUID(int=3), _pool(9 * GiB), 0))
    with pytest.raises(InvalidRequest, match=r"the largest is 3 GiB \(node2, loopback backend"):
        check_create(4 * GiB, A, state, NOW, 30)


def test_move_of_an_unreported_dataset_needs_room_on_the_target():
    """A dataset no node reports yet must be created by the new primary: its limit applies."""
    state = _state((A, _pool(4 * GiB), NOW), (B, _pool(GiB), NOW))
    with pytest.raises(InvalidRequest, match="cannot move to node node2"):
        check_move(Dataset(UUID(int=9), A, 2 * GiB), B, state, NOW, 30)
    check_move(Dataset(UUID(int=9), A, GiB), B, state, NOW, 30)


def test_move_looks_only_at_a_live_target_and_its_roomiest_backend():
    """A silent target, one without a maximum, and the same primary pass whatever the size;
    a target with several backends is judged by the one that can create the most."""
    small = _state((A, _pool(4 * GiB), NOW), (B, _pool(GiB), 0))
    check_move(Dataset(UUID(int=9), A, 2 * GiB), B, small, NOW, 30)  # B is not live
    check_move(Dataset(UUID(int=9), A, 2 * GiB), A, small, NOW, 30)  # no move at all
    unlimited = _state((A, _pool(4 * GiB), NOW), (B, _pool(None), NOW))
    check_move(Dataset(UUID(int=9), A, 2 * GiB), B, unlimited, NOW, 30)
    two = ClusterState(
        nodes={B: Node(B, "h2", labels={"name": "node2"}, last_seen=NOW)},
        reports={B: NodeState(B, capacities=(Capacity("a", None, GiB, GiB, False),
                                             Capacity("b", None, 3 * GiB, 3 * GiB, False)))},
    )
    check_move(Dataset(UUID(int=9), A, 2 * GiB), B, two, NOW, 30)
    with pytest.raises(InvalidRequest, match=r"at most 3 GiB \(node2, b backend"):
        check_move(Dataset(UUID(int=9), A, 4 * GiB), B, two, NOW, 30)


def test_move_in_a_shared_pool_that_reports_the_volume_needs_no_room():
    """In a shared pool whose nodes report the dataset's volume, the volume moves with it."""
    state = _state((A, _pool(4 * GiB), NOW), (B, _pool(GiB), NOW))
    dataset = Dataset(UUID(int=9), A, 2 * GiB)
    holding = NodeState(A, capacity=_pool(4 * GiB), datasets={dataset.dataset_id: None})
    check_move(dataset, B, ClusterState(nodes=state.nodes, reports={**state.reports, A: holding}),
               NOW, 30)
    local = _state((A, _pool(4 * GiB), NOW), (B, _pool(GiB, shared=False), NOW))
    with pytest.raises(InvalidRequest, match="cannot move to node node2"):
        check_move(dataset, B, local, NOW, 30)
