"""A report whose body repeats the node's last one is taken as that report again, newly timed."""

from __future__ import annotations

from typing import Any

from tests.control.api.harness import DATASET_1, DATASET_2, MOUNT_ROOT, NODE_A, NODE_B, Harness


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


def _entry(dataset: object, status: str = "mounted", **more: object) -> dict[str, object]:
    entry: dict[str, object] = {"dataset_id": str(dataset), "status": status, "device": "/dev/x"}
    if status == "mounted":
        entry["path"] = f"{MOUNT_ROOT}/{dataset}"
    return {**entry, **more}


def _two(first: str = "mounted", second: str = "mounted", **more: object) -> dict[str, object]:
    entries = [_entry(DATASET_1, first), _entry(DATASET_2, second, **more)]
    return {"era": "e1", "generation": 1, "datasets": entries}


def _answers(bodies: list[Any]) -> tuple[list[tuple[int, Any]], Any]:
    """Each body's code and answer in turn, and the report stored last."""
    h = Harness()
    h.register()
    h.create(dataset_id=str(DATASET_1))
    h.create(dataset_id=str(DATASET_2))
    path = f"/v1/shoal/state/{NODE_A}"
    found = []
    for body in bodies:
        answer = h.call("PUT", path, body)
        found.append((answer.code, answer.body))
        h.clock.advance(1)
    return found, h.memory.cluster_state().reports.get(NODE_A)


def test_changed_body_keeps_the_states_it_repeats() -> None:
    """A body changing one dataset of two keeps the other's state (the same object) and reads
    the changed one, as a report read whole would."""
    h = Harness()
    h.register()
    h.create(dataset_id=str(DATASET_1))
    h.create(dataset_id=str(DATASET_2))
    path = f"/v1/shoal/state/{NODE_A}"
    assert h.call("PUT", path, _two()).code == 200
    before = h.memory.cluster_state().reports[NODE_A]
    assert h.call("PUT", path, _two(second="attached")).body["changed"] is True
    after = h.memory.cluster_state().reports[NODE_A]
    assert after.datasets[DATASET_1] is before.datasets[DATASET_1]
    assert after.datasets[DATASET_2].status.value == "attached"
    assert after.datasets[DATASET_2].path is None
    _, whole = _answers([_two(second="attached")])
    assert after.same_observation(whole)
    events = h.call("GET", f"/v1/shoal/events?dataset={DATASET_2}").body
    assert "unmounted" in [e["kind"] for e in events]


def test_changed_body_refused_as_a_whole_one() -> None:
    """After a good body, a body with a bad entry, a dataset listed twice, or an unknown field
    beside repeated ones is refused with the words a first body gets."""
    good = _two()
    twice = {**good, "datasets": [*good["datasets"], _entry(DATASET_1)]}  # type: ignore[misc]
    for bad in (_two(second="melted"), twice, _two(colour="red")):
        alone, _ = _answers([bad])
        after, _ = _answers([good, bad])
        assert alone[0][0] == 400, alone
        assert after[1] == alone[0], bad


def test_changed_body_dropping_and_adding_datasets_reads_as_a_whole_one() -> None:
    """Bodies that drop a dataset, add it back, and change another, each read against the
    last, store what the same body read alone stores."""
    one = {"era": "e1", "generation": 1, "datasets": [_entry(DATASET_2)]}
    bodies = [_two(), one, _two(second="attached"), _two(), one]
    found, last = _answers(bodies)
    assert [code for code, _ in found] == [200] * len(bodies)
    for count in range(1, len(bodies) + 1):
        _, alone = _answers([bodies[count - 1]])
        _, read = _answers(bodies[:count])
        assert read.same_observation(alone), count
    assert set(last.datasets) == {DATASET_2}


def test_changed_body_with_sizes_that_only_equal_the_last_reads_as_a_whole_one() -> None:
    """After a body reporting sizes 1 and 0, a body whose repeated entries say ``true``, ``1.0``
    or ``false`` instead (equal in Python, not integers) is refused as when read alone, and a
    reordered body stores what it stores read alone."""
    sized = {"era": "e1", "generation": 1, "datasets": [
        _entry(DATASET_1, maximum_size=1), _entry(DATASET_2, maximum_size=0)]}
    for first, second in ((True, 0), (1.0, 0), (1, False)):
        bad = {**sized, "datasets": [
            _entry(DATASET_1, maximum_size=first), _entry(DATASET_2, "attached",
                                                          maximum_size=second)]}
        alone, _ = _answers([bad])
        after, _ = _answers([sized, bad])
        assert alone[0][0] == 400, alone
        assert after[1] == alone[0], bad
    reordered = {**sized, "datasets": [
        _entry(DATASET_2, "attached", maximum_size=0), _entry(DATASET_1, maximum_size=1)]}
    found, read = _answers([sized, reordered])
    _, alone = _answers([reordered])
    assert [code for code, _ in found] == [200, 200]
    assert read.same_observation(alone)
    assert read.datasets[DATASET_1].maximum_size == 1
