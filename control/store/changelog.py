"""
Which datasets each recent configuration generation changed: :class:`ChangeLog`.

The snapshot cache (:mod:`control.store.snapshot`) records here every
generation it advances to by a write this process committed, with the ids of
the datasets that write changed (:attr:`Snapshot.touched
<control.store.snapshot.Snapshot.touched>`). A reader holding something
computed at generation ``g`` asks :meth:`ChangeLog.between` for the datasets
changed up to the current generation and patches only those; a generation the
log does not hold (another process's write, a snapshot read whole, one older
than the log keeps) answers ``None``, and the reader computes from scratch.
So the answer is never incomplete, only sometimes unknown.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from uuid import UUID

LIMIT = 4096
"""Generations kept (the oldest are forgotten first)."""


class ChangeLog:
    """Generation -> the datasets the write that made it changed; bounded, thread-safe."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._changes: OrderedDict[int, frozenset[UUID]] = OrderedDict()

    def record(self, generation: int, changed: Iterable[UUID]) -> None:
        """Note that the write that made ``generation`` changed the datasets ``changed``."""
        with self._lock:
            self._changes[generation] = frozenset(changed)
            while len(self._changes) > self._limit:
                self._changes.popitem(last=False)

    def between(self, since: int, upto: int) -> frozenset[UUID] | None:
        """The datasets changed by generations ``since + 1`` to ``upto``, or ``None`` if
        any of those generations is not recorded (or ``upto < since``)."""
        if upto < since:
            return None
        found: set[UUID] = set()
        with self._lock:
            for generation in range(since + 1, upto + 1):
                changed = self._changes.get(generation)
                if changed is None:
                    return None
                found |= changed
        return frozenset(found)
