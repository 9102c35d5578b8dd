"""
The rules of snapshots, restores, clones and resize, as pure functions.

Like :mod:`control.rules`, every store calls these inside its write
transaction with the few records a write touches, so the in-memory and the SQL
store refuse exactly the same things. The API calls :func:`new_from_source`
first to fill a restore's or a clone's defaults; the store checks the source
again (:func:`check_source`) under its lock.

Who makes a snapshot: the node *in charge* (:func:`in_charge`) is the one
recorded when it was asked for (the source's primary, which can freeze the
mounted filesystem); if that node is not live, the source's current primary
(after a failover, a live node) takes over, else the first live node by uuid.
Any node whose agent reaches the backend can make or destroy a snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from uuid import UUID

from attrs import evolve

from control.errors import Conflict, InvalidRequest, NotAllowed, NotFound
from control.model import (
    FILESYSTEMS,
    MINIMUM_DATASET_SIZE,
    SIZE_MULTIPLE,
    Dataset,
    DatasetSnapshot,
    DataSource,
    NodeState,
    SourceKind,
)
from control.units import describe_size

MAX_NAME = 253
"""The longest snapshot name."""

NAME_PATTERN = "^[^/\\x00-\\x1f\\x7f ]([^/\\x00-\\x1f\\x7f]*[^/\\x00-\\x1f\\x7f ])?$"
"""A snapshot name: no ``/``, no ASCII control character, no space at either end (the API's
schema uses the same pattern, which reads the same in JSON Schema and in Python)."""

_NAME = re.compile(NAME_PATTERN)


def check_name(name: object) -> str:
    """``name`` if it is a valid snapshot name (:data:`NAME_PATTERN`, 1 to 253 characters)."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        raise InvalidRequest(f"A snapshot name is 1 to {MAX_NAME} characters.")
    if _NAME.match(name) is None:
        raise InvalidRequest(
            f"Snapshot name {name[:60]!r} may not contain '/' or control characters, nor "
            "start or end with a space."
        )
    return name


def default_name(snapshot_id: UUID, source: Dataset | None) -> str:
    """The name of a snapshot asked for without one: ``<volume name or id>-<id prefix>``."""
    base = "snapshot" if source is None else (source.name or str(source.dataset_id)[:8])
    return f"{base}-{str(snapshot_id)[:8]}"[:MAX_NAME]


# -- snapshots --------------------------------------------------------------------


def create_snapshot(
    source: Dataset | None, named: DatasetSnapshot | None, asked: DatasetSnapshot
) -> tuple[DatasetSnapshot, bool]:
    """
    ``(snapshot, created)``: the record to store, or the existing one of that name.

    ``named`` is the live snapshot already called ``asked.name``, if any: the
    same name of the same dataset is the same snapshot (idempotent, not
    created); of another dataset, a conflict. A snapshot of an unknown dataset
    is refused (404), of a deleted one too (409). The node in charge is the
    source's primary; the snapshot starts not ready.
    """
    check_name(asked.name)
    if named is not None and not named.deleted:
        if named.dataset_id == asked.dataset_id:
            return named, False
        raise Conflict(
            f"The snapshot name {asked.name!r} is already used by snapshot "
            f"{named.snapshot_id} of dataset {named.dataset_id}: choose another name, or "
            "delete that snapshot first."
        )
    if source is None:
        raise NotFound(
            f"Dataset {asked.dataset_id} does not exist, so it cannot be snapshotted "
            "(`shoal dataset list` shows the datasets)."
        )
    if source.deleted:
        raise Conflict(
            f"Dataset {source.dataset_id} is deleted: a deleted dataset cannot be "
            "snapshotted. Its earlier snapshots are kept (`shoal snapshot list`)."
        )
    made = DatasetSnapshot(
        snapshot_id=asked.snapshot_id,
        name=asked.name,
        dataset_id=source.dataset_id,
        created=asked.created,
        node=source.primary,
        filesystem=source.filesystem,
    )
    return made, True


def delete_snapshot(
    existing: DatasetSnapshot | None,
    snapshot_id: UUID,
    generation: int,
    restoring: Iterable[Dataset] = (),
) -> DatasetSnapshot:
    """The snapshot marked deleted at ``generation``; an already deleted one unchanged.

    Datasets restored from it are independent volumes and never touched; but
    while one is still being restored (``restoring``: see :func:`restoring`)
    the delete is refused (409), or the restore would lose its source.
    """
    if existing is None:
        raise NotFound(
            f"Snapshot {snapshot_id} does not exist (`shoal snapshot list` shows them)."
        )
    if existing.deleted:
        return existing
    waiting = sorted(str(d.dataset_id) for d in restoring)
    if waiting:
        raise Conflict(
            f"Snapshot {existing.name!r} is being restored into dataset(s) {', '.join(waiting)}, "
            "whose volume no node reports yet: deleting it now would leave them without "
            "their data. Wait until they are created (`shoal dataset list`), or delete them "
            "first."
        )
    return evolve(existing, deleted=True, deleted_generation=generation)


def restoring(
    snapshot_id: UUID, copies: Iterable[Dataset], reports: Iterable[NodeState]
) -> list[Dataset]:
    """The live datasets restored from ``snapshot_id`` whose volume no node reports yet."""
    return _pending_copies(DataSource(SourceKind.SNAPSHOT, snapshot_id), copies, reports)


def cloning(
    dataset_id: UUID, copies: Iterable[Dataset], reports: Iterable[NodeState]
) -> list[Dataset]:
    """The live clones of ``dataset_id`` whose volume no node reports yet."""
    return _pending_copies(DataSource(SourceKind.DATASET, dataset_id), copies, reports)


def _pending_copies(
    source: DataSource, copies: Iterable[Dataset], reports: Iterable[NodeState]
) -> list[Dataset]:
    seen = {dataset_id for report in reports for dataset_id in report.datasets}
    return [
        d for d in copies if not d.deleted and d.source == source and d.dataset_id not in seen
    ]


def clones_to_make(
    node: UUID, datasets: Mapping[UUID, Dataset], reports: Iterable[NodeState]
) -> list[Dataset]:
    """The clones ``node`` makes for another primary: their source is ``node``'s.

    Live clones whose volume no node reports yet, of a live dataset whose
    primary is ``node`` (where the source is attached, the only node that can
    freeze it), while the clone's own primary is another node. Listed in
    ``node``'s configuration; its agent makes the volume only if the source is
    really attached there, and the clone's primary attaches it.
    """
    pending = _pending_copies_of_any(datasets.values(), reports)
    found = []
    for clone in pending:
        assert clone.source is not None
        source = datasets.get(clone.source.source_id)
        if (
            source is not None
            and not source.deleted
            and source.primary == node
            and clone.primary != node
        ):
            found.append(clone)
    return sorted(found, key=lambda d: str(d.dataset_id))


def _pending_copies_of_any(
    copies: Iterable[Dataset], reports: Iterable[NodeState]
) -> list[Dataset]:
    """The live clones (of any dataset) whose volume no node reports yet."""
    seen = {dataset_id for report in reports for dataset_id in report.datasets}
    return [
        d for d in copies
        if not d.deleted and d.source is not None and d.source.kind is SourceKind.DATASET
        and d.dataset_id not in seen
    ]


def check_not_cloning(dataset_id: UUID, clones: Iterable[Dataset]) -> None:
    """Refuse (409) deleting a dataset while a clone of it is still being created."""
    waiting = sorted(str(d.dataset_id) for d in clones)
    if waiting:
        raise Conflict(
            f"Dataset {dataset_id} is being cloned into dataset(s) {', '.join(waiting)}, whose "
            "volume no node reports yet: deleting it now would leave them without their "
            "data. Wait until they are created (`shoal dataset list`), or delete them first."
        )


def reported_sizes(reports: Iterable[NodeState]) -> dict[UUID, int]:
    """Each snapshot id any node reports, with its size."""
    return {s.snapshot_id: s.size for report in reports for s in report.snapshots}


def seen_ready(
    snapshots: Iterable[DatasetSnapshot], reports: Iterable[NodeState]
) -> list[DatasetSnapshot]:
    """The live, not yet ready snapshots some node now reports: ready, with their size.

    A node reports only snapshots it was asked to make and that exist in its
    backend, and snapshot ids are never reused, so any node's word counts.
    """
    sizes = reported_sizes(reports)
    return [
        evolve(s, ready=True, size=sizes[s.snapshot_id])
        for s in snapshots
        if not s.ready and not s.deleted and s.snapshot_id in sizes
    ]


def purgeable(
    snapshot: DatasetSnapshot,
    reports: Iterable[NodeState],
    eras: Mapping[UUID, str | None],
    source_primary: UUID | None,
) -> bool:
    """
    Whether a deleted snapshot's record may be forgotten.

    Only once no node reports it, and its recorded node (or, after a
    takeover, the source's current primary) has reported, in its registered
    era, an observation made at or after the deletion: until then the snapshot
    may still exist, or be in the making, and only the record lets an agent
    destroy it.
    """
    if not snapshot.deleted or snapshot.deleted_generation is None:
        return False
    charged = {snapshot.node} | ({source_primary} if source_primary is not None else set())
    caught_up = False
    for report in reports:
        if any(s.snapshot_id == snapshot.snapshot_id for s in report.snapshots):
            return False
        if (
            report.node_uuid in charged
            and report.node_uuid in eras
            and report.era == eras[report.node_uuid]
            and report.generation >= snapshot.deleted_generation
        ):
            caught_up = True
    return caught_up


def in_charge(
    snapshot: DatasetSnapshot, source: Dataset | None, live: frozenset[UUID]
) -> UUID:
    """The node that makes (or destroys) ``snapshot`` now, given the ``live`` nodes.

    Its recorded node while live; else the source's primary if live (a
    failover moved it there); else the first live node by uuid; else the
    recorded node (nobody can act; it resumes when that node is back).
    """
    if snapshot.node in live:
        return snapshot.node
    if source is not None and not source.deleted and source.primary in live:
        return source.primary
    if live:
        return min(live, key=str)
    return snapshot.node


def pending_for(
    node: UUID,
    snapshots: Iterable[DatasetSnapshot],
    datasets: Mapping[UUID, Dataset],
    live: frozenset[UUID],
) -> list[DatasetSnapshot]:
    """The snapshots ``node`` must act on: not ready yet, or deleted, and in its charge."""
    return sorted(
        (
            s
            for s in snapshots
            if (s.deleted or not s.ready)
            and in_charge(s, datasets.get(s.dataset_id), live) == node
        ),
        key=lambda s: (s.created, str(s.snapshot_id)),
    )


# -- restore and clone --------------------------------------------------------------


def _valid_size(size: int) -> int:
    """``size`` rounded up to a size a dataset may have."""
    rounded = -(-size // SIZE_MULTIPLE) * SIZE_MULTIPLE
    return max(rounded, MINIMUM_DATASET_SIZE)


def source_size(source: DatasetSnapshot | Dataset) -> int | None:
    """The size a restore or clone of ``source`` starts from (``None``: unknown)."""
    if isinstance(source, DatasetSnapshot):
        return None if source.size is None else _valid_size(source.size)
    return source.maximum_size


def _describe(source: DataSource) -> str:
    return f"{source.kind.value} {source.source_id}"


def check_source(
    source: DataSource, found: DatasetSnapshot | Dataset | None, dataset: Dataset
) -> None:
    """
    Refuse a restore or clone whose source cannot be copied, or a size smaller than it.

    The source must exist (404) and not be deleted (409); a snapshot must be
    ready (409: wait for it). The new size may be larger than the source's,
    never smaller (400); the filesystem is the source's (400 otherwise).
    """
    if found is None:
        lister = "snapshot list" if source.kind is SourceKind.SNAPSHOT else "dataset list"
        raise NotFound(f"The source {_describe(source)} does not exist (`shoal {lister}`).")
    if found.deleted:
        raise Conflict(f"The source {_describe(source)} is deleted; it cannot be copied.")
    if isinstance(found, DatasetSnapshot) and not found.ready:
        raise Conflict(
            f"Snapshot {found.name!r} ({found.snapshot_id}) is not ready yet; wait for it "
            f"(`shoal snapshot show {found.name} --wait`), then restore it."
        )
    size = source_size(found)
    if size is not None and dataset.maximum_size is not None and dataset.maximum_size < size:
        raise InvalidRequest(
            f"maximum_size {describe_size(dataset.maximum_size)} is smaller than the source "
            f"{_describe(source)} ({describe_size(size)}): a restore or clone may be larger "
            "than its source, never smaller. Leave the size out to get the source's size."
        )
    if dataset.filesystem != found.filesystem:
        raise InvalidRequest(
            f"filesystem {dataset.filesystem!r} is not the source's ({found.filesystem!r}): "
            "a restore or clone keeps its source's filesystem. Leave filesystem out."
        )


def new_from_source(
    dataset_id: UUID,
    source: DataSource | None,
    found: DatasetSnapshot | Dataset | None,
    primary: UUID | None,
    maximum_size: int | None,
    metadata: Mapping[str, str],
    filesystem: str | None,
) -> Dataset:
    """
    The dataset a create asks for, with a restore's or clone's defaults filled in.

    Without a source, ``primary`` is required. With one, the primary defaults
    to the node where the source is (a clone: the source's primary, which can
    freeze it; a restore: the snapshot's node), the size to the source's, and
    the filesystem is the source's. :func:`check_source` refuses the rest.
    """
    if source is None:
        if primary is None:
            raise InvalidRequest("primary is required (the node uuid to create the dataset on).")
        return Dataset(
            dataset_id=dataset_id,
            primary=primary,
            maximum_size=maximum_size,
            metadata=metadata,
            filesystem=filesystem or FILESYSTEMS[0],
        )
    check_source(source, found, _placeholder(dataset_id, maximum_size, filesystem, found))
    assert found is not None
    where = found.node if isinstance(found, DatasetSnapshot) else found.primary
    return Dataset(
        dataset_id=dataset_id,
        primary=where if primary is None else primary,
        maximum_size=source_size(found) if maximum_size is None else maximum_size,
        metadata=metadata,
        source=source,
        filesystem=found.filesystem,
    )


def _placeholder(
    dataset_id: UUID,
    maximum_size: int | None,
    filesystem: str | None,
    found: DatasetSnapshot | Dataset | None,
) -> Dataset:
    fs = filesystem or (found.filesystem if found is not None else FILESYSTEMS[0])
    return Dataset(dataset_id=dataset_id, primary=dataset_id, maximum_size=maximum_size,
                   filesystem=fs)


# -- resize -------------------------------------------------------------------------


def resize_dataset(existing: Dataset | None, dataset_id: UUID, size: int) -> Dataset:
    """
    The dataset grown to ``size`` bytes, or refuse.

    Only a live dataset of known size grows (404, 405 deleted, 409 unknown
    size); a smaller size is refused (400: a filesystem cannot shrink
    online). The same size returns the dataset unchanged (idempotent).
    """
    if existing is None:
        raise NotFound(f"Dataset {dataset_id} does not exist.")
    if existing.deleted:
        raise NotAllowed(f"Dataset {dataset_id} is deleted; it cannot be resized.")
    current = existing.maximum_size
    if current is None:
        raise Conflict(
            f"Dataset {dataset_id} has no recorded size (it was created with the backend's "
            "default), so Shoal cannot tell whether the new size grows it. Clone it with an "
            "explicit size instead (`shoal dataset create --clone-of ... --size ...`)."
        )
    if size < current:
        raise InvalidRequest(
            f"maximum_size {describe_size(size)} is smaller than dataset {dataset_id}'s "
            f"{describe_size(current)}: datasets only grow. To get a smaller one, create a "
            "new dataset of that size and copy the data you need into it."
        )
    if size == current:
        return existing
    return evolve(existing, maximum_size=size)
