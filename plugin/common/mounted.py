"""
Wait, woken by the control service's watch, until a dataset is reported mounted on a node.

The Docker plugin's Mount and the CSI node's NodeStageVolume both wait this
way: :func:`wait_mounted` returns the reported mount path (which the caller
still checks on its own node, :mod:`plugin.hostmounts`), gives up at once on
a permanent error the node's own agent reports (:class:`~control.client.waiting.WaitBlocked`)
and after ``timeout`` seconds (:class:`~control.client.waiting.WaitTimedOut`).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from control.client.interface import ShoalClient, StateDataset
from control.client.waiting import Check, Clock, Reached, wait_for_state
from plugin.rules import Mounted, mount_progress, state_for


def mounted_check(dataset_id: UUID, node: UUID) -> Check[str]:
    """The wait's pure check: the path once mounted on ``node``, else what is awaited."""

    def check(states: Sequence[StateDataset]) -> Reached[str] | str:
        progress = mount_progress(state_for(states, dataset_id), node, {})
        return Reached(progress.path) if isinstance(progress, Mounted) else progress.reason

    return check


async def wait_mounted(
    client: ShoalClient,
    clock: Clock,
    dataset_id: UUID,
    node: UUID,
    timeout: float,
    own: bool = False,
) -> str:
    """The path ``dataset_id`` is reported mounted at on ``node``, once it is (``own``: as
    ``node`` alone reports it: a ReadOnlyMany reader, which its primary's report hides). Only
    ``node``'s own permanent errors end the wait early."""
    check = mounted_check(dataset_id, node)
    return await wait_for_state(
        client, clock, check, timeout, dataset_id=dataset_id, node=node if own else None,
        blocked_by=node,
    )
