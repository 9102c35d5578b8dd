"""Tests for the state routes and Shoal's agent-facing node routes."""

from __future__ import annotations

from tests.control.api.harness import (
    DATASET_1,
    DATASET_2,
    NODE_A,
    NODE_B,
    START,
    Answer,
    GiB,
    Harness,
)


def _mounted(dataset: object = DATASET_1) -> dict[str, object]:
    return {
        "dataset_id": str(dataset),
        "status": "mounted",
        "maximum_size": GiB,
        "device": "/dev/vdb",
        "path": "/mnt/d1",
    }


def _report(h: Harness, node: object, datasets: list[object], generation: int = 0) -> Answer:
    body = {"era": "e1", "generation": generation, "datasets": datasets}
    return h.call("PUT", f"/v1/shoal/state/{node}", body)


def test_register_and_list_nodes_with_liveness() -> None:
    """A registered node is listed; it stops being live after the node timeout."""
    h = Harness()
    answer = h.call(
        "PUT",
        f"/v1/shoal/nodes/{NODE_A}",
        {"host": "h1", "era": "e1", "labels": {"zone": "a"}, "mount_root": "/mnt/shoal"},
    )
    node = {
        "uuid": str(NODE_A),
        "host": "h1",
        "era": "e1",
        "labels": {"zone": "a"},
        "last_seen": START,
        "live": True,
        "mount_root": "/mnt/shoal",
        "identity": None,
        "liveness": "live",
        "fence": None,
        "draining": False,
        "capacity": None,
        "capacities": [],
    }
    assert (answer.code, answer.body) == (200, node)
    assert h.call("GET", "/v1/shoal/nodes").body == [node]
    h.clock.advance(31)
    assert h.call("GET", "/v1/shoal/nodes").body == [{**node, "live": False, "liveness": "dead"}]


def test_listed_nodes_carry_reported_capacity() -> None:
    """The node list shows each node's last reported capacity, snapshot method included."""
    h = Harness()
    h.register()
    capacity = {
        "backend": "loopback",
        "total": 2**30,
        "free": 2**29,
        "maximum_volume_size": 2**29,
        "shared": True,
        "snapshot_method": "reflink",
    }
    body = {"era": "e1", "generation": 0, "datasets": [], "capacity": capacity}
    assert h.call("PUT", f"/v1/shoal/state/{NODE_A}", body).code == 200
    [listed] = h.call("GET", "/v1/shoal/nodes").body
    assert listed["capacity"] == {**capacity, "read_only_many": False}
    assert listed["capacities"] == [listed["capacity"]]


def test_register_does_not_touch_configuration() -> None:
    """Registering moves the state version, never the configuration generation."""
    h = Harness()
    h.register()
    versions = h.memory.versions()
    assert (versions.configuration, versions.state) == (0, 1)


def test_state_nodes_and_by_era() -> None:
    """Flocker's node list and lookup by era; an unknown era is 404."""
    h = Harness()
    h.register(NODE_B, "10.0.0.2", "e2")
    h.register()
    nodes = h.call("GET", "/v1/state/nodes").body
    assert nodes == [
        {"host": "10.0.0.1", "uuid": str(NODE_A)},
        {"host": "10.0.0.2", "uuid": str(NODE_B)},
    ]
    assert h.call("GET", "/v1/state/nodes/by_era/e2").body == {"uuid": str(NODE_B)}
    missing = h.call("GET", "/v1/state/nodes/by_era/nope")
    assert missing.code == 404 and "'nope'" in missing.body["description"]


def test_report_state_and_state_datasets() -> None:
    """A report answers whether it changed and both counters; state lists it."""
    h = Harness()
    h.register()
    first = _report(h, NODE_A, [_mounted()])
    assert (first.code, first.body) == (200, {"changed": True, "configuration": 0, "state": 2})
    again = _report(h, NODE_A, [_mounted()])
    assert again.body == {"changed": False, "configuration": 0, "state": 2}
    assert h.call("GET", "/v1/state/datasets").body == [
        {"dataset_id": str(DATASET_1), "primary": str(NODE_A), "path": "/mnt/d1",
         "maximum_size": GiB, "device": "/dev/vdb"}
    ]


def test_report_marks_node_seen() -> None:
    """A report refreshes the node's last_seen, keeping it live."""
    h = Harness()
    h.register()
    h.clock.advance(25)
    _report(h, NODE_A, [])
    h.clock.advance(25)
    assert h.call("GET", "/v1/shoal/nodes").body[0]["live"] is True


def test_report_from_unregistered_node_is_404() -> None:
    """An unknown node is told to register first, and nothing changes."""
    h = Harness()
    answer = _report(h, NODE_A, [])
    assert answer.code == 404
    assert "register first" in answer.body["description"]
    assert f"PUT /v1/shoal/nodes/{NODE_A}" in answer.body["description"]
    assert h.memory.versions().state == 0


def test_report_duplicate_dataset_is_400() -> None:
    """A report listing a dataset twice is refused."""
    h = Harness()
    h.register()
    answer = _report(h, NODE_A, [_mounted(), _mounted()])
    assert answer.code == 400 and "more than once" in answer.body["description"]


def test_report_purges_deleted_dataset() -> None:
    """A report that lets a deleted dataset be purged moves the configuration."""
    h = Harness()
    h.register()
    h.create(dataset_id=str(DATASET_1))
    h.call("DELETE", f"/v1/configuration/datasets/{DATASET_1}")
    answer = _report(h, NODE_A, [], generation=2)
    assert answer.body["configuration"] == 3
    assert h.call("GET", "/v1/configuration/datasets").body == []


def test_node_configuration_is_per_node() -> None:
    """A node gets its own datasets, those it asks about, and their leases only."""
    h = Harness()
    h.register()
    h.register(NODE_B, "10.0.0.2", "e2")
    h.create(dataset_id=str(DATASET_1))
    h.create(primary=NODE_B, dataset_id=str(DATASET_2))
    lease = {"dataset_id": str(DATASET_2), "node_uuid": str(NODE_B), "expires": None}
    h.call("POST", "/v1/configuration/leases", lease)
    mine = h.call("GET", f"/v1/shoal/nodes/{NODE_A}/configuration")
    assert mine.code == 200
    assert mine.body["generation"] == 3
    assert [d["dataset_id"] for d in mine.body["datasets"]] == [str(DATASET_1)]
    assert mine.body["leases"] == []
    more = h.call("GET", f"/v1/shoal/nodes/{NODE_A}/configuration?also={DATASET_2}")
    assert [d["dataset_id"] for d in more.body["datasets"]] == [str(DATASET_1), str(DATASET_2)]
    assert more.body["leases"] == [lease]


def test_node_configuration_bad_query() -> None:
    """A malformed id in ``also`` or an unknown parameter is a 400."""
    h = Harness()
    for also in ("xyz", f"{DATASET_1},", f"{DATASET_1}, {DATASET_2}", f"{{{DATASET_1}}}"):
        bad = h.call("GET", f"/v1/shoal/nodes/{NODE_A}/configuration?also={also}")
        assert bad.code == 400 and "UUIDs" in bad.body["description"], also
    unknown = h.call("GET", f"/v1/shoal/nodes/{NODE_A}/configuration?alsoo={DATASET_1}")
    assert unknown.code == 400 and "alsoo" in unknown.body["description"]


def test_register_bad_uuid_and_body() -> None:
    """A malformed node uuid or a body without host is refused and registers nothing."""
    h = Harness()
    assert h.call("PUT", "/v1/shoal/nodes/abc", {"host": "h"}).code == 400
    missing = h.call("PUT", f"/v1/shoal/nodes/{NODE_A}", {"era": "e"})
    assert missing.code == 400 and "host" in missing.body["description"]
    assert h.call("GET", "/v1/shoal/nodes").body == []


def test_state_datasets_after_each_report_sees_it() -> None:
    """Each state listing read after a report that changed something shows that report."""
    h = Harness()
    h.register()
    _report(h, NODE_A, [_mounted()])
    assert [d["dataset_id"] for d in h.call("GET", "/v1/state/datasets").body] == [str(DATASET_1)]
    _report(h, NODE_A, [_mounted(), _mounted(DATASET_2) | {"path": "/mnt/d2"}])
    assert len(h.call("GET", "/v1/state/datasets").body) == 2
    _report(h, NODE_A, [])
    assert h.call("GET", "/v1/state/datasets").body == []
