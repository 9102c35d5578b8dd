"""A group of creates in its few statements (control/store/creates.py, pipelining.py) on SQLite
and PostgreSQL: written without falling back to one savepoint per create."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from control.errors import Conflict, ShoalError, Unavailable
from control.model import Dataset, Node
from control.store import creates as cr
from control.store.interface import NewDataset
from control.store.pipelining import pipelined
from control.store.sql import SQLStore


def _creates(node: Node, count: int) -> list[NewDataset]:
    return [
        NewDataset(Dataset(dataset_id=uuid4(), primary=node.uuid,
                           metadata={"name": f"s{uuid4().hex[:8]}"}), None, 1.0, None)
        for _ in range(count)
    ]


@pytest.mark.parametrize("count", [1, 3])
def test_group_is_written_in_its_own_statements(
    open_sql: Callable[[], SQLStore], count: int
) -> None:
    """A group of one or several is stored by create_group itself (the savepoints' fallback
    would hide a statement the database refuses, such as a pipelined one reading rows)."""
    store = open_sql()
    node = store.register_node(Node(uuid=uuid4(), host="h"))
    creates = _creates(node, count)
    with store._write() as (connection, generation, _):
        answers, stored = cr.create_group(connection, generation, creates, store._retention)
    assert [d.dataset_id for d in stored] == [new.dataset.dataset_id for new in creates]
    assert [g for _, g in answers] == list(range(generation + 1, generation + 1 + count))
    fresh = open_sql()
    assert {new.dataset.dataset_id for new in creates} <= set(fresh.configuration(0).datasets)


def test_an_id_already_stored_is_refused_alone(open_sql: Callable[[], SQLStore]) -> None:
    """The group does not read its ids: one stored before fails the insert, and the group is
    then written one by one, that create refused with its own Conflict, the others stored."""
    store = open_sql()
    node = store.register_node(Node(uuid=uuid4(), host="h"))
    first = _creates(node, 1)
    store.create_datasets(first)
    again = NewDataset(Dataset(dataset_id=first[0].dataset.dataset_id, primary=node.uuid),
                       None, 2.0, None)
    others = _creates(node, 2)
    answers = store.create_datasets([others[0], again, others[1]])
    assert isinstance(answers[1], Conflict)
    assert "already in use" in str(answers[1])
    assert [a[0].dataset_id for a in (answers[0], answers[2])] == [
        others[0].dataset.dataset_id, others[1].dataset.dataset_id
    ]


def test_a_failing_pipelined_statement_fails_the_block(open_sql: Callable[[], SQLStore]) -> None:
    """A statement the database refuses inside ``pipelined`` raises as SQLAlchemy's execute
    raises it (when the block ends at the latest), and its transaction writes nothing."""
    store = open_sql()
    node = store.register_node(Node(uuid=uuid4(), host="h"))
    before = store.versions()
    with (
        pytest.raises(IntegrityError),
        store._write() as (connection, _, _),
        pipelined(connection),
    ):
        connection.execute(text("UPDATE cluster SET state_version = state_version + 1"))
        connection.execute(text("INSERT INTO nodes (uuid) VALUES (NULL)"))
    assert store.versions() == before
    assert store.nodes() == [node]


def test_known_nodes_are_not_read_again(open_sql: Callable[[], SQLStore]) -> None:
    """A primary found registered is kept and not read again; an unknown one is read and
    refused, and stays unknown."""
    store = open_sql()
    node = store.register_node(Node(uuid=uuid4(), host="h"))
    known: set = set()
    stranger = Node(uuid=uuid4(), host="x")
    with store._write() as (connection, generation, _):
        answers, _ = cr.create_group(
            connection, generation, [*_creates(node, 1), *_creates(stranger, 1)],
            store._retention, known_nodes=known,
        )
    assert known == {node.uuid}
    assert isinstance(answers[1], ShoalError) and "primary" in str(answers[1]).lower()
    known.add(stranger.uuid)  # believed registered: not read, so the create is stored
    with store._write() as (connection, generation, _):
        answers, stored = cr.create_group(
            connection, generation, _creates(stranger, 1), store._retention, known_nodes=known
        )
    assert [d.primary for d in stored] == [stranger.uuid]


def test_a_cancelled_pipelined_write_is_unavailable(open_sql: Callable[[], SQLStore]) -> None:
    """A write whose statements sent together are cancelled by the database (a statement
    timeout) is refused as the database being unavailable (503), not raised as the driver's
    own error (500), and writes nothing."""
    store = open_sql()
    if store._engine.dialect.name != "postgresql":
        pytest.skip("SQLite sends no statements together")
    before = store.versions()
    with pytest.raises(Unavailable), store._write() as (connection, _, _):
        connection.execute(text("SET LOCAL statement_timeout = 50"))
        with pipelined(connection):
            connection.execute(text("UPDATE cluster SET state_version = state_version + 1"))
            connection.execute(text("SELECT pg_sleep(1)"))
    assert store.versions() == before
