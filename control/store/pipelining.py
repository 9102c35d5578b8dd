"""
Statements sent together: :func:`pipelined`, :func:`read_together`.

On PostgreSQL every statement is a round trip: the client sends it and waits
for its answer before sending the next. Statements whose results nobody
reads (inserts, updates and deletes without ``RETURNING``) can instead go
out together in libpq's pipeline mode and their answers be read once at the
end: one round trip for all. A failure of any of them is raised when the
block ends, and the transaction is then rolled back as after any failure.

Only statements whose rows are not read may run in the block: in pipeline
mode a query's rows arrive after the block, so a ``SELECT`` inside it would
see none. SQLite has no round trips: there the block does nothing.

Queries whose rows *are* read go together with :func:`read_together`: they are
sent through the driver in one pipeline and their rows read after it, one round
trip for all (psycopg sends the ``BEGIN`` of a transaction they open on its own
and waits for it first: one more). :func:`read_alone` sends queries in a read-only
transaction of their own, its ``BEGIN`` and ``COMMIT`` with them: one round trip
where the transaction took three; :func:`begun_with` opens a transaction whose
``BEGIN`` goes with its first query (one round trip where they took two).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg import IsolationLevel
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Executable
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement


@contextmanager
def pipelined(connection: Connection) -> Iterator[None]:
    """Send the statements ``connection`` executes in the block together (PostgreSQL), their
    answers read when it ends; only statements whose results are not read."""
    if connection.dialect.name != "postgresql":
        yield
        return
    driver: Any = connection.connection.driver_connection
    try:
        with driver.pipeline():
            yield
    except connection.dialect.loaded_dbapi.Error as e:  # raised as the block ends
        raise _wrapped(connection, driver, e, "(statements sent together)") from e


def read_together(connection: Connection, queries: Sequence[Executable]) -> list[list[Any]]:
    """The rows of each of ``queries`` (constant statements without parameters of their own),
    in order: sent together on PostgreSQL, in ``connection``'s transaction (a query the
    database refuses raises as SQLAlchemy's execute would, and fails the transaction as any
    failure does); one by one on
    SQLite. Each row is a :class:`~sqlalchemy.engine.Row` or, on PostgreSQL, a tuple: read
    them by position. The driver converts the values (numbers, text, JSON as parsed), not
    SQLAlchemy's column types: only for columns whose stored value is the value."""
    if connection.dialect.name != "postgresql":
        return [list(connection.execute(query)) for query in queries]
    compiled = [_compiled(connection, query) for query in queries]
    driver: Any = connection.connection.driver_connection
    try:
        with driver.pipeline():
            cursors = [driver.execute(sql, params) for sql, params in compiled]
        return [cursor.fetchall() for cursor in cursors]
    except connection.dialect.loaded_dbapi.Error as e:
        raise _wrapped(connection, driver, e, compiled[0][0]) from e


def _wrapped(connection: Connection, driver: Any, error: Any, sql: str) -> BaseException:
    """The driver's ``error`` as SQLAlchemy raises it from :meth:`Connection.execute` (an
    :class:`~sqlalchemy.exc.OperationalError` and so on), the connection invalidated when
    the error says it is lost: the callers' handling of database failures holds."""
    lost = connection.dialect.is_disconnect(error, driver, None)
    if lost:
        connection.invalidate(error)
    return DBAPIError.instance(
        sql, None, error, connection.dialect.loaded_dbapi.Error,
        connection_invalidated=lost, dialect=connection.dialect,
    )


_BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"


def read_alone(connection: Connection, queries: Sequence[Executable]) -> list[list[Any]]:
    """The rows of each of ``queries`` (as :func:`read_together`), read in one repeatable-read,
    read-only transaction of their own: on PostgreSQL sent together with its ``BEGIN`` and
    ``COMMIT`` (one round trip). ``connection`` must not be in a transaction; it is not in
    one afterwards."""
    if connection.dialect.name != "postgresql":
        with connection.begin():
            return read_together(connection, queries)
    compiled = [_compiled(connection, query) for query in queries]
    driver: Any = connection.connection.driver_connection
    # psycopg sends its own BEGIN and waits for it: in autocommit mode it sends none, and
    # the transaction is ours, opened and committed in the pipeline.
    driver.autocommit = True
    try:
        with driver.pipeline():
            driver.execute(_BEGIN_READ)
            cursors = [driver.execute(sql, params) for sql, params in compiled]
            driver.execute("COMMIT")
        return [cursor.fetchall() for cursor in cursors]
    except connection.dialect.loaded_dbapi.Error as e:
        raise _wrapped(connection, driver, e, compiled[0][0]) from e
    finally:
        _out_of_transaction(connection, driver)


@contextmanager
def begun_with(connection: Connection, first: Executable) -> Iterator[list[Any]]:
    """``connection.begin()`` (nothing sent yet on ``connection``) whose first statement is
    ``first`` (constant, as for :func:`read_together`): yields its rows; the transaction
    commits when the block ends, or rolls back on a failure. On PostgreSQL its ``BEGIN``
    (the one psycopg would have sent: the connection's isolation level) and ``first`` are
    sent together, one round trip."""
    driver: Any = connection.connection.driver_connection
    if connection.dialect.name != "postgresql" or driver.autocommit:
        with connection.begin():
            yield list(connection.execute(first))
        return
    sql, params = _compiled(connection, first)
    begin = _begin_statement(driver)
    driver.autocommit = True  # no BEGIN of psycopg's own: ours is sent with ``first``
    try:
        with connection.begin():
            try:
                with driver.pipeline():
                    driver.execute(begin)
                    cursor = driver.execute(sql, params)
                rows = cursor.fetchall()
            except connection.dialect.loaded_dbapi.Error as e:
                raise _wrapped(connection, driver, e, sql) from e
            yield rows
    finally:
        _out_of_transaction(connection, driver)


def _begin_statement(driver: Any) -> str:
    """The ``BEGIN`` psycopg would send to open ``driver``'s next transaction."""
    words = ["BEGIN"]
    if driver.isolation_level is not None:
        words += ["ISOLATION LEVEL", IsolationLevel(driver.isolation_level).name.replace("_", " ")]
    if driver.read_only is not None:
        words.append("READ ONLY" if driver.read_only else "READ WRITE")
    if driver.deferrable is not None:
        words.append("DEFERRABLE" if driver.deferrable else "NOT DEFERRABLE")
    return " ".join(words)


def _out_of_transaction(connection: Connection, driver: Any) -> None:
    """Roll back what a failed :func:`read_alone` or :func:`begun_with` left open and give
    the connection its transactions back (unless it is closed: the pool discards it). When
    that fails, the connection is invalidated, so that the pool never hands out one left in
    autocommit mode (whose writes would each commit alone, without the writers' lock); the
    failure that led here is the one raised."""
    if driver.closed:
        return
    try:
        if driver.info.transaction_status != TransactionStatus.IDLE:  # a failure left it open
            driver.execute("ROLLBACK")
        driver.autocommit = False
    except Exception as e:  # noqa: BLE001 - the connection is dropped instead
        connection.invalidate(e)


_COMPILED: dict[int, tuple[ClauseElement, str, dict[str, Any]]] = {}
"""The SQL text and bound values of each query :func:`read_together` sent, by its id (the
query is kept too, so that its id is never reused)."""


def _compiled(connection: Connection, query: Executable) -> tuple[str, dict[str, Any]]:
    """``query``'s PostgreSQL text and bound values, compiled once."""
    known = _COMPILED.get(id(query))
    if known is None:
        assert isinstance(query, ClauseElement)
        done = query.compile(dialect=connection.dialect)
        known = _COMPILED[id(query)] = (query, str(done), dict(done.params))
    return known[1], known[2]
