"""Queries sent together (control/store/pipelining.py: read_together) on SQLite and PostgreSQL:
the rows each query reads, in order, in the caller's transaction, as the store reads them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from attrs import evolve
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from control.classes import StorageClass
from control.errors import Unavailable
from control.model import Dataset, Node
from control.store import class_records as cq
from control.store import queries as q
from control.store.interface import NewDataset
from control.store.pipelining import begun_with, read_alone, read_together
from control.store.sql import SQLStore


def test_each_query_gets_its_own_rows(open_sql: Callable[[], SQLStore]) -> None:
    """The rows of each query come back in the order asked, read as the one-by-one reads do."""
    store = open_sql()
    node = store.register_node(Node(uuid=uuid4(), host="h"))
    store.create_class(StorageClass(name="fast", parameters={"tier": "1"}), now=1.0)
    with store._read() as connection:
        classes, counters, seen = read_together(
            connection, [cq.ALL_CLASSES, q.COUNTERS, q.SEEN_TIMES]
        )
        assert cq.classes_from_rows(classes) == cq.all_classes(connection)
        assert [tuple(row) for row in counters] == [q.read_counters(connection)]
        assert q.times_by_node(seen) == q.seen_times(connection) == {node.uuid: node.last_seen}


def test_a_refused_query_raises(open_sql: Callable[[], SQLStore]) -> None:
    """A query the database refuses raises as SQLAlchemy's execute does, whichever of the
    group it is."""
    store = open_sql()
    with (
        pytest.raises(DBAPIError, match="no_such_table"),
        store._engine.connect() as connection,
        connection.begin(),
    ):
        read_together(connection, [q.COUNTERS, text("SELECT * FROM no_such_table")])


def test_a_lost_connection_is_unavailable(open_sql: Callable[[], SQLStore]) -> None:
    """A connection the server ended makes the store's read Unavailable (a 503, not a 500),
    and is not used again."""
    store = open_sql()
    if store._engine.dialect.name != "postgresql":
        pytest.skip("a SQLite connection cannot be ended from outside")
    with pytest.raises(Unavailable), store._read() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with store._engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        read_together(connection, [q.COUNTERS])
    assert store.versions() is not None


def test_queries_read_the_callers_transaction(open_sql: Callable[[], SQLStore]) -> None:
    """The queries read in the caller's transaction: they see what it wrote before them."""
    store = open_sql()
    with store._write() as (connection, generation, state_version):
        q.write_counters(connection, generation, state_version + 7)
        [counters] = read_together(connection, [q.COUNTERS])
        assert [tuple(row) for row in counters] == [(generation, state_version + 7)]


@pytest.mark.parametrize("nodes", [False, True])
def test_placement_inputs_match_the_separate_reads(
    open_sql: Callable[[], SQLStore], nodes: bool
) -> None:
    """The placement inputs read together equal the classes and the cluster state read alone,
    the state's cache cold, then warm, then after a heartbeat moved a node's time."""
    store = open_sql()
    node = store.register_node(Node(uuid=uuid4(), host="h"))
    store.create_class(StorageClass(name="fast"), now=1.0)
    for step in range(3):
        if step == 2:
            store.register_node(evolve(node, last_seen=5.0))
        classes, state, found = store.placement_inputs(nodes)
        assert classes == store.classes()
        assert state == store.cluster_state()
        assert found == ([store.nodes()[0]] if nodes else None)


def test_read_alone_is_a_transaction_of_its_own(open_sql: Callable[[], SQLStore]) -> None:
    """read_alone leaves its connection out of any transaction and usable, after its rows
    and after a query the database refused."""
    store = open_sql()
    with store._engine.connect() as connection:
        with pytest.raises(DBAPIError, match="no_such_table"):
            read_alone(connection, [q.COUNTERS, text("SELECT * FROM no_such_table")])
        assert not connection.in_transaction()
        [counters] = read_alone(connection, [q.COUNTERS])
        assert not connection.in_transaction()
        with connection.begin():
            q.write_counters(connection, counters[0][0], counters[0][1] + 1)
    assert store.versions().state == counters[0][1] + 1


def test_warm_placement_inputs_are_one_round_trip(
    open_sql: Callable[[], SQLStore], tmp_path: Path
) -> None:
    """On PostgreSQL a group's placement inputs, its cluster state cached, are one round trip:
    the transaction's BEGIN, the four queries and its COMMIT sent together."""
    store = open_sql()
    if store._engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no round trips")
    store.register_node(Node(uuid=uuid4(), host="h"))
    store.placement_inputs(False)  # the state cached
    path = tmp_path / "trace"
    with open(path, "w") as trace:
        traced = _tracing(store, trace.fileno())
        store.placement_inputs(False)
        assert _round_trips(traced[0], path) == 1


def test_queries_together_are_one_round_trip(
    open_sql: Callable[[], SQLStore], tmp_path: Path
) -> None:
    """On PostgreSQL queries sent together are one round trip (the client sends one Sync and
    waits), where each query alone takes one."""
    store = open_sql()
    store.register_node(Node(uuid=uuid4(), host="h"))
    with store._read() as connection:
        if connection.dialect.name != "postgresql":
            pytest.skip("SQLite has no round trips")
        q.read_counters(connection)  # the BEGIN, a round trip of its own
        pgconn = connection.connection.driver_connection.pgconn  # type: ignore[union-attr]
        with open(tmp_path / "trace", "w") as trace:
            pgconn.trace(trace.fileno())
            read_together(connection, [cq.ALL_CLASSES, q.COUNTERS, q.SEEN_TIMES, q.REPORT_TIMES])
            together = _round_trips(pgconn, tmp_path / "trace")
        with open(tmp_path / "trace", "w") as trace:
            pgconn.trace(trace.fileno())
            q.seen_times(connection)
            q.report_times(connection)
            alone = _round_trips(pgconn, tmp_path / "trace")
    assert (together, alone) == (1, 2)


def _round_trips(pgconn: Any, path: Path) -> int:
    """The messages after which the client waits (Sync, a simple Query) in the trace."""
    pgconn.untrace()
    sent = [line.split("\t")[1:4] for line in path.read_text().splitlines()]
    return sum(1 for fields in sent if fields[::2] in (["F", "Sync"], ["F", "Query"]))


def test_a_group_of_creates_round_trips(open_sql: Callable[[], SQLStore], tmp_path: Path) -> None:
    """On PostgreSQL a group of named creates on a known primary is written in four round
    trips, whatever its size: the BEGIN with the locked counters, the names, the rows with
    the new counters, and the COMMIT; and the counters moved by the group's size."""
    store = open_sql()
    if store._engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no round trips")
    node = store.register_node(Node(uuid=uuid4(), host="h"))
    creates = [
        NewDataset(Dataset(dataset_id=uuid4(), primary=node.uuid, metadata={"name": f"n{i}"}),
                   None, 1.0, None)
        for i in range(4)
    ]
    store.create_datasets(creates[3:])  # the primary found registered, kept
    before = store.versions()
    creates = creates[:3]
    path = tmp_path / "trace"
    with open(path, "w") as trace:
        traced = _tracing(store, trace.fileno())
        answers = store.create_datasets(creates)
        trips = _round_trips(traced[0], path)
    assert [g for _, g in answers] == [before.configuration + i for i in (1, 2, 3)]
    assert store.versions().configuration == before.configuration + 3
    assert trips == 4


def _tracing(store: SQLStore, fileno: int) -> list[Any]:
    """Trace the protocol of the next connection ``store`` checks out (its libpq connection
    in the list returned)."""
    traced: list[Any] = []

    def checkout(driver: Any, *_: object) -> None:
        if not traced:
            traced.append(driver.pgconn)
            traced[0].trace(fileno)

    event.listen(store._engine, "checkout", checkout)
    return traced


def test_a_failed_write_writes_nothing_and_the_connection_serves_on(
    open_sql: Callable[[], SQLStore],
) -> None:
    """A write transaction begun with its locked counters (begun_with) that fails after a
    write rolls it back, and the next transactions on the pooled connection are
    transactions again (a write that fails midway leaves nothing)."""
    store = open_sql()
    before = store.versions()
    failed = (DBAPIError, Unavailable)
    with pytest.raises(failed), store._write() as (connection, generation, state_version):
        q.write_counters(connection, generation + 5, state_version)
        connection.execute(text("INSERT INTO nodes (uuid) VALUES (NULL)"))
    assert store.versions() == before
    for _ in range(3):  # every pooled connection the failed one may be
        with pytest.raises(failed), store._write() as (connection, generation, _):
            q.write_counters(connection, generation + 1, before.state)
            connection.execute(text("SELECT * FROM no_such_table"))
    assert store.versions() == before
    with store._write() as (connection, generation, state_version):
        q.write_counters(connection, generation + 1, state_version)
    assert store.versions().configuration == before.configuration + 1


def test_begun_with_refused_first_query_rolls_back(open_sql: Callable[[], SQLStore]) -> None:
    """A first query the database refuses raises as SQLAlchemy would and leaves the
    connection out of any transaction, usable."""
    store = open_sql()
    with store._engine.connect() as connection:
        with pytest.raises(DBAPIError, match="no_such_table"), begun_with(
            connection, text("SELECT * FROM no_such_table")
        ):
            pass
        assert not connection.in_transaction()
        with begun_with(connection, q.COUNTERS) as counters:
            assert [tuple(row) for row in counters] == [
                (store.versions().configuration, store.versions().state)
            ]
