"""
Which datasets the latest configuration generations changed: :class:`ChangeLog`.

A listing encoded at one generation is patched to a later one by re-encoding
only the datasets changed in between, instead of every dataset: the store's
cached snapshot (:mod:`control.store.snapshot`) records each write it applies
here, and :mod:`control.api.listing` asks :meth:`ChangeLog.since`. A log that
does not reach back far enough answers ``None``: encode everything again.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from attrs import frozen

KEPT = 256
"""How many generations a log remembers."""


@frozen
class ChangeLog:
    """The dataset ids changed by each generation up to ``head`` (``None``: nothing known).

    ``entries`` are ``(generation, ids)`` pairs, oldest first, contiguous up to ``head``.
    """

    head: int | None = None
    entries: tuple[tuple[int, frozenset[UUID]], ...] = ()

    @classmethod
    def starting(cls, generation: int) -> ChangeLog:
        """An empty log of a configuration read whole at ``generation``."""
        return cls(generation, ())

    def then(self, ids: Iterable[UUID]) -> ChangeLog:
        """The log of the next generation, which changed the datasets ``ids``."""
        if self.head is None:
            return self
        entries = (*self.entries[-(KEPT - 1):], (self.head + 1, frozenset(ids)))
        return ChangeLog(self.head + 1, entries)

    def since(self, generation: int) -> frozenset[UUID] | None:
        """Every dataset id changed after ``generation`` up to :attr:`head`, or ``None``
        when the log does not reach back to ``generation``."""
        if self.head is None or generation > self.head:
            return None
        if generation == self.head:
            return frozenset()
        covered = [ids for at, ids in self.entries if at > generation]
        if len(covered) != self.head - generation:
            return None
        return frozenset().union(*covered)
