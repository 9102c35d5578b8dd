"""
Run a blocking :class:`~control.store.interface.Store` off the reactor thread.

Every method of the wrapped store becomes a method returning a ``Deferred``
that fires with its result, having run in a thread pool. Tests inject
:func:`synchronous_runner` so that no threads are involved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from control.runners import Runner, synchronous_runner, thread_pool_runner
from control.store.interface import Store

__all__ = ["Runner", "ThreadedStore", "synchronous_runner", "thread_pool_runner"]

class ThreadedStore:
    """A store whose methods return Deferreds, each call run by ``runner``."""

    def __init__(self, store: Store, runner: Runner) -> None:
        self.store = store
        self._run = runner

    def compute(self, function: Callable[..., Any], *args: Any) -> Deferred:
        """Run ``function`` (pure, such as encoding a large listing) as the store's calls run:
        off the reactor thread, in the same pool."""
        return self._run(function, *args)

    def __getattr__(self, name: str) -> Callable[..., Deferred]:
        method = getattr(self.store, name)
        if not callable(method):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Deferred:
            return self._run(method, *args, **kwargs)

        call.__name__ = name
        return call
