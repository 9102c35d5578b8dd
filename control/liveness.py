"""
How long a node may go silent: the cluster's failover timing, and each node's liveness.

Pure: every function takes ``now`` and the time the control service started.
The timing is derived from one number, the cluster grace ``G``
(``shoal control serve --failover-grace``, docs/failover.md):

- an agent fences itself after ``node_lease = G/2`` without a successful
  report or registration, measured on its own monotonic clock from when it
  *sent* the last one that succeeded;
- agents report at least every ``heartbeat = min(G/5, 5 s)``;
- the control service calls a node ``suspect`` after two heartbeats without
  a report, and ``dead`` after ``G``: only then may it fence the node.

Each side measures on its own clock, so only clock *rates* matter; the margin
``G - G/2`` covers rate skew and the time the agent takes to fence itself.
Silence is measured from ``max(last_seen, started)``: after the control
service (re)starts, every node gets a fresh grace.

Heartbeats are kept in memory and written to the database every
``seen_flush`` seconds (:mod:`control.store.seen`). A replica on PostgreSQL
reads another replica's heartbeats only from the database, so its liveness
allows for that lag (``seen_lag``): a node is never suspect or dead only
because its heartbeats went to another replica.
"""

from __future__ import annotations

import enum

from attrs import field, frozen

from control.errors import InvalidRequest
from control.model import Node

DEFAULT_GRACE = 10.0
"""The cluster grace (seconds) unless ``--failover-grace`` says otherwise."""

MINIMUM_GRACE = 1.0
"""The shortest cluster grace: anything shorter leaves agents no time to fence themselves."""

MAXIMUM_HEARTBEAT = 5.0
"""Agents report at least this often (seconds), however long the grace: every 2 s with
the default grace, every 5 s from a grace of 25 s (1,000 nodes then cost the control
service 200 heartbeats a second, issue 16)."""

MAXIMUM_SEEN_FLUSH = 1.0
"""Heartbeats kept in memory are written to the database at least this often (seconds)."""

SUSPECT_AFTER_HEARTBEATS = 2
"""Missed heartbeats after which a node is ``suspect``."""


class Liveness(enum.Enum):
    """What the control service makes of a node's silence."""

    LIVE = "live"
    """Heard from within two heartbeats."""
    SUSPECT = "suspect"
    """Two heartbeats missed: an event, nothing more."""
    DEAD = "dead"
    """Silent for the whole grace: the node is fenced and its datasets fail over."""


def _valid_grace(_instance: object, _attribute: object, value: float) -> None:
    if not value >= MINIMUM_GRACE:
        raise InvalidRequest(
            f"The failover grace must be at least {MINIMUM_GRACE:g} s (got {value:g}): agents "
            "need time to notice they are cut off and fence themselves first."
        )


@frozen
class FailoverSettings:
    """The cluster's failover timing, derived from its grace ``G`` (seconds)."""

    grace: float = field(default=DEFAULT_GRACE, validator=_valid_grace)
    seen_lag: float = 0.0
    """Seconds by which a heartbeat may reach this process late: 0 where this process
    hears them all (SQLite), :meth:`replicated_lag` among replicas (PostgreSQL)."""

    @property
    def node_lease(self) -> float:
        """How long an agent may go without a successful report before it fences itself."""
        return self.grace / 2

    @property
    def heartbeat(self) -> float:
        """How often agents report at least."""
        return min(self.grace / 5, MAXIMUM_HEARTBEAT)

    @property
    def seen_flush(self) -> float:
        """How often heartbeats kept in memory are written to the database."""
        return min(self.heartbeat / 2, MAXIMUM_SEEN_FLUSH)

    @property
    def replicated_lag(self) -> float:
        """How late another replica's heartbeats may reach the database: two flushes."""
        return 2 * self.seen_flush

    @property
    def suspect_after(self) -> float:
        """Silence after which a node is suspect."""
        return SUSPECT_AFTER_HEARTBEATS * self.heartbeat


def silence(node: Node, now: float, started: float) -> float:
    """Seconds since the node was last heard from, counting from ``started`` at the earliest."""
    since = started if node.last_seen is None else max(node.last_seen, started)
    return max(0.0, now - since)


def liveness(node: Node, now: float, settings: FailoverSettings, started: float) -> Liveness:
    """The node's liveness at ``now`` (silence less the heartbeats' possible lag)."""
    quiet = silence(node, now, started) - settings.seen_lag
    if quiet >= settings.grace:
        return Liveness.DEAD
    if quiet >= settings.suspect_after:
        return Liveness.SUSPECT
    return Liveness.LIVE
