"""
Wait until the reported state shows what a caller asked for: the one loop the CLI's ``--wait``
and the plugin's Mount share.

:func:`wait_for_state` reads the state, asks the caller's pure ``check`` whether the goal is
reached (:class:`Reached`) or what is still awaited (a sentence), and between reads waits on
the client's watch (never polls). Given a dataset, it also hands each condition the agents
report for it to ``on_condition`` as it appears, and gives up at once on a permanent error
(:class:`WaitBlocked`); after ``timeout`` seconds it raises :class:`WaitTimedOut`. Callers turn
those two into their own messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

from attrs import frozen
from twisted.internet.defer import Deferred, FirstError, gatherResults

from control.client.interface import NodeCondition, ShoalClient, StateDataset
from control.errors import ShoalError
from control.model import ConditionKind, Versions

T = TypeVar("T")

class Clock(Protocol):
    """What the wait needs of a clock (importing the API's would load the web framework)."""

    def seconds(self) -> float:
        """Seconds since the epoch."""
        ...


WATCH_SLICE = 30.0
"""The longest single watch; a wait is made of several."""


@frozen
class Reached(Generic[T]):
    """The goal is reached; ``value`` is what the wait returns (a mount path, say)."""

    value: T


Check = Callable[[Sequence[StateDataset]], "Reached[T] | str"]
"""The goal: given the state, :class:`Reached` or what is still awaited."""


class WaitTimedOut(ShoalError):
    """The state did not reach the goal in time; ``waiting`` says what was still awaited."""

    code = 504

    def __init__(self, waiting: str) -> None:
        super().__init__(f"still waiting for {waiting}")
        self.waiting = waiting


class WaitBlocked(ShoalError):
    """An agent reports an error that cannot clear without a change of configuration."""

    code = 409

    def __init__(self, blocked: NodeCondition) -> None:
        super().__init__(blocked.condition.message)
        self.blocked = blocked


def blocking(conditions: Sequence[NodeCondition], dataset_id: UUID) -> list[NodeCondition]:
    """The conditions of ``dataset_id``: errors first (permanent ones first), then waits."""
    mine = [c for c in conditions if c.condition.dataset_id == dataset_id]

    def order(c: NodeCondition) -> tuple[int, int, float]:
        error = c.condition.kind is ConditionKind.ERROR
        return (0 if error else 1, 0 if c.condition.permanent else 1, c.condition.since)

    return sorted(mine, key=order)


def news(
    conditions: Sequence[NodeCondition], dataset_id: UUID, shown: frozenset[tuple[object, ...]]
) -> tuple[list[NodeCondition], frozenset[tuple[object, ...]]]:
    """The conditions of ``dataset_id`` not shown yet, and what has been shown after them."""
    mine = blocking(conditions, dataset_id)
    keys = {
        c: (c.node_uuid, c.condition.kind, c.condition.reason, c.condition.message) for c in mine
    }
    fresh = [c for c in mine if keys[c] not in shown]
    return fresh, shown | frozenset(keys[c] for c in fresh)


def permanent_error(conditions: Sequence[NodeCondition], dataset_id: UUID) -> NodeCondition | None:
    """The first permanent error an agent reports for ``dataset_id``, if any."""
    return next(
        (
            c
            for c in blocking(conditions, dataset_id)
            if c.condition.permanent and c.condition.kind is ConditionKind.ERROR
        ),
        None,
    )


def _ignore(_: object) -> None:
    return None


async def wait_for_state(
    client: ShoalClient,
    clock: Clock,
    check: Check[T],
    timeout: float,
    *,
    dataset_id: UUID | None = None,
    on_progress: Callable[[str], None] = _ignore,
    on_condition: Callable[[NodeCondition], None] = _ignore,
    node: UUID | None = None,
) -> T:
    """What ``check`` returns once the goal is reached; see the module docstring.

    With ``node``, ``check`` sees the datasets as that node alone reports them."""
    deadline = clock.seconds() + timeout
    seen: Versions | None = None
    last: str | None = None
    shown: frozenset[tuple[object, ...]] = frozenset()
    while True:
        states, conditions = await _read(client, node, dataset_id)
        result = check(states)
        if isinstance(result, Reached):
            return result.value
        if result != last:
            on_progress(result)
            last = result
        if dataset_id is not None:
            fresh, shown = news(conditions, dataset_id, shown)
            for found in fresh:
                on_condition(found)
            blocked = permanent_error(conditions, dataset_id)
            if blocked is not None:
                raise WaitBlocked(blocked)
        left = deadline - clock.seconds()
        if left <= 0:
            raise WaitTimedOut(result)
        if seen is None:
            # The versions as of now (the watch answers at once), then a fresh read: a
            # change after it passes them, so the next watch wakes for it.
            seen = await client.watch(0, 0, min(left, WATCH_SLICE))
            continue
        seen = await client.watch(seen.configuration, seen.state, min(left, WATCH_SLICE))


async def _read(
    client: ShoalClient, node: UUID | None, dataset_id: UUID | None
) -> tuple[Sequence[StateDataset], Sequence[NodeCondition]]:
    """The state (as ``node`` reports it, if given) and the conditions of ``dataset_id`` (none
    without one), asked for at once."""
    reads: list[Deferred[Any]] = [client.list_state_datasets(node)]
    if dataset_id is not None:
        reads.append(client.list_conditions(dataset_id))
    try:
        results = await gatherResults(reads, consumeErrors=True)
    except FirstError as e:  # the read's own error, not gatherResults' wrapper
        e.subFailure.raiseException()
        raise  # not reached: raiseException always raises
    return results[0], results[1] if dataset_id is not None else []
