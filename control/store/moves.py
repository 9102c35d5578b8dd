"""
A group of moves in a few statements: :func:`move_group`.

:meth:`~control.store.sql.SQLStore.move_datasets` stores the moves that arrived
together in one transaction. Written one by one, each in a savepoint of its own,
a move costs ten statements (the savepoint and its release, the dataset, its
lease, the new primary, the lease holder, the update, the event and two prunes);
on PostgreSQL every statement is a round trip. Here the whole group costs seven,
whatever its size: one read each of the datasets, the leases and the nodes the
group names; one update of every dataset moved, one insert of every event, and
the two prunes. Each move is still judged alone and in order by the same rules
(:func:`control.rules.check_tag`, :func:`control.rules.move_dataset`), against the
database as read plus the moves of the group before it, so it gets the answer it
would have got in a savepoint of its own, and a refused one writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import Connection, bindparam, select, update

from control import events as ev
from control import rules
from control.errors import ShoalError
from control.events import EventRetention
from control.model import Dataset, Lease, Node
from control.store import rows
from control.store.creates import record_events, write_counters
from control.store.interface import Created, NewMove
from control.store.pipelining import pipelined
from control.store.tables import datasets, leases, nodes

_DATASETS = select(datasets).where(datasets.c.dataset_id.in_(bindparam("b_ids", expanding=True)))
_LEASES = select(leases).where(leases.c.dataset_id.in_(bindparam("b_ids", expanding=True)))
_NODES = select(nodes).where(nodes.c.uuid.in_(bindparam("b_uuids", expanding=True)))
_UPDATE_DATASETS = update(datasets).where(datasets.c.dataset_id == bindparam("b_key"))
"""The statements of a group, built once (see :mod:`control.store.queries`)."""


def move_group(
    connection: Connection, generation: int, moves: Sequence[NewMove],
    retention: EventRetention, state_version: int | None = None,
) -> tuple[list[Created], list[Dataset]]:
    """Judge and store ``moves`` in the caller's write transaction, which read
    ``generation``: each one's answer, and the datasets stored in order (the ``i``-th
    stored makes generation ``generation + i + 1``). With ``state_version``, the new
    counters are written too, with the rows (:func:`~control.store.creates.write_counters`)."""
    found = _Found(connection, moves)
    answers: list[Created] = []
    stored: list[Dataset] = []
    made: list[dict[str, object]] = []
    for new in moves:
        try:
            rules.check_tag(generation + len(stored), new.if_tag)
            before = found.datasets.get(new.dataset_id)
            lease = found.leases.get(new.dataset_id)
            holder = None if lease is None else found.nodes.get(lease.node_uuid)
            dataset = rules.move_dataset(
                before, new.dataset_id, new.primary, new.primary in found.nodes, lease,
                new.now, rules.holder_name(lease, holder),
            )
        except ShoalError as refusal:
            answers.append(refusal)
            continue
        assert before is not None
        stored.append(dataset)
        answers.append((dataset, generation + len(stored)))
        found.datasets[dataset.dataset_id] = dataset
        moved = ev.dataset_moved(before, dataset, new.now, new.actor)
        if moved is not None:
            made.append(rows.event_row(moved))
    with pipelined(connection):
        if stored:
            written = [rows.dataset_row(d) for d in stored]
            connection.execute(
                _UPDATE_DATASETS, [{**r, "b_key": r["dataset_id"]} for r in written]
            )
        if made:
            record_events(connection, made, retention)
        if stored:
            write_counters(connection, generation + len(stored), state_version)
    return answers, stored


class _Found:
    """What the database holds of a group's datasets, their leases and the nodes named."""

    def __init__(self, connection: Connection, moves: Sequence[NewMove]) -> None:
        ids = sorted({str(new.dataset_id) for new in moves})
        self.datasets: dict[UUID, Dataset] = {
            d.dataset_id: d
            for d in map(rows.dataset_from_row, connection.execute(_DATASETS, {"b_ids": ids}))
        }
        self.leases: dict[UUID, Lease] = {
            lease.dataset_id: lease
            for lease in map(rows.lease_from_row,
                             connection.execute(_LEASES, {"b_ids": ids}).mappings())
        }
        uuids = {str(new.primary) for new in moves}
        uuids |= {str(lease.node_uuid) for lease in self.leases.values()}
        self.nodes: dict[UUID, Node] = {
            n.uuid: n
            for n in map(rows.node_from_row,
                         connection.execute(_NODES, {"b_uuids": sorted(uuids)}).mappings())
        }
