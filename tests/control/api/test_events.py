"""The conditions and events routes: what blocks datasets, and what happened to them."""

from __future__ import annotations

from tests.control.api.harness import NODE_A, NODE_B, START, Harness

CONDITION = {
    "kind": "error",
    "reason": "too_large",
    "step": "create",
    "message": "create failed: File too large",
    "since": START,
    "attempts": 3,
    "permanent": True,
}


def _report_condition(h: Harness, dataset_id: str) -> None:
    body = {
        "era": "e1",
        "generation": h.generation(),
        "datasets": [],
        "conditions": [{**CONDITION, "dataset_id": dataset_id}],
    }
    assert h.call("PUT", f"/v1/shoal/state/{NODE_A}", body).code == 200


def test_conditions_are_listed_with_their_node() -> None:
    """A reported condition is served with the reporting node, filtered by dataset."""
    h = Harness()
    h.register()
    dataset_id = h.create().body["dataset_id"]
    _report_condition(h, dataset_id)
    expected = [{**CONDITION, "dataset_id": dataset_id, "node_uuid": str(NODE_A)}]
    assert h.call("GET", "/v1/shoal/conditions").body == expected
    assert h.call("GET", f"/v1/shoal/conditions?dataset={dataset_id}").body == expected
    other = "00000000-0000-4000-8000-000000000009"
    assert h.call("GET", f"/v1/shoal/conditions?dataset={other}").body == []


def test_writes_and_reports_make_events() -> None:
    """Create, move and an agent error appear in order, with actor and details."""
    h = Harness()
    h.register()
    h.register(NODE_B, "10.0.0.2", "e2")
    dataset_id = h.create().body["dataset_id"]
    _report_condition(h, dataset_id)
    h.call("POST", f"/v1/configuration/datasets/{dataset_id}", {"primary": str(NODE_B)})
    answer = h.call("GET", f"/v1/shoal/events?dataset={dataset_id}")
    assert answer.code == 200
    kinds = [(e["kind"], e["node_uuid"]) for e in answer.body]
    assert kinds == [("created", str(NODE_A)), ("error", str(NODE_A)), ("moved", str(NODE_B))]
    moved = answer.body[2]
    assert moved["details"] == {"from": str(NODE_A), "to": str(NODE_B)}
    assert moved["actor"] and answer.body[1]["message"] == CONDITION["message"]


def test_events_since_and_limit_page_forward() -> None:
    """since gives the events after an id; limit bounds the answer; node filters."""
    h = Harness()
    h.register()
    ids = [h.create().body["dataset_id"] for _ in range(3)]
    everything = h.call("GET", "/v1/shoal/events").body
    assert [e["dataset_id"] for e in everything] == ids
    first = everything[0]["id"]
    page = h.call("GET", f"/v1/shoal/events?since={first}&limit=1").body
    assert [e["dataset_id"] for e in page] == ids[1:2]
    assert h.call("GET", f"/v1/shoal/events?node={NODE_B}").body == []


def test_bad_event_queries_are_refused_with_reasons() -> None:
    """A bad id, a bad limit or an unknown parameter: 400 with a message, no 500."""
    h = Harness()
    for query in ("dataset=nope", "node=1", "since=-1", "limit=0", "limit=5000", "colour=red"):
        answer = h.call("GET", f"/v1/shoal/events?{query}")
        assert answer.code == 400, query
        assert answer.body["description"]
