"""Tests for the targeted state wake: a report wakes only the watchers it concerns (issue 16)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from control.api.watch import REMEMBERED, Notifier
from control.model import Versions
from tests.control.api.harness import DATASET_1, DATASET_2, NODE_A, NODE_B, Harness
from tests.control.api.watching import (
    NODE_C,
    Counters,
    counted_notifier,
    fired,
    started_watches,
)


def _notifier() -> tuple[Counters, Notifier]:
    return counted_notifier(Versions(5, 0))


def test_a_recorded_state_version_wakes_only_whom_it_names() -> None:
    """A state version recorded as concerning A and B wakes their waiters and the untargeted
    one, not C's."""
    counters, notifier = _notifier()
    waiters = {name: fired(notifier.wait(5, 0, 30, concerns))
               for name, concerns in [("a", {NODE_A}), ("b", {NODE_B}), ("c", {NODE_C}),
                                      ("all", None)]}
    notifier.reached(1, 1, {NODE_A, NODE_B, DATASET_1}, generation=5)
    counters.versions = Versions(5, 1)
    notifier.check()
    assert sorted(name for name, seen in waiters.items() if seen) == ["a", "all", "b"]
    assert notifier.waiting == 1


def test_a_waiter_naming_the_dataset_wakes() -> None:
    """A waiter naming a dataset whose state changed wakes, whatever node it is."""
    counters, notifier = _notifier()
    seen = fired(notifier.wait(5, 0, 30, {NODE_C, DATASET_1}))
    notifier.reached(1, 1, {NODE_A, DATASET_1}, generation=5)
    counters.versions = Versions(5, 1)
    notifier.check()
    assert seen == [Versions(5, 1)]


def test_an_unrecorded_state_version_wakes_everyone() -> None:
    """A version with no record (another replica's report, a fence) wakes targeted waiters,
    even when the versions around it are recorded."""
    counters, notifier = _notifier()
    seen = fired(notifier.wait(5, 0, 30, {NODE_C}))
    notifier.reached(1, 1, {NODE_A}, generation=5)
    notifier.reached(3, 3, {NODE_A}, generation=5)
    counters.versions = Versions(5, 3)
    notifier.check()
    assert seen == [Versions(5, 3)]


def test_a_record_older_than_the_waiters_configuration_wakes_it() -> None:
    """A record made at an older generation than the waiter's wakes it: it may have learned
    since of a dataset whose primary the record did not look up."""
    counters, notifier = _notifier()
    seen = fired(notifier.wait(6, 0, 30, {NODE_C}))
    notifier.reached(1, 1, {NODE_A}, generation=5)
    counters.versions = Versions(6, 1)
    notifier.check()
    assert seen == [Versions(6, 1)]


def test_versions_found_not_to_concern_are_not_looked_at_again() -> None:
    """A waiter passed over by versions 1-2 still wakes for version 3 naming it."""
    counters, notifier = _notifier()
    seen = fired(notifier.wait(5, 0, 30, {NODE_C}))
    notifier.reached(1, 2, {NODE_A}, generation=5)
    counters.versions = Versions(5, 2)
    notifier.check()
    assert seen == []
    notifier.reached(3, 3, {NODE_B, NODE_C}, generation=5)
    counters.versions = Versions(5, 3)
    notifier.check()
    assert seen == [Versions(5, 3)]


def test_a_waiter_that_saw_the_version_is_not_woken() -> None:
    """Only versions after the one a waiter saw count; NO_STATE waiters never wake on state."""
    counters, notifier = _notifier()
    notifier.reached(1, 1, {NODE_C}, generation=5)
    counters.versions = Versions(5, 1)
    notifier.check()
    seen = fired(notifier.wait(5, 1, 30, {NODE_C}))
    never = fired(notifier.wait(5, 10**18 - 1, 30, {NODE_C}))
    counters.versions = Versions(5, 2)
    notifier.reached(2, 2, {NODE_A}, generation=5)
    notifier.check()
    assert seen == [] and never == []


def test_forgotten_records_concern_everyone() -> None:
    """Only the last :data:`REMEMBERED` versions' records are kept: an older one wakes all."""
    counters, notifier = _notifier()
    notifier.reached(1, REMEMBERED + 10, {NODE_A}, generation=5)
    seen = fired(notifier.wait(5, 0, 30, {NODE_C}))
    later = fired(notifier.wait(5, 10, 30, {NODE_C}))
    counters.versions = Versions(5, REMEMBERED + 10)
    notifier.check()
    assert seen == [Versions(5, REMEMBERED + 10)] and later == []


# -- the route ----------------------------------------------------------------


def _report(h: Harness, node: UUID, era: str, *datasets: UUID) -> None:
    body = {"era": era, "generation": h.generation(), "datasets": [
        {"dataset_id": str(d), "status": "attached", "device": f"/dev/{d}"} for d in datasets
    ]}
    assert h.call("PUT", f"/v1/shoal/state/{node}", body).code == 200


def _moved_cluster() -> Harness:
    """A, B and C registered and reporting; dataset 1 attached at A, then moved to B."""
    h = Harness()
    for number, node in enumerate((NODE_A, NODE_B, NODE_C)):
        h.register(node, host=f"10.0.0.{number + 1}", era=f"e{number}")
    h.create(dataset_id=str(DATASET_1), primary=NODE_A)
    h.create(dataset_id=str(DATASET_2), primary=NODE_C)
    _report(h, NODE_A, "e0", DATASET_1)
    _report(h, NODE_B, "e1")
    _report(h, NODE_C, "e2", DATASET_2)
    answer = h.call("POST", f"/v1/configuration/datasets/{DATASET_1}", {"primary": str(NODE_B)})
    assert answer.code == 200
    return h


def _state_watches(h: Harness) -> dict[str, list[Any]]:
    """Each node's targeted watch of the state (and an untargeted one), from now."""
    versions = h.memory.versions()
    return started_watches(h, versions.configuration, versions.state, [
        ("a", f"&node={NODE_A}"), ("b", f"&node={NODE_B}"), ("c", f"&node={NODE_C}"),
        ("all", ""),
    ])


def test_old_primary_letting_go_wakes_the_new_primary_not_a_third_node() -> None:
    """A's report that it let dataset 1 go wakes B (its new primary) and A, not C."""
    h = _moved_cluster()
    watches = _state_watches(h)
    _report(h, NODE_A, "e0")
    h.client.flush()
    assert sorted(name for name, seen in watches.items() if seen) == ["a", "all", "b"]
    assert h.api.notifier.waiting == 1


def test_a_report_changing_nothing_of_others_wakes_only_its_node() -> None:
    """C's report that it let go of its own dataset wakes C only."""
    h = _moved_cluster()
    watches = _state_watches(h)
    _report(h, NODE_C, "e2")
    h.client.flush()
    assert sorted(name for name, seen in watches.items() if seen) == ["all", "c"]


def test_a_fence_wakes_every_state_watch() -> None:
    """A state write whose reach is not computed (a fence) wakes every state watcher."""
    h = _moved_cluster()
    watches = _state_watches(h)
    answer = h.call("POST", f"/v1/shoal/nodes/{NODE_C}/fence", {"reason": "test"})
    assert answer.code in (200, 201), answer.body
    h.client.flush()
    assert sorted(name for name, seen in watches.items() if seen) == ["a", "all", "b", "c"]
