"""
The domain rules of configuration writes, as pure functions.

Each store implementation loads the few records a write touches inside one
transaction, calls the matching function here, and persists what it returns.
Keeping the rules here means the in-memory store and the SQL store cannot
disagree about what is allowed, and the rules are tested without a database.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from control.errors import Conflict, InvalidRequest, NotAllowed, NotFound, PreconditionFailed
from control.model import Dataset, Lease, Node, NodeState, VolumeStatus, tag_for


def check_tag(generation: int, if_tag: str | None) -> None:
    """Refuse a conditional write whose expected tag is not the current one."""
    if if_tag is not None and if_tag != tag_for(generation):
        raise PreconditionFailed(
            f"The configuration changed: its tag is now {tag_for(generation)!r}, "
            f"not {if_tag!r}. Read the configuration again and retry."
        )


def check_primary_known(primary: UUID, known: bool) -> None:
    """Refuse a dataset whose primary is not a registered node (Flocker accepts it)."""
    if not known:
        raise InvalidRequest(
            f"Unknown primary node {primary}: no agent has registered it. "
            "List the nodes with `shoal node list` (GET /v1/state/nodes)."
        )


def check_live(node: Node | None, now: float, timeout: float) -> None:
    """Refuse to place a dataset on ``node`` if it is registered but not heard from lately.

    Only asked for (the API's ``X-Shoal-Require-Live`` header, the CLI unless
    ``--force``): Flocker placed datasets on any node, and its clients still may.
    """
    if node is None or node.is_live(now, timeout):
        return
    silent = (
        "it was never heard from"
        if node.last_seen is None
        else f"it was last heard from {now - node.last_seen:.0f} s ago"
    )
    raise Conflict(
        f"Node {node.display_name} ({node.uuid}) is not live: {silent} "
        f"(the node timeout is {timeout:g} s), so its agent may be down and nothing would act "
        "on the dataset there. Start its agent or choose a live node (GET /v1/shoal/nodes); "
        "leave out X-Shoal-Require-Live to place the dataset there anyway."
    )


def _require(existing: Dataset | None, dataset_id: UUID) -> Dataset:
    if existing is None:
        raise NotFound(f"Dataset {dataset_id} does not exist.")
    return existing


def _check_lease(
    lease: Lease | None, node: UUID | None, action: str, now: float, holder_name: str | None
) -> None:
    if lease is None or lease.expired(now) or lease.node_uuid == node:
        return
    left = lease.seconds_left(now)
    until = "until it is released" if left is None else f"for {left:.0f} more seconds"
    holder = str(lease.node_uuid) if holder_name is None else f"{holder_name} ({lease.node_uuid})"
    raise Conflict(
        f"Cannot {action} dataset {lease.dataset_id}: node {holder} holds a lease on it "
        f"{until}, because a container there may use it. Stop that container (its plugin "
        f"then releases the lease), or release it with `shoal lease release "
        f"{lease.dataset_id}` (DELETE /v1/configuration/leases/{lease.dataset_id})."
    )


def holder_name(lease: Lease | None, node: Node | None) -> str | None:
    """What people call the node holding ``lease`` (``node``, looked up by the store)."""
    if lease is None or node is None:
        return None
    return node.display_name


def check_name_free(dataset: Dataset, holder: Dataset | None) -> None:
    """Refuse ``dataset`` if its ``name`` is taken by ``holder``, another live dataset.

    A ``name`` is unique among datasets that are not deleted, so a name always
    means one dataset (to the CLI and to Docker alike).
    """
    if holder is None or holder.deleted or holder.dataset_id == dataset.dataset_id:
        return
    raise Conflict(
        f"The name {dataset.name!r} is already used by dataset {holder.dataset_id}: "
        "choose another name, or delete that dataset first."
    )


def create_dataset(
    existing: Dataset | None,
    primary_known: bool,
    dataset: Dataset,
    named: Dataset | None = None,
) -> Dataset:
    """Return the dataset to store, or refuse: the id or the name is in use, or the primary unknown.

    ``named`` is the live dataset already carrying ``dataset``'s ``name``, if any.
    """
    if existing is not None:
        raise Conflict(
            f"Dataset id {dataset.dataset_id} is already in use; choose another or omit it."
        )
    check_name_free(dataset, named)
    check_primary_known(dataset.primary, primary_known)
    return dataset.__class__(
        dataset_id=dataset.dataset_id,
        primary=dataset.primary,
        maximum_size=dataset.maximum_size,
        metadata=dataset.metadata,
    )


def move_dataset(
    existing: Dataset | None,
    dataset_id: UUID,
    primary: UUID,
    primary_known: bool,
    lease: Lease | None,
    now: float,
    holder_name: str | None = None,
) -> Dataset:
    """Return the dataset with its new primary, or refuse the move.

    ``holder_name`` names the node holding ``lease``, for the refusal.
    """
    current = _require(existing, dataset_id)
    if current.deleted:
        raise NotAllowed(f"Dataset {dataset_id} is deleted; it cannot be moved.")
    check_primary_known(primary, primary_known)
    if primary != current.primary:
        _check_lease(lease, primary, "move", now, holder_name)
    return current.__class__(
        dataset_id=current.dataset_id,
        primary=primary,
        maximum_size=current.maximum_size,
        metadata=current.metadata,
    )


def delete_dataset(
    existing: Dataset | None,
    dataset_id: UUID,
    lease: Lease | None,
    generation: int,
    now: float,
    holder_name: str | None = None,
) -> Dataset:
    """Return the dataset marked deleted at ``generation``, or refuse.

    Deleting an already deleted dataset returns it unchanged (idempotent).
    """
    current = _require(existing, dataset_id)
    if current.deleted:
        return current
    _check_lease(lease, None, "delete", now, holder_name)
    return current.__class__(
        dataset_id=current.dataset_id,
        primary=current.primary,
        maximum_size=current.maximum_size,
        metadata=current.metadata,
        deleted=True,
        deleted_generation=generation,
    )


def acquire_lease(
    dataset: Dataset | None,
    existing: Lease | None,
    lease: Lease,
    now: float,
    holder_name: str | None = None,
) -> tuple[Lease, bool]:
    """Return ``(lease, created)``: a new lease, a renewal by the same node, or refuse."""
    current = _require(dataset, lease.dataset_id)
    if current.deleted:
        raise NotAllowed(f"Dataset {lease.dataset_id} is deleted; it cannot be leased.")
    if lease.expires is not None and lease.expires <= now:
        raise InvalidRequest("expires must be a positive number of seconds, or null.")
    if existing is not None and not existing.expired(now):
        _check_lease(existing, lease.node_uuid, "lease", now, holder_name)
        return lease, False
    return lease, True


def release_lease(existing: Lease | None, dataset_id: UUID, now: float) -> Lease:
    """Return the lease being released, or refuse when there is none."""
    if existing is None or existing.expired(now):
        raise NotFound(f"Dataset {dataset_id} has no lease to release.")
    return existing


def purgeable(dataset: Dataset, reports: Iterable[NodeState]) -> bool:
    """
    Whether a deleted dataset's record may be forgotten.

    Only once no node reports its volume, and its primary has reported an
    observation made at or after the deletion: until then a volume might still
    exist that only the record lets an agent recognise and destroy.
    """
    if not dataset.deleted or dataset.deleted_generation is None:
        return False
    primary_caught_up = False
    for report in reports:
        if dataset.dataset_id in report.datasets:
            return False
        if report.node_uuid == dataset.primary and report.generation >= dataset.deleted_generation:
            primary_caught_up = True
    return primary_caught_up


def mounted_elsewhere(dataset_id: UUID, node: UUID, reports: Iterable[NodeState]) -> UUID | None:
    """The node other than ``node`` reporting ``dataset_id`` mounted, if any."""
    for report in reports:
        state = report.datasets.get(dataset_id)
        if (
            report.node_uuid != node
            and state is not None
            and state.status is VolumeStatus.MOUNTED
        ):
            return report.node_uuid
    return None
