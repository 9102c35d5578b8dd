"""
Group commit of creates, on the reactor thread.

Every create is one transaction committed to disk, and the database runs one
writer at a time anyway (SQLite's lock, PostgreSQL's cluster row). So instead
of each request taking its turn, :class:`GroupCommit` keeps one group of
creates in flight (:func:`control.api.creating.create_group`: one read of
what placement needs and :meth:`~control.store.interface.Store.create_datasets`,
run off the reactor in the store's threads) and queues the creates that
arrive meanwhile; when the group is committed, the next group (everything
queued, up to :data:`LIMIT`) starts, and then each request of the finished
group gets its own answer: its dataset and generation, or its own refusal.
Nothing here blocks and nothing waits on a timer: a lone create goes at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from control.model import Dataset
from control.store.interface import Created

LIMIT = 256
"""The most creates in one group (one transaction)."""

Write = Callable[[Sequence[Any]], Deferred]
"""Stores a group of creates (such as :class:`~control.store.interface.NewDataset` or
:class:`~control.api.creating.PendingCreate`): a Deferred of one
:data:`~control.store.interface.Created` per create."""


@define
class GroupCommit:
    """Creates queued on the reactor and written in groups, one group at a time."""

    write: Write
    limit: int = LIMIT
    _queue: list[tuple[Any, Deferred]] = field(factory=list, init=False)
    _busy: bool = field(default=False, init=False)

    def create(self, new: Any) -> Deferred:
        """Queue ``new``: a Deferred of ``(dataset, generation)``, or of its refusal."""
        answer: Deferred[tuple[Dataset, int]] = Deferred()
        self._queue.append((new, answer))
        if not self._busy:
            self._start()
        return answer

    @property
    def waiting(self) -> int:
        """How many creates are queued behind the group in flight."""
        return len(self._queue)

    def _start(self) -> None:
        """Write the queued creates (up to :attr:`limit`) as the next group, if any."""
        if not self._queue:
            self._busy = False
            return
        group, self._queue = self._queue[: self.limit], self._queue[self.limit :]
        self._busy = True
        written = self.write([new for new, _ in group])
        written.addBoth(self._written, [answer for _, answer in group])

    def _written(self, answers: list[Created] | Failure, waiting: list[Deferred]) -> None:
        """Start the next group, then answer each create of the one written."""
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
