"""
A filesystem freeze started ahead of the copy it is for.

The kernel's ``FIFREEZE`` waits for RCU grace periods (tens of milliseconds
on a loaded machine, whatever the filesystem holds). A backend that calls back
for the instant of the copy
(:class:`~agent.backends.interface.QuiescedSnapshotsAPI`) lets the executor
start the freeze on a thread of its own while the backend opens the volume,
records the snapshot's id and checks capacity; the backend's
``quiesce(copy)`` then waits for the freeze and makes the copy inside it. The
copy is still made only while the filesystem is frozen: if the freeze cannot
be made, ``quiesce`` raises and nothing is copied. The filesystem is thawed
as soon as the copy is done (the rest of the backend's call, such as closing
the image, overlaps the thaw), at the latest when the backend's call returns
or raises (and, as always, if the agent dies:
:meth:`~agent.fs.interface.Filesystems.while_frozen`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from agent.fs.interface import Filesystems

T = TypeVar("T")


class FreezeAhead:
    """Freeze ``path`` on a thread from ``__enter__`` until ``__exit__``; ``__enter__``
    returns the ``quiesce`` to hand the backend."""

    def __init__(self, filesystems: Filesystems, path: str) -> None:
        self._filesystems = filesystems
        self._path = path
        self._frozen = threading.Event()
        self._release = threading.Event()
        self._held = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._hold, name=f"shoal-freeze {path}", daemon=True
        )

    def start(self) -> None:
        """Start freezing now (once), ahead of ``__enter__``; the freeze is held until
        ``__exit__`` or :meth:`release`."""
        if self._thread.ident is None:
            self._thread.start()

    def release(self) -> None:
        """Thaw a freeze started but not used for a copy (blocks until the freeze is over)."""
        self._release.set()
        if self._thread.ident is not None:
            self._thread.join()

    def __enter__(self) -> Callable[[Callable[[], Any]], Any]:
        self.start()
        return self.quiesce

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
        if kind is None and self._held and self._error is not None:
            raise self._error  # thawed early (timed out): the copy may not be consistent

    def quiesce(self, copy: Callable[[], T]) -> T:
        """``copy()`` once the filesystem is frozen; raises the freeze's error (copying
        nothing) if it could not be frozen. The thaw starts as soon as ``copy`` is done:
        what the backend does after it (closing the image) needs no freeze, and overlaps
        the thaw."""
        self._frozen.wait()
        if not self._held:
            assert self._error is not None
            raise self._error
        try:
            return copy()
        finally:
            self._release.set()

    def _hold(self) -> None:
        try:
            self._filesystems.while_frozen(self._path, self._wait_for_release)
        except BaseException as e:  # handed to the backend's thread by quiesce or __exit__
            self._error = e
        finally:
            self._frozen.set()

    def _wait_for_release(self) -> None:
        self._held = True
        self._frozen.set()
        self._release.wait()


__all__ = ["FreezeAhead"]
