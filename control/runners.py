"""
Runners: where blocking work goes so the reactor thread never blocks.

A runner calls ``f(*args, **kwargs)`` somewhere and returns a Deferred of the
result. Services use :func:`thread_pool_runner`; tests and fakes inject
:func:`synchronous_runner` so that no threads are involved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

Runner = Callable[..., Deferred]
"""Calls ``f(*args, **kwargs)`` somewhere and returns a Deferred of the result."""


def synchronous_runner(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
    """Run ``f`` right away on the calling thread (for tests and fakes)."""
    return maybeDeferred(f, *args, **kwargs)


def thread_pool_runner(reactor: Any, pool: ThreadPool) -> Runner:
    """A runner that sends every call to ``pool`` and reports back on ``reactor``."""

    def run(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
        return deferToThreadPool(reactor, pool, f, *args, **kwargs)

    return run
