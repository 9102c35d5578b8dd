"""Admission over HTTP: sizes no live node can create are refused with a 400 naming the limit."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from tests.control.api.harness import DATASET_1, NODE_A, NODE_B, GiB, Harness

DATASETS = "/v1/configuration/datasets"
HUGE = 9223372036854774784


def _report(h: Harness, node: UUID, maximum: int | None, shared: bool = True, **extra: Any) -> None:
    capacity = {
        "backend": "loopback",
        "total": 2 * GiB,
        "free": maximum,
        "maximum_volume_size": maximum,
        "shared": shared,
    }
    era = {NODE_A: "e1", NODE_B: "e2"}[node]
    body = {"era": era, "generation": 0, "datasets": [], "capacity": capacity, **extra}
    answer = h.call("PUT", f"/v1/shoal/state/{node}", body)
    assert answer.code == 200, answer.body


def _two_nodes() -> Harness:
    h = Harness()
    h.register()
    h.register(NODE_B, "10.0.0.2", "e2")
    return h


def test_huge_size_refused_without_reports() -> None:
    """2**63 - 1024 bytes, accepted before, is a 400 naming the ceiling, and nothing changes."""
    h = Harness()
    h.register()
    answer = h.create(maximum_size=HUGE)
    assert answer.code == 400
    assert "at most 64 TiB (the ceiling)" in answer.body["description"]
    assert h.generation() == 0


def test_size_above_every_live_node_refused() -> None:
    """A size above every live node's largest volume names the best node and its limit."""
    h = _two_nodes()
    _report(h, NODE_A, GiB)
    _report(h, NODE_B, 2 * GiB)
    answer = h.create(maximum_size=10 * 1024 * GiB)
    assert answer.code == 400
    description = answer.body["description"]
    assert "10 TiB is larger than any live node can create" in description
    assert "the largest is 2 GiB (10.0.0.2, loopback backend, 2 GiB free)" in description
    assert h.generation() == 0


def test_size_above_the_primary_refused_naming_a_node_that_can() -> None:
    """A size the primary cannot create, but another node can, names both."""
    h = _two_nodes()
    _report(h, NODE_A, GiB)
    _report(h, NODE_B, 2 * GiB)
    answer = h.create(primary=NODE_A, maximum_size=2 * GiB)
    assert answer.code == 400
    assert "at most 1 GiB" in answer.body["description"]
    assert "10.0.0.2 (up to 2 GiB)" in answer.body["description"]
    assert h.create(primary=NODE_B, maximum_size=2 * GiB).code == 201


def test_size_that_fits_accepted() -> None:
    """A size within the primary's limit is created."""
    h = _two_nodes()
    _report(h, NODE_A, GiB)
    assert h.create(maximum_size=GiB).code == 201


def test_dead_nodes_do_not_count() -> None:
    """A node not heard from within the timeout does not limit (nor allow) sizes."""
    h = _two_nodes()
    _report(h, NODE_A, GiB)
    h.clock.advance(31)
    h.register(NODE_B, "10.0.0.2", "e2")
    assert h.create(primary=NODE_B, maximum_size=2 * GiB).code == 201


def test_move_to_node_that_cannot_create_refused() -> None:
    """Moving a dataset to a node with node-local storage too small for it is refused."""
    h = _two_nodes()
    h.create(dataset_id=str(DATASET_1), maximum_size=2 * GiB)
    _report(h, NODE_B, GiB, shared=False)
    move = h.call("POST", f"{DATASETS}/{DATASET_1}", {"primary": str(NODE_B)})
    assert move.code == 400
    assert "at most 1 GiB" in move.body["description"]
    assert h.generation() == 1


def test_move_within_a_shared_pool_needs_no_space() -> None:
    """In a shared pool the existing volume moves with the dataset, whatever is free."""
    h = _two_nodes()
    h.create(dataset_id=str(DATASET_1), maximum_size=2 * GiB)
    mounted = {"dataset_id": str(DATASET_1), "status": "present", "maximum_size": 2 * GiB}
    _report(h, NODE_A, 0, datasets=[mounted])
    _report(h, NODE_B, 0)
    move = h.call("POST", f"{DATASETS}/{DATASET_1}", {"primary": str(NODE_B)})
    assert move.code == 200
