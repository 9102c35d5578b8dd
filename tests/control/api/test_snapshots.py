"""Snapshots, restores, clones and resize through the REST API (real handlers, memory store)."""

from __future__ import annotations

from typing import Any

from tests.control.api.harness import DATASET_1, NODE_A, NODE_B, GiB, Harness

SNAPSHOTS = "/v1/shoal/snapshots"


def _cluster() -> Harness:
    h = Harness()
    h.register()
    h.register(NODE_B, "10.0.0.2", "e2")
    answer = h.create(dataset_id=str(DATASET_1), maximum_size=GiB, metadata={"name": "db"})
    assert answer.code == 201, answer.body
    return h


def _report(h: Harness, node: object, era: str, snapshots: list[Any]) -> None:
    body = {"era": era, "generation": h.generation(), "datasets": [], "snapshots": snapshots}
    answer = h.call("PUT", f"/v1/shoal/state/{node}", body)
    assert answer.code == 200, answer.body


def _snapshot(h: Harness, name: str = "nightly") -> dict[str, Any]:
    answer = h.call("POST", SNAPSHOTS, {"dataset_id": str(DATASET_1), "name": name})
    assert answer.code == 201, answer.body
    return dict(answer.body)


def _ready(h: Harness, snapshot: dict[str, Any]) -> None:
    _report(h, NODE_A, "e1", [{"snapshot_id": snapshot["snapshot_id"], "size": GiB}])


def test_create_snapshot_and_idempotence() -> None:
    """A snapshot is created (201) on the source's primary; asking again answers it (200)."""
    h = _cluster()
    made = _snapshot(h)
    assert (made["node"], made["ready"], made["size"], made["filesystem"]) == (
        str(NODE_A), False, None, "ext4")
    again = h.call("POST", SNAPSHOTS, {"dataset_id": str(DATASET_1), "name": "nightly"})
    assert (again.code, again.body) == (200, made)


def test_name_of_another_dataset_is_a_conflict() -> None:
    """The same name for another dataset's snapshot is refused with 409 and what to do."""
    h = _cluster()
    _snapshot(h)
    other = h.create(maximum_size=GiB).body["dataset_id"]
    answer = h.call("POST", SNAPSHOTS, {"dataset_id": other, "name": "nightly"})
    assert answer.code == 409 and "choose another name" in answer.body["description"]


def test_unknown_dataset_and_bad_name_refused() -> None:
    """A snapshot of an unknown dataset is 404; a name with a slash is 400; nothing changes."""
    h = _cluster()
    before = h.generation()
    unknown = h.call("POST", SNAPSHOTS, {"dataset_id": str(NODE_B)})
    assert unknown.code == 404
    bad = h.call("POST", SNAPSHOTS, {"dataset_id": str(DATASET_1), "name": "a/b"})
    assert bad.code == 400
    assert h.generation() == before and h.call("GET", SNAPSHOTS).body == []


def test_default_name_from_the_dataset() -> None:
    """Without a name, the snapshot is named after the dataset's name."""
    h = _cluster()
    answer = h.call("POST", SNAPSHOTS, {"dataset_id": str(DATASET_1)})
    assert answer.code == 201 and answer.body["name"].startswith("db-")


def test_node_configuration_lists_pending_snapshots_until_ready() -> None:
    """The node in charge sees the snapshot until a report marks it ready (with its size)."""
    h = _cluster()
    made = _snapshot(h)
    path = f"/v1/shoal/nodes/{NODE_A}/configuration"
    assert [s["snapshot_id"] for s in h.call("GET", path).body["snapshots"]] == [
        made["snapshot_id"]]
    assert h.call("GET", f"/v1/shoal/nodes/{NODE_B}/configuration").body["snapshots"] == []
    _ready(h, made)
    shown = h.call("GET", f"{SNAPSHOTS}/{made['snapshot_id']}").body
    assert (shown["ready"], shown["size"]) == (True, GiB)
    assert h.call("GET", path).body["snapshots"] == []
    kinds = [e["kind"] for e in h.call("GET", f"/v1/shoal/events?dataset={DATASET_1}").body]
    assert kinds[-2:] == ["snapshot_created", "snapshot_ready"]


def test_takeover_when_node_in_charge_is_not_live() -> None:
    """A snapshot whose node went silent is handed to a live node."""
    h = _cluster()
    made = _snapshot(h)
    h.clock.advance(60)
    _report(h, NODE_B, "e2", [])
    listed = h.call("GET", f"/v1/shoal/nodes/{NODE_B}/configuration").body["snapshots"]
    assert [s["snapshot_id"] for s in listed] == [made["snapshot_id"]]


def test_delete_snapshot_lists_it_to_destroy_then_purges() -> None:
    """A deleted snapshot goes back to its node to destroy, and is forgotten once gone."""
    h = _cluster()
    made = _snapshot(h)
    _ready(h, made)
    deleted = h.call("DELETE", f"{SNAPSHOTS}/{made['snapshot_id']}")
    assert deleted.code == 200 and deleted.body["deleted"]
    listed = h.call("GET", f"/v1/shoal/nodes/{NODE_A}/configuration").body["snapshots"]
    assert [s["deleted"] for s in listed] == [True]
    _report(h, NODE_A, "e1", [])
    assert h.call("GET", f"{SNAPSHOTS}/{made['snapshot_id']}").code == 404
    assert h.call("DELETE", f"{SNAPSHOTS}/{made['snapshot_id']}").code == 404


def test_list_filters_by_dataset() -> None:
    """The list takes a dataset filter."""
    h = _cluster()
    made = _snapshot(h)
    assert h.call("GET", f"{SNAPSHOTS}?dataset={DATASET_1}").body == [made]
    assert h.call("GET", f"{SNAPSHOTS}?dataset={NODE_A}").body == []
    assert h.call("GET", f"{SNAPSHOTS}?dataset=nope").code == 400


def test_restore_waits_for_ready_then_defaults_from_the_snapshot() -> None:
    """A restore of a snapshot not ready is 409; once ready, size and node default to it."""
    h = _cluster()
    made = _snapshot(h)
    body = {"source": {"kind": "snapshot", "name": "nightly"}, "metadata": {"name": "copy"}}
    early = h.call("POST", "/v1/shoal/datasets", body)
    assert early.code == 409 and "not ready yet; wait for it" in early.body["description"]
    _ready(h, made)
    answer = h.call("POST", "/v1/shoal/datasets", body)
    assert answer.code == 201, answer.body
    restored = answer.body
    assert (restored["primary"], restored["maximum_size"], restored["filesystem"]) == (
        str(NODE_A), GiB, "ext4")
    assert restored["source"] == {"kind": "snapshot", "id": made["snapshot_id"]}
    flocker = h.call("GET", "/v1/configuration/datasets").body
    assert {"dataset_id", "primary", "metadata", "deleted", "maximum_size"} == set(flocker[-1])


def test_restore_smaller_refused_larger_accepted() -> None:
    """A restore smaller than its snapshot is 400; a larger one is accepted."""
    h = _cluster()
    made = _snapshot(h)
    _ready(h, made)
    source = {"kind": "snapshot", "id": made["snapshot_id"]}
    small = h.call("POST", "/v1/shoal/datasets", {"source": source, "maximum_size": 64 * 2**20})
    assert small.code == 400 and "never smaller" in small.body["description"]
    large = h.call("POST", "/v1/shoal/datasets", {"source": source, "maximum_size": 2 * GiB,
                                                   "primary": str(NODE_B)})
    assert large.code == 201 and (large.body["maximum_size"], large.body["primary"]) == (
        2 * GiB, str(NODE_B))


def test_deleting_a_snapshot_keeps_restored_datasets() -> None:
    """A snapshot is kept while a restore from it is pending; deleting it then never touches
    the dataset restored from it."""
    h = _cluster()
    made = _snapshot(h)
    _ready(h, made)
    restored = h.call("POST", "/v1/shoal/datasets",
                      {"source": {"kind": "snapshot", "id": made["snapshot_id"]}}).body
    early = h.call("DELETE", f"{SNAPSHOTS}/{made['snapshot_id']}")
    assert early.code == 409 and "being restored" in early.body["description"]
    present = [{"dataset_id": restored["dataset_id"], "status": "present"}]
    answer = h.call("PUT", f"/v1/shoal/state/{NODE_A}",
                    {"era": "e1", "generation": h.generation(), "datasets": present})
    assert answer.code == 200, answer.body
    assert h.call("DELETE", f"{SNAPSHOTS}/{made['snapshot_id']}").code == 200
    listing = {d["dataset_id"]: d for d in h.call("GET", "/v1/configuration/datasets").body}
    assert not listing[restored["dataset_id"]]["deleted"]


def test_clone_by_name_on_the_source_primary() -> None:
    """A clone of a dataset by name starts on the source's primary with its size."""
    h = _cluster()
    answer = h.call("POST", "/v1/shoal/datasets", {"source": {"kind": "dataset", "name": "db"}})
    assert answer.code == 201, answer.body
    assert (answer.body["primary"], answer.body["maximum_size"]) == (str(NODE_A), GiB)
    events = h.call("GET", f"/v1/shoal/events?dataset={answer.body['dataset_id']}").body
    assert [e["kind"] for e in events] == ["cloned"]


def test_clone_for_another_node_sent_to_the_source_primary() -> None:
    """A clone placed on another node is in its source's primary's configuration (which
    can freeze the source and makes it) until a node reports its volume."""
    h = _cluster()
    answer = h.call("POST", "/v1/shoal/datasets", {"source": {"kind": "dataset", "name": "db"},
                                                   "primary": str(NODE_B)})
    assert answer.code == 201, answer.body
    clone = answer.body["dataset_id"]

    def sent(node: object) -> list[str]:
        body = h.call("GET", f"/v1/shoal/nodes/{node}/configuration").body
        return sorted(d["dataset_id"] for d in body["datasets"])

    assert sent(NODE_A) == sorted([str(DATASET_1), clone])
    assert sent(NODE_B) == [clone]
    present = [{"dataset_id": clone, "status": "present"}]
    reported = h.call("PUT", f"/v1/shoal/state/{NODE_B}",
                      {"era": "e2", "generation": h.generation(), "datasets": present})
    assert reported.code == 200, reported.body
    assert sent(NODE_A) == [str(DATASET_1)]


def test_create_without_source_needs_primary_and_takes_filesystem() -> None:
    """A plain create needs a primary (400 without) and may ask for xfs."""
    h = _cluster()
    assert h.call("POST", "/v1/shoal/datasets", {"maximum_size": GiB}).code == 400
    answer = h.call("POST", "/v1/shoal/datasets",
                    {"primary": str(NODE_B), "filesystem": "xfs", "maximum_size": GiB})
    assert answer.code == 201 and answer.body["filesystem"] == "xfs"
    configuration = h.call("GET", f"/v1/shoal/nodes/{NODE_B}/configuration").body
    assert configuration["datasets"][0]["filesystem"] == "xfs"


def test_unknown_sources_refused() -> None:
    """An unknown snapshot or dataset, by id or name, is 404; a bad kind is 400."""
    h = _cluster()
    for source in ({"kind": "snapshot", "name": "none"}, {"kind": "dataset", "id": str(NODE_A)},
                   {"kind": "snapshot", "id": str(NODE_A)}):
        assert h.call("POST", "/v1/shoal/datasets", {"source": source}).code == 404
    assert h.call("POST", "/v1/shoal/datasets", {"source": {"kind": "x", "id": "y"}}).code == 400


def test_resize_grows_only() -> None:
    """Resize grows (200, event); the same size is a no-op; smaller is 400 saying what to do."""
    h = _cluster()
    path = f"/v1/shoal/datasets/{DATASET_1}/resize"
    grown = h.call("POST", path, {"maximum_size": 2 * GiB})
    assert grown.code == 200 and grown.body["maximum_size"] == 2 * GiB
    generation = h.generation()
    assert h.call("POST", path, {"maximum_size": 2 * GiB}).code == 200
    assert h.generation() == generation
    smaller = h.call("POST", path, {"maximum_size": GiB})
    assert smaller.code == 400 and "only grow" in smaller.body["description"]
    kinds = [e["kind"] for e in h.call("GET", f"/v1/shoal/events?dataset={DATASET_1}").body]
    assert kinds.count("resized") == 1
    assert h.call("POST", f"/v1/shoal/datasets/{NODE_A}/resize", {"maximum_size": GiB}).code == 404

