"""
``--wait``: wait until the actual state shows what a command asked for.

:func:`mounted_on` and :func:`gone` are pure: given the state, they say what
is still awaited (``None`` when done). :func:`wait_until` runs the shared
loop of :func:`control.client.waiting.wait_for_state` (woken by the watch,
never polling), printing a line whenever what it waits for changes, until
done or ``timeout``. Given the dataset, it also prints each condition the
agents report as it appears and gives up at once on a permanent error
(:class:`Blocked`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from uuid import UUID

from control.cli.output import duration, node_name
from control.cli.shell import Context
from control.cli.status import condition_text, with_names
from control.client.interface import NodeCondition, StateDataset
from control.client.waiting import Reached, WaitBlocked, WaitTimedOut, wait_for_state
from control.errors import ShoalError
from control.progress import Stage, progress_towards

Pending = Callable[[Sequence[StateDataset]], str | None]
"""What is still awaited in a state, or ``None`` when the goal is reached."""


class TimedOut(ShoalError):
    """The state did not reach the goal in time."""

    code = 504


class Blocked(ShoalError):
    """An agent reports an error that cannot clear without a change of configuration."""

    code = 409


def _find(states: Sequence[StateDataset], dataset_id: UUID) -> StateDataset | None:
    return next((s for s in states if s.dataset_id == dataset_id), None)


def mounted_on(dataset_id: UUID, node: UUID, names: Mapping[UUID, str]) -> Pending:
    """The goal: ``dataset_id`` mounted on ``node``."""
    where = node_name(node, names)

    def pending(states: Sequence[StateDataset]) -> str | None:
        progress = progress_towards(_find(states, dataset_id), node)
        if progress.stage is Stage.UNREPORTED:
            return f"dataset {dataset_id} to appear (no node reports it yet)"
        if progress.stage is Stage.MOUNTED:
            return None
        if progress.stage is Stage.ATTACHED:
            return f"dataset {dataset_id} to be mounted on {where} (it is attached there)"
        if progress.stage is Stage.ELSEWHERE:
            held = node_name(progress.holder, names)
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


async def wait_until(
    ctx: Context,
    pending: Pending,
    timeout: float,
    dataset_id: UUID | None = None,
    names: Mapping[UUID, str] | None = None,
    node: UUID | None = None,
) -> None:
    """Return once ``pending`` says done; raise :class:`TimedOut` after ``timeout`` seconds.

    With ``dataset_id``, each condition the agents report for it is printed
    as soon as it appears, and a permanent error raises :class:`Blocked` at
    once with the agent's reason.
    """
    known = names or {}

    def check(states: Sequence[StateDataset]) -> Reached[None] | str:
        waiting = pending(states)
        if waiting is None:
            ctx.on_interrupt = None
            return Reached(None)
        ctx.on_interrupt = interrupted_note(waiting)
        return waiting

    def condition(found: NodeCondition) -> None:
        ctx.progress(condition_text(found, known, ctx.clock.seconds()))

    try:
        await wait_for_state(
            ctx.client, ctx.clock, check, timeout, dataset_id=dataset_id,
            on_progress=lambda waiting: ctx.progress(f"waiting for {waiting}"),
            on_condition=condition,
            node=node,
        )
    except WaitTimedOut as e:
        raise TimedOut(f"Timed out after {duration(timeout)} waiting for {e.waiting}.") from None
    except WaitBlocked as e:
        where = node_name(e.blocked.node_uuid, known)
        raise Blocked(
            f"{where} cannot do it: {with_names(e.blocked.condition.message, known)}. "
            "This will not succeed without a change: fix the cause (for example a "
            "smaller size, or a bigger pool) or delete the dataset."
        ) from None
