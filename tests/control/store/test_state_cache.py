"""The actual-state cache: liveness laid over it, and writes applied only from the version held."""

from __future__ import annotations

import threading
import uuid

from pyrsistent import pmap

from control.model import ClusterState, Node, NodeState
from control.store.state_cache import StateCache, with_liveness, with_report

NODE = uuid.uuid4()


def state(version: int) -> ClusterState:
    """One node, seen at 1.0, with an empty report sent at 1.0."""
    return ClusterState(
        version=version,
        nodes={NODE: Node(uuid=NODE, host="a", last_seen=1.0)},
        reports={NODE: NodeState(node_uuid=NODE, reported_at=1.0)},
    )


def test_liveness_is_laid_over() -> None:
    """Fresh times replace the cached ones; unchanged times keep the very same state."""
    cached = state(1)
    assert with_liveness(cached, {NODE: 1.0}, {NODE: 1.0}) is cached
    fresh = with_liveness(cached, {NODE: 5.0}, {NODE: 4.0})
    assert (fresh.nodes[NODE].last_seen, fresh.reports[NODE].reported_at) == (5.0, 4.0)


def test_liveness_of_some_nodes_only() -> None:
    """Times given for some nodes move theirs alone; a node not in the state is ignored."""
    other = uuid.uuid4()
    cached = ClusterState(
        version=1,
        nodes={NODE: Node(uuid=NODE, host="a", last_seen=1.0),
               other: Node(uuid=other, host="b", last_seen=1.0)},
        reports={NODE: NodeState(node_uuid=NODE, reported_at=1.0)},
    )
    fresh = with_liveness(cached, {other: 7.0, uuid.uuid4(): 9.0}, {other: 7.0})
    assert fresh.nodes[NODE] is cached.nodes[NODE] and fresh.reports == cached.reports
    assert fresh.nodes[other].last_seen == 7.0 and len(fresh.nodes) == 2


def test_get_only_at_the_version() -> None:
    """A cached state is answered only for its own version; an older one never replaces it."""
    cache = StateCache()
    cache.put(state(2))
    cache.put(state(1))
    assert cache.get(1) is None
    assert cache.get(2) == state(2)


def test_advance_only_from_the_version_held() -> None:
    """A write is applied to the cache only if the cache is at the version it started from."""
    cache = StateCache()
    cache.put(state(2))
    report = NodeState(node_uuid=NODE, generation=3)
    cache.advance(1, lambda s: with_report(s, report))
    assert cache.get(2) == state(2)
    cache.advance(2, lambda s: with_report(s, report))
    assert cache.get(2) is None
    advanced = cache.get(3)
    assert advanced is not None and advanced.reports[NODE] == report


def test_share_holds_the_equal_map_only_over_the_report_held() -> None:
    """An equal datasets map replaces the held report's only at the cached version and while
    the cache still holds that report; the map held is answered either way."""
    cache = StateCache()
    cache.put(state(2))
    held = cache.get(2)
    assert held is not None
    old = held.reports[NODE]
    decoded = pmap()
    assert cache.share(1, old, decoded) is old.datasets
    assert cache.share(2, NodeState(node_uuid=NODE), decoded) is old.datasets
    assert cache.get(2) is held
    assert cache.share(2, old, decoded) is decoded
    shared = cache.get(2)
    assert shared is not None and shared.reports[NODE].datasets is decoded
    assert shared == held


def test_a_reader_of_the_next_version_waits_for_an_expected_write() -> None:
    """A reader of version 2 while a write from 1 is expected gets that write's advance, not
    a miss (it would read everything again); without an expected write, or once it settled
    without advancing, the reader misses at once."""
    cache = StateCache(settle_wait=30.0)
    cache.put(state(1))
    token = cache.expect(1)
    found: list[ClusterState | None] = []
    reader = threading.Thread(target=lambda: found.append(cache.get(2)))
    reader.start()
    reader.join(0.2)
    assert reader.is_alive()  # waiting for the advance
    cache.advance(1, lambda s: s)
    cache.settle(token)
    reader.join(10)
    assert found and found[0] is not None and found[0].version == 2
    assert cache.get(3) is None  # nothing expected: no wait
    failed = cache.expect(2)
    cache.settle(failed)  # the write failed: nothing advanced
    assert cache.get(3) is None


def test_a_reader_waits_only_for_a_write_from_the_version_held() -> None:
    """A write expected from another version than the cached one makes no reader wait."""
    cache = StateCache(settle_wait=30.0)
    cache.put(state(1))
    cache.expect(5)
    assert cache.get(2) is None
    assert cache.get(6) is None
