"""
One operation per volume at a time: a second one meanwhile is ABORTED, as the CSI spec asks.

Used on the reactor thread only (every service method runs there), so a plain
set is enough.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from plugin.csi.errors import CsiError


class InFlight:
    """The keys (volume ids, volume names, snapshot names) with an operation under way."""

    def __init__(self) -> None:
        self._busy: set[str] = set()

    @contextmanager
    def claim(self, key: str, what: str) -> Iterator[None]:
        """Hold ``key`` for the duration; ABORTED if another operation holds it."""
        if key in self._busy:
            raise CsiError(
                grpc.StatusCode.ABORTED,
                f"An operation on {what} is already in progress; retry when it has finished.",
            )
        self._busy.add(key)
        try:
            yield
        finally:
            self._busy.discard(key)
