"""Tests for the lease routes."""

from __future__ import annotations

from tests.control.api.harness import DATASET_1, DATASET_2, NODE_A, NODE_B, Harness

LEASES = "/v1/configuration/leases"


def _harness() -> Harness:
    h = Harness()
    h.register()
    h.create(dataset_id=str(DATASET_1))
    return h


def _lease(node: object = NODE_A, expires: float | None = 60.0) -> dict[str, object]:
    return {"dataset_id": str(DATASET_1), "node_uuid": str(node), "expires": expires}


def test_acquire_renew_and_list() -> None:
    """A new lease is 201, a renewal by the same node 200; listing counts down."""
    h = _harness()
    first = h.call("POST", LEASES, _lease())
    assert (first.code, first.body, first.header("X-Configuration-Tag")) == (
        201,
        _lease(),
        "2",
    )
    h.clock.advance(10)
    assert h.call("GET", LEASES).body == [_lease(expires=50.0)]
    renewed = h.call("POST", LEASES, _lease(expires=None))
    assert (renewed.code, renewed.body["expires"]) == (200, None)


def test_held_by_another_is_409() -> None:
    """Another node's live lease refuses the acquisition."""
    h = _harness()
    h.call("POST", LEASES, _lease())
    answer = h.call("POST", LEASES, _lease(NODE_B))
    assert answer.code == 409 and str(NODE_A) in answer.body["description"]


def test_expired_lease_not_listed_and_replaceable() -> None:
    """An expired lease is not listed, and another node may take the dataset."""
    h = _harness()
    h.call("POST", LEASES, _lease(expires=5.0))
    h.clock.advance(6)
    assert h.call("GET", LEASES).body == []
    assert h.call("POST", LEASES, _lease(NODE_B)).code == 201


def test_acquire_refusals() -> None:
    """Unknown dataset is 404, non-positive expiry 400, stale tag 412."""
    h = _harness()
    unknown = {"dataset_id": str(DATASET_2), "node_uuid": str(NODE_A), "expires": None}
    assert h.call("POST", LEASES, unknown).code == 404
    zero = h.call("POST", LEASES, _lease(expires=0))
    assert zero.code == 400 and zero.body["errors"]
    stale = h.call("POST", LEASES, _lease(), headers={"X-If-Configuration-Matches": "0"})
    assert stale.code == 412
    assert h.generation() == 1


def test_tiny_expiry_is_refused_by_the_schema() -> None:
    """An expiry under a millisecond, which would lapse as it is granted, is a 400 stating
    the documented minimum."""
    h = _harness()
    tiny = h.call("POST", LEASES, _lease(expires=1e-300))
    assert tiny.code == 400 and "at least 0.001" in tiny.body["description"]
    assert h.call("POST", LEASES, _lease(expires=0.001)).code == 201


def test_release() -> None:
    """Releasing answers the released lease; a second release is 404."""
    h = _harness()
    h.call("POST", LEASES, _lease())
    h.clock.advance(20)
    released = h.call("DELETE", f"{LEASES}/{DATASET_1}")
    assert (released.code, released.body, released.header("X-Configuration-Tag")) == (
        200,
        _lease(expires=40.0),
        "3",
    )
    assert h.call("DELETE", f"{LEASES}/{DATASET_1}").code == 404
    assert h.call("GET", LEASES).body == []


def test_release_bad_id_and_stale_tag() -> None:
    """A malformed id is 400 naming it; a stale tag is 412 and keeps the lease."""
    h = _harness()
    h.call("POST", LEASES, _lease())
    bad = h.call("DELETE", f"{LEASES}/zzz")
    assert bad.code == 400 and "'zzz'" in bad.body["description"]
    stale = h.call("DELETE", f"{LEASES}/{DATASET_1}", headers={"X-If-Configuration-Matches": "1"})
    assert stale.code == 412
    assert len(h.call("GET", LEASES).body) == 1


def test_acquire_with_move() -> None:
    """``move: true`` leases the dataset to the node and makes it the primary in one write."""
    h = _harness()
    h.register(NODE_B, host="10.0.0.2", era="e2")
    before = h.generation()
    answer = h.call("POST", LEASES, {**_lease(NODE_B, None), "move": True})
    assert (answer.code, answer.body) == (201, _lease(NODE_B, None))
    assert h.generation() == before + 1
    stored = h.memory.dataset(DATASET_1)
    assert stored is not None and stored.primary == NODE_B


def test_acquire_with_move_to_draining_node_refused() -> None:
    """The move's refusals refuse the lease too (a draining node takes no dataset): nothing
    is written."""
    h = _harness()
    h.register(NODE_B, host="10.0.0.2", era="e2")
    assert h.call("POST", f"/v1/shoal/nodes/{NODE_B}/drain").code == 200
    before = h.generation()
    answer = h.call("POST", LEASES, {**_lease(NODE_B, None), "move": True})
    assert answer.code == 409, answer.body
    assert h.generation() == before and h.call("GET", LEASES).body == []
