"""Tests for targeted watches: a write wakes only the watchers it concerns (issue 16)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from control.api.watch import Notifier
from control.model import Versions
from tests.control.api.harness import DATASET_1, DATASET_2, NODE_A, NODE_B, Harness
from tests.control.api.watching import (
    NODE_C,
    WATCH,
    Counters,
    counted_notifier,
    fired,
    started_watches,
)

NO_STATE = 10**18 - 1


def _notifier() -> tuple[Counters, Notifier]:
    return counted_notifier()


def test_change_wakes_only_the_waiters_it_concerns() -> None:
    """A generation recorded as concerning A wakes A's waiter, not B's, and every untargeted one."""
    counters, notifier = _notifier()
    a, b = fired(notifier.wait(0, 0, 30, {NODE_A})), fired(notifier.wait(0, 0, 30, {NODE_B}))
    everything = fired(notifier.wait(0, 0, 30))
    counters.versions = Versions(1, 0)
    notifier.changed(1, {NODE_A, DATASET_1})
    notifier.check()
    assert a == [Versions(1, 0)] and everything == [Versions(1, 0)]
    assert b == [] and notifier.waiting == 1


def test_unrecorded_change_wakes_everyone() -> None:
    """A generation without a record (another replica's write) wakes targeted waiters too."""
    counters, notifier = _notifier()
    b = fired(notifier.wait(0, 0, 30, {NODE_B}))
    counters.versions = Versions(1, 0)
    notifier.check()
    assert b == [Versions(1, 0)]


def test_skipped_generations_are_not_looked_at_again() -> None:
    """A waiter not concerned by generation 1 still wakes for a later one concerning it."""
    counters, notifier = _notifier()
    b = fired(notifier.wait(0, 0, 30, {NODE_B}))
    counters.versions = Versions(1, 0)
    notifier.changed(1, {NODE_A})
    notifier.check()
    assert b == []
    counters.versions = Versions(2, 0)
    notifier.changed(2, {DATASET_2, NODE_B})
    notifier.check()
    assert b == [Versions(2, 0)]


def test_state_wakes_targeted_waiters() -> None:
    """The state counter wakes a targeted waiter that asked for it."""
    counters, notifier = _notifier()
    b = fired(notifier.wait(0, 0, 30, {NODE_B}))
    counters.versions = Versions(0, 1)
    notifier.check()
    assert b == [Versions(0, 1)]


def test_timeouts_share_one_read() -> None:
    """Waiters whose time is up together are answered from one read of the counters."""
    reads: list[Deferred] = []

    def read() -> Deferred:
        reads.append(Deferred())
        return reads[-1]

    clock = Clock()
    notifier = Notifier(clock, read, interval=100.0)
    notifier._latest = Versions(0, 0)
    first, second = fired(notifier.wait(0, 0, 5)), fired(notifier.wait(0, 0, 5))
    reads.clear()
    clock.advance(5)
    assert len(reads) == 1
    reads[0].callback(Versions(0, 0))
    assert first == second == [Versions(0, 0)] and notifier.waiting == 0


# -- the route ----------------------------------------------------------------


def _cluster() -> Harness:
    h = Harness()
    for number, node in enumerate((NODE_A, NODE_B, NODE_C)):
        h.register(node, host=f"10.0.0.{number + 1}")
    return h


def _watch(h: Harness, query: str) -> Deferred:
    d = h.start("GET", f"{WATCH}?configuration=0&state={NO_STATE}&timeout=60&{query}")
    h.client.flush()
    return d


def test_a_move_wakes_its_two_nodes_not_a_third() -> None:
    """Moving a dataset from A to B wakes A's and B's watches, not C's; a plain watch wakes."""
    h = _cluster()
    h.create(dataset_id=str(DATASET_1), primary=NODE_A)
    generation = h.memory.versions().configuration
    watches = {
        name: fired(h.start("GET", f"{WATCH}?configuration={generation}&state={NO_STATE}"
                             f"&timeout=60{query}"))
        for name, query in [("a", f"&node={NODE_A}"), ("b", f"&node={NODE_B}"),
                            ("c", f"&node={NODE_C}"), ("all", "")]
    }
    h.client.flush()
    assert not any(watches.values())
    answer = h.call("POST", f"/v1/configuration/datasets/{DATASET_1}", {"primary": str(NODE_B)})
    assert answer.code == 200
    h.client.flush()
    woken = sorted(name for name, seen in watches.items() if seen)
    assert woken == ["a", "all", "b"]
    assert h.api.notifier.waiting == 1


def test_a_watch_naming_a_dataset_wakes_for_it() -> None:
    """A node watching a dataset it holds but is not primary of wakes when that dataset changes."""
    h = _cluster()
    h.create(dataset_id=str(DATASET_1), primary=NODE_A)
    generation = h.memory.versions().configuration
    seen = fired(h.start("GET", f"{WATCH}?configuration={generation}&state={NO_STATE}"
                                 f"&timeout=60&node={NODE_C}&datasets={DATASET_1}"))
    h.client.flush()
    h.call("DELETE", f"/v1/configuration/datasets/{DATASET_1}")
    h.client.flush()
    assert len(seen) == 1


def test_targeted_watch_times_out_with_the_latest_counters() -> None:
    """A watch not woken answers the current counters at its timeout, as before."""
    h = _cluster()
    d = _watch(h, f"node={NODE_C}")
    h.create(dataset_id=str(DATASET_1), primary=NODE_A)
    h.client.flush()
    assert not fired(d)
    h.clock.advance(60)
    assert h.finish(d).body["configuration"] == 1


def test_bad_targets_are_refused() -> None:
    """A node or dataset that is not a UUID is refused with 400."""
    h = _cluster()
    for query in ["node=nope", "datasets=1,2", f"node={NODE_A}&node={NODE_B}"]:
        assert h.call("GET", f"{WATCH}?{query}").code == 400, query


def _watches(h: Harness) -> dict[str, list[Any]]:
    """A watch of each node (and an untargeted one) from the current generation."""
    generation = h.memory.versions().configuration
    return started_watches(h, generation, NO_STATE, [
        ("a", f"&node={NODE_A}"), ("b", f"&node={NODE_B}"),
        ("c", f"&node={NODE_C}&datasets={DATASET_1}"), ("all", ""),
    ])


def test_a_snapshot_wakes_only_its_primary() -> None:
    """Asking for a snapshot of A's dataset wakes A's watch (A makes it) and the untargeted
    one, not B's, nor C's though C watches the dataset."""
    h = _cluster()
    h.create(dataset_id=str(DATASET_1), primary=NODE_A)
    watches = _watches(h)
    answer = h.call("POST", "/v1/shoal/snapshots", {"dataset_id": str(DATASET_1)})
    assert answer.code == 201
    h.client.flush()
    assert sorted(name for name, seen in watches.items() if seen) == ["a", "all"]


def test_a_snapshot_delete_wakes_only_the_node_in_charge() -> None:
    """Deleting a snapshot wakes the node that destroys it (its source's primary) only."""
    h = _cluster()
    h.create(dataset_id=str(DATASET_1), primary=NODE_B)
    snapshot = h.call("POST", "/v1/shoal/snapshots", {"dataset_id": str(DATASET_1)}).body
    watches = _watches(h)
    answer = h.call("DELETE", f"/v1/shoal/snapshots/{snapshot['snapshot_id']}")
    assert answer.code == 200
    h.client.flush()
    assert sorted(name for name, seen in watches.items() if seen) == ["all", "b"]


def test_a_snapshot_of_a_gone_node_wakes_the_live_node_taking_over() -> None:
    """When the recorded node is not live, the node in charge instead (the first live one
    by uuid, the source's primary being gone) is woken, not the gone node only."""
    h = _cluster()
    h.create(dataset_id=str(DATASET_1), primary=NODE_A)
    h.clock.advance(3600)  # every node's last report is long past: none is live
    h.register(NODE_C, host="10.0.0.3")
    watches = _watches(h)
    assert h.call("POST", "/v1/shoal/snapshots", {"dataset_id": str(DATASET_1)}).code == 201
    h.client.flush()
    assert sorted(name for name, seen in watches.items() if seen) == ["all", "c"]

