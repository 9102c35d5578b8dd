"""
The snapshots not settled yet, read once per generation for every node's configuration.

Each node's configuration names the snapshots in its charge among those not ready yet
or deleted (:func:`control.snapshots.pending_for`). Those records change only with the
configuration generation (a snapshot asked for, deleted, or settled by a report: each
moves it), so :class:`UnsettledAt` reads them once per generation, in the transaction
that read the generation, and the readers that miss together wait for that one read
instead of each reading them (1,000 agents asking at once after every move, issue 16).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from control.model import DatasetSnapshot


class UnsettledAt:
    """The unsettled snapshots at the newest generation read; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: tuple[int, list[DatasetSnapshot]] | None = None

    def get(
        self, generation: int, read: Callable[[], list[DatasetSnapshot]]
    ) -> list[DatasetSnapshot]:
        """The unsettled snapshots at ``generation``: those kept for it, else ``read()``
        (called in a transaction at ``generation``; one such read at a time, and those
        waiting for it take what it read when it is at their generation)."""
        found = self._at(generation)
        if found is not None:
            return found
        with self._lock:
            found = self._at(generation)
            if found is not None:
                return found
            found = read()
            kept = self._kept
            if kept is None or kept[0] < generation:
                self._kept = (generation, found)
            return found

    def _at(self, generation: int) -> list[DatasetSnapshot] | None:
        kept = self._kept
        return kept[1] if kept is not None and kept[0] == generation else None
