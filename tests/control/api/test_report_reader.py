"""A report whose body repeats the node's last one is taken as that report again, newly timed."""

from __future__ import annotations

from tests.control.api.harness import DATASET_1, MOUNT_ROOT, NODE_A, NODE_B, Harness


def _body(status: str = "mounted") -> dict[str, object]:
    entry = {"dataset_id": str(DATASET_1), "status": status, "device": "/dev/x"}
    if status == "mounted":
        entry["path"] = f"{MOUNT_ROOT}/{DATASET_1}"
    return {"era": "e1", "generation": 1, "datasets": [entry]}


def test_repeated_body_is_the_same_report_at_a_new_time() -> None:
    """The same body twice: unchanged, stamped with the second time; a new body is read."""
    h = Harness()
    h.register()
    h.create(dataset_id=str(DATASET_1))
    path = f"/v1/shoal/state/{NODE_A}"
    assert h.call("PUT", path, _body()).body["changed"] is True
    h.clock.advance(5)
    assert h.call("PUT", path, _body()).body["changed"] is False
    report = h.memory.cluster_state().reports[NODE_A]
    assert report.reported_at == h.clock.seconds()
    assert h.call("PUT", path, _body("attached")).body["changed"] is True
    assert h.memory.cluster_state().reports[NODE_A].datasets[DATASET_1].status.value == "attached"


def test_repeated_body_is_still_checked() -> None:
    """A body kept from one node is refused for another unregistered node, and a malformed
    body or content type is refused after a good one."""
    h = Harness()
    h.register()
    h.create(dataset_id=str(DATASET_1))
    path = f"/v1/shoal/state/{NODE_A}"
    assert h.call("PUT", path, _body()).code == 200
    assert h.call("PUT", f"/v1/shoal/state/{NODE_B}", _body()).code == 404
    assert h.call("PUT", path, {"era": "e1"}).code == 400
    refused = h.call("PUT", path, raw=b"{}", headers={"Content-Type": "text/plain"})
    assert refused.code == 415
    h.register(era="e2")
    assert h.call("PUT", path, _body()).code == 409  # its era is stale now
