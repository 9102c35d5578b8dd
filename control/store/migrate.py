"""
Migrate the store's database schema with Alembic, programmatically.

``shoal control serve`` upgrades in place (:func:`upgrade`);
:class:`~control.store.sql.SQLStore` refuses a database that is not at the
newest revision (:func:`check_at_head`) so an old service never writes to a
newer schema or the reverse.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from control.errors import Unavailable
from control.store.engine import WRITE, describe, make_engine, unavailable_on_failure

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaMismatch(Unavailable):
    """The database's schema is not the one this version of Shoal uses (503)."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for the store's migrations, using ``connection`` if given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this version of Shoal knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the store has no migrations"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database behind ``connection`` is at (``None``: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema at ``url`` to ``revision``, keeping its data."""
    engine = make_engine(url)
    try:
        with unavailable_on_failure(url), engine.connect() as connection:
            connection.execution_options(**{WRITE: True})
            command.upgrade(alembic_config(connection), revision)
            connection.commit()
    finally:
        engine.dispose()


def check_at_head(connection: Connection, url: str) -> None:
    """Raise :class:`SchemaMismatch` unless the database is at :func:`head_revision`."""
    current = current_revision(connection)
    head = head_revision()
    if current == head:
        return
    problem = "has no Shoal schema" if current is None else f"is at schema revision {current!r}"
    raise SchemaMismatch(
        f"The database {describe(url)} {problem}, but this Shoal needs revision {head!r}. "
        "Start `shoal control serve`, which upgrades it in place, or run "
        "control.store.migrate.upgrade() on it first."
    )
