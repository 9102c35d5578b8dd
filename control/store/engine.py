"""
Create SQLAlchemy engines configured for the store, and explain their failures.

SQLite is set up for durability and serialised writers: WAL journal,
``synchronous=FULL`` (a commit answered survives power loss), a busy timeout,
foreign keys on, and the driver's own transaction handling turned off so that
we emit ``BEGIN IMMEDIATE`` for write transactions and plain ``BEGIN`` for
reads (the documented pysqlite recipe). PostgreSQL needs nothing special here:
writers serialise on ``SELECT ... FOR UPDATE`` of the cluster row.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    NoSuchModuleError,
    OperationalError,
    TimeoutError,
)

from control.errors import InvalidRequest, Unavailable

WRITE = "shoal_write"
"""Execution option: the next transaction on this connection writes."""

BUSY_TIMEOUT_SECONDS = 30.0
POOL_SIZE = 8
POOL_OVERFLOW = 32

SUPPORTED_URLS = ("sqlite:///PATH", "postgresql+psycopg://USER@HOST/DATABASE")
"""The database URL forms the store supports, as shown to a person who gave another."""


def describe(url: str | URL) -> str:
    """``url`` as it may be shown to a person: without its password."""
    return make_url(url).render_as_string(hide_password=True)


def is_sqlite(engine: Engine | Connection) -> bool:
    """Whether ``engine`` talks to SQLite."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    """An engine for ``url``, configured as the module docstring describes.

    A URL that is malformed or names a database the store does not support
    is refused with :class:`InvalidRequest`, naming the forms it supports."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    engine = create_engine(parsed, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
    event.listen(engine, "checkin", _checked_in)
    event.listen(engine, "checkout", partial(_checked_out, engine.dialect))
    return engine


PING_AFTER_IDLE = 5.0
"""Seconds a pooled PostgreSQL connection may sit idle and still be handed out unpinged."""


def _checked_in(_dbapi_connection: Any, record: Any) -> None:
    record.info["shoal_idle_since"] = time.monotonic()


def _checked_out(dialect: Any, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection is handed out if it looks alive, else the pool opens
    another (:class:`DisconnectionError`): SQLAlchemy's ``pool_pre_ping`` would send
    ``SELECT 1`` at every checkout, a round trip per transaction (three per group of
    creates). Instead, one busy within :data:`PING_AFTER_IDLE` is checked without a round
    trip: it must be open and its socket silent (a server that restarted or ended the
    session has sent its notice or closed it: the socket is readable); an older one is
    pinged as before."""
    idle_since = record.info.get("shoal_idle_since")
    try:
        if dbapi_connection.closed or _readable(dbapi_connection.pgconn.socket):
            raise DisconnectionError("the connection was closed by the server")
        if idle_since is None or time.monotonic() - idle_since > PING_AFTER_IDLE:
            dialect.do_ping(dbapi_connection)
    except DisconnectionError:
        raise
    except Exception as e:
        raise DisconnectionError(f"the connection failed its ping: {e}") from e


def _readable(socket: int) -> bool:
    """Whether ``socket`` has something to read (or is closed), without waiting."""
    poll = select.poll()
    poll.register(socket, select.POLLIN | select.POLLRDHUP)
    return bool(poll.poll(0))


def parse_url(url: str) -> URL:
    """``url`` parsed, if it names a database the store supports; else :class:`InvalidRequest`."""
    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise InvalidRequest(_unsupported(url)) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidRequest(_unsupported(url))
    return parsed


def _unsupported(url: str) -> str:
    scheme, separator, _ = url.partition("://")
    what = f"scheme {scheme!r}" if separator else f"{url!r}"
    return (
        f"the database URL {what} is not one the store supports; "
        f"give one of {', '.join(SUPPORTED_URLS)}"
    )


def create_private_file(path: str) -> None:
    """Create ``path`` empty and readable by its owner only (0600), unless it exists.

    SQLite gives its ``-wal`` and ``-shm`` files the database file's mode, so
    creating the database this way keeps all three private. A missing
    directory is left for SQLite to report."""
    with suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_file(url: URL) -> str | None:
    database = url.database
    if not database or database == ":memory:" or url.query.get("uri") or database.startswith(
        "file:"
    ):
        return None
    return database


def _sqlite_engine(url: URL) -> Engine:
    path = _sqlite_file(url)
    if path is not None:
        create_private_file(path)
    engine = create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _begin_sqlite(connection: Connection) -> None:
    if connection.get_execution_options().get(WRITE):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


@contextmanager
def unavailable_on_failure(url: str | URL) -> Iterator[None]:
    """Turn a failure to reach or use the database into :class:`Unavailable`."""
    try:
        yield
    except (OperationalError, TimeoutError) as e:
        raise Unavailable(f"The database {describe(url)} is unavailable: {_reason(e)}") from e
    except DBAPIError as e:
        if e.connection_invalidated:
            raise Unavailable(
                f"The connection to the database {describe(url)} was lost: {_reason(e)}"
            ) from e
        raise


def _reason(error: Exception) -> str:
    original = getattr(error, "orig", None) or error
    return str(original).strip().splitlines()[0] if str(original).strip() else type(error).__name__
