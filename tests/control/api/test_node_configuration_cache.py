"""A node's configuration served from the SQL store's caches equals a cold store's answer."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from control.store.factory import open_store
from tests.control.api.harness import NODE_A, NODE_B, Harness

NODE_C = UUID("cccccccc-0000-4000-8000-000000000003")


def _configurations(harness: Harness) -> dict[UUID, object]:
    return {
        node: harness.call("GET", f"/v1/shoal/nodes/{node}/configuration").body
        for node in (NODE_A, NODE_B, NODE_C)
    }


def _fresh(url: str) -> dict[UUID, object]:
    cold = Harness(memory=open_store(url))
    try:
        return _configurations(cold)
    finally:
        cold.memory.close()  # type: ignore[attr-defined]


def test_configuration_after_moves_equals_fresh_read(tmp_path: Path) -> None:
    """After each move, delete and reader change, both nodes' cached answers equal a cold read."""
    url = f"sqlite:///{tmp_path / 'control.db'}"
    warm = Harness(memory=open_store(url, upgrade=True))
    for node, host in ((NODE_A, "10.0.0.1"), (NODE_B, "10.0.0.2"), (NODE_C, "10.0.0.3")):
        warm.register(node, host=host)
    made = [warm.create(NODE_A).body["dataset_id"] for _ in range(3)]
    many = {"name": "many", "access_modes": ["ReadWriteOnce", "ReadOnlyMany"]}
    assert warm.call("POST", "/v1/shoal/classes", many).code == 201
    asked = {"storage_class": "many", "primary": str(NODE_A), "access_mode": "ReadOnlyMany",
             "maximum_size": 1024**3}
    shared = warm.call("POST", "/v1/shoal/datasets", asked).body["dataset_id"]
    steps = [
        ("POST", f"/v1/configuration/datasets/{made[0]}", {"primary": str(NODE_B)}),
        ("POST", f"/v1/configuration/datasets/{made[1]}", {"primary": str(NODE_B)}),
        ("POST", f"/v1/configuration/datasets/{made[0]}", {"primary": str(NODE_A)}),
        ("DELETE", f"/v1/configuration/datasets/{made[2]}", None),
        ("POST", f"/v1/shoal/datasets/{shared}/readers", {"node": str(NODE_C)}),
    ]
    for method, path, body in steps:
        _configurations(warm)  # the caches are warm before each write
        answer = warm.call(method, path, body)
        assert answer.code in (200, 201), answer.body
        assert _configurations(warm) == _fresh(url), (method, path)
    served = _configurations(warm)
    assert {d["dataset_id"] for d in served[NODE_B]["datasets"]} == {made[1]}  # type: ignore
    assert shared in {d["dataset_id"] for d in served[NODE_C]["datasets"]}  # type: ignore


def test_leases_snapshots_and_also_after_writes_equal_fresh_read(tmp_path: Path) -> None:
    """A lease taken, counting down and expiring, a snapshot asked for and made ready, and a
    dataset asked about by id: each warm answer equals a cold read."""
    url = f"sqlite:///{tmp_path / 'control.db'}"
    warm = Harness(memory=open_store(url, upgrade=True))
    for node, host in ((NODE_A, "10.0.0.1"), (NODE_B, "10.0.0.2"), (NODE_C, "10.0.0.3")):
        warm.register(node, host=host)
    made = [warm.create(NODE_A, maximum_size=1024**3).body["dataset_id"] for _ in range(2)]
    asked = f"/v1/shoal/nodes/{NODE_B}/configuration?also={made[1]}"

    def both() -> tuple[dict[UUID, object], object]:
        return _configurations(warm), warm.call("GET", asked).body

    def cold() -> tuple[dict[UUID, object], object]:
        fresh = Harness(memory=open_store(url))
        fresh.clock.advance(warm.clock.seconds() - fresh.clock.seconds())
        try:
            return _configurations(fresh), fresh.call("GET", asked).body
        finally:
            fresh.memory.close()  # type: ignore[attr-defined]

    lease = {"dataset_id": made[0], "node_uuid": str(NODE_A), "expires": 30}
    snapshot = {"dataset_id": made[1], "name": "nightly"}
    steps: list[tuple[str, str, object]] = [
        ("POST", "/v1/configuration/leases", lease),
        ("POST", "/v1/shoal/snapshots", snapshot),
    ]
    for method, path, body in steps:
        both()  # the caches are warm before each write
        answer = warm.call(method, path, body)
        assert answer.code in (200, 201), answer.body
        assert both() == cold(), (method, path)
    served, also = both()
    assert [x["dataset_id"] for x in served[NODE_A]["leases"]] == [made[0]]  # type: ignore
    assert [x["name"] for x in served[NODE_A]["snapshots"]] == ["nightly"]  # type: ignore
    assert [d["dataset_id"] for d in also["datasets"]] == [made[1]]  # type: ignore
    warm.clock.advance(10)  # the lease counts down without a write
    assert both()[0][NODE_A]["leases"][0]["expires"] == 20  # type: ignore
    assert both() == cold()
    warm.clock.advance(25)  # and expires without one
    assert both()[0][NODE_A]["leases"] == []  # type: ignore
    assert both() == cold()
