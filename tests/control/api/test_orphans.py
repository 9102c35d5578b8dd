"""Orphaned volumes: listed with the nodes that see them, destroyed through a deleted record."""

from __future__ import annotations

from typing import Any

from tests.control.api.harness import DATASET_1, DATASET_2, NODE_A, NODE_B, GiB, Harness


def _orphan(blockdevice_id: str, dataset: object = DATASET_1) -> dict[str, Any]:
    return {"blockdevice_id": blockdevice_id, "dataset_id": str(dataset), "size": GiB}


def _report(h: Harness, node: object, era: str, orphans: list[Any], generation: int = 0) -> None:
    body = {"era": era, "generation": generation, "datasets": [], "orphans": orphans}
    answer = h.call("PUT", f"/v1/shoal/state/{node}", body)
    assert answer.code == 200, answer.body


def _two_nodes_see_one_orphan() -> Harness:
    h = Harness()
    h.register()
    h.register(NODE_B, "10.0.0.2", "e2")
    _report(h, NODE_B, "e2", [_orphan("vol-1")])
    _report(h, NODE_A, "e1", [_orphan("vol-1")])
    return h


def test_orphans_listed_with_their_nodes() -> None:
    """Every node's orphans are listed, by blockdevice id then node."""
    h = _two_nodes_see_one_orphan()
    answer = h.call("GET", "/v1/shoal/orphans")
    assert answer.code == 200
    assert answer.body == [
        {"node_uuid": str(NODE_A), **_orphan("vol-1")},
        {"node_uuid": str(NODE_B), **_orphan("vol-1")},
    ]


def test_destroy_records_a_deleted_dataset_for_a_node_that_sees_it() -> None:
    """Destroying an orphan records its dataset deleted, so the primary's agent destroys it."""
    h = _two_nodes_see_one_orphan()
    answer = h.call("DELETE", "/v1/shoal/orphans/vol-1")
    assert answer.code == 200, answer.body
    assert answer.body == {
        "dataset_id": str(DATASET_1),
        "primary": str(NODE_A),
        "metadata": {"shoal.orphan": "vol-1"},
        "deleted": True,
        "maximum_size": GiB,
    }
    assert answer.header("X-Configuration-Tag") == "1"
    assert h.call("GET", "/v1/shoal/orphans").body == []
    configuration = h.call("GET", f"/v1/shoal/nodes/{NODE_A}/configuration").body
    assert [d["deleted"] for d in configuration["datasets"]] == [True]
    again = h.call("DELETE", "/v1/shoal/orphans/vol-1")
    assert (again.code, again.body) == (200, answer.body) and h.generation() == 1


def test_destroy_purges_once_the_volume_is_gone() -> None:
    """After the primary reports the volume gone, the record made for it is purged."""
    h = _two_nodes_see_one_orphan()
    h.call("DELETE", "/v1/shoal/orphans/vol-1")
    _report(h, NODE_A, "e1", [], generation=1)
    assert h.call("GET", "/v1/configuration/datasets").body == []


def test_destroy_of_a_live_datasets_volume_refused() -> None:
    """A volume whose dataset is live is no orphan: 409, nothing changes."""
    h = Harness()
    h.register()
    h.create(dataset_id=str(DATASET_2))
    _report(h, NODE_A, "e1", [_orphan("vol-2", DATASET_2)], generation=1)
    assert h.call("GET", "/v1/shoal/orphans").body == []
    answer = h.call("DELETE", "/v1/shoal/orphans/vol-2")
    assert answer.code == 409 and "live dataset" in answer.body["description"]
    records = h.call("GET", "/v1/configuration/datasets").body
    assert [(d["dataset_id"], d["deleted"]) for d in records] == [(str(DATASET_2), False)]


def test_destroy_unknown_orphan_is_404() -> None:
    """An id no node reports is 404, and a stale tag is 412."""
    h = _two_nodes_see_one_orphan()
    answer = h.call("DELETE", "/v1/shoal/orphans/nope")
    assert answer.code == 404 and "shoal volume orphans" in answer.body["description"]
    stale = h.call(
        "DELETE", "/v1/shoal/orphans/vol-1", headers={"X-If-Configuration-Matches": "7"}
    )
    assert stale.code == 412 and h.generation() == 0
