"""
The in-process notifier behind ``GET /v1/shoal/watch``.

A waiter asks to be woken when the configuration generation or the state
version moves past the values it has seen, or after a timeout. The API pokes
the notifier after every successful write; while anyone waits, the notifier
also reads the store's counters every ``interval`` seconds, so writes made
by another control process sharing the database are seen too. Nothing is
read when nobody waits. Time comes from the injected clock.

While the counters were read less than ``interval`` ago, a new waiter is judged
against them and a waiter whose time is up is answered with them, without a read:
1,000 idle agents each watch again every heartbeat, and one read (a trip to a
thread and the database) per watch was most of what a watch cost. The writes of
this process are never missed this way (each one makes the notifier read), and
another replica's are seen within ``interval``, as by the waiters already waiting.

Targeted waiters: a waiter may name what it cares about (``concerns``: its
node's uuid, and the ids of datasets it watches). The API records which nodes
and datasets each configuration generation it wrote concerns
(:meth:`Notifier.changed`); a targeted waiter wakes on the configuration only
for a generation whose record names one of its concerns, or that has no record
(a write by another replica, by the failover executor, or one whose reach the
API does not compute): such a generation concerns everyone. An untargeted
waiter wakes on every generation, as before.

The state version likewise (issue 16: during 1,000 concurrent moves, every
report woke every agent waiting on another node). The API records whom the
state versions its groups of reports wrote concern (:meth:`Notifier.reached`,
:func:`control.reach.state_reach`: the reporting nodes, the datasets whose
state changed, and their primaries and readers as configured then); a targeted
waiter wakes on the state only for a version whose record names one of its
concerns, or that has no record (another replica's report, a registration, a
fence: anything whose reach the API does not compute concerns everyone), or
whose record was made at an older generation than the waiter's (the waiter may
have learned since of a dataset whose primary the record did not look up). An
untargeted waiter wakes on every state version that passes what it saw.

A version read before the write that made it has recorded it (another request
read the counters in between) is not judged as concerning everyone while a
write in flight at that moment may still record it (:meth:`Notifier.writing`,
:mod:`control.api.inflight`): the waiters it would wake are judged again once
those writes are done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from uuid import UUID

from attrs import define
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from control.api.inflight import InFlight
from control.model import Versions
from control.reactor import DelayedCall, ReactorTime

ReadVersions = Callable[[], "Deferred[Versions]"]

REMEMBERED = 4096
"""How many generations' records :meth:`Notifier.changed` keeps, and state versions'
:meth:`Notifier.reached` (older ones concern everyone)."""


@define(eq=False)
class _Waiter:
    configuration: int
    state: int
    deferred: Deferred[Versions]
    timer: DelayedCall | None = None
    concerns: frozenset[UUID] | None = None
    checked: int = -1
    """The newest generation already found not to concern a targeted waiter."""
    state_checked: int = -1
    """The newest state version already found not to concern a targeted waiter."""


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
        self._waiters: dict[_Waiter, None] = {}
        self._fresh: list[_Waiter] = []
        self._expiring: list[_Waiter] = []
        self._changes: dict[int, frozenset[UUID]] = {}
        self._states: dict[int, tuple[int, frozenset[UUID]]] = {}
        """Each recorded state version's generation and concerns (:meth:`reached`)."""
        self._latest: Versions | None = None
        self._read_at = float("-inf")
        """When the counters were last read (or handed to :meth:`notify`)."""
        self._reading = False
        self._again = False
        self._tick: DelayedCall | None = None
        self._in_flight = InFlight(self._rejudge)
        self._held: set[_Waiter] = set()
        """Targeted waiters whose judgement waits for a write in flight (:mod:`inflight`)."""

    @property
    def waiting(self) -> int:
        """How many waiters are registered."""
        return len(self._waiters)

    def wait(
        self,
        configuration: int,
        state: int,
        timeout: float,
        concerns: Iterable[UUID] | None = None,
    ) -> Deferred[Versions]:
        """
        A Deferred firing with the current versions once either counter passes
        the given value, or after ``timeout`` seconds whatever they are.

        With ``concerns``, only a configuration generation or a state version that
        concerns one of them (or everyone) wakes it (see the module's docstring).
        Cancelling it (the client went away) forgets the waiter and its timer.
        """
        targeted = None if concerns is None else frozenset(concerns)
        waiter = _Waiter(
            configuration, state, Deferred(lambda _: self._forget(waiter)),
            concerns=targeted, checked=configuration, state_checked=state,
        )
        waiter.timer = self._clock.callLater(timeout, self._expire, waiter)
        self._waiters[waiter] = None
        self._fresh.append(waiter)
        if self._tick is None:
            self._tick = self._clock.callLater(self._interval, self._on_tick)
        if self._latest is not None and self._recent():
            self._wake(self._latest)
        else:
            self.check()
        return waiter.deferred

    def _recent(self) -> bool:
        """Whether the counters were read within the last ``interval``."""
        return self._clock.seconds() - self._read_at < self._interval

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

    def writing(self, counter: str = "configuration") -> AbstractContextManager[None]:
        """Wrap a write from its store call until :meth:`changed` (``counter``
        ``"configuration"``) or :meth:`reached` (``"state"``) has recorded whom it concerns:
        meanwhile, an unrecorded version of that counter it may have made does not yet
        count as concerning everyone (:mod:`control.api.inflight`)."""
        return self._in_flight.writing(counter)

    def changed(self, generation: int, concerns: Iterable[UUID] | None) -> None:
        """Record that configuration ``generation`` concerns only ``concerns`` (node uuids
        and dataset ids; ``None``: everyone): call it before :meth:`check` after the write
        that made it."""
        if concerns is None:
            self._changes.pop(generation, None)
            return
        self._changes[generation] = frozenset(concerns)
        while len(self._changes) > REMEMBERED:
            del self._changes[min(self._changes)]

    def reached(
        self, first: int, last: int, concerns: Iterable[UUID], generation: int
    ) -> None:
        """Record that state versions ``first`` to ``last`` concern only ``concerns`` (node
        uuids and dataset ids, found with the datasets as configured at ``generation``):
        call it before :meth:`notify` with the counters read after the write that made them."""
        kept = frozenset(concerns)
        for version in range(max(first, last - REMEMBERED + 1), last + 1):
            self._states[version] = (generation, kept)
        while len(self._states) > REMEMBERED:
            del self._states[min(self._states)]

    def notify(self, versions: Versions) -> None:
        """Wake every waiter that ``versions`` has passed (and concerns).

        When neither counter moved, only the waiters that came since are looked at.
        """
        self._read_at = self._clock.seconds()
        self._wake(versions)

    def _wake(self, versions: Versions) -> None:
        before, self._latest = self._latest, _newest(self._latest, versions)
        latest = self._latest
        fresh, self._fresh = self._fresh, []
        for waiter in list(self._waiters) if latest != before else fresh:
            if waiter in self._waiters and self._wakes(waiter, latest):
                self._forget(waiter)
                waiter.deferred.callback(latest)

    def _wakes(self, waiter: _Waiter, latest: Versions) -> bool:
        """Whether ``latest`` wakes ``waiter`` (pure but for the targeted waiter's marks)."""
        if latest.state > waiter.state and self._state_wakes(waiter, latest.state):
            return True
        if latest.configuration <= waiter.configuration:
            return False
        if waiter.concerns is None:
            return True
        for generation in range(max(waiter.checked, waiter.configuration) + 1,
                                latest.configuration + 1):
            concerned = self._changes.get(generation)
            if concerned is None and self._in_flight.pending("configuration", generation):
                self._held.add(waiter)
                return False
            if concerned is None or not concerned.isdisjoint(waiter.concerns):
                return True
        waiter.checked = latest.configuration
        return False

    def _state_wakes(self, waiter: _Waiter, state: int) -> bool:
        """Whether a state version after the waiter's, up to ``state``, concerns it."""
        if waiter.concerns is None:
            return True
        for version in range(max(waiter.state_checked, waiter.state) + 1, state + 1):
            record = self._states.get(version)
            if record is None and self._in_flight.pending("state", version):
                self._held.add(waiter)
                return False
            if (
                record is None
                or record[0] < waiter.configuration
                or not record[1].isdisjoint(waiter.concerns)
            ):
                return True
        waiter.state_checked = state
        return False

    def _rejudge(self) -> None:
        """Judge again the waiters held for a write that is now done."""
        if not self._held or self._latest is None:
            return
        held, self._held = self._held, set()
        for waiter in held:
            if waiter in self._waiters and self._wakes(waiter, self._latest):
                self._forget(waiter)
                waiter.deferred.callback(self._latest)

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
        self._waiters.pop(waiter, None)
        self._held.discard(waiter)
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()
        waiter.timer = None
        if not self._waiters and self._tick is not None:
            if self._tick.active():
                self._tick.cancel()
            self._tick = None

    def _expire(self, waiter: _Waiter) -> None:
        """Answer a waiter whose time is up with fresh counters; one read serves all the
        waiters whose time comes while it runs."""
        waiter.timer = None
        self._forget(waiter)
        if self._latest is not None and self._recent():
            waiter.deferred.callback(self._latest)
            return
        self._expiring.append(waiter)
        if len(self._expiring) > 1:
            return

        def answer(versions: Versions) -> None:
            self._read_at = self._clock.seconds()
            self._latest = _newest(self._latest, versions)
            expired, self._expiring = self._expiring, []
            for each in expired:
                if not each.deferred.called:
                    each.deferred.callback(self._latest)

        def failed(failure: Failure) -> None:
            expired, self._expiring = self._expiring, []
            for each in expired:
                if not each.deferred.called:
                    each.deferred.errback(failure)

        maybeDeferred(self._read).addCallbacks(answer, failed)
