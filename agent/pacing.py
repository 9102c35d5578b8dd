"""
When the convergence loop passes again, and what it tells about a pass (pure helpers).

:func:`backoff_delay` spaces retries after failures; :func:`adopt_state_version`
decides which state version the watch may start from after the agent's own
report; :func:`observed_after` whether an observation made alongside the
configuration's fetch may stand for one made after it; :class:`Stopwatch`
times the steps of a pass for the logs; :func:`both` waits for two Deferreds
without abandoning either.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred, DeferredList

from control.client.interface import NodeConfiguration
from control.model import Dataset, SourceKind
from control.reactor import ReactorTime

HEARTBEAT_JITTER = 0.1
"""Each wait for the next heartbeat is drawn between ``1 - HEARTBEAT_JITTER`` and 1 of the
heartbeat: never longer (the service suspects a node after two heartbeats missed), and
random, so that agents answered together (say, as the control service came back and
took their queued reports at once) drift apart instead of beating in step for ever."""


def heartbeat_pace(jitter: float) -> float:
    """The fraction of the heartbeat to wait before the next one, for ``jitter`` in [0, 1)
    (pure: the randomness is injected)."""
    return 1.0 - HEARTBEAT_JITTER * jitter


SHORTEST_WATCH = 0.01
"""A wait shorter than this many seconds is not worth a watch request: pass at once."""

NO_STATE_WAKE = 10**18 - 1
"""A state version the watch never passes (the API's largest): wake on configuration only.

An idle node has no business with other nodes' reports; only a node waiting
on another (a :class:`~agent.changes.Wait`, e.g. for the old primary to let a
volume go) watches the state version, so a report does not wake every agent.
"""


def backoff_delay(failures: int, jitter: float, initial: float, cap: float) -> float:
    """
    Seconds to wait after ``failures`` consecutive failures; ``jitter`` in [0, 1) (pure).

    The ceiling doubles from ``initial`` up to ``cap`` (Twisted's
    :func:`~twisted.application.internet.backoffPolicy`, as ``ClientService``
    uses); the delay is drawn from the upper half of it ("equal jitter"), the
    randomness being injected so that tests choose it.
    """
    half_ceiling = backoffPolicy(initial / 2, cap / 2, 2.0, jitter=lambda: 0.0)
    half = half_ceiling(max(0, failures - 1))
    return half + half * jitter


def adopt_state_version(known: int, reported: int, changed: bool) -> int:
    """
    The state version to watch from after our own report (pure).

    Our report moves the version by one when it changed something. If the
    answer is exactly that, nothing else happened since ``known`` and the loop
    may watch from the answer; otherwise another node's change slipped in, and
    the loop keeps ``known`` so that the watch wakes it at once.
    """
    return reported if reported == known + (1 if changed else 0) else known


def observed_after(current: int | None, fetched: int) -> bool:
    """
    Whether an observation started when ``current`` was the current generation counts as
    made after the configuration of generation ``fetched`` (pure).

    Generation ``current`` was written before the observation began, so an
    observation begun alongside the fetch is as good as one made after it;
    unless the fetch brought a newer generation, which may have been written
    while observing (then the node is observed again). With ``current``
    unknown, nothing is known of the order.
    """
    return current is not None and fetched <= current


class Stopwatch:
    """Milliseconds spent in each step of a pass, by the injected clock."""

    def __init__(self, clock: ReactorTime) -> None:
        self._clock = clock
        self._last = self._start = clock.seconds()
        self._laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        """Close the step ``name`` now."""
        now = self._clock.seconds()
        self._laps[name] = now - self._last
        self._last = now

    @property
    def total(self) -> float:
        """Seconds from the start to the last lap."""
        return self._last - self._start

    def fields(self) -> dict[str, float]:
        """Log fields: ``<step>_ms`` for each step, and ``ms`` for the whole."""
        fields = {f"{name}_ms": round(s * 1000, 1) for name, s in self._laps.items()}
        return {"ms": round((self._last - self._start) * 1000, 1), **fields}


async def both(first: Deferred[Any], second: Deferred[Any]) -> tuple[Any, Any]:
    """Wait for both Deferreds, then raise the first one's error, else the second's."""
    results = await DeferredList([first, second], consumeErrors=True)
    for ok, value in results:
        if not ok:
            value.raiseException()
    return results[0][1], results[1][1]


def reusable_configuration(
    fetched: tuple[frozenset[UUID], NodeConfiguration] | None,
    current_generation: int | None,
    also: frozenset[UUID],
    node_uuid: UUID,
) -> NodeConfiguration | None:
    """The configuration in hand, if fetching again would return the same records; else None.

    ``fetched`` is what was asked for last time and what came back;
    ``current_generation`` is the generation the last report or watch answer
    said was current. If it is the fetched one, and every dataset asked about
    now was asked about then or came anyway, the records are reused, minus
    those no longer asked about.
    """
    if fetched is None:
        return None
    asked, configuration = fetched
    known = asked | {d.dataset_id for d in configuration.datasets}
    if configuration.generation != current_generation or not also <= known:
        return None
    kept = [
        d for d in configuration.datasets
        if d.primary == node_uuid or d.dataset_id in also or _clone(d)
    ]
    if len(kept) == len(configuration.datasets):
        return configuration  # nothing dropped: the very same records (see agent.lastcall)
    return configuration._replace(datasets=kept)


def _clone(dataset: Dataset) -> bool:
    """Whether ``dataset`` is a clone: one sent to the node of its source, to make it."""
    return dataset.source is not None and dataset.source.kind is SourceKind.DATASET
