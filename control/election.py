"""
Leader election among control replicas: the pure decisions (see :mod:`control.leader`).

A replica leads while its dedicated database session holds an advisory lock.
The lock alone is not enough: the server frees it the moment the session's
backend dies, while the replica may not learn of that for a while (a network
partition, a hung socket), and would go on acting beside the next leader.
So leading is bounded in time on both sides:

- the leader confirms it still holds the lock every ``interval`` seconds and
  acts only until ``lease`` seconds after the *sending* of its last confirmed
  check (the lock was certainly held when the server answered, which is later);
- a replica that wins the lock acts only ``takeover`` seconds after it
  *received* the answer (the lock was certainly free before that), and
  ``takeover`` is longer than ``lease``.

Whatever happened to the old leader's session, it stopped acting at most
``lease`` seconds after the server last saw it holding the lock, and the new
leader starts at least ``takeover`` seconds after it was freed. The argument
needs only that the replicas' clocks run at about the same rate, not that
they agree.

Everything here is a pure function of frozen values; time comes in as numbers.
"""

from __future__ import annotations

from enum import Enum

from attrs import evolve, field, frozen


class Step(Enum):
    """What the elector asks its session to do next."""

    TRY_LOCK = "try_lock"
    """Try to take the lock without waiting (we do not hold it)."""
    CHECK = "check"
    """Confirm that our session still holds the lock."""


def _takeover_longer_than_lease(instance: ElectionSettings, _: object, takeover: float) -> None:
    if takeover <= instance.lease:
        raise ValueError(
            f"the takeover delay ({takeover:g} s) must be longer than the lease "
            f"({instance.lease:g} s), or an old leader could still act beside the new one"
        )


@frozen
class ElectionSettings:
    """The timings of the election, in seconds."""

    interval: float = 0.5
    """Between two lock attempts (follower) or checks (leader)."""
    lease: float = 2.0
    """A leader acts until this long after sending its last confirmed check."""
    takeover: float = field(default=3.0, validator=_takeover_longer_than_lease)
    """A new leader waits this long after winning the lock before it acts."""
    timeout: float = 1.0
    """A statement on the election session that takes longer fails (and so does the check)."""


@frozen
class Election:
    """One replica's view of the election."""

    holding: bool = False
    """Whether our session holds the lock, as far as we know."""
    won_at: float | None = None
    """When we received the answer that we won the lock."""
    confirmed_at: float | None = None
    """When we sent the newest check the server answered with "still held"."""


def next_step(election: Election) -> Step:
    """The next thing to ask of the session."""
    return Step.CHECK if election.holding else Step.TRY_LOCK


def won(election: Election, sent_at: float, answered_at: float) -> Election:
    """We took the lock: the attempt was sent at ``sent_at`` and answered at ``answered_at``."""
    return Election(holding=True, won_at=answered_at, confirmed_at=sent_at)


def confirmed(election: Election, sent_at: float) -> Election:
    """A check sent at ``sent_at`` found the lock still ours."""
    if not election.holding:
        return election
    newest = sent_at if election.confirmed_at is None else max(election.confirmed_at, sent_at)
    return evolve(election, confirmed_at=newest)


def lost(election: Election) -> Election:
    """The lock was not taken, is no longer ours, or the session failed: we follow."""
    return Election()


def acting(election: Election, now: float, settings: ElectionSettings) -> bool:
    """Whether the replica may do the leader's work at ``now``."""
    if not election.holding or election.won_at is None or election.confirmed_at is None:
        return False
    if now < election.won_at + settings.takeover:
        return False
    return now < election.confirmed_at + settings.lease


def acting_from(election: Election, settings: ElectionSettings) -> float | None:
    """When a replica that won the lock starts acting, or ``None`` if it does not hold it."""
    if not election.holding or election.won_at is None:
        return None
    return election.won_at + settings.takeover
