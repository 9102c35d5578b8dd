"""
Keep the actual state between reads: :class:`StateCache`.

Decoding every node's report (one JSON document per node, listing every
dataset it holds) made each ``cluster_state()`` of the SQL store cost
0.2-0.7 s with 10,000 reported datasets. The cache keeps the last
:class:`~control.model.ClusterState` read, keyed by the state version read
from the database in the same transaction, so another replica's write is seen.

Two facts move without moving the state version: when a node was last heard
from (``Node.last_seen``) and when its report was sent (``NodeState.reported_at``).
They are read fresh on every call (one small query each) and laid over the
cached state by :func:`with_liveness`, so liveness never goes stale.

A write of reports advances the cache after its commit. A reader that read the new
version between the two found the cache one version behind, and read every report
again: at 100,000 datasets, seconds of CPU, every few seconds while reports arrive
(the failover pass reads the state each pass; issue 16). So a write declares the
version it starts from before its commit (:meth:`StateCache.expect`), and a reader
of the next version waits for its advance (:meth:`StateCache.settle`), milliseconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from uuid import UUID

from attrs import evolve
from pyrsistent import PMap

from control.model import ClusterState, NodeState


def with_liveness(
    state: ClusterState,
    last_seen: Mapping[UUID, float | None],
    reported_at: Mapping[UUID, float | None],
) -> ClusterState:
    """``state`` with each node's ``last_seen`` and each report's ``reported_at`` as given.

    Nodes and reports whose times are unchanged, or not given, are kept as they
    are (the same objects), so it costs one pass over the times given: those of a
    few nodes cost those nodes, not the cluster's (a group of moves, issue 16).
    """
    known, nodes = state.nodes, state.nodes.evolver()
    for uuid, seen in last_seen.items():
        node = known.get(uuid)
        if node is not None and seen != node.last_seen:
            nodes.set(uuid, evolve(node, last_seen=seen))
    held, reports = state.reports, state.reports.evolver()
    for uuid, at in reported_at.items():
        report = held.get(uuid)
        if report is not None and at != report.reported_at:
            reports.set(uuid, evolve(report, reported_at=at))
    if not nodes.is_dirty() and not reports.is_dirty():
        return state
    return evolve(state, nodes=nodes.persistent(), reports=reports.persistent())


SETTLE_WAIT = 30.0
"""The longest a reader waits for a committed write's advance (seconds; it takes
milliseconds: a bound against a bug, after which the reader reads everything again)."""


class StateCache:
    """Holds at most one :class:`ClusterState`; safe to share between threads."""

    def __init__(self, settle_wait: float = SETTLE_WAIT) -> None:
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._settle_wait = settle_wait
        self._state: ClusterState | None = None
        self._expected: dict[int, int] = {}
        self._tokens = 0

    def get(self, version: int) -> ClusterState | None:
        """The cached state if it is at ``version``, after waiting for the advance of a
        write of this process that moves the cached state to ``version`` (:meth:`expect`)."""
        state = self._state
        if state is not None and state.version == version:
            return state
        with self._settled:
            self._settled.wait_for(lambda: not self._awaited(version), self._settle_wait)
            state = self._state
        return state if state is not None and state.version == version else None

    def _awaited(self, version: int) -> bool:
        """Whether a write expected from the cached version brings it to ``version``."""
        state = self._state
        return (
            state is not None
            and state.version == version - 1
            and state.version in self._expected.values()
        )

    def expect(self, before: int) -> int:
        """Declare a write of this process moving the version from ``before`` by one, about
        to commit (call it in its transaction); returns the token to :meth:`settle` once
        it advanced the cache, or failed."""
        with self._lock:
            self._tokens += 1
            self._expected[self._tokens] = before
            return self._tokens

    def settle(self, token: int) -> None:
        """The write of ``token`` advanced the cache, or failed: wake its readers."""
        with self._settled:
            self._expected.pop(token, None)
            self._settled.notify_all()

    def put(self, state: ClusterState) -> None:
        """Cache ``state`` unless a newer one is already cached."""
        with self._lock:
            if self._state is None or self._state.version <= state.version:
                self._state = state

    def share(self, version: int, old: NodeState, datasets: PMap) -> PMap:
        """Hold ``datasets`` as the datasets of ``old``'s node, if the cached state is at
        ``version`` and still holds the report ``old``; ``datasets`` must equal
        ``old.datasets`` (the same report decoded again, from its body). Returns the map now
        held for the node (``old.datasets`` if the cache moved on).

        A heartbeat's report decoded by the API keeps its states (to read the next body
        against: :mod:`control.api.reports`); holding those here too, instead of the equal
        ones read from the database, keeps one copy of each reported dataset's state, not
        two (100,000 states: about 60 MB; issue 16, bench/README.md "Memory")."""
        with self._lock:
            state = self._state
            if state is None or state.version != version:
                return old.datasets
            if state.reports.get(old.node_uuid) is not old:
                return old.datasets
            shared = evolve(old, datasets=datasets)
            self._state = evolve(state, reports=state.reports.set(old.node_uuid, shared))
            return datasets

    def advance(self, before: int, change: Callable[[ClusterState], ClusterState]) -> None:
        """Apply ``change`` (a committed write that moved the version from ``before`` by one)
        if the cache is at ``before``; otherwise leave it to be read again."""
        with self._lock:
            if self._state is not None and self._state.version == before:
                self._state = evolve(change(self._state), version=before + 1)


def with_report(state: ClusterState, report: NodeState) -> ClusterState:
    """``state`` with ``report`` as its node's latest."""
    return evolve(state, reports=state.reports.set(report.node_uuid, report))
