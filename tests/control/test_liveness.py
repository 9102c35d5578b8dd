"""Tests for the liveness rules' allowance for heartbeats written late (control.liveness)."""

from __future__ import annotations

from uuid import UUID

from control.liveness import MAXIMUM_SEEN_FLUSH, FailoverSettings, Liveness, liveness
from control.model import Node

NODE = Node(uuid=UUID(int=1), host="h", last_seen=100.0)


def test_the_flush_is_at_most_a_second_and_half_a_heartbeat() -> None:
    """Heartbeats reach the database at least every second, and twice per heartbeat."""
    assert FailoverSettings(grace=10).seen_flush == MAXIMUM_SEEN_FLUSH == 1.0
    assert FailoverSettings(grace=1).seen_flush == 0.1
    assert FailoverSettings(grace=1).replicated_lag == 0.2


def test_a_replica_allows_for_the_lag() -> None:
    """A node silent for the grace is dead here, but not yet where heartbeats may come late."""
    here = FailoverSettings(grace=10)
    replica = FailoverSettings(grace=10, seen_lag=here.replicated_lag)
    assert liveness(NODE, 110.5, here, started=0.0) is Liveness.DEAD
    assert liveness(NODE, 110.5, replica, started=0.0) is Liveness.SUSPECT
    assert liveness(NODE, 112.0, replica, started=0.0) is Liveness.DEAD
    assert liveness(NODE, 104.5, replica, started=0.0) is Liveness.LIVE
    assert liveness(NODE, 104.5, here, started=0.0) is Liveness.SUSPECT
