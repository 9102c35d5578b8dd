"""Placement through the REST API: classes place, bind on first use and refuse moves."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from control.model import UNBOUND
from control.topology import ZONE
from tests.control.api.harness import NODE_A, NODE_B, GiB, Harness

CLASSES = "/v1/shoal/classes"
DATASETS = "/v1/shoal/datasets"
NIL = str(UNBOUND)


def _node(h: Harness, node: UUID, host: str, era: str, zone: str, free: int) -> None:
    body = {"host": host, "era": era, "mount_root": "/mnt", "labels": {ZONE: zone}}
    assert h.call("PUT", f"/v1/shoal/nodes/{node}", body).code == 200
    capacity = {"backend": "loopback", "total": 100 * GiB, "free": free,
                "maximum_volume_size": free, "shared": True}
    report = {"era": era, "generation": h.generation(), "datasets": [], "capacity": capacity}
    assert h.call("PUT", f"/v1/shoal/state/{node}", report).code == 200


def _cluster(**cls: Any) -> Harness:
    """Node A in zone a (10 GiB free), node B in zone b (50 GiB free), and one class."""
    h = Harness()
    _node(h, NODE_A, "10.0.0.1", "e1", "a", 10 * GiB)
    _node(h, NODE_B, "10.0.0.2", "e2", "b", 50 * GiB)
    body = {"name": "c", "default_size": GiB, **cls}
    assert h.call("POST", CLASSES, body).code == 201
    return h


def _create(h: Harness, **fields: Any) -> Any:
    return h.call("POST", DATASETS, {"storage_class": "c", "metadata": {"name": "v"}, **fields})


def test_immediate_places_on_the_roomiest_allowed_node() -> None:
    """An Immediate class places at once: the most free node overall, or in its topology."""
    h = _cluster()
    made = _create(h)
    assert made.code == 201, made.body
    assert made.body["primary"] == str(NODE_B) and made.body["storage_class"] == "c"
    assert made.body["maximum_size"] == GiB
    zoned = _cluster(allowed_topologies=[{ZONE: ["a"]}])
    assert _create(zoned).body["primary"] == str(NODE_A)


def test_no_node_in_the_topology_is_refused_naming_the_term() -> None:
    """With no node in the allowed topology the create is a 409 naming the term."""
    h = _cluster(allowed_topologies=[{ZONE: ["c"]}])
    refused = _create(h)
    assert refused.code == 409
    assert f"[{ZONE}=c]" in refused.body["description"]


def test_wait_for_first_consumer_stays_unbound_until_moved() -> None:
    """A WaitForFirstConsumer dataset is unbound (nil primary on v1) until a move binds it."""
    h = _cluster(binding_mode="WaitForFirstConsumer", allowed_topologies=[{ZONE: ["a"]}])
    made = _create(h)
    assert made.code == 201 and made.body["primary"] == NIL
    listed = h.call("GET", "/v1/configuration/datasets").body
    assert [d["primary"] for d in listed] == [NIL]
    dataset = made.body["dataset_id"]
    refused = h.call("POST", f"/v1/configuration/datasets/{dataset}", {"primary": str(NODE_B)})
    assert refused.code == 409
    assert f"[{ZONE}=a] (it has {ZONE}=b)" in refused.body["description"]
    bound = h.call("POST", f"/v1/configuration/datasets/{dataset}", {"primary": str(NODE_A)})
    assert bound.code == 200 and bound.body["primary"] == str(NODE_A)
    kinds = [e["kind"] for e in h.call("GET", f"/v1/shoal/events?dataset={dataset}").body]
    assert kinds == ["created", "bound"]


def test_unbound_datasets_reach_no_agent() -> None:
    """No node's configuration lists an unbound dataset."""
    h = _cluster(binding_mode="WaitForFirstConsumer")
    _create(h)
    for node in (NODE_A, NODE_B):
        answer = h.call("GET", f"/v1/shoal/nodes/{node}/configuration")
        assert answer.body["datasets"] == []


def test_explicit_primary_outside_the_topology_is_refused() -> None:
    """A create naming a node the class does not allow is refused naming the term."""
    h = _cluster(allowed_topologies=[{ZONE: ["a"]}])
    refused = _create(h, primary=str(NODE_B))
    assert refused.code == 409 and f"{ZONE}=a" in refused.body["description"]
    assert _create(h, primary=str(NODE_A)).code == 201


def test_default_class_applies_to_flocker_v1_creates() -> None:
    """A v1 create gets the default class, and its primary must be allowed by it."""
    h = _cluster(allowed_topologies=[{ZONE: ["a"]}], default=True)
    assert h.create(NODE_B).code == 409
    made = h.create(NODE_A)
    assert made.code == 201 and set(made.body) == {"dataset_id", "primary", "metadata", "deleted",
                                                   "maximum_size"}


def test_access_modes() -> None:
    """RWX is refused; a mode the class does not allow is refused naming the allowed ones."""
    h = _cluster(access_modes=["ReadWriteOnce", "ReadOnlyMany"])
    rwx = _create(h, access_mode="ReadWriteMany")
    assert rwx.code == 400 and "cannot have writers on several nodes" in rwx.body["description"]
    refused = _create(h, access_mode="ReadWriteOncePod")
    assert refused.code == 409
    assert "allows ReadWriteOnce, ReadOnlyMany" in refused.body["description"]
    made = _create(h, access_mode="ReadOnlyMany")
    assert made.code == 201 and made.body["access_mode"] == "ReadOnlyMany"


def test_without_class_or_primary_is_refused() -> None:
    """With no class at all, a create must name its primary."""
    h = Harness()
    h.register()
    refused = h.call("POST", DATASETS, {"metadata": {"name": "v"}})
    assert refused.code == 409 and "Name a primary node, or a storage class" in (
        refused.body["description"]
    )
    unknown = h.call("POST", DATASETS, {"storage_class": "nope"})
    assert unknown.code == 404 and "does not exist" in unknown.body["description"]


def test_relabelled_node_gives_its_dataset_a_condition_not_a_move() -> None:
    """A node whose labels leave the class's topology: its dataset gets a condition, stays."""
    h = _cluster(allowed_topologies=[{ZONE: ["a"]}])
    made = _create(h)
    assert made.body["primary"] == str(NODE_A)
    body = {"host": "10.0.0.1", "era": "e1", "mount_root": "/mnt", "labels": {ZONE: "b"}}
    assert h.call("PUT", f"/v1/shoal/nodes/{NODE_A}", body).code == 200
    found = h.call("GET", "/v1/shoal/conditions").body
    assert [(c["reason"], c["node_uuid"]) for c in found] == [("outside_topology", str(NODE_A))]
    dataset = h.call("GET", "/v1/configuration/datasets").body[0]
    assert dataset["primary"] == str(NODE_A)


def test_unbound_dataset_shows_a_waiting_condition() -> None:
    """An unbound dataset is listed as waiting for its first consumer."""
    h = _cluster(binding_mode="WaitForFirstConsumer")
    made = _create(h)
    found = h.call("GET", f"/v1/shoal/conditions?dataset={made.body['dataset_id']}").body
    assert [(c["kind"], c["reason"], c["node_uuid"]) for c in found] == [
        ("waiting", "unbound", NIL)
    ]


def test_retain_releases_then_adopt_brings_it_back() -> None:
    """Deleting a Retain dataset releases it (v1: deleted); adopt makes it live on its node."""
    h = _cluster(reclaim_policy="Retain")
    made = _create(h)
    dataset, node = made.body["dataset_id"], made.body["primary"]
    report = {"era": "e2", "generation": h.generation(), "datasets": [
        {"dataset_id": dataset, "status": "mounted", "path": f"/mnt/{dataset}",
         "device": "/dev/loop0", "maximum_size": GiB}]}
    assert h.call("PUT", f"/v1/shoal/state/{node}", report).code == 200
    deleted = h.call("DELETE", f"/v1/configuration/datasets/{dataset}")
    assert deleted.code == 200 and deleted.body["deleted"] is True
    assert deleted.body["primary"] == NIL
    listed = h.call("GET", "/v1/configuration/datasets").body
    assert [(d["primary"], d["deleted"]) for d in listed] == [(NIL, True)]
    released = h.call("GET", "/v1/shoal/released").body
    assert [(d["dataset_id"], d["released"], d["deleted"]) for d in released] == [
        (dataset, True, False)
    ]
    node_view = h.call("GET", f"/v1/shoal/nodes/{node}/configuration?also={dataset}").body
    assert [(d["primary"], d["deleted"]) for d in node_view["datasets"]] == [(NIL, False)]
    adopted = h.call("POST", f"/v1/shoal/datasets/{dataset}/adopt", {})
    assert adopted.code == 200, adopted.body
    assert (adopted.body["primary"], adopted.body["released"]) == (node, False)
    assert h.call("GET", "/v1/shoal/released").body == []
    kinds = [e["kind"] for e in h.call("GET", f"/v1/shoal/events?dataset={dataset}").body]
    assert kinds == ["created", "attached", "mounted", "released", "adopted"]


def test_adopt_refusals() -> None:
    """Adopting a live dataset is a 409; one that never had a node needs a node named."""
    h = _cluster(reclaim_policy="Retain", binding_mode="WaitForFirstConsumer")
    dataset = _create(h).body["dataset_id"]
    live = h.call("POST", f"/v1/shoal/datasets/{dataset}/adopt", {"primary": str(NODE_A)})
    assert live.code == 409 and "not released" in live.body["description"]
    h.call("DELETE", f"/v1/configuration/datasets/{dataset}")
    nobody = h.call("POST", f"/v1/shoal/datasets/{dataset}/adopt", {})
    assert nobody.code == 409 and "--node" in nobody.body["description"]
    assert h.call("POST", f"/v1/shoal/datasets/{dataset}/adopt",
                  {"primary": str(NODE_A)}).code == 200


def test_adopt_defaults_to_the_node_it_was_released_from() -> None:
    """A released dataset remembers its node; adopt without a node goes back there."""
    h = _cluster(reclaim_policy="Retain")
    made = _create(h).body
    h.call("DELETE", f"/v1/configuration/datasets/{made['dataset_id']}")
    [released] = h.call("GET", "/v1/shoal/released").body
    assert released["released_from"] == made["primary"]
    adopted = h.call("POST", f"/v1/shoal/datasets/{made['dataset_id']}/adopt", {})
    assert adopted.code == 200 and adopted.body["primary"] == made["primary"]
    assert h.call("POST", f"/v1/shoal/datasets/{NIL}/adopt", {}).code == 404


def _capacity(h: Harness, node: UUID, era: str, read_only_many: bool) -> None:
    capacity = {"backend": "loopback", "total": 100 * GiB, "free": GiB,
                "maximum_volume_size": GiB, "shared": True, "read_only_many": read_only_many}
    report = {"era": era, "generation": h.generation(), "datasets": [], "capacity": capacity}
    assert h.call("PUT", f"/v1/shoal/state/{node}", report).code == 200


def test_read_only_many_readers_over_rest() -> None:
    """A ReadOnlyMany dataset gains a reader on a node whose backend attaches read-only on
    several nodes (409 naming the backend otherwise), loses it by DELETE; the node's
    configuration lists the datasets it reads; a ReadWriteOnce dataset has no readers."""
    h = _cluster(access_modes=["ReadOnlyMany", "ReadWriteOnce"])
    made = _create(h, primary=str(NODE_A))
    dataset = made.body["dataset_id"]
    readers = f"/v1/shoal/datasets/{dataset}/readers"
    refused = h.call("POST", readers, {"node": str(NODE_B)})
    assert refused.code == 409
    assert "cannot attach a volume read-only on several nodes" in refused.body["description"]
    _capacity(h, NODE_B, "e2", True)
    added = h.call("POST", readers, {"node": str(NODE_B)})
    assert added.code == 200, added.body
    assert added.body["readers"] == [str(NODE_B)] and added.body["primary"] == str(NODE_A)
    assert added.body["access_mode"] == "ReadOnlyMany"
    view = h.call("GET", f"/v1/shoal/nodes/{NODE_B}/configuration").body
    assert [d["dataset_id"] for d in view["datasets"]] == [dataset]
    gone = h.call("DELETE", f"{readers}/{NODE_B}")
    assert gone.code == 200 and gone.body["readers"] == []
    assert h.call("GET", f"/v1/shoal/nodes/{NODE_B}/configuration").body["datasets"] == []
    rwo = _create(h, primary=str(NODE_A), access_mode="ReadWriteOnce",
                  metadata={"name": "w"}).body["dataset_id"]
    refused = h.call("POST", f"/v1/shoal/datasets/{rwo}/readers", {"node": str(NODE_B)})
    assert refused.code == 409 and "only a ReadOnlyMany dataset" in refused.body["description"]
    kinds = [e["kind"] for e in h.call("GET", f"/v1/shoal/events?dataset={dataset}").body]
    assert kinds[-2:] == ["reader_added", "reader_removed"]
