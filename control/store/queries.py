"""
The SQL statements of :class:`~control.store.sql.SQLStore`, one small function each.

Every function takes an open :class:`~sqlalchemy.Connection` inside a
transaction that the caller owns; none commits. Writes that update or insert
are told whether the row exists: the caller read it under the writers' lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Select, Table, bindparam, delete, insert, or_, select, update

from control.model import Dataset, DatasetState, Lease, Node, NodeState
from control.store import rows
from control.store.pglocks import write_and_notify_counters
from control.store.tables import (
    CLUSTER_ROW,
    cluster,
    datasets,
    leases,
    node_datasets,
    node_states,
    nodes,
)

# The statements of every write, built once: SQLAlchemy then finds each one's
# compiled form by a cache key it computed once, instead of building, keying
# and looking up a new statement on every call (most of a create's CPU).
COUNTERS = select(cluster.c.generation, cluster.c.state_version).where(
    cluster.c.id == CLUSTER_ROW
)
"""``(generation, state_version)``: one row."""
LOCKED_COUNTERS = COUNTERS.with_for_update()
"""The counters, the cluster row locked until the transaction ends (the writers' lock)."""
CLAIMED_COUNTERS = (
    update(cluster)
    .where(cluster.c.id == CLUSTER_ROW)
    .values(generation=cluster.c.generation)
    .returning(cluster.c.generation, cluster.c.state_version)
)
"""PostgreSQL: the counters, the cluster row locked as by :data:`LOCKED_COUNTERS` and
rewritten unchanged, so that once the transaction commits the row's version (``xmin``) is
its id: :func:`~control.store.pglocks.read_marked_counters` then tells that a write
committed since it was last read, whichever replica made it (:mod:`control.store.renewals`)."""
_WRITE_COUNTERS = update(cluster).where(cluster.c.id == CLUSTER_ROW)
_DATASET = select(datasets).where(datasets.c.dataset_id == bindparam("b_dataset_id"))
_NODE_EXISTS = select(nodes.c.uuid).where(nodes.c.uuid == bindparam("b_uuid"))
_LIVE_NAMED = (
    select(datasets)
    .where(datasets.c.deleted == False)  # noqa: E712
    .where(datasets.c.released == False)  # noqa: E712
    .where(datasets.c.name == bindparam("b_name"))
    .limit(1)
)
_INSERTS = {table.name: insert(table) for table in (datasets, leases, nodes, node_states)}
_UPDATES = {
    (table.name, key): update(table).where(table.c[key] == bindparam("b_key"))
    for table, key in (
        (datasets, "dataset_id"), (leases, "dataset_id"), (nodes, "uuid"),
        (node_states, "node_uuid"),
    )
}


def read_counters(connection: Connection) -> tuple[int, int]:
    """``(generation, state_version)`` (a write takes them locked: ``SQLStore._write``)."""
    generation, state_version = connection.execute(COUNTERS).one()
    return generation, state_version


def write_counters(connection: Connection, generation: int, state_version: int) -> None:
    """Store both counters (on PostgreSQL, announced on commit in the same statement:
    :func:`~control.store.pglocks.write_and_notify_counters`)."""
    if connection.dialect.name == "postgresql":
        write_and_notify_counters(connection, generation, state_version)
        return
    connection.execute(
        _WRITE_COUNTERS, {"generation": generation, "state_version": state_version}
    )


def _upsert(
    connection: Connection, table: Table, key: str, row: dict[str, Any], exists: bool
) -> None:
    if exists:
        connection.execute(_UPDATES[table.name, key], {**row, "b_key": row[key]})
    else:
        connection.execute(_INSERTS[table.name], row)


def get_dataset(connection: Connection, dataset_id: UUID) -> Dataset | None:
    """One dataset, or ``None``."""
    row = connection.execute(_DATASET, {"b_dataset_id": str(dataset_id)}).first()
    return None if row is None else rows.dataset_from_row(row)


def put_dataset(connection: Connection, dataset: Dataset, exists: bool) -> None:
    """Insert or update one dataset."""
    _upsert(connection, datasets, "dataset_id", rows.dataset_row(dataset), exists)


def live_named(connection: Connection, name: str) -> Dataset | None:
    """A dataset that is not deleted and whose metadata ``name`` is ``name``, or ``None``."""
    row = connection.execute(_LIVE_NAMED, {"b_name": name}).first()
    return None if row is None else rows.dataset_from_row(row)


STREAM_ROWS = 2_000
"""Rows fetched at a time by the reads of every dataset or every reported state. On
PostgreSQL a plain read has libpq hold the whole result (100,000 rows: tens of MB) in C
memory at once; freed by a pool thread, glibc kept it in that thread's arena, and the
service's RSS grew by 120 MiB over a few state reports (issue 16, bench/README.md
"Memory on PostgreSQL"). Streamed through a server-side cursor, the peak is a batch."""


def _streamed(statement: Select[Any]) -> Select[Any]:
    """``statement`` read :data:`STREAM_ROWS` rows at a time (a server-side cursor on
    PostgreSQL; SQLite steps through its rows anyway)."""
    return statement.execution_options(yield_per=STREAM_ROWS)


def all_datasets(connection: Connection) -> dict[UUID, Dataset]:
    """Every dataset by id."""
    uuids: dict[str, UUID] = {}
    result = connection.execute(_ALL_DATASETS)
    return {d.dataset_id: d for d in (rows.dataset_from_row(row, uuids) for row in result)}


_DATASET_COLUMNS = [c for c in datasets.c if c.name != "listing"]
"""A dataset's columns but its encoded listing item (a whole load does not need 18 MB of it)."""
_ALL_DATASETS = _streamed(select(*_DATASET_COLUMNS))


def dataset_listing(connection: Connection) -> bytes:
    """The JSON array of every dataset's v1 listing item, ordered by id: the items stored with
    the rows (:func:`control.store.rows.listing_fragment`) joined, encoding only the rows whose
    item was cleared (written by a replica that does not know the column).

    Each item starts with its ``dataset_id`` (36 characters), so sorting the items sorts them
    by id: in Python, half the time of the database's ``ORDER BY`` through its index, and the
    same order whatever the database's collation."""
    items = list(connection.execute(_LISTING).scalars())
    if None in items:
        result = connection.execute(_UNLISTED)
        items = [i for i in items if i is not None]
        items += [rows.listing_fragment(rows.dataset_from_row(row)) for row in result]
    items.sort()
    return ("[" + ",".join(items) + "]").encode()


_LISTING = _streamed(select(datasets.c.listing))
_UNLISTED = select(*_DATASET_COLUMNS).where(datasets.c.listing.is_(None))


def datasets_for(connection: Connection, node_uuid: UUID, also: Iterable[UUID]) -> list[Dataset]:
    """The datasets whose primary is ``node_uuid`` or whose id is in ``also``."""
    condition = datasets.c.primary == str(node_uuid)
    extra = [str(i) for i in also]
    if extra:
        condition = or_(condition, datasets.c.dataset_id.in_(extra))
    result = connection.execute(select(datasets).where(condition))
    return [rows.dataset_from_row(row) for row in result]


def deleted_datasets(connection: Connection) -> list[Dataset]:
    """The datasets marked deleted and not yet purged."""
    only_deleted = datasets.c.deleted == True  # noqa: E712
    result = connection.execute(select(datasets).where(only_deleted))
    return [rows.dataset_from_row(row) for row in result]


def purge_datasets(connection: Connection, dataset_ids: Iterable[UUID]) -> None:
    """Forget datasets and their leases."""
    ids = [str(i) for i in dataset_ids]
    connection.execute(delete(leases).where(leases.c.dataset_id.in_(ids)))
    connection.execute(delete(datasets).where(datasets.c.dataset_id.in_(ids)))


def get_lease(connection: Connection, dataset_id: UUID) -> Lease | None:
    """A dataset's lease, expired or not, or ``None``."""
    row = connection.execute(
        select(leases).where(leases.c.dataset_id == str(dataset_id))
    ).mappings().first()
    return None if row is None else rows.lease_from_row(row)


def put_lease(connection: Connection, lease: Lease, exists: bool) -> None:
    """Insert or replace a dataset's lease."""
    _upsert(connection, leases, "dataset_id", rows.lease_row(lease), exists)


def delete_lease(connection: Connection, dataset_id: UUID) -> None:
    """Remove a dataset's lease."""
    connection.execute(delete(leases).where(leases.c.dataset_id == str(dataset_id)))


def all_leases(connection: Connection) -> dict[UUID, Lease]:
    """Every lease by dataset id, expired ones included."""
    result = connection.execute(select(leases)).mappings()
    return {lease.dataset_id: lease for lease in map(rows.lease_from_row, result)}


def get_node(connection: Connection, node_uuid: UUID) -> Node | None:
    """One registered node, or ``None``."""
    row = connection.execute(
        select(nodes).where(nodes.c.uuid == str(node_uuid))
    ).mappings().first()
    return None if row is None else rows.node_from_row(row)


def node_exists(connection: Connection, node_uuid: UUID) -> bool:
    """Whether ``node_uuid`` has registered."""
    found = connection.execute(_NODE_EXISTS, {"b_uuid": str(node_uuid)})
    return found.first() is not None


def put_node(connection: Connection, node: Node, exists: bool) -> None:
    """Insert or update a node."""
    _upsert(connection, nodes, "uuid", rows.node_row(node), exists)


def mark_seen(connection: Connection, node_uuid: UUID, when: float) -> None:
    """Record that a node was heard from at ``when``."""
    connection.execute(update(nodes).where(nodes.c.uuid == str(node_uuid)).values(last_seen=when))


def flush_seen(connection: Connection, times: Mapping[UUID, tuple[float, float | None]]) -> None:
    """Move each node's ``last_seen`` and its report's ``reported_at`` (unless ``None``)
    forward to the times given (never back: another replica may have written later ones)."""
    seen = [{"u": str(uuid), "t": t} for uuid, (t, _) in times.items()]
    sent = [{"u": str(uuid), "t": r} for uuid, (_, r) in times.items() if r is not None]
    connection.execute(
        update(nodes)
        .where(nodes.c.uuid == bindparam("u"))
        .where(or_(nodes.c.last_seen.is_(None), nodes.c.last_seen < bindparam("t")))
        .values(last_seen=bindparam("t")),
        seen,
    )
    if not sent:
        return
    connection.execute(
        update(node_states)
        .where(node_states.c.node_uuid == bindparam("u"))
        .where(
            or_(node_states.c.reported_at.is_(None), node_states.c.reported_at < bindparam("t"))
        )
        .values(reported_at=bindparam("t")),
        sent,
    )


def all_nodes(connection: Connection) -> list[Node]:
    """Every registered node."""
    return [rows.node_from_row(row) for row in connection.execute(select(nodes)).mappings()]


def fenced_nodes(connection: Connection) -> frozenset[UUID]:
    """The nodes fenced now."""
    result = connection.execute(select(nodes.c.uuid, nodes.c.fence))
    return frozenset(UUID(uuid) for uuid, fence in result if fence is not None)


def node_with_era(connection: Connection, era: str) -> Node | None:
    """The node whose current era is ``era``, or ``None``."""
    row = connection.execute(select(nodes).where(nodes.c.era == era).limit(1)).mappings().first()
    return None if row is None else rows.node_from_row(row)


def get_report(connection: Connection, node_uuid: UUID) -> NodeState | None:
    """A node's latest report, or ``None``."""
    row = connection.execute(_REPORT, {"b_node": str(node_uuid)}).mappings().first()
    if row is None:
        return None
    states = connection.execute(_REPORT_DATASETS, {"b_node": str(node_uuid)}).all()
    return rows.node_state_from_row(row, map(rows.dataset_state_from_row, states))


def put_report(connection: Connection, report: NodeState, exists: bool) -> None:
    """Insert or replace a node's latest report (its datasets' rows all written again)."""
    node = str(report.node_uuid)
    _upsert(connection, node_states, "node_uuid", rows.node_state_row(report), exists)
    if exists:
        connection.execute(_DROP_DATASETS, {"b_node": node})
    put_dataset_states(connection, node, report.datasets.values())


def put_dataset_states(connection: Connection, node: str, states: Iterable[DatasetState]) -> None:
    """Insert the rows of ``states`` in node ``node``'s report."""
    found = [rows.dataset_state_row(node, state) for state in states]
    if found:
        connection.execute(_INSERT_DATASET_STATE, found)


def update_dataset_states(
    connection: Connection, node: str, states: Iterable[DatasetState]
) -> None:
    """Update the rows of ``states`` (each already stored) in node ``node``'s report."""
    found = [
        {"b_node": node, "b_dataset": str(state.dataset_id), "status": state.status.value,
         "maximum_size": state.maximum_size, "device": state.device, "path": state.path}
        for state in states
    ]
    if found:
        connection.execute(_UPDATE_DATASET_STATE, found)


def drop_dataset_states(connection: Connection, node: str, dataset_ids: Iterable[UUID]) -> None:
    """Delete the rows of ``dataset_ids`` from node ``node``'s report."""
    gone = [{"b_node": node, "b_dataset": str(i)} for i in dataset_ids]
    if gone:
        connection.execute(_DROP_DATASET_STATE, gone)


_REPORT_COLUMNS = [c for c in node_states.c if c.name != "datasets"]
"""A report's columns but the one that held its datasets before schema revision 0011."""
_REPORT = select(*_REPORT_COLUMNS).where(node_states.c.node_uuid == bindparam("b_node"))
_ALL_REPORTS = select(*_REPORT_COLUMNS)
_STATE_COLUMNS = (
    node_datasets.c.dataset_id, node_datasets.c.status, node_datasets.c.maximum_size,
    node_datasets.c.device, node_datasets.c.path,
)
_REPORT_DATASETS = select(*_STATE_COLUMNS).where(node_datasets.c.node_uuid == bindparam("b_node"))
_ALL_DATASET_STATES = _streamed(select(node_datasets.c.node_uuid, *_STATE_COLUMNS))
_INSERT_DATASET_STATE = insert(node_datasets)
_UPDATE_DATASET_STATE = (
    update(node_datasets)
    .where(node_datasets.c.node_uuid == bindparam("b_node"))
    .where(node_datasets.c.dataset_id == bindparam("b_dataset"))
)
_DROP_DATASET_STATE = (
    delete(node_datasets)
    .where(node_datasets.c.node_uuid == bindparam("b_node"))
    .where(node_datasets.c.dataset_id == bindparam("b_dataset"))
)
_DROP_DATASETS = delete(node_datasets).where(node_datasets.c.node_uuid == bindparam("b_node"))


def touch_report(connection: Connection, node_uuid: UUID, reported_at: float | None) -> None:
    """Record when a node's unchanged latest report was sent again."""
    connection.execute(
        update(node_states)
        .where(node_states.c.node_uuid == str(node_uuid))
        .values(reported_at=reported_at)
    )


def all_reports(connection: Connection) -> list[NodeState]:
    """Every node's latest report."""
    found = connection.execute(_ALL_REPORTS).mappings().all()
    states: dict[str, list[DatasetState]] = {row["node_uuid"]: [] for row in found}
    make, uuid, status_of = DatasetState, UUID, rows.STATUSES  # 100,000 rows: no lookups
    # One row at a time: the rows are not all held as Python values at once (the peak RSS).
    for node, dataset_id, status, size, device, path in connection.execute(_ALL_DATASET_STATES):
        held = states.get(node)
        if held is not None:
            held.append(make(uuid(dataset_id), status_of[status], size, device, path))
    return [rows.node_state_from_row(row, states[row["node_uuid"]]) for row in found]


def reports_holding(
    connection: Connection, dataset_ids: Iterable[UUID], nodes: Iterable[UUID]
) -> list[NodeState]:
    """The latest reports of ``nodes`` and of every node reporting one of ``dataset_ids``,
    each with only its states of ``dataset_ids``: all that
    :func:`control.rules.purgeable` reads of the reports, for those datasets with those
    primaries, without reading every report's every dataset (100,000 rows) at each report
    written while a deleted dataset waits to be purged."""
    texts = [str(i) for i in dataset_ids]
    states: dict[str, list[DatasetState]] = {str(n): [] for n in nodes}
    for start in range(0, len(texts), _HOLDING_BATCH):
        batch = texts[start : start + _HOLDING_BATCH]
        held = connection.execute(_DATASET_STATES_OF, {"b_ids": batch})
        for node, dataset_id, status, size, device, path in held:
            states.setdefault(node, []).append(
                DatasetState(UUID(dataset_id), rows.STATUSES[status], size, device, path)
            )
    if not states:
        return []
    found = connection.execute(_REPORTS_OF, {"b_nodes": list(states)}).mappings()
    return [rows.node_state_from_row(row, states[row["node_uuid"]]) for row in found]


_DATASET_STATES_OF = select(node_datasets.c.node_uuid, *_STATE_COLUMNS).where(
    node_datasets.c.dataset_id.in_(bindparam("b_ids", expanding=True))
)
_REPORTS_OF = _ALL_REPORTS.where(node_states.c.node_uuid.in_(bindparam("b_nodes", expanding=True)))
_HOLDING_BATCH = 500
"""Dataset ids asked about per statement (SQLite allows 32,766 parameters; kept small)."""


SEEN_TIMES = select(nodes.c.uuid, nodes.c.last_seen)
"""Each node and when it was last heard from."""
REPORT_TIMES = select(node_states.c.node_uuid, node_states.c.reported_at)
"""Each reporting node and when its latest report was sent."""
_NODE_UUIDS: dict[str, UUID] = {}
"""Node ids as read, parsed once: every placement reads every node's times (issue 16)."""


def _node_uuid(text: str) -> UUID:
    found = _NODE_UUIDS.get(text)
    if found is None:
        found = _NODE_UUIDS[text] = UUID(text)
    return found


def seen_times(connection: Connection) -> dict[UUID, float | None]:
    """When each node was last heard from, by node."""
    return times_by_node(connection.execute(SEEN_TIMES))


def report_times(connection: Connection) -> dict[UUID, float | None]:
    """When each node's latest report was sent, by node."""
    return times_by_node(connection.execute(REPORT_TIMES))


def times_by_node(found: Iterable[Sequence[Any]]) -> dict[UUID, float | None]:
    """The rows :data:`SEEN_TIMES` or :data:`REPORT_TIMES` read, as a time by node."""
    return {_node_uuid(uuid): at for uuid, at in found}


_SEEN_TIMES_OF = SEEN_TIMES.where(nodes.c.uuid.in_(bindparam("b_nodes", expanding=True)))
_REPORT_TIMES_OF = REPORT_TIMES.where(
    node_states.c.node_uuid.in_(bindparam("b_nodes", expanding=True))
)


def times_of(
    connection: Connection, node_uuids: Iterable[UUID]
) -> tuple[dict[UUID, float | None], dict[UUID, float | None]]:
    """:func:`seen_times` and :func:`report_times` of ``node_uuids`` only (a few nodes)."""
    texts = [str(n) for n in node_uuids]
    if not texts:
        return {}, {}
    return (
        times_by_node(connection.execute(_SEEN_TIMES_OF, {"b_nodes": texts})),
        times_by_node(connection.execute(_REPORT_TIMES_OF, {"b_nodes": texts})),
    )


_REACHING = select(*_DATASET_COLUMNS).where(
    or_(
        datasets.c.dataset_id.in_(bindparam("b_ids", expanding=True)),
        datasets.c.source_id.in_(bindparam("b_sources", expanding=True)),
    )
)


def datasets_reaching(connection: Connection, ids: Iterable[UUID]) -> list[Dataset]:
    """The datasets ``ids`` and those copied from them (:func:`control.reach.state_reach`)."""
    texts = [str(i) for i in ids]
    if not texts:
        return []
    result = connection.execute(_REACHING, {"b_ids": texts, "b_sources": texts})
    return [rows.dataset_from_row(row) for row in result]
