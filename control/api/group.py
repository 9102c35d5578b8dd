"""
Group commit of creates, on the reactor thread.

Every create is one transaction committed to disk, and the database runs one
writer at a time anyway (SQLite's lock, PostgreSQL's cluster row). So instead
of each request taking its turn, :class:`GroupCommit` keeps one group of
creates in flight (:func:`control.api.creating.create_group`: one read of
what placement needs and :meth:`~control.store.interface.Store.create_datasets`,
run off the reactor in the store's threads) and queues the creates that
arrive meanwhile. A group is taken from the queue when its writer starts (in
the store's thread, which may wait a while for the GIL or a database
connection), not when it is handed to the writer: every create that arrived
by then joins it, so a burst of creates goes as one group instead of its
first create alone and the rest next. When the group is committed, the next
group (if any is queued) starts, and then each request of the finished group
gets its own answer: its dataset and generation, or its own refusal. Nothing
here blocks and nothing waits on a timer: a lone create goes at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from control.model import Dataset
from control.store.interface import Created

LIMIT = 256
"""The most creates in one group (one transaction)."""

Take = Callable[[], list[Any]]
"""Takes the group to write from the queue (thread-safe: call it where the writing starts)."""

Write = Callable[[Take], Deferred]
"""Writes the group ``take()`` returns (creates such as
:class:`~control.store.interface.NewDataset` or
:class:`~control.api.creating.PendingCreate`): a Deferred of one
:data:`~control.store.interface.Created` per create taken, in order."""


def taking(write: Callable[[Sequence[Any]], Deferred]) -> Write:
    """A :data:`Write` that takes its group at once and writes it with ``write``."""
    return lambda take: write(take())


@define
class GroupCommit:
    """Creates queued on the reactor and written in groups, up to :attr:`in_flight` at a time.

    With ``in_flight`` above one (PostgreSQL lets transactions overlap, each still taking
    the writers' lock in turn), a new group starts as soon as a create arrives and fewer
    groups are in flight, unless a started group has not taken its creates yet (it will take
    that create too): its placement reads, its thread hop and the wait for the lock overlap
    the group before it. The service keeps one (bench/README.md, "Writes on PostgreSQL"):
    on two shared cores, two in flight made groups smaller and each create cost ~30% more
    CPU, and fewer creates per second, not more.
    """

    write: Write
    limit: int = LIMIT
    in_flight: int = 1
    _queue: list[tuple[Any, Deferred]] = field(factory=list, init=False)
    _flying: int = field(default=0, init=False)
    _forming: int = field(default=0, init=False)
    """Groups started whose writer has not taken its creates yet (under ``_lock``)."""
    _lock: threading.Lock = field(factory=threading.Lock, init=False)

    def create(self, new: Any) -> Deferred:
        """Queue ``new``: a Deferred of ``(dataset, generation)``, or of its refusal."""
        answer: Deferred[tuple[Dataset, int]] = Deferred()
        with self._lock:
            self._queue.append((new, answer))
            forming = self._forming
        if self._flying < self.in_flight and not forming:
            self._start()
        return answer

    @property
    def waiting(self) -> int:
        """How many creates are queued behind the groups in flight."""
        return len(self._queue)

    def _start(self) -> None:
        """Hand the next group to a writer, if any create is queued."""
        if not self._queue:
            return
        self._flying += 1
        with self._lock:
            self._forming += 1
        taken: list[tuple[Any, Deferred]] = []
        self.write(partial(self._take, taken)).addBoth(self._written, taken)

    def _take(self, taken: list[tuple[Any, Deferred]]) -> list[Any]:
        """The group to write: the queued creates, up to :attr:`limit` (once per group)."""
        with self._lock:
            if not taken:
                self._forming -= 1
            taken.extend(self._queue[: self.limit])
            self._queue = self._queue[self.limit :]
            return [new for new, _ in taken]

    def _written(self, answers: list[Created] | Failure, taken: list[tuple[Any, Deferred]]) -> None:
        """Start the next group, then answer each create of the one written."""
        self._flying -= 1
        if not taken:  # the writer failed before it took its group: that group fails
            self._take(taken)
            if not isinstance(answers, Failure):
                answers = Failure(RuntimeError("the group writer took no creates"))
        waiting = [answer for _, answer in taken]
        with self._lock:
            forming = self._forming
        if not forming:
            self._start()
        if isinstance(answers, Failure):
            for answer in waiting:
                answer.errback(answers)
            return
        for answer, created in zip(waiting, answers, strict=True):
            if isinstance(created, Exception):
                answer.errback(Failure(created))
            else:
                answer.callback(created)
