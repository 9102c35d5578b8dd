"""Independent reads of the control service, sent at once: an RPC waits for the slowest only."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, FirstError, gatherResults


async def gather(*reads: Deferred[Any]) -> list[Any]:
    """The results of ``reads`` in order; the first failure is raised as itself."""
    try:
        return await gatherResults(list(reads), consumeErrors=True)
    except FirstError as e:
        e.subFailure.raiseException()
        raise  # not reached: raiseException always raises
