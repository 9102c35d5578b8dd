"""
``--wait``: wait until the actual state shows what a command asked for.

:func:`mounted_on` and :func:`gone` are pure: given the state, they say what
is still awaited (``None`` when done). :func:`wait_until` reads the state,
and between reads waits on the client's ``watch`` (never polls), printing a
line whenever what it waits for changes, until done or ``timeout``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from uuid import UUID

from control.cli.output import duration, node_name
from control.cli.shell import Context
from control.client.interface import StateDataset
from control.errors import ShoalError
from control.model import Versions

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


def interrupted_note(waiting: str) -> str:
    """What Ctrl-C during a wait means: only the waiting stops."""
    return (
        f"stopped waiting for {waiting}, but the operation goes on in the cluster: "
        "`shoal dataset list` shows how far it got."
    )


async def wait_until(ctx: Context, pending: Pending, timeout: float) -> None:
    """Return once ``pending`` says done; raise :class:`TimedOut` after ``timeout`` seconds."""
    deadline = ctx.clock.seconds() + timeout
    seen = Versions(0, 0)
    last: str | None = None
    while True:
        waiting = pending(await ctx.client.list_state_datasets())
        if waiting is None:
            ctx.on_interrupt = None
            return
        if waiting != last:
            ctx.progress(f"waiting for {waiting}")
            ctx.on_interrupt = interrupted_note(waiting)
            last = waiting
        left = deadline - ctx.clock.seconds()
        if left <= 0:
            raise TimedOut(f"Timed out after {duration(timeout)} waiting for {waiting}.")
        seen = await ctx.client.watch(seen.configuration, seen.state, min(left, WATCH_SLICE))
