"""
A group of creates in a few statements: :func:`create_group`.

:meth:`~control.store.sql.SQLStore.create_datasets` stores the creates that
arrived together in one transaction. Written one by one, each create costs
nine statements (a savepoint and its release, three reads, two inserts and
two prunes), and on PostgreSQL every statement is a round trip. Here the
whole group costs six, whatever its size: one read each of the primaries and
the names the group names; one insert of every dataset and one of every
event; two prunes, the last four sent together on PostgreSQL
(:func:`~control.store.pipelining.pipelined`: one round trip). Each create is
still judged alone and in order by the same rules
(:func:`control.rules.check_tag`, :func:`control.rules.create_dataset`),
against the database as read plus the creates of the group before it, so it
gets the answer it would have got in a savepoint of its own, and a refused
one writes nothing.

The ids are not read: a new dataset's id is almost always new (the service
draws it), and one already stored (a client's own id) fails the datasets'
insert on its primary key, after which the caller writes the group one by one
(:meth:`~control.store.sql.SQLStore._batched_group`), where that create is
refused alone. Two creates of one id in the group are told apart here.

Creates from a source (clones and restores) read their source and take the
one-by-one path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Integer, bindparam, delete, func, insert, select

from control import events as ev
from control import rules
from control.errors import ShoalError
from control.events import EventRetention
from control.model import Dataset
from control.store import queries as q
from control.store import rows
from control.store.interface import Created, NewDataset
from control.store.pipelining import pipelined
from control.store.tables import datasets, events, nodes

_NODES = select(nodes.c.uuid).where(nodes.c.uuid.in_(bindparam("b_uuids", expanding=True)))
_NAMED = select(datasets).where(datasets.c.name.in_(bindparam("b_names", expanding=True)))
"""The datasets of these names, live or not (:class:`_Found` keeps the live ones): with
``deleted = false`` in the query too, SQLite (no statistics) searched ``ix_datasets_deleted``
for two names or more, every live dataset's row (10 ms at 100,000 datasets)."""
_INSERT_DATASETS = insert(datasets)
_INSERT_EVENTS = insert(events).inline()
"""Inline: the new ids are not read back (``RETURNING``), so that it may be pipelined."""
_NEWEST = select(func.max(events.c.event_id)).scalar_subquery()
_PRUNE_OLD = delete(events).where(events.c.at < bindparam("b_before"), events.c.event_id < _NEWEST)
_OLDER = events.alias("older")
_PRUNE_DATASETS = delete(events).where(
    events.c.dataset_id.in_(bindparam("b_ids", expanding=True)),
    events.c.event_id < (
        select(_OLDER.c.event_id)
        .where(_OLDER.c.dataset_id == events.c.dataset_id)
        .order_by(_OLDER.c.event_id.desc())
        .offset(bindparam("b_keep", type_=Integer))
        .limit(1)
        .scalar_subquery()
    ),
)
"""The statements of a group, built once (see :mod:`control.store.queries`)."""


def batchable(creates: Sequence[NewDataset]) -> bool:
    """Whether :func:`create_group` can store ``creates`` (none is made from a source)."""
    return all(new.dataset.source is None for new in creates)


def create_group(
    connection: Connection, generation: int, creates: Sequence[NewDataset],
    retention: EventRetention, known_nodes: set[UUID] | None = None,
    state_version: int | None = None,
) -> tuple[list[Created], list[Dataset]]:
    """Judge and store ``creates`` (:func:`batchable`) in the caller's write transaction,
    which read ``generation``: each one's answer, and the datasets stored in order (the
    ``i``-th stored makes generation ``generation + i + 1``). With ``state_version``, the
    new counters are written too, with the rows (:func:`write_counters`).

    ``known_nodes``: nodes already found registered, kept by the caller across groups (a
    node's row is never deleted, so one found stays found): only the other primaries are
    read, and those found are added to it."""
    found = _Found(connection, creates, set() if known_nodes is None else known_nodes)
    answers: list[Created] = []
    stored: list[Dataset] = []
    made: list[dict[str, Any]] = []
    for new in creates:
        try:
            dataset = _judge(new, generation + len(stored), found)
        except ShoalError as refusal:
            answers.append(refusal)
            continue
        stored.append(dataset)
        answers.append((dataset, generation + len(stored)))
        found.remember(dataset)
        made.append(rows.event_row(ev.dataset_created(dataset, new.now, new.actor)))
    if stored:
        with pipelined(connection):
            connection.execute(_INSERT_DATASETS, [rows.dataset_row(d) for d in stored])
            record_events(connection, made, retention)
            write_counters(connection, generation + len(stored), state_version)
    return answers, stored


def write_counters(connection: Connection, generation: int, state_version: int | None) -> None:
    """Write the counters a group of configuration writes leaves (``generation``, and
    ``state_version`` as read), unless ``state_version`` is ``None`` (the caller writes them):
    called in the group's :func:`pipelined` block, so that they go in its round trip."""
    if state_version is not None:
        q.write_counters(connection, generation, state_version)


class _Found:
    """What the database holds of a group's primaries and names, and the group so far (ids:
    the group's own; one stored before fails the insert, see the module docstring)."""

    def __init__(
        self, connection: Connection, creates: Sequence[NewDataset], known: set[UUID]
    ) -> None:
        primaries = {new.dataset.primary for new in creates}
        unknown = sorted(str(primary) for primary in primaries if primary not in known)
        names = sorted({n for n in (new.dataset.name for new in creates) if n is not None})
        self.existing: dict[UUID, Dataset] = {}
        if unknown:
            known.update(UUID(u) for u, in connection.execute(_NODES, {"b_uuids": unknown}))
        self.known = known
        self.named: dict[str, Dataset] = {}
        if names:
            result = connection.execute(_NAMED, {"b_names": names})
            for dataset in map(rows.dataset_from_row, result):
                if not dataset.deleted and not dataset.released:
                    self.named.setdefault(dataset.name or "", dataset)

    def remember(self, dataset: Dataset) -> None:
        """``dataset`` was stored by an earlier create of the group."""
        self.existing[dataset.dataset_id] = dataset
        if dataset.name is not None:
            self.named[dataset.name] = dataset


def _judge(new: NewDataset, current: int, found: _Found) -> Dataset:
    """The dataset ``new`` stores at generation ``current``, or its refusal."""
    rules.check_tag(current, new.if_tag)
    dataset = new.dataset
    named = None if dataset.name is None else found.named.get(dataset.name)
    return rules.create_dataset(
        found.existing.get(dataset.dataset_id), dataset.primary in found.known, dataset, named
    )


def record_events(
    connection: Connection, made: Sequence[dict[str, Any]], retention: EventRetention
) -> None:
    """Insert the event rows ``made`` (not empty), then drop what
    :func:`control.store.eventlog.prune` would after them, in three statements whatever
    their number: shared by the grouped creates and moves (:mod:`control.store.moves`)."""
    connection.execute(_INSERT_EVENTS, made)
    now = max(float(row["at"]) for row in made)
    connection.execute(_PRUNE_OLD, {"b_before": now - retention.max_age})
    ids = sorted({str(row["dataset_id"]) for row in made})
    connection.execute(_PRUNE_DATASETS, {"b_ids": ids, "b_keep": retention.per_dataset - 1})
