"""
One read shared by the requests that ask for it at once: :class:`SharedRead`.

Every create reads the storage classes and the cluster state for its
placement, one trip to the database threads each. Under load the creates come
in bursts (a group is answered, its clients send their next creates), so
instead :class:`SharedRead` keeps at most one read in flight; the callers that
ask meanwhile wait for the *next* read, which starts once the one in flight is
done, and all get its result. Every caller thus gets a read that started after
it asked: it sees every write committed before its request, as its own read
would. A lone caller reads at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure


@define
class SharedRead:
    """Reads by ``read`` (a Deferred of the result), one at a time, shared by those waiting."""

    read: Callable[[], Deferred]
    _waiting: list[Deferred] = field(factory=list, init=False)
    _busy: bool = field(default=False, init=False)

    def get(self) -> Deferred:
        """A Deferred of the result of a read that starts after this call."""
        answer: Deferred[Any] = Deferred()
        self._waiting.append(answer)
        if not self._busy:
            self._start()
        return answer

    def _start(self) -> None:
        waiting, self._waiting = self._waiting, []
        self._busy = True
        maybeDeferred(self.read).addBoth(self._done, waiting)

    def _done(self, result: Any, waiting: list[Deferred]) -> None:
        """Start the next read for those who asked meanwhile, then answer these."""
        self._busy = False
        if self._waiting:
            self._start()
        for answer in waiting:
            if isinstance(result, Failure):
                answer.errback(result)
            else:
                answer.callback(result)
