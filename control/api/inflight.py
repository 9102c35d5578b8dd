"""
The API's writes between their store call and the record of whom they concern: :class:`InFlight`.

A write handler calls the store, then records whom the generation or state
version it wrote concerns (:meth:`~control.api.watch.Notifier.changed`,
:meth:`~control.api.watch.Notifier.reached`). In between, another request can
read the counters past that version (a group of reports answered first, a
watcher's tick) and find it unrecorded, which concerns everyone: one move woke
839 of 1,000 targeted watchers that way (issue 16).

So the notifier holds its judgement of an unrecorded version while a write that
was in flight when the version was first judged is still in flight: that write
may be the one to record it. Once every such write is done, a version still
unrecorded concerns everyone, as before. A write that starts later cannot have
made the version (the version was already read), so the hold lasts at most as
long as the writes in flight at that moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

REMEMBERED = 4096
"""How many versions' suspects are kept (the oldest are forgotten first)."""


class InFlight:
    """The writes in flight, and which of them may record each unrecorded version."""

    def __init__(self, on_done: Callable[[], None]) -> None:
        self._on_done = on_done
        self._next = 0
        self._open: dict[int, tuple[str, ...]] = {}
        """Each write in flight, and the counters whose versions it may record."""
        self._suspects: dict[tuple[str, int], frozenset[int]] = {}

    @property
    def open(self) -> int:
        """How many writes are in flight."""
        return len(self._open)

    @contextmanager
    def writing(self, *counters: str) -> Iterator[None]:
        """Mark a write in flight from its store call until whom it concerns is recorded:
        versions of ``counters`` (``"configuration"``, ``"state"``)."""
        token, self._next = self._next, self._next + 1
        self._open[token] = counters
        try:
            yield
        finally:
            del self._open[token]
            self._on_done()

    def pending(self, counter: str, version: int) -> bool:
        """Whether unrecorded ``version`` of ``counter`` may yet be recorded by a write that
        was in flight when it was first asked about."""
        key = (counter, version)
        suspects = self._suspects.get(key)
        if suspects is None:
            suspects = frozenset(t for t, kinds in self._open.items() if counter in kinds)
            self._suspects[key] = suspects
            while len(self._suspects) > REMEMBERED:
                del self._suspects[next(iter(self._suspects))]
        return not suspects.isdisjoint(self._open)
