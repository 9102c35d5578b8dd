"""
The SQL statements of the event history: append, prune, query.

Like :mod:`control.store.queries`, each function works inside the caller's
transaction, so a write's events commit (or roll back) with the write.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

from attrs import evolve
from sqlalchemy import Connection, Integer, bindparam, delete, func, insert, select

from control.events import EventQuery, EventRetention
from control.model import Event
from control.store import rows
from control.store.tables import events as table

_INSERT = insert(table).returning(table.c.event_id)
_NEWEST = select(func.max(table.c.event_id)).scalar_subquery()
_PRUNE_OLD = delete(table).where(table.c.at < bindparam("b_before"), table.c.event_id < _NEWEST)
_OF_DATASET = table.c.dataset_id == bindparam("b_dataset_id")
_PRUNE_DATASET = delete(table).where(
    _OF_DATASET,
    table.c.event_id < (
        select(table.c.event_id)
        .where(_OF_DATASET)
        .order_by(table.c.event_id.desc())
        .offset(bindparam("b_keep", type_=Integer))
        .limit(1)
        .scalar_subquery()
    ),
)
"""The statements of every write, built once (see :mod:`control.store.queries`)."""


def append(
    connection: Connection, found: Sequence[Event], retention: EventRetention
) -> list[Event]:
    """Insert ``found`` (ids assigned by the database), then prune; returns them with ids."""
    stored = []
    for event in found:
        event_id = connection.execute(_INSERT, rows.event_row(event)).scalar_one()
        stored.append(evolve(event, event_id=event_id))
    if stored:
        datasets = {e.dataset_id for e in stored if e.dataset_id is not None}
        prune(connection, datasets, retention, max(e.at for e in stored))
    return stored


def prune(
    connection: Connection, dataset_ids: Iterable[UUID], retention: EventRetention, now: float
) -> None:
    """Drop events older than the retention's age and beyond each dataset's newest ``per_dataset``.

    The newest event of all is never dropped, so ids keep increasing on SQLite
    (which would otherwise reuse the ids of a table emptied by pruning).
    """
    connection.execute(_PRUNE_OLD, {"b_before": now - retention.max_age})
    for dataset_id in dataset_ids:
        connection.execute(
            _PRUNE_DATASET,
            {"b_dataset_id": str(dataset_id), "b_keep": retention.per_dataset - 1},
        )


def query(connection: Connection, asked: EventQuery) -> list[Event]:
    """The events ``asked`` for, oldest first."""
    if asked.limit <= 0:
        return []
    statement = select(table)
    if asked.dataset_id is not None:
        statement = statement.where(table.c.dataset_id == str(asked.dataset_id))
    if asked.node_uuid is not None:
        statement = statement.where(table.c.node_uuid == str(asked.node_uuid))
    if asked.since is not None:
        statement = statement.where(table.c.event_id > asked.since)
        statement = statement.order_by(table.c.event_id).limit(asked.limit)
        return [rows.event_from_row(r) for r in connection.execute(statement).mappings()]
    statement = statement.order_by(table.c.event_id.desc()).limit(asked.limit)
    found = [rows.event_from_row(r) for r in connection.execute(statement).mappings()]
    return found[::-1]
