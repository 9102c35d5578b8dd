"""
Heartbeats renewed without a trip to the database: :class:`Renewals`.

At 1,000 nodes the control service takes 200 heartbeats a second, and most of them
repeat, byte for byte, a report the store has just taken as a heartbeat
(:meth:`SQLStore._heartbeats <control.store.sql.SQLStore>`): the same node, the same
certificate, the same observation. Judging such a report again (a trip to the store's
threads, a read of the counters, the node and its last report, :func:`control.rules.check_report`)
can only give the same answer while nothing the judgement read has changed. On a
database this store is the only writer of (SQLite: the service holds the file's lock),
nothing changes but by this store's own write transactions. :class:`Renewals` counts
them, and remembers for each node the count at which its report was last judged a
heartbeat, with the identity that sent it and the counters it was judged at. While no
write transaction has begun since, :meth:`~control.store.sql.SQLStore.renew_report`
takes the repeated report as that judgement would: liveness renewed in memory
(:mod:`control.store.seen`), the same counters answered.

The count is taken *before* the judgement's read and a transaction is counted from
*before* its ``BEGIN`` to *after* its commit, so a write that the judgement may not have
seen always moves the count, and one in flight when the count is taken leaves no mark
to renew from. Only the flush of heartbeat times is not counted: it writes ``last_seen``
and ``reported_at``, which no judgement of a report reads.

On PostgreSQL other replicas write too, and their writes reach this one only later (by
``NOTIFY``), so the count kept here cannot tell. There the mark is the cluster row's
version (``xmin``), read in the judgement's own transaction: every write transaction but
the flush rewrites that row as it takes the writers' lock
(:data:`~control.store.queries.CLAIMED_COUNTERS`), so the version moves with every write
committed, by any replica. A repeated report is renewed by one read of it
(:meth:`~control.store.sql.SQLStore.renew_reports`, a group of reports at a time) while
it is still the judgement's mark (:meth:`Renewals.held`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from control.model import Versions


class Renewals:
    """This store's write transactions counted, and each node's last heartbeat judged
    (thread-safe; :meth:`renewable` never waits on more than this lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._begun = 0
        self._ended = 0
        self._kept: dict[UUID, tuple[int | str, str | None, Versions]] = {}

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Count a write transaction: enter before its ``BEGIN``, leave after its commit (or
        rollback)."""
        with self._lock:
            self._begun += 1
        try:
            yield
        finally:
            with self._lock:
                self._ended += 1

    def mark(self) -> int | None:
        """The count now, to take before reading what a judgement reads; ``None`` while a
        write transaction is in flight (its effect may or may not be read)."""
        with self._lock:
            return self._begun if self._begun == self._ended else None

    def keep(
        self, node_uuid: UUID, mark: int | str, identity: str | None, versions: Versions
    ) -> None:
        """``node_uuid``'s report, sent by ``identity``, was judged a heartbeat against what
        was read after ``mark`` (:meth:`mark`, or the row's version read with it), at the
        counters ``versions``."""
        with self._lock:
            self._kept[node_uuid] = (mark, identity, versions)

    def drop(self, node_uuid: UUID) -> None:
        """Forget ``node_uuid``'s judgement (its latest report was judged otherwise)."""
        with self._lock:
            self._kept.pop(node_uuid, None)

    def renewable(self, node_uuid: UUID, identity: str | None) -> Versions | None:
        """The counters ``node_uuid``'s last heartbeat was judged at, if that judgement still
        holds for a report from ``identity``: the same identity, and no write transaction
        begun since the judgement's mark."""
        with self._lock:
            kept = self._kept.get(node_uuid)
            if kept is None or kept[1] != identity:
                return None
            if not kept[0] == self._begun == self._ended:
                return None
            return kept[2]

    def held(self, node_uuid: UUID, identity: str | None, mark: str) -> bool:
        """Whether ``node_uuid``'s last heartbeat, judged for ``identity``, was judged at the
        row's version ``mark`` (PostgreSQL: read now, so nothing was written since)."""
        with self._lock:
            kept = self._kept.get(node_uuid)
            return kept is not None and kept[1] == identity and kept[0] == mark
