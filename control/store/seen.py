"""
Heartbeats in memory with a durable floor: :class:`SeenLog`.

A heartbeat is a node's report that says nothing new (the same observation as
its last one), or a registration that says nothing new (an agent restarting).
Writing it costs a write transaction (an fsync on SQLite) only to move two times:
the node's ``last_seen`` and its report's ``reported_at``. The SQL store instead
keeps those times here, lays them over what it reads (:meth:`SeenLog.node`,
:meth:`SeenLog.state`), and writes them all in one
transaction every few seconds (:meth:`~control.store.sql.SQLStore.flush_seen`):
the database holds a floor at most one flush interval old.

Losing the times not yet written (a crash) is harmless: after a restart every
node gets a fresh grace (:mod:`control.liveness`). Another replica reads only the
floor, so on PostgreSQL liveness allows for the flush's lag
(:attr:`control.liveness.FailoverSettings.seen_lag`). A replica whose flush
fails stops taking heartbeats in memory (:attr:`SeenLog.healthy`) until one
succeeds: a heartbeat that cannot reach the database must fail, so that the
agent fences itself in time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from uuid import UUID

from attrs import evolve, frozen

from control.model import ClusterState, Node
from control.store.state_cache import with_liveness


@frozen
class Seen:
    """When a node was last heard from and when its latest report was sent (``None``: only
    a registration was heard, which moves no report's time)."""

    last_seen: float
    reported_at: float | None


def _later(a: Seen | None, b: Seen) -> Seen:
    if a is None:
        return b
    reported = [t for t in (a.reported_at, b.reported_at) if t is not None]
    return Seen(max(a.last_seen, b.last_seen), max(reported) if reported else None)


class SeenLog:
    """The heartbeat times not yet written, and all those heard since start; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[UUID, Seen] = {}
        self._pending: dict[UUID, Seen] = {}
        self.healthy = True
        """False after a flush failed, until one succeeds."""

    def saw(self, node_uuid: UUID, seen: Seen) -> None:
        """Record a heartbeat of ``node_uuid``."""
        with self._lock:
            self._latest[node_uuid] = _later(self._latest.get(node_uuid), seen)
            self._pending[node_uuid] = _later(self._pending.get(node_uuid), seen)

    def forget(self, node_uuid: UUID) -> None:
        """Drop what is known of a node (it registered again or reported through the database)."""
        with self._lock:
            self._latest.pop(node_uuid, None)
            self._pending.pop(node_uuid, None)

    def take(self) -> dict[UUID, Seen]:
        """The times not yet written, now counted as written."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def failed(self, pending: Mapping[UUID, Seen]) -> None:
        """A flush of ``pending`` failed: keep them for the next one, and stop taking heartbeats."""
        with self._lock:
            for uuid, seen in pending.items():
                self._pending[uuid] = _later(self._pending.get(uuid), seen)
            self.healthy = False

    def flushed(self) -> None:
        """A flush succeeded."""
        self.healthy = True

    def node(self, node: Node | None) -> Node | None:
        """``node`` with the latest time it was heard from."""
        if node is None:
            return None
        seen = self._latest.get(node.uuid)
        if seen is None or (node.last_seen is not None and node.last_seen >= seen.last_seen):
            return node
        return evolve(node, last_seen=seen.last_seen)

    def state(self, state: ClusterState) -> ClusterState:
        """``state`` with the latest times its nodes were heard from and their reports sent."""
        return with_liveness(state, *self.times(state, {}, {}))

    def times(
        self,
        state: ClusterState,
        last_seen: Mapping[UUID, float | None],
        reported_at: Mapping[UUID, float | None],
        only: Iterable[UUID] | None = None,
    ) -> tuple[dict[UUID, float | None], dict[UUID, float | None]]:
        """The times to lay over ``state`` (:func:`with_liveness`): ``last_seen`` and
        ``reported_at`` as read (by node; a node not in them keeps the state's), each raised
        to the latest heard here (of the nodes ``only``, if given), so that the times read
        and those heard are laid in one pass."""
        with self._lock:
            if only is None:
                latest = dict(self._latest)
            else:
                latest = {u: s for u in only if (s := self._latest.get(u)) is not None}
        seen, sent = dict(last_seen), dict(reported_at)
        nodes, reports = state.nodes, state.reports
        for uuid, heard in latest.items():
            node = nodes.get(uuid)
            if node is not None:
                seen[uuid] = max(heard.last_seen, seen.get(uuid, node.last_seen) or 0.0)
            report = reports.get(uuid)
            if report is not None and heard.reported_at is not None:
                sent[uuid] = max(heard.reported_at, sent.get(uuid, report.reported_at) or 0.0)
        return seen, sent
