"""
The events of liveness, fencing, draining and failover, made by pure functions.

Each says who or what did it (``actor``: ``failover`` for the control
service's own failover, else the operator's client identity) and why
(``details["reason"]`` and the message). See docs/failover.md.
"""

from __future__ import annotations

from uuid import UUID

from control.model import Dataset, Event, Fence, Node

FAILOVER_ACTOR = "failover"
"""The ``actor`` of everything the control service's failover does by itself."""


def node_event(
    kind: str, node: Node, at: float, message: str, actor: str | None, reason: str
) -> Event:
    """An event about ``node`` (``node_suspect``, ``node_dead``, ``node_live``, ...)."""
    return Event(
        kind=kind,
        at=at,
        message=f"node {node.display_name}: {message}",
        node_uuid=node.uuid,
        actor=actor,
        details={"reason": reason},
    )


def node_fenced(node: Node, fence: Fence) -> Event:
    """``node`` was fenced (automatically by the failover, or by an operator)."""
    how = "automatically" if fence.automatic else "by an operator"
    return node_event(
        "node_fenced",
        node,
        fence.at,
        f"fenced {how}: {fence.reason}",
        fence.actor,
        fence.reason,
    )


def node_unfenced(node: Node, at: float, actor: str | None, reason: str) -> Event:
    """``node``'s fence was lifted."""
    return node_event("node_unfenced", node, at, f"unfenced: {reason}", actor, reason)


def node_draining(node: Node, at: float, actor: str | None, draining: bool) -> Event:
    """``node`` started or stopped draining."""
    if draining:
        reason = "an operator asked to move its datasets off it"
        return node_event("node_draining", node, at, "draining", actor, reason)
    reason = "an operator stopped the drain"
    return node_event("node_drain_stopped", node, at, "no longer draining", actor, reason)


def failed_over(
    before: Dataset, after: Dataset, at: float, actor: str | None, reason: str, kind: str
) -> Event:
    """A dataset got a new primary from the failover (``kind``: ``failed_over`` or ``moved``)."""
    verb = "failed over" if kind == "failed_over" else "moved"
    return Event(
        kind=kind,
        at=at,
        message=(
            f"{verb} from node {before.primary} to node {after.primary} "
            f"(epoch {after.epoch}): {reason}"
        ),
        dataset_id=after.dataset_id,
        node_uuid=after.primary,
        actor=actor,
        details={
            "from": str(before.primary),
            "to": str(after.primary),
            "epoch": after.epoch,
            "reason": reason,
        },
    )


def failover_held(dataset_id: UUID, node: UUID, at: float, reason: str) -> Event:
    """A dataset on a fenced node stays there (failover off, or no node can take it)."""
    return Event(
        kind="failover_held",
        at=at,
        message=f"stays on fenced node {node}: {reason}",
        dataset_id=dataset_id,
        node_uuid=node,
        actor=FAILOVER_ACTOR,
        details={"reason": reason},
    )


def failover_set(dataset: Dataset, at: float, actor: str | None) -> Event:
    """An operator set a dataset's failover options."""
    enabled = {None: "default", True: "on", False: "off"}[dataset.failover]
    grace = "the cluster's" if dataset.failover_grace is None else f"{dataset.failover_grace:g} s"
    return Event(
        kind="failover_set",
        at=at,
        message=f"failover {enabled}, grace {grace}",
        dataset_id=dataset.dataset_id,
        node_uuid=dataset.primary,
        actor=actor,
        details={"enabled": dataset.failover, "grace": dataset.failover_grace},
    )
