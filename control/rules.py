"""
The domain rules of configuration writes, as pure functions.

Each store implementation loads the few records a write touches inside one
transaction, calls the matching function here, and persists what it returns.
Keeping the rules here means the in-memory store and the SQL store cannot
disagree about what is allowed, and the rules are tested without a database.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from uuid import UUID

from attrs import evolve

from control.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotAllowed,
    NotFound,
    PreconditionFailed,
)
from control.failover_rules import rejoined
from control.model import (
    MINIMUM_DATASET_SIZE,
    SIZE_MULTIPLE,
    UNBOUND,
    Dataset,
    Lease,
    Node,
    NodeState,
    OrphanVolume,
    VolumeStatus,
    tag_for,
)
from control.roles import node_urn


def check_tag(generation: int, if_tag: str | None) -> None:
    """Refuse a conditional write whose expected tag is not the current one."""
    if if_tag is not None and if_tag != tag_for(generation):
        raise PreconditionFailed(
            f"The configuration changed: its tag is now {tag_for(generation)!r}, "
            f"not {if_tag!r}. Read the configuration again and retry."
        )


def check_primary_known(primary: UUID, known: bool) -> None:
    """Refuse a dataset whose primary is not a registered node (Flocker accepts it).

    A conflict with the cluster as it is (409), not a malformed request: the
    same request succeeds once that node's agent registers."""
    if not known:
        raise Conflict(
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
    if dataset.bound:
        check_primary_known(dataset.primary, primary_known)
    return dataset.__class__(
        dataset_id=dataset.dataset_id,
        primary=dataset.primary,
        maximum_size=dataset.maximum_size,
        metadata=dataset.metadata,
        source=dataset.source,
        filesystem=dataset.filesystem,
        storage_class=dataset.storage_class,
        access_mode=dataset.access_mode,
        failover=dataset.failover,
        failover_grace=dataset.failover_grace,
        backend=dataset.backend,
    )


def release_dataset(
    existing: Dataset | None,
    dataset_id: UUID,
    lease: Lease | None,
    now: float,
    holder_name: str | None = None,
) -> Dataset:
    """Return the dataset released (its class retains volumes): no node, volume kept.

    Its node lets go of the volume (unmount, detach) and never destroys it;
    releasing a released dataset returns it unchanged. Refused like a delete
    while another node holds a lease on it.
    """
    current = _require(existing, dataset_id)
    if current.deleted:
        raise NotAllowed(f"Dataset {dataset_id} is deleted; it cannot be released.")
    if current.released:
        return current
    _check_lease(lease, None, "delete", now, holder_name)
    return evolve(
        current,
        primary=UNBOUND,
        released=True,
        released_from=current.primary if current.bound else None,
        epoch=current.epoch + 1,
        readers=frozenset(),
    )


def delete_released(current: Dataset, reporters: Iterable[UUID], generation: int) -> Dataset:
    """A released dataset deleted for good: the first node (by uuid) that reports its volume
    destroys it, else the node it was released from; refused (409) without either."""
    holders = sorted(reporters, key=str)
    if not holders and current.released_from is not None:
        holders = [current.released_from]
    if not holders:
        raise Conflict(
            f"No node reports the volume of released dataset {current.dataset_id} now, so none "
            "can destroy it; retry once the node that had it reports again."
        )
    return evolve(
        current, primary=holders[0], deleted=True, deleted_generation=generation,
        epoch=current.epoch + 1,
    )


def adopt_released(
    existing: Dataset | None,
    dataset_id: UUID,
    primary: UUID,
    primary_known: bool,
    named: Dataset | None,
) -> Dataset:
    """Return a released dataset made live again on ``primary``, with its volume and data.

    Refused when it is not released (409), when ``primary`` is unknown, and
    when a live dataset has taken its name meanwhile (409).
    """
    current = _require(existing, dataset_id)
    if current.deleted or not current.released:
        raise Conflict(
            f"Dataset {dataset_id} is not released: only a dataset of a Retain class that was "
            "deleted can be adopted (`shoal dataset list --released`)."
        )
    check_primary_known(primary, primary_known)
    adopted = evolve(
        current, primary=primary, released=False, released_from=None, epoch=current.epoch + 1
    )
    check_name_free(adopted, named)
    return adopted


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

    A new primary grows the dataset's ``epoch`` (its fencing token) by one;
    the same primary returns the dataset unchanged. ``holder_name`` names the
    node holding ``lease``, for the refusal.
    """
    current = _require(existing, dataset_id)
    if current.deleted:
        raise NotAllowed(f"Dataset {dataset_id} is deleted; it cannot be moved.")
    check_primary_known(primary, primary_known)
    if primary == current.primary:
        return current
    _check_lease(lease, primary, "move", now, holder_name)
    return evolve(
        current, primary=primary, epoch=current.epoch + 1, readers=current.readers - {primary}
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
    return evolve(current, deleted=True, deleted_generation=generation)


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


def lease_and_move(
    dataset: Dataset | None,
    existing: Lease | None,
    lease: Lease,
    now: float,
    primary_known: bool,
    holder_name: str | None = None,
) -> tuple[Lease, bool, Dataset]:
    """Return ``(lease, created, dataset)``: ``lease`` taken (as :func:`acquire_lease`) and its
    node made the dataset's primary (as :func:`move_dataset`, under that lease), or refuse
    both: one write, so nobody sees the lease without the move."""
    stored, created = acquire_lease(dataset, existing, lease, now, holder_name)
    moved = move_dataset(
        dataset, lease.dataset_id, lease.node_uuid, primary_known, stored, now, holder_name
    )
    return stored, created, moved


def release_lease(existing: Lease | None, dataset_id: UUID, now: float) -> Lease:
    """Return the lease being released, or refuse when there is none."""
    if existing is None or existing.expired(now):
        raise NotFound(f"Dataset {dataset_id} has no lease to release.")
    return existing


def purgeable(
    dataset: Dataset, reports: Iterable[NodeState], eras: Mapping[UUID, str | None]
) -> bool:
    """
    Whether a deleted dataset's record may be forgotten.

    Only once no node reports its volume, and its primary has reported, in
    the era it is registered with now (``eras``: each node's registered era),
    an observation made at or after the deletion: until then a volume might
    still exist that only the record lets an agent recognise and destroy. A
    report from before the primary's last registration (another era) counts
    for nothing; :func:`check_report` keeps stale reports out of the store.
    """
    if not dataset.deleted or dataset.deleted_generation is None:
        return False
    primary_caught_up = False
    for report in reports:
        if dataset.dataset_id in report.datasets:
            return False
        if (
            report.node_uuid == dataset.primary
            and dataset.primary in eras
            and report.era == eras[dataset.primary]
            and report.generation >= dataset.deleted_generation
        ):
            primary_caught_up = True
    return primary_caught_up


# -- who may report what ---------------------------------------------------------


def _fingerprint(identity: str | None) -> str:
    return "no certificate" if identity is None else f"SHA-256 {identity[:16]}..."


def check_identity(node: Node, identity: str | None, action: str) -> None:
    """
    Refuse (403) a registration or report for ``node`` made with another certificate.

    ``identity`` is the caller's certificate identity (the ``urn:shoal:node:UUID``
    it is bound to, else its fingerprint), ``None`` without TLS: a plain-HTTP
    service trusts its network, so nothing is checked then, nor for a node
    registered without TLS. A certificate bound to this very node may always
    take over (a reissued node certificate; the API has checked the binding).
    """
    if node.identity is None or identity is None or identity == node.identity:
        return
    if identity == node_urn(node.uuid):
        return
    raise Forbidden(
        f"Cannot {action} node {node.uuid}: it was registered with the client certificate "
        f"{_fingerprint(node.identity)}, and this request presents {_fingerprint(identity)}. "
        "Only the certificate that registered a node, or one bound to its uuid, may register "
        "or report for it: run its agent with that node's own certificate (`shoal ca issue "
        f"node NAME --uuid {node.uuid}`)."
    )


def is_normal_absolute(path: str) -> bool:
    """Whether ``path`` is absolute and normalised: no ``.``, ``..``, ``//`` or trailing ``/``."""
    return path.startswith("/") and not path.startswith("//") and posixpath.normpath(path) == path


def strictly_below(root: str, path: str) -> bool:
    """Whether the normalised ``path`` lies strictly below the normalised directory ``root``."""
    if not (is_normal_absolute(root) and is_normal_absolute(path)):
        return False
    return path.startswith(root.rstrip("/") + "/") and path != root


def check_mount_root(mount_root: str | None) -> None:
    """Refuse a registered mount root that is not a normalised absolute directory below ``/``."""
    if mount_root is None:
        return
    if not is_normal_absolute(mount_root) or mount_root == "/":
        raise InvalidRequest(
            f"mount_root {mount_root[:200]!r} must be a normalised absolute directory other "
            "than / (no '.', '..', '//' or trailing '/'), such as /var/lib/shoal/mounts."
        )


def register_node(existing: Node | None, node: Node) -> Node:
    """The node to store for a registration, or refuse it (403, 400).

    A registration without a certificate keeps the identity recorded before.
    It keeps the node's fence and draining mark too (only the failover or an
    operator changes those), noting in the fence that the node has
    registered again since (see :func:`control.failover_rules.rejoined`).
    """
    check_mount_root(node.mount_root)
    if existing is None:
        return evolve(node, fence=None, draining=False)
    check_identity(existing, node.identity, "register")
    identity = existing.identity if node.identity is None else node.identity
    return evolve(
        node,
        identity=identity,
        fence=rejoined(existing.fence, node.last_seen),
        draining=existing.draining,
    )


def _check_paths(node: Node, report: NodeState) -> None:
    root = node.mount_root
    below = None if root is None or not is_normal_absolute(root) else root.rstrip("/") + "/"
    for state in report.datasets.values():
        if state.path is None:
            continue
        if root is None:
            raise Conflict(
                f"Dataset {state.dataset_id} is reported mounted at {state.path[:200]!r}, but "
                f"node {node.uuid} registered no mount_root, so no path of it is trusted. "
                "Register the node with its mount_root (agents do), then report again."
            )
        path = state.path  # strictly_below(root, path), the root checked once for all
        if below is None or not (
            path.startswith(below) and path != root and is_normal_absolute(path)
        ):
            raise Conflict(
                f"Dataset {state.dataset_id} is reported mounted at {state.path[:200]!r}, which "
                f"is not a normalised path strictly below node {node.uuid}'s mount root "
                f"{node.mount_root!r}. A node may only report paths below the mount root it "
                "registered."
            )


def _check_freshness(
    node: Node, last: NodeState | None, report: NodeState, generation: int
) -> None:
    if report.era != node.era:
        raise Conflict(
            f"The report is from era {report.era!r}, but node {node.uuid} is registered in era "
            f"{node.era!r}: it is stale, or the node rebooted. The agent must register "
            "(PUT /v1/shoal/nodes/<uuid>) in its current era before it reports."
        )
    if report.generation > generation:
        raise Conflict(
            f"The report claims configuration generation {report.generation}, but the "
            f"configuration is only at generation {generation}: report the generation of the "
            "configuration the observation was made against."
        )
    if last is not None and report.generation < last.generation:
        raise Conflict(
            f"The report is from generation {report.generation}, older than the generation "
            f"{last.generation} node {node.uuid} last reported: it is stale (replayed or "
            "delayed) and was not recorded. Report a fresh observation."
        )


def check_report(
    node: Node, last: NodeState | None, report: NodeState, generation: int, identity: str | None
) -> None:
    """
    Refuse a report that is not the node's own, current word (nothing is recorded then).

    403 when another certificate than the one that registered the node sends
    it; 409 when its era is not the node's registered era, when its
    generation is newer than the configuration (``generation``) or older than
    the node's last report (``last``); 400 when a dataset's
    path is not strictly below the node's registered mount root.
    """
    check_identity(node, identity, "report for")
    _check_freshness(node, last, report, generation)
    _check_paths(node, report)


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


# -- orphaned volumes --------------------------------------------------------------

ORPHAN_MARK = "shoal.orphan"
"""Metadata key of a record made to destroy an orphan: its blockdevice id."""


def reported_orphans(
    reports: Iterable[NodeState], datasets: Mapping[UUID, Dataset]
) -> list[tuple[UUID, OrphanVolume]]:
    """
    Every ``(node, orphan)`` the reports list, by blockdevice id then node.

    An orphan whose dataset has a record (created or adopted since the node
    looked) is left out: it is no orphan any more.
    """
    found = [
        (report.node_uuid, orphan)
        for report in reports
        for orphan in report.orphans
        if orphan.dataset_id is None or orphan.dataset_id not in datasets
    ]
    return sorted(found, key=lambda item: (item[1].blockdevice_id, str(item[0])))


def find_orphan(blockdevice_id: str, reports: Iterable[NodeState]) -> tuple[UUID, OrphanVolume]:
    """The first node (by uuid) reporting ``blockdevice_id`` as an orphan, with it; or 404/409."""
    found = sorted(
        (
            (report.node_uuid, orphan)
            for report in reports
            for orphan in report.orphans
            if orphan.blockdevice_id == blockdevice_id
        ),
        key=lambda item: str(item[0]),
    )
    if not found:
        raise NotFound(
            f"No node reports an orphaned volume {blockdevice_id[:200]!r}. List them with "
            "`shoal volume orphans` (GET /v1/shoal/orphans)."
        )
    node, orphan = found[0]
    if orphan.dataset_id is None:
        raise Conflict(
            f"Volume {blockdevice_id!r} names no dataset, so no agent can recognise it to "
            "destroy it; remove it from the backend by hand."
        )
    return node, orphan


def _orphan_size(size: int | None) -> int | None:
    if size is None or size < MINIMUM_DATASET_SIZE or size % SIZE_MULTIPLE:
        return None
    return size


def adopt_orphan(
    node: UUID, orphan: OrphanVolume, existing: Dataset | None, generation: int
) -> Dataset:
    """
    The deleted record that makes ``node``'s agent destroy ``orphan``, or refuse.

    The record is deleted at ``generation`` with ``node`` (which sees the
    volume) as its primary, so the ordinary deletion destroys the volume and
    the ordinary purge forgets the record afterwards. A volume whose dataset
    is live is refused (409); one already being destroyed returns its record
    unchanged (idempotent).
    """
    assert orphan.dataset_id is not None
    if existing is not None and not existing.deleted:
        raise Conflict(
            f"Volume {orphan.blockdevice_id!r} belongs to live dataset {existing.dataset_id}: "
            "it is no orphan and will not be destroyed. Delete the dataset instead if you "
            "mean to destroy its data."
        )
    if existing is not None:
        return existing
    return Dataset(
        dataset_id=orphan.dataset_id,
        primary=node,
        maximum_size=_orphan_size(orphan.size),
        metadata={ORPHAN_MARK: orphan.blockdevice_id[:256]},
        deleted=True,
        deleted_generation=generation,
    )
