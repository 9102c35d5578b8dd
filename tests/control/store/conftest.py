"""Fixtures for the store tests: fresh SQLite files and fresh PostgreSQL schemas."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from control.events import EventRetention
from control.store.migrate import upgrade
from control.store.sql import SQLStore

POSTGRES_URL = os.environ.get(
    "SHOAL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
"""The PostgreSQL database the store tests use; each test gets its own schema in it."""


def _postgres_reachable_or_skip() -> None:
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect():
            pass
    except Exception as e:
        reason = f"PostgreSQL at {make_url(POSTGRES_URL)!r} is unreachable: {e}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL is required)")
        pytest.skip(reason)
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of an empty SQLite database file."""
    return f"sqlite:///{tmp_path / 'control.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL schema, dropped afterwards."""
    _postgres_reachable_or_skip()
    schema = f"shoal_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.functional)])
def sql_url(request: pytest.FixtureRequest) -> str:
    """An empty database URL: a SQLite file, then a PostgreSQL schema (a functional test)."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def open_fast(sql_url: str) -> Iterator[Callable[[], SQLStore]]:
    """Opens stores keeping heartbeats in memory (as the service does) on one migrated
    database (any number, all closed afterwards)."""
    upgrade(sql_url)
    opened: list[SQLStore] = []

    def open_() -> SQLStore:
        opened.append(SQLStore(sql_url, seen_in_memory=True))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def open_sql(sql_url: str) -> Iterator[Callable[[], SQLStore]]:
    """Opens stores on one migrated database (any number, all closed afterwards)."""
    upgrade(sql_url)
    opened: list[SQLStore] = []

    def open_(retention: EventRetention | None = None) -> SQLStore:
        opened.append(SQLStore(sql_url, retention))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()
