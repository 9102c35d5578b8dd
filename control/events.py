"""
The event history's entries, made by pure functions the stores call inside their writes.

Configuration writes make ``created``, ``moved``, ``deleted``, ``lease_taken``
and ``lease_released``; a node's report, compared with its previous one
(:func:`report_events`), makes ``attached``, ``mounted``, ``unmounted``,
``detached`` and ``error`` (a condition that appeared). The store keeps the
history bounded (:class:`EventRetention`) and answers :class:`EventQuery`.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from attrs import frozen

from control.model import (
    Condition,
    ConditionKind,
    Dataset,
    DatasetState,
    Event,
    Lease,
    NodeState,
    VolumeStatus,
)

KINDS = (
    "created",
    "bound",
    "released",
    "adopted",
    "moved",
    "deleted",
    "lease_taken",
    "lease_released",
    "attached",
    "mounted",
    "unmounted",
    "detached",
    "error",
    "node_suspect",
    "node_dead",
    "node_live",
    "node_fenced",
    "node_unfenced",
    "node_draining",
    "node_drain_stopped",
    "failed_over",
    "failover_held",
    "failover_set",
)
"""Every kind of event the control service records (the ``node_*``, ``failed_over``,
``failover_held`` and ``failover_set`` ones come from :mod:`control.failover_events`)."""

DEFAULT_PER_DATASET = 100
DEFAULT_MAX_AGE = 7 * 24 * 3600.0
DEFAULT_LIMIT = 100
MAXIMUM_LIMIT = 1000


@frozen
class EventRetention:
    """How much history a store keeps: the newest ``per_dataset`` of each dataset, none older
    than ``max_age`` seconds (the newest event of all is always kept, so ids never go back)."""

    per_dataset: int = DEFAULT_PER_DATASET
    max_age: float = DEFAULT_MAX_AGE


@frozen
class EventQuery:
    """
    Which events to read: of one dataset and/or node, if given.

    With ``since`` (an event id), the first ``limit`` events after it, oldest
    first (to follow the history); without, the newest ``limit``, oldest first.
    """

    dataset_id: UUID | None = None
    node_uuid: UUID | None = None
    since: int | None = None
    limit: int = DEFAULT_LIMIT

    def matches(self, event: Event) -> bool:
        """Whether ``event`` is of the dataset and node asked for (``since`` aside)."""
        return (self.dataset_id is None or event.dataset_id == self.dataset_id) and (
            self.node_uuid is None or event.node_uuid == self.node_uuid
        )


def dataset_created(dataset: Dataset, at: float, actor: str | None) -> Event:
    """A dataset was created on its primary (or unbound, waiting for its first consumer)."""
    if not dataset.bound:
        return Event(
            kind="created",
            at=at,
            message="created unbound: it is bound to the node of its first consumer",
            dataset_id=dataset.dataset_id,
            actor=actor,
            details={"primary": None, "maximum_size": dataset.maximum_size},
        )
    return Event(
        kind="created",
        at=at,
        message=f"created on node {dataset.primary}",
        dataset_id=dataset.dataset_id,
        node_uuid=dataset.primary,
        actor=actor,
        details={"primary": str(dataset.primary), "maximum_size": dataset.maximum_size},
    )


def dataset_moved(before: Dataset, after: Dataset, at: float, actor: str | None) -> Event | None:
    """A dataset got a new primary (``None`` when the primary stayed)."""
    if before.primary == after.primary:
        return None
    if not before.bound:
        return Event(
            kind="bound",
            at=at,
            message=f"bound to node {after.primary}",
            dataset_id=after.dataset_id,
            node_uuid=after.primary,
            actor=actor,
            details={"to": str(after.primary)},
        )
    return Event(
        kind="moved",
        at=at,
        message=f"moved from node {before.primary} to node {after.primary}",
        dataset_id=after.dataset_id,
        node_uuid=after.primary,
        actor=actor,
        details={"from": str(before.primary), "to": str(after.primary)},
    )


def dataset_deleted(dataset: Dataset, at: float, actor: str | None) -> Event:
    """A dataset was marked deleted (its primary destroys the volume)."""
    return Event(
        kind="deleted",
        at=at,
        message="deleted; its primary destroys the volume",
        dataset_id=dataset.dataset_id,
        node_uuid=dataset.primary,
        actor=actor,
    )


def lease_taken(lease: Lease, at: float, actor: str | None) -> Event:
    """A node took a lease on a dataset."""
    until = "until released" if lease.expires is None else f"until {lease.expires:.0f}"
    return Event(
        kind="lease_taken",
        at=at,
        message=f"lease taken by node {lease.node_uuid} {until}",
        dataset_id=lease.dataset_id,
        node_uuid=lease.node_uuid,
        actor=actor,
        details={"expires": lease.expires},
    )


def lease_released(
    lease: Lease, at: float, actor: str | None, reason: str | None = None
) -> Event:
    """A dataset's lease was released (``reason``: why, when not its holder's own wish)."""
    because = "" if reason is None else f": {reason}"
    return Event(
        kind="lease_released",
        at=at,
        message=f"lease of node {lease.node_uuid} released{because}",
        dataset_id=lease.dataset_id,
        node_uuid=lease.node_uuid,
        actor=actor,
        details={} if reason is None else {"reason": reason},
    )


_RANK = {None: 0, VolumeStatus.PRESENT: 0, VolumeStatus.ATTACHED: 1, VolumeStatus.MOUNTED: 2}


def _status_events(
    dataset_id: UUID, before: VolumeStatus | None, after: VolumeStatus | None
) -> list[tuple[str, str]]:
    """``(kind, message)`` for a dataset's volume going from ``before`` to ``after`` here."""
    up, down = _RANK[before], _RANK[after]
    found = []
    if up < 1 <= down:
        found.append(("attached", "volume attached"))
    if up < 2 <= down:
        found.append(("mounted", "filesystem mounted"))
    if up >= 2 > down:
        found.append(("unmounted", "filesystem unmounted"))
    if up >= 1 > down:
        found.append(("detached", "volume detached"))
    return found


def _key(condition: Condition) -> tuple[object, ...]:
    return (condition.dataset_id, condition.kind, condition.reason, condition.step)


def _condition_event(condition: Condition, node_uuid: UUID, at: float) -> Event:
    return Event(
        kind="error",
        at=at,
        message=condition.message,
        dataset_id=condition.dataset_id,
        node_uuid=node_uuid,
        actor=f"node {node_uuid}",
        details={
            "reason": condition.reason,
            "step": condition.step,
            "attempts": condition.attempts,
            "permanent": condition.permanent,
        },
    )


def _status(state: DatasetState | None) -> VolumeStatus | None:
    return None if state is None else state.status


def report_events(previous: NodeState | None, report: NodeState, at: float) -> list[Event]:
    """
    What a node's new report tells that its previous one did not (pure).

    Volume status changes per dataset (attached, mounted, unmounted,
    detached), and each error condition that appeared (a new step or reason;
    the same error again with more attempts is not news).
    """
    node = report.node_uuid
    old = previous.datasets if previous is not None else {}
    new = report.datasets
    # only a dataset whose status moved can make news: the rest are not sorted
    moved = [d for d, after in new.items() if _status(old.get(d)) is not after.status]
    moved += [d for d in old if d not in new]
    found: list[Event] = []
    for dataset_id in sorted(moved, key=str):
        before = old.get(dataset_id)
        after = new.get(dataset_id)
        for kind, message in _status_events(
            dataset_id,
            None if before is None else before.status,
            None if after is None else after.status,
        ):
            found.append(
                Event(
                    kind=kind,
                    at=at,
                    message=f"{message} on node {node}",
                    dataset_id=dataset_id,
                    node_uuid=node,
                    actor=f"node {node}",
                )
            )
    known = {_key(c) for c in (previous.conditions if previous is not None else ())}
    for condition in report.conditions:
        if condition.kind is ConditionKind.ERROR and _key(condition) not in known:
            found.append(_condition_event(condition, node, at))
    return found


def newest_first_cut(events: Iterable[Event], keep: int) -> list[Event]:
    """The events of ``events`` (oldest first) beyond the newest ``keep``: the ones to prune."""
    ordered = list(events)
    return ordered[: max(0, len(ordered) - keep)]


def dataset_released(before: Dataset, at: float, actor: str | None) -> Event:
    """A dataset of a Retain class was deleted: its volume is kept, released."""
    return Event(
        kind="released",
        at=at,
        message=f"released: deleted with its volume retained (it was on node {before.primary}); "
        "`shoal dataset adopt` makes it a dataset again",
        dataset_id=before.dataset_id,
        node_uuid=before.primary if before.bound else None,
        actor=actor,
        details={"from": str(before.primary)},
    )


def dataset_adopted(after: Dataset, at: float, actor: str | None) -> Event:
    """A released dataset was adopted on a node: live again, with its volume."""
    return Event(
        kind="adopted",
        at=at,
        message=f"adopted on node {after.primary}, with its retained volume",
        dataset_id=after.dataset_id,
        node_uuid=after.primary,
        actor=actor,
        details={"to": str(after.primary)},
    )


def reader_changed(after: Dataset, node: UUID, added: bool, at: float, actor: str | None) -> Event:
    """A node began (``added``) or stopped reading a ReadOnlyMany dataset."""
    return Event(
        kind="reader_added" if added else "reader_removed",
        at=at,
        message=(
            f"node {node} reads it (mounted read-only there)"
            if added
            else f"node {node} no longer reads it"
        ),
        dataset_id=after.dataset_id,
        node_uuid=node,
        actor=actor,
        details={"node": str(node), "readers": ",".join(sorted(str(r) for r in after.readers))},
    )
