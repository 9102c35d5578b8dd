"""
The write rules of fencing, draining and failover, as pure functions.

Like :mod:`control.rules`, each store loads the records a write touches in
one transaction, calls the function here and persists what it returns, so
the in-memory and the SQL store cannot disagree. The guarded writes the
failover executor makes (:func:`fence`, :func:`unfence`, :func:`fail_over`,
:func:`release_node_lease`) re-check, inside that transaction, the facts the
planner decided on, and change nothing when the cluster moved on meanwhile:
the next pass plans again from fresh facts.
"""

from __future__ import annotations

import math
from uuid import UUID

from attrs import evolve

from control.errors import Conflict, InvalidRequest, NotAllowed, NotFound
from control.model import Configuration, Dataset, Fence, Lease, Node, NodeState, VolumeStatus

MAXIMUM_FAILOVER_GRACE = 7 * 24 * 3600.0
"""The longest per-dataset failover grace (seconds) a dataset may ask for."""


def _require_node(node: Node | None, node_uuid: UUID) -> Node:
    if node is None:
        raise NotFound(
            f"Node {node_uuid} is not registered. List the nodes with `shoal node list` "
            "(GET /v1/shoal/nodes)."
        )
    return node


def rejoined(fence: Fence | None, at: float | None) -> Fence | None:
    """A fenced node registered again at ``at``: the fence, noting it (``None``: unfenced)."""
    if fence is None or at is None:
        return fence
    return evolve(fence, rejoined_at=at)


def fence(existing: Node | None, node_uuid: UUID, new: Fence, silent_since: float | None) -> Node:
    """
    The node fenced by ``new``, or unchanged, or refuse (404).

    An automatic fence (``new.automatic``) changes nothing when the node is
    already fenced, or when it was heard from after ``silent_since`` (the
    ``last_seen`` the planner judged it dead by): a node that reports in time
    is never fenced. An operator's fence replaces an automatic one (it then
    stays until unfenced) and leaves an operator's fence as it is.
    """
    node = _require_node(existing, node_uuid)
    if new.automatic:
        heard_since = (
            silent_since is not None and node.last_seen is not None
            and node.last_seen > silent_since
        )
        if node.fence is not None or heard_since:
            return node
        return evolve(node, fence=new)
    if node.fence is not None and not node.fence.automatic:
        return node
    return evolve(node, fence=new)


def unfence(existing: Node | None, node_uuid: UUID, only_if: Fence | None) -> Node:
    """
    The node without its fence (unchanged if it has none), or refuse (404).

    With ``only_if`` (the failover lifting an automatic fence), only that very
    fence is lifted: a newer one, or an operator's, stays.
    """
    node = _require_node(existing, node_uuid)
    if node.fence is None or (only_if is not None and node.fence != only_if):
        return node
    return evolve(node, fence=None)


def check_unfence(
    node: Node, report: NodeState | None, configuration: Configuration
) -> None:
    """Refuse (409) to lift a fence while the node still reports holding (attached or
    mounted) a volume of a dataset whose primary is now another node."""
    if node.fence is None or report is None:
        return
    for dataset_id, held in sorted(report.datasets.items(), key=lambda item: str(item[0])):
        dataset = configuration.datasets.get(dataset_id)
        if (
            held.status in (VolumeStatus.ATTACHED, VolumeStatus.MOUNTED)
            and dataset is not None
            and dataset.primary != node.uuid
        ):
            raise Conflict(
                f"Node {node.display_name} ({node.uuid}) still reports dataset {dataset_id} "
                f"{held.status.value}, and its primary is now node {dataset.primary}: "
                "unfencing it could let two nodes write that dataset. Let its agent reach the "
                "control service and clean up (it does so by itself), then unfence again."
            )


def set_draining(existing: Node | None, node_uuid: UUID, draining: bool) -> Node:
    """The node marked draining (or no longer), or refuse (404)."""
    return evolve(_require_node(existing, node_uuid), draining=draining)


def placeable(node: Node | None) -> str | None:
    """Why a dataset may not be placed on ``node`` (fenced, draining), or ``None``."""
    if node is None:
        return "it is not registered"
    if node.fence is not None:
        return f"it is fenced ({node.fence.reason})"
    if node.draining:
        return "it is draining"
    return None


def check_placeable(node: Node | None, dataset_id: UUID | None = None) -> None:
    """Refuse (409) to place a dataset on a registered node that is fenced or draining."""
    if node is None:
        return
    why = placeable(node)
    if why is None:
        return
    what = "a dataset" if dataset_id is None else f"dataset {dataset_id}"
    undo = (
        f"`shoal node unfence {node.display_name}`"
        if node.fence is not None
        else f"`shoal node drain {node.display_name} --undo`"
    )
    raise Conflict(
        f"Cannot place {what} on node {node.display_name} ({node.uuid}): {why}, so its agent "
        f"would not take it. Choose another node (`shoal node list`), or first run {undo}."
    )


FAILED_OVER = "failed_over"
"""The event kind (and :func:`fail_over` kind) of a failover off a fenced node."""
DRAINED = "moved"
"""The event kind (and :func:`fail_over` kind) of a move off a draining node."""


def fail_over(
    dataset: Dataset | None,
    lease: Lease | None,
    from_node: Node | None,
    to: Node | None,
    now: float,
    kind: str,
) -> Dataset | None:
    """
    The dataset moved from ``from_node`` to ``to`` with its epoch grown, or ``None``.

    ``None`` (nothing to write) unless the dataset is live with primary
    ``from_node``, which is fenced (``kind`` :data:`FAILED_OVER`) or
    draining and unfenced (:data:`DRAINED`); ``to`` is another registered
    node, neither fenced nor draining; and no lease stands in the way: a live
    lease of another node than ``to`` blocks the move, except a failover's
    of ``from_node`` (which the failover releases in the same write).
    """
    if dataset is None or dataset.deleted or from_node is None:
        return None
    if dataset.primary != from_node.uuid:
        return None
    failing_over = kind == FAILED_OVER
    if failing_over and from_node.fence is None:
        return None
    if not failing_over and (from_node.fence is not None or not from_node.draining):
        return None
    if to is None or to.uuid == from_node.uuid or placeable(to) is not None:
        return None
    held = lease is not None and not lease.expired(now) and lease.node_uuid != to.uuid
    released = failing_over and lease is not None and lease.node_uuid == from_node.uuid
    if held and not released:
        return None
    return evolve(dataset, primary=to.uuid, epoch=dataset.epoch + 1)


def release_node_lease(lease: Lease | None, holder: Node | None, now: float) -> Lease | None:
    """The lease to release if the fenced node ``holder`` still holds it unexpired, else
    ``None`` (a node no longer fenced keeps its leases)."""
    if lease is None or lease.expired(now) or holder is None or holder.fence is None:
        return None
    return lease if lease.node_uuid == holder.uuid else None


def check_failover_grace(grace: object) -> float | None:
    """``grace`` as seconds, or refuse (400) what is not a positive number of seconds."""
    if grace is None:
        return None
    if isinstance(grace, bool) or not isinstance(grace, int | float):
        raise InvalidRequest("grace must be a number of seconds, or null for the cluster's.")
    seconds = float(grace)
    if not math.isfinite(seconds) or not 0 < seconds <= MAXIMUM_FAILOVER_GRACE:
        raise InvalidRequest(
            f"grace {grace!r} must be more than 0 and at most {MAXIMUM_FAILOVER_GRACE:.0f} "
            "seconds (a week); null uses the cluster's grace."
        )
    return seconds


def set_failover(
    existing: Dataset | None, dataset_id: UUID, enabled: bool | None, grace: float | None
) -> Dataset:
    """The dataset with its failover options set, or refuse (404, 405, 400)."""
    if existing is None:
        raise NotFound(f"Dataset {dataset_id} does not exist.")
    if existing.deleted:
        raise NotAllowed(f"Dataset {dataset_id} is deleted; its failover cannot be changed.")
    return evolve(existing, failover=enabled, failover_grace=check_failover_grace(grace))
