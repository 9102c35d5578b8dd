"""
The client's test double: the real client against the real API, in memory.

:class:`MemoryControl` is a control service with no process and no port: the
real :class:`~control.api.app.ControlAPI` over a
:class:`~control.store.memory.MemoryStore`, reached by the real
:class:`~control.client.http.HTTPClient` through ``treq.testing.StubTreq``.
So tests of the CLI, the agent and the plugin see exactly the answers, errors
and messages an operator sees, with no second implementation to drift.

Time is a :class:`FlushingClock`: every step of it, and every request, also
delivers what the API wrote meanwhile (a watch woken by a write or by a
timeout), so work that needs no more time has finished when the call returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from control.api.app import ControlAPI
from control.client.http import HTTPClient
from control.failover_service import FailoverService
from control.liveness import FailoverSettings
from control.runners import synchronous_runner
from control.store.memory import MemoryStore
from control.store.threaded import ThreadedStore

URL = "http://shoal.test:4523"
START = 1_700_000_000.0
"""Where a :class:`MemoryControl`'s own clock starts (seconds since the epoch)."""


class FlushingClock(Clock):
    """
    A ``task.Clock`` that runs its ``after_step`` hooks at every instant it stops at.

    :meth:`advance` stops at each delayed call's time on the way, so an answer
    written at ``t`` is delivered at ``t``, before a timeout due later fires.
    """

    def __init__(self) -> None:
        super().__init__()
        self.after_step: list[Callable[[], None]] = []

    def advance(self, amount: float) -> None:
        """Move time on by ``amount``, stopping at every delayed call on the way."""
        target = self.seconds() + amount
        while True:
            calls: list[Any] = list(self.getDelayedCalls())
            due = [t for t in (call.getTime() for call in calls) if t <= target]
            if not due:
                break
            super().advance(max(0.0, min(due) - self.seconds()))
            self._after_step()
        super().advance(target - self.seconds())
        self._after_step()

    def _after_step(self) -> None:
        for hook in self.after_step:
            hook()


class _DeliveringTreq:
    """A ``StubTreq`` whose every request also delivers the answers it woke."""

    def __init__(self, stub: Any, deliver: Callable[[], None]) -> None:
        self._stub = stub
        self._deliver = deliver

    def request(self, method: str, url: str, **kwargs: Any) -> Deferred[Any]:
        """Send one request, then deliver every pending answer."""
        d = self._stub.request(method, url, **kwargs)
        self._deliver()
        return d

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)


class MemoryControl:
    """
    A control service in memory and the real client of it.

    ``clock`` defaults to a :class:`FlushingClock` at :data:`START`; with a
    plain ``Clock``, call :meth:`flush` after advancing it. ``client_class``
    lets a test wrap client methods (a subclass of :class:`HTTPClient`).
    ``failover`` sets the failover timing the API announces; with
    ``run_failover`` the failover executor (:attr:`failover`) runs on the
    clock twice per heartbeat, as in the service (else run a pass with
    ``failover.run_once()``).
    """

    def __init__(
        self,
        clock: Clock | None = None,
        store: MemoryStore | None = None,
        node_timeout: float = 30.0,
        new_uuid: Callable[[], UUID] = uuid4,
        client_class: type[HTTPClient] = HTTPClient,
        failover: FailoverSettings | None = None,
        run_failover: bool = False,
    ) -> None:
        if clock is None:
            clock = FlushingClock()
            clock.advance(START)
        self.clock = clock
        self.store = store if store is not None else MemoryStore()
        self.api = ControlAPI(
            ThreadedStore(self.store, synchronous_runner),
            clock,
            new_uuid=new_uuid,
            node_timeout=node_timeout,
            failover=failover,
        )
        self.failover = FailoverService(
            self.store, synchronous_runner, clock, self.api.failover, started=self.api.started
        )
        if run_failover:
            self.failover.start()
        self.stub = StubTreq(self.api.resource())
        if isinstance(clock, FlushingClock):
            clock.after_step.append(self.flush)
        self._flushing = False
        self.client = client_class(URL, _DeliveringTreq(self.stub, self.flush), clock=clock)

    def flush(self) -> None:
        """Deliver every answer the API has written, until none is left."""
        if self._flushing:  # a callback of a delivery sent a request: the loop below sees it
            return
        self._flushing = True
        try:
            pumps = self.stub._agent._pumps  # treq.testing keeps one iosim pump per request
            while any([_pump(p) for p in list(pumps)]):
                pass
            self.stub.flush()  # forget the pumps of finished exchanges
        finally:
            self._flushing = False


def _pump(pump: Any) -> bool:
    moved = False
    while pump.pump():
        moved = True
    return moved


def result_of(d: Deferred[Any]) -> Any:
    """The result of a Deferred that has fired, raising its failure."""
    outcome: list[Any] = []
    d.addBoth(outcome.append)
    assert outcome, "the operation has not finished"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]
