"""
Hear other replicas' writes: PostgreSQL ``LISTEN`` on a connection of its own.

Every write that moves a counter sends ``pg_notify`` in its transaction
(:func:`control.store.pglocks.notify_counters`; the payload is the two
counters and nothing else), which PostgreSQL delivers on commit. A
:class:`ChangeListener` keeps one dedicated psycopg connection, never pooled,
listening on the store's channel, and calls ``changed`` (on the reactor) for
every notification. Notifications sent while it is disconnected are lost, so
it also calls ``changed`` whenever it (re)connects; the watch notifier's own
periodic read of the counters is the floor beneath both.

The connection blocks, so it lives on a thread of its own; the reactor only
receives ``changed`` calls.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import structlog

from control.store.pglocks import CHANGES_CHANNEL_SQL, libpq_conninfo

log = structlog.get_logger("shoal.listener")

RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)
"""Seconds between reconnection attempts, the last repeated."""


def reconnect_delay(failures: int) -> float:
    """Seconds to wait before the next connection attempt after ``failures`` in a row (pure)."""
    return RECONNECT_DELAYS[min(max(failures - 1, 0), len(RECONNECT_DELAYS) - 1)]


class ChangeListener:
    """Calls ``changed()`` through ``call_from_thread`` when another process commits a change.

    ``call_from_thread`` is the reactor's ``callFromThread``; ``timeout``
    bounds connecting and noticing a dead server (TCP keepalives).
    """

    def __init__(
        self,
        url: str,
        changed: Callable[[], None],
        call_from_thread: Callable[..., Any],
        timeout: float = 2.0,
    ) -> None:
        self._conninfo = libpq_conninfo(url, timeout, "shoal-listener", statements_too=False)
        self._changed = changed
        self._call = call_from_thread
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Any = None
        self.connections = 0
        """How many times the listener connected (a reconnection count, for tests and logs)."""

    def start(self) -> None:
        """Start listening on a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shoal-listen", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop listening (returns at once; the thread ends within a second)."""
        self._stopping.set()

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._listen()
                failures = 0
            except Exception as e:  # noqa: BLE001 - any failure of the connection: reconnect
                failures += 1
                if failures == 1:
                    log.warning("listener.disconnected", error=str(e).strip().splitlines()[:1])
            finally:
                self._close()
            self._stopping.wait(reconnect_delay(failures))

    def _listen(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(autocommit=True, **self._conninfo) as connection:
            self._connection = connection
            row = connection.execute(f"SELECT {CHANGES_CHANNEL_SQL}").fetchone()
            assert row is not None
            channel = sql.Identifier(row[0])
            connection.execute(sql.SQL("LISTEN {}").format(channel))
            self.connections += 1
            if self.connections > 1:
                log.info("listener.reconnected", connections=self.connections)
            self._call(self._changed)  # anything sent while we were away is re-read now
            while not self._stopping.is_set():
                for _ in connection.notifies(timeout=1.0, stop_after=1):
                    self._call(self._changed)

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                connection.close()
