"""
The in-process notifier behind ``GET /v1/shoal/watch``.

A waiter asks to be woken when the configuration generation or the state
version moves past the values it has seen, or after a timeout. The API pokes
the notifier after every successful write; while anyone waits, the notifier
also reads the store's counters every ``interval`` seconds, so writes made
by another control process sharing the database are seen too. Nothing is
read when nobody waits. Time comes from the injected clock.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import define
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from control.model import Versions
from control.reactor import DelayedCall, ReactorTime

ReadVersions = Callable[[], "Deferred[Versions]"]


@define(eq=False)
class _Waiter:
    configuration: int
    state: int
    deferred: Deferred[Versions]
    timer: DelayedCall | None = None


def _newest(a: Versions | None, b: Versions) -> Versions:
    if a is None:
        return b
    return Versions(max(a.configuration, b.configuration), max(a.state, b.state))


class Notifier:
    """Wakes waiters when either counter passes what they saw, or when they time out."""

    log = Logger()

    def __init__(self, clock: ReactorTime, read: ReadVersions, interval: float = 1.0) -> None:
        self._clock = clock
        self._read = read
        self._interval = interval
        self._waiters: list[_Waiter] = []
        self._latest: Versions | None = None
        self._reading = False
        self._again = False
        self._tick: DelayedCall | None = None

    @property
    def waiting(self) -> int:
        """How many waiters are registered."""
        return len(self._waiters)

    def wait(self, configuration: int, state: int, timeout: float) -> Deferred[Versions]:
        """
        A Deferred firing with the current versions once either counter passes
        the given value, or after ``timeout`` seconds whatever they are.

        Cancelling it (the client went away) forgets the waiter and its timer.
        """
        d: Deferred[Versions] = Deferred(self._cancel)
        waiter = _Waiter(configuration, state, d)
        waiter.timer = self._clock.callLater(timeout, self._expire, waiter)
        self._waiters.append(waiter)
        if self._tick is None:
            self._tick = self._clock.callLater(self._interval, self._on_tick)
        self.check()
        return d

    def check(self, urgent: bool = True) -> None:
        """Read the counters now if anyone waits (called after every write)."""
        if not self._waiters:
            return
        if self._reading:
            self._again = self._again or urgent
            return
        self._reading = True
        d = maybeDeferred(self._read)
        d.addCallbacks(self.notify, self._read_failed)
        d.addBoth(self._done_reading)

    def notify(self, versions: Versions) -> None:
        """Wake every waiter that ``versions`` has passed."""
        self._latest = _newest(self._latest, versions)
        latest = self._latest
        for waiter in list(self._waiters):
            if latest.passed(waiter.configuration, waiter.state):
                self._forget(waiter)
                waiter.deferred.callback(latest)

    def stop(self) -> None:
        """Cancel every waiter and stop polling (the service is stopping)."""
        for waiter in list(self._waiters):
            waiter.deferred.cancel()

    def _read_failed(self, failure: Failure) -> None:
        self.log.failure("Could not read the store's versions for watchers", failure)

    def _done_reading(self, _: object) -> None:
        self._reading = False
        if self._again:
            self._again = False
            self.check()

    def _on_tick(self) -> None:
        self._tick = None
        self.check(urgent=False)
        if self._waiters and self._tick is None:
            self._tick = self._clock.callLater(self._interval, self._on_tick)

    def _forget(self, waiter: _Waiter) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        waiter.timer = None
        if not self._waiters and self._tick is not None:
            if self._tick.active():
                self._tick.cancel()
            self._tick = None

    def _cancel(self, d: Deferred[Versions]) -> None:
        for waiter in list(self._waiters):
            if waiter.deferred is d:
                self._forget(waiter)

    def _expire(self, waiter: _Waiter) -> None:
        waiter.timer = None
        self._forget(waiter)

        def answer(versions: Versions) -> None:
            self._latest = _newest(self._latest, versions)
            if not waiter.deferred.called:
                waiter.deferred.callback(self._latest)

        def failed(failure: Failure) -> None:
            if not waiter.deferred.called:
                waiter.deferred.errback(failure)

        maybeDeferred(self._read).addCallbacks(answer, failed)
