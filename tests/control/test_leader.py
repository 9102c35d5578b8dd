"""The elector on a clock: it acts only while its lease runs, and hands over safely."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock

from control.election import ElectionSettings
from control.leader import Elector, SoleLeader

SETTINGS = ElectionSettings(interval=0.5, lease=2.0, takeover=3.0)


class Server:
    """The database's side of one advisory lock: which session holds it."""

    def __init__(self) -> None:
        self.holder: Session | None = None


class Session:
    """A lock session on :class:`Server` whose backend a test can kill or make hang."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.dead = False

    def try_lock(self) -> bool:
        """Take the lock if nobody holds it."""
        if self.dead:
            raise ConnectionError("server closed the connection")
        if self.server.holder is None:
            self.server.holder = self
        return self.server.holder is self

    def holds(self) -> bool:
        """Whether the server still has us as holder."""
        if self.dead:
            raise ConnectionError("server closed the connection")
        return self.server.holder is self

    def close(self) -> None:
        """Drop the connection: the server frees our lock."""
        if self.server.holder is self:
            self.server.holder = None
        self.dead = False

    def kill_backend(self) -> None:
        """The server's backend for this session dies: it frees the lock at once."""
        self.close()


class HeldRunner:
    """A runner that can hold calls unanswered (a hung socket) until released."""

    def __init__(self) -> None:
        self.hung = False
        self.held: list[tuple[Deferred[Any], Callable[[], Any]]] = []

    def __call__(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        if not self.hung:
            return maybeDeferred(f, *args)
        d: Deferred[Any] = Deferred()
        self.held.append((d, lambda: f(*args)))
        return d


def _elector(server: Server, clock: Clock, runner: Any = None) -> tuple[Elector, Session]:
    session = Session(server)
    run = runner if runner is not None else HeldRunner()
    return Elector(session, run, clock, SETTINGS), session


def _run(clock: Clock, electors: list[Elector], seconds: float) -> list[tuple[bool, ...]]:
    """Advance in small steps; the electors' ``leading`` at each one."""
    seen = []
    for _ in range(int(seconds / 0.1)):
        clock.advance(0.1)
        seen.append(tuple(e.leading() for e in electors))
    return seen


def test_one_replica_wins_and_acts_after_the_takeover_delay() -> None:
    """The first to try wins; it acts from ``takeover`` on and the other never does."""
    clock, server = Clock(), Server()
    a, _ = _elector(server, clock)
    b, _ = _elector(server, clock)
    a.start()
    b.start()
    seen = _run(clock, [a, b], 10)
    assert seen[25] == (False, False)
    assert seen[-1] == (True, False)
    assert not any(both for both in seen if all(both))


def test_a_lost_lock_stops_the_leader_at_once_and_another_takes_over() -> None:
    """When its check finds the lock gone, the leader stops; the follower acts later."""
    clock, server = Clock(), Server()
    a, session = _elector(server, clock)
    b, _ = _elector(server, clock)
    a.start()
    b.start()
    _run(clock, [a, b], 4)
    assert a.leading()
    server.holder = None  # e.g. an administrator ran pg_advisory_unlock_all on its backend
    seen = _run(clock, [a, b], 6)
    assert seen[5][0] is False  # within one interval
    assert seen[-1] == (False, True)
    assert not any(all(both) for both in seen)


def test_a_leader_cut_off_stops_before_the_next_one_starts() -> None:
    """The backend dies and the leader's checks hang: its lease ends before the takeover."""
    clock, server = Clock(), Server()
    stuck = HeldRunner()
    a, session = _elector(server, clock, stuck)
    b, _ = _elector(server, clock)
    a.start()
    _run(clock, [a], 4)
    b.start()
    assert a.leading()
    stuck.hung = True  # the network to the leader's database backend goes silent
    session.kill_backend()  # and the server frees its lock
    seen = _run(clock, [a, b], 8)
    assert seen[-1] == (False, True)
    assert not any(all(both) for both in seen)
    stops = next(i for i, s in enumerate(seen) if not s[0])
    starts = next(i for i, s in enumerate(seen) if s[1])
    assert stops < starts


def test_stopping_frees_the_lock_for_the_others() -> None:
    """A replica shutting down stops acting and lets another win at its next attempt."""
    clock, server = Clock(), Server()
    a, _ = _elector(server, clock)
    b, _ = _elector(server, clock)
    a.start()
    _run(clock, [a], 4)
    b.start()
    a.stop()
    assert not a.leading() and server.holder is None
    assert _run(clock, [a, b], 4)[-1] == (False, True)


def test_a_process_alone_on_its_database_always_leads() -> None:
    """SQLite and memory: the one process is the leader."""
    assert SoleLeader().leading()
