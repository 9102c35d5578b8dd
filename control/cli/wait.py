"""
``--wait``: wait until the actual state shows what a command asked for.

:func:`mounted_on` and :func:`gone` are pure: given the state, they say what
is still awaited (``None`` when done). :func:`wait_until` reads the state,
and between reads waits on the client's ``watch`` (never polls), printing a
line whenever what it waits for changes, until done or ``timeout``. Given the
dataset, it also prints each condition the agents report as it appears and
gives up at once on a permanent error (:class:`Blocked`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from uuid import UUID

from control.cli.output import duration, node_name
from control.cli.shell import Context
from control.cli.status import blocking, condition_text, with_names
from control.client.interface import NodeCondition, StateDataset
from control.errors import ShoalError
from control.model import ConditionKind, Versions

Pending = Callable[[Sequence[StateDataset]], str | None]
"""What is still awaited in a state, or ``None`` when the goal is reached."""

WATCH_SLICE = 30.0
"""The longest single watch; the wait is made of several."""


class TimedOut(ShoalError):
    """The state did not reach the goal in time."""

    code = 504


def _find(states: Sequence[StateDataset], dataset_id: UUID) -> StateDataset | None:
    return next((s for s in states if s.dataset_id == dataset_id), None)


def mounted_on(dataset_id: UUID, node: UUID, names: Mapping[UUID, str]) -> Pending:
    """The goal: ``dataset_id`` mounted on ``node``."""
    where = node_name(node, names)

    def pending(states: Sequence[StateDataset]) -> str | None:
        state = _find(states, dataset_id)
        if state is None:
            return f"dataset {dataset_id} to appear (no node reports it yet)"
        if state.primary == node and state.path:
            return None
        if state.primary == node:
            return f"dataset {dataset_id} to be mounted on {where} (it is attached there)"
        if state.primary is not None:
            held = node_name(state.primary, names)
            return f"dataset {dataset_id} to move to {where} (it is still on {held})"
        return f"dataset {dataset_id} to be attached to {where} (it is not attached anywhere)"

    return pending


def gone(dataset_id: UUID, names: Mapping[UUID, str]) -> Pending:
    """The goal: no node reports ``dataset_id`` any more."""

    def pending(states: Sequence[StateDataset]) -> str | None:
        state = _find(states, dataset_id)
        if state is None:
            return None
        if state.primary is None:
            return f"dataset {dataset_id} to be destroyed (its volume still exists)"
        held = node_name(state.primary, names)
        return f"dataset {dataset_id} to be destroyed (it is still on {held})"

    return pending


class Blocked(ShoalError):
    """An agent reports an error that cannot clear without a change of configuration."""

    code = 409


def news(
    conditions: Sequence[NodeCondition], dataset_id: UUID, shown: frozenset[tuple[object, ...]]
) -> tuple[list[NodeCondition], frozenset[tuple[object, ...]]]:
    """The conditions of ``dataset_id`` not shown yet, and what has been shown after them."""
    mine = blocking(conditions, dataset_id)
    keys = {c: (c.node_uuid, c.condition.kind, c.condition.reason, c.condition.message)
            for c in mine}
    fresh = [c for c in mine if keys[c] not in shown]
    return fresh, shown | frozenset(keys[c] for c in fresh)


def permanent_error(conditions: Sequence[NodeCondition], dataset_id: UUID) -> NodeCondition | None:
    """The first permanent error an agent reports for ``dataset_id``, if any."""
    return next(
        (c for c in blocking(conditions, dataset_id)
         if c.condition.permanent and c.condition.kind is ConditionKind.ERROR),
        None,
    )


async def wait_until(
    ctx: Context,
    pending: Pending,
    timeout: float,
    dataset_id: UUID | None = None,
    names: Mapping[UUID, str] | None = None,
) -> None:
    """Return once ``pending`` says done; raise :class:`TimedOut` after ``timeout`` seconds.

    With ``dataset_id``, each condition the agents report for it is printed
    as soon as it appears, and a permanent error raises :class:`Blocked` at
    once with the agent's reason.
    """
    deadline = ctx.clock.seconds() + timeout
    seen = Versions(0, 0)
    last: str | None = None
    shown: frozenset[tuple[object, ...]] = frozenset()
    names = names or {}
    while True:
        waiting = pending(await ctx.client.list_state_datasets())
        if waiting is None:
            return
        if waiting != last:
            ctx.progress(f"waiting for {waiting}")
            last = waiting
        if dataset_id is not None:
            conditions = await ctx.client.list_conditions(dataset_id)
            fresh, shown = news(conditions, dataset_id, shown)
            now = ctx.clock.seconds()
            for found in fresh:
                ctx.progress(condition_text(found, names, now))
            blocked = permanent_error(conditions, dataset_id)
            if blocked is not None:
                where = node_name(blocked.node_uuid, names)
                raise Blocked(
                    f"{where} cannot do it: {with_names(blocked.condition.message, names)}. "
                    "This will not succeed without a change: fix the cause (for example a "
                    "smaller size, or a bigger pool) or delete the dataset."
                )
        left = deadline - ctx.clock.seconds()
        if left <= 0:
            raise TimedOut(f"Timed out after {duration(timeout)} waiting for {waiting}.")
        seen = await ctx.client.watch(seen.configuration, seen.state, min(left, WATCH_SLICE))
