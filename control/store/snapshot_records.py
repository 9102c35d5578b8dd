"""
The SQL statements and rows of snapshot records (the ``snapshots`` table).

Like :mod:`control.store.queries`, every function takes an open connection in
a transaction the caller owns; none commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, insert, select, update

from control.model import Dataset, DatasetSnapshot
from control.store.rows import dataset_from_row
from control.store.tables import datasets, snapshots


def snapshot_row(snapshot: DatasetSnapshot) -> dict[str, Any]:
    """The ``snapshots`` row of ``snapshot``."""
    return {
        "snapshot_id": str(snapshot.snapshot_id),
        "name": snapshot.name,
        "dataset_id": str(snapshot.dataset_id),
        "created": snapshot.created,
        "node": str(snapshot.node),
        "size": snapshot.size,
        "ready": snapshot.ready,
        "deleted": snapshot.deleted,
        "deleted_generation": snapshot.deleted_generation,
        "filesystem": snapshot.filesystem,
    }


def snapshot_from_row(row: Mapping[Any, Any]) -> DatasetSnapshot:
    """The snapshot stored in ``row``."""
    return DatasetSnapshot(
        snapshot_id=UUID(row["snapshot_id"]),
        name=row["name"],
        dataset_id=UUID(row["dataset_id"]),
        created=row["created"],
        node=UUID(row["node"]),
        size=row["size"],
        ready=bool(row["ready"]),
        deleted=bool(row["deleted"]),
        deleted_generation=row["deleted_generation"],
        filesystem=row["filesystem"],
    )


def all_snapshots(connection: Connection, dataset_id: UUID | None = None) -> list[DatasetSnapshot]:
    """Every snapshot record (of ``dataset_id`` only, if given)."""
    query = select(snapshots)
    if dataset_id is not None:
        query = query.where(snapshots.c.dataset_id == str(dataset_id))
    return [snapshot_from_row(row) for row in connection.execute(query).mappings()]


def get_snapshot(connection: Connection, snapshot_id: UUID) -> DatasetSnapshot | None:
    """One snapshot record, or ``None``."""
    row = connection.execute(
        select(snapshots).where(snapshots.c.snapshot_id == str(snapshot_id))
    ).mappings().first()
    return None if row is None else snapshot_from_row(row)


def live_named(connection: Connection, name: str) -> DatasetSnapshot | None:
    """The snapshot called ``name`` that is not deleted, or ``None``."""
    row = connection.execute(
        select(snapshots)
        .where(snapshots.c.name == name)
        .where(snapshots.c.deleted == False)  # noqa: E712
        .limit(1)
    ).mappings().first()
    return None if row is None else snapshot_from_row(row)


def unsettled(connection: Connection) -> list[DatasetSnapshot]:
    """The snapshots a report may change: not ready yet, or deleted."""
    query = select(snapshots).where(
        (snapshots.c.ready == False) | (snapshots.c.deleted == True)  # noqa: E712
    )
    return [snapshot_from_row(row) for row in connection.execute(query).mappings()]


def put_snapshot(connection: Connection, snapshot: DatasetSnapshot, exists: bool) -> None:
    """Insert or update one snapshot record."""
    row = snapshot_row(snapshot)
    if exists:
        connection.execute(
            update(snapshots).where(snapshots.c.snapshot_id == row["snapshot_id"]).values(row)
        )
    else:
        connection.execute(insert(snapshots).values(row))


def purge_snapshots(connection: Connection, snapshot_ids: Iterable[UUID]) -> None:
    """Forget snapshot records."""
    ids = [str(i) for i in snapshot_ids]
    connection.execute(delete(snapshots).where(snapshots.c.snapshot_id.in_(ids)))


def copies_of(connection: Connection, source_id: UUID) -> list[Dataset]:
    """The datasets (deleted or not) restored or cloned from ``source_id``."""
    query = select(datasets).where(datasets.c.source_id == str(source_id))
    return [dataset_from_row(row) for row in connection.execute(query)]
