"""Storage classes through the REST API (real handlers, memory store)."""

from __future__ import annotations

from control.topology import ZONE
from tests.control.api.harness import NODE_A, GiB, Harness

CLASSES = "/v1/shoal/classes"
FAST = {
    "name": "fast",
    "backend": "loopback",
    "filesystem": "xfs",
    "default_size": GiB,
    "reclaim_policy": "Retain",
    "binding_mode": "WaitForFirstConsumer",
    "allowed_topologies": [{ZONE: ["a"]}],
    "access_modes": ["ReadWriteOnce", "ReadOnlyMany"],
    "parameters": {"tier": "ssd"},
    "failover": True,
    "failover_grace": 30.0,
    "default": True,
}


def test_create_show_list_and_idempotence() -> None:
    """A class is created (201), shown and listed; the same body again answers it (200)."""
    h = Harness()
    made = h.call("POST", CLASSES, FAST)
    assert made.code == 201, made.body
    assert made.body == {**FAST, "created": made.body["created"]}
    assert h.call("POST", CLASSES, FAST).code == 200
    assert h.call("GET", f"{CLASSES}/fast").body == made.body
    assert h.call("GET", CLASSES).body == [made.body]


def test_other_settings_under_a_name_conflict() -> None:
    """Creating a class again with other settings is a 409 that says what to do."""
    h = Harness()
    h.call("POST", CLASSES, FAST)
    answer = h.call("POST", CLASSES, {**FAST, "filesystem": "ext4"})
    assert answer.code == 409
    assert "shoal class update fast" in answer.body["description"]


def test_patch_changes_only_mutable_fields() -> None:
    """PATCH changes parameters; a fixed field is not in the schema (400)."""
    h = Harness()
    h.call("POST", CLASSES, FAST)
    answer = h.call("PATCH", f"{CLASSES}/fast", {"parameters": {"tier": "nvme"}})
    assert answer.code == 200 and answer.body["parameters"] == {"tier": "nvme"}
    assert h.call("PATCH", f"{CLASSES}/fast", {"filesystem": "ext4"}).code == 400
    assert h.call("PATCH", f"{CLASSES}/nope", {"default": True}).code == 404


def test_refusals() -> None:
    """RWX, a bad name and an unknown class are refused with the right codes."""
    h = Harness()
    rwx = h.call("POST", CLASSES, {"name": "x", "access_modes": ["ReadWriteMany"]})
    assert rwx.code == 400 and "ReadWriteMany is refused" in rwx.body["description"]
    assert h.call("POST", CLASSES, {"name": "Bad Name"}).code == 400
    assert h.call("GET", f"{CLASSES}/nope").code == 404
    assert h.call("GET", f"{CLASSES}/Bad_Name").code == 400
    assert h.call("DELETE", f"{CLASSES}/nope").code == 404


def test_delete_and_events() -> None:
    """Deleting a class answers it; create, update and delete are events."""
    h = Harness()
    h.call("POST", CLASSES, FAST)
    h.call("PATCH", f"{CLASSES}/fast", {"default": False})
    assert h.call("DELETE", f"{CLASSES}/fast").body["name"] == "fast"
    assert h.call("GET", CLASSES).body == []
    kinds = [e["kind"] for e in h.call("GET", "/v1/shoal/events").body]
    assert kinds == ["class_created", "class_updated", "class_deleted"]


def test_datasets_start_with_their_class_failover_options() -> None:
    """A dataset of a class with failover options starts with them; a bad grace is a 400."""
    h = Harness()
    h.register()
    bad = h.call("POST", CLASSES, {"name": "slow", "failover_grace": -1})
    assert bad.code == 400 and "failover_grace" in bad.body["description"]
    slow = {"name": "slow", "failover": False, "failover_grace": 60}
    made = h.call("POST", CLASSES, slow)
    assert made.code == 201, made.body
    body = {"storage_class": "slow", "primary": str(NODE_A)}
    created = h.call("POST", "/v1/shoal/datasets", body)
    assert created.code == 201, created.body
    options = h.call("GET", f"/v1/shoal/datasets/{created.body['dataset_id']}/failover").body
    assert (options["enabled"], options["grace"]) == (False, 60.0)
