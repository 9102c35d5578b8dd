"""Unit tests of binding (pure): failover and moves stay in a class's topology, conditions."""

from __future__ import annotations

import pytest
from attrs import evolve

from control.binding import check_target, new_dataset, placement_conditions
from control.classes import StorageClass
from control.errors import Conflict
from control.failover import MoveDataset, choose_target, plan
from control.model import UNBOUND, ConditionKind, Dataset, VolumeStatus
from control.placement import candidate
from control.topology import ZONE, BindingMode, Requirement, TopologyTerm
from tests.control.test_failover import AUTO, D1, SHARED, A, B, C, G, T, config, node, state

ZONE_A = (TopologyTerm((Requirement(ZONE, ("a",)),)),)
CLASS = StorageClass("za", allowed_topologies=ZONE_A)


def zoned(uuid: object, zone: str, **kwargs: object) -> object:
    """A node in ``zone``."""
    return node(uuid, labels={ZONE: zone}, **kwargs)  # type: ignore[arg-type]


def test_failover_target_stays_in_the_topology() -> None:
    """choose_target skips a roomier node outside the allowed topology."""
    big = evolve(SHARED, free=99)
    s = state(zoned(A, "a"), zoned(B, "b"), zoned(C, "a"), capacity={B: big})  # type: ignore[arg-type]
    assert choose_target(A, SHARED, s, {}, T, G, T) == B
    assert choose_target(A, SHARED, s, {}, T, G, T, topology=ZONE_A) == C


def test_failover_plan_holds_a_dataset_with_no_node_in_its_topology() -> None:
    """A fenced node's dataset fails over inside its class's topology, or stays saying why."""
    dataset = Dataset(D1, A, storage_class="za")
    s = state(zoned(A, "a", fence=AUTO), zoned(B, "b"), zoned(C, "a"))  # type: ignore[arg-type]
    moves = [d for d in plan(config(dataset), s, T, G, T, topologies={"za": ZONE_A}).decisions
             if isinstance(d, MoveDataset)]
    assert [(m.from_node, m.to_node) for m in moves] == [(A, C)]
    s = state(zoned(A, "a", fence=AUTO), zoned(B, "b"))  # type: ignore[arg-type]
    decided = plan(config(dataset), s, T, G, T, topologies={"za": ZONE_A})
    assert not [d for d in decided.decisions if isinstance(d, MoveDataset)]
    assert f"inside [{ZONE}=a]" in decided.memory.held[D1]


def test_moves_outside_the_topology_or_off_a_local_backend_are_refused() -> None:
    """A move names the unmet term; a volume on a node-local backend never moves."""
    s = state(zoned(A, "a"), zoned(B, "b"), zoned(C, "a"))  # type: ignore[arg-type]
    dataset = Dataset(D1, A, storage_class="za")
    with pytest.raises(Conflict, match=f"{ZONE}=a"):
        check_target(dataset, CLASS, candidate(s.nodes[B], s), s)
    check_target(dataset, CLASS, candidate(s.nodes[C], s), s)
    local = evolve(SHARED, backend="local", shared=False)
    s = state(zoned(A, "a"), zoned(C, "a"), capacity={A: local},  # type: ignore[arg-type]
              held={A: {D1: VolumeStatus.MOUNTED}})
    with pytest.raises(Conflict, match="node-local backend 'local'"):
        check_target(dataset, None, candidate(s.nodes[C], s), s)


def test_new_dataset_of_a_wait_class_is_unbound() -> None:
    """A WaitForFirstConsumer class leaves a dataset without a node; Immediate places it."""
    s = state(zoned(A, "a"), zoned(B, "b"))  # type: ignore[arg-type]
    found = [candidate(n, s) for n in s.nodes.values()]
    wait = evolve(CLASS, binding_mode=BindingMode.WAIT)
    assert new_dataset(Dataset(D1, UNBOUND), wait, None, found).primary == UNBOUND
    assert new_dataset(Dataset(D1, UNBOUND), CLASS, None, found).primary == A


def test_placement_conditions() -> None:
    """Unbound datasets wait; one whose node left the topology gets an error, not a move."""
    s = state(zoned(A, "b"))  # type: ignore[arg-type]
    datasets = [Dataset(D1, A, storage_class="za"), Dataset(B, UNBOUND, storage_class="za")]
    found = {c.dataset_id: c for c in placement_conditions(datasets, [CLASS], s, T)}
    assert found[B].kind is ConditionKind.WAITING and found[B].reason == "unbound"
    assert found[D1].kind is ConditionKind.ERROR and found[D1].reason == "outside_topology"
    assert "never moves data silently" in found[D1].message
    s = state(zoned(A, "a"))  # type: ignore[arg-type]
    assert [c.dataset_id for c in placement_conditions(datasets, [CLASS], s, T)] == [B]
