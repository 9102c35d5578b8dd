"""
Leader election among control replicas on PostgreSQL: the imperative shell.

:class:`Elector` asks its :class:`LockSession` to take or confirm the leader
lock every ``interval`` seconds, feeds the answers to the pure functions of
:mod:`control.election`, and answers :meth:`Elector.leading` from them and
the clock alone, so a leader whose session hangs stops acting when its lease
runs out, whatever the hung call does. The blocking session calls run in a
runner of their own (one thread), never on the reactor and never behind the
API's database calls.

:class:`PostgresLockSession` is the real session: one psycopg connection,
never pooled, with short statement and TCP timeouts. :class:`SoleLeader`
stands for the election where there is none to hold (SQLite, memory: one
process).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from control import election as el
from control.election import Election, ElectionSettings, Step
from control.runners import Runner
from control.store.pglocks import KEY_SQL, LEADER_LOCK, libpq_conninfo

log = structlog.get_logger("shoal.leader")


class LockSession(Protocol):
    """A database session that can hold the leader lock. Every method blocks.

    Any method may raise on a lost or hung connection (within the session's
    timeout); the elector then treats the lock as lost and calls :meth:`close`.
    """

    def try_lock(self) -> bool:
        """Take the lock if it is free, without waiting (connecting first if needed)."""
        ...

    def holds(self) -> bool:
        """Whether this session still holds the lock (a round trip to the server)."""
        ...

    def close(self) -> None:
        """Drop the connection (releasing the lock if the server still has it)."""
        ...


class Leadership(Protocol):
    """Whether this replica may do the leader's work right now."""

    def leading(self) -> bool:
        """True while this replica is the leader and its lease runs."""
        ...


class SoleLeader:
    """The only control process there can be (SQLite or memory): always the leader."""

    def leading(self) -> bool:
        """Always true."""
        return True


class PostgresLockSession:
    """The leader lock on one dedicated psycopg connection (autocommit, never pooled)."""

    def __init__(self, url: str, timeout: float) -> None:
        self._conninfo = libpq_conninfo(url, timeout, "shoal-leader")
        self._connection: Any = None

    def _connect(self) -> Any:
        if self._connection is None or self._connection.closed:
            import psycopg

            self._connection = psycopg.connect(autocommit=True, **self._conninfo)
        return self._connection

    def try_lock(self) -> bool:
        """See :meth:`LockSession.try_lock`."""
        row = self._connect().execute(
            f"SELECT pg_try_advisory_lock({KEY_SQL.replace(':name', '%(name)s')})",
            {"name": LEADER_LOCK},
        ).fetchone()
        return bool(row and row[0])

    def holds(self) -> bool:
        """See :meth:`LockSession.holds`: the server's own lock table, for our backend."""
        if self._connection is None or self._connection.closed:
            return False
        row = self._connection.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid() AND granted)"
        ).fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        """See :meth:`LockSession.close`."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                connection.close()


class Elector:
    """Takes part in the election on ``clock``, running the session's calls in ``runner``.

    ``on_change(leading)`` is called on the reactor whenever :meth:`leading`
    is seen to change (at each step; it is a notice, not the authority).
    """

    def __init__(
        self,
        session: LockSession,
        runner: Runner,
        clock: Any,
        settings: ElectionSettings | None = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else ElectionSettings()
        self.election = Election()
        self._session = session
        self._run = runner
        self._clock = clock
        self._on_change = on_change
        self._busy = False
        self._was_leading = False
        self._loop = LoopingCall(self.step)
        self._loop.clock = clock

    def leading(self) -> bool:
        """See :meth:`Leadership.leading`: decided from the clock and the last answers."""
        return el.acting(self.election, self._clock.seconds(), self.settings)

    def start(self) -> None:
        """Take part: the first attempt right away, then every ``interval`` seconds."""
        if not self._loop.running:
            self._loop.start(self.settings.interval, now=True)

    def stop(self) -> Deferred[None] | None:
        """Stop taking part and drop the session (freeing the lock); a Deferred of the close."""
        if self._loop.running:
            self._loop.stop()
        self.election = el.lost(self.election)
        self._notice()
        return self._run(self._session.close)

    def step(self) -> None:
        """One step of the election, unless the previous one is still waiting for its answer."""
        self._notice()
        if self._busy:
            return
        self._busy = True
        step = el.next_step(self.election)
        sent_at = self._clock.seconds()
        call = self._session.try_lock if step is Step.TRY_LOCK else self._session.holds
        d = self._run(call)
        d.addCallbacks(self._answered, self._failed, callbackArgs=(step, sent_at))
        d.addBoth(self._done)

    def _answered(self, yes: bool, step: Step, sent_at: float) -> None:
        if step is Step.TRY_LOCK:
            if yes:
                self.election = el.won(self.election, sent_at, self._clock.seconds())
                log.info("leader.won_lock", acting_in=self.settings.takeover)
        elif yes:
            self.election = el.confirmed(self.election, sent_at)
        else:
            self._lose("the leader lock is no longer held by our session")

    def _failed(self, failure: Failure) -> None:
        was = self.election.holding
        self.election = el.lost(self.election)
        self._run(self._session.close)
        if was:
            log.warning("leader.lost_session", error=failure.getErrorMessage())

    def _lose(self, why: str) -> None:
        self.election = el.lost(self.election)
        self._run(self._session.close)
        log.warning("leader.lost_lock", reason=why)

    def _done(self, _: object) -> None:
        self._busy = False
        self._notice()

    def _notice(self) -> None:
        now = self.leading()
        if now != self._was_leading:
            self._was_leading = now
            log.info("leader.acting" if now else "leader.stopped_acting")
            if self._on_change is not None:
                self._on_change(now)
