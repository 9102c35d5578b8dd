"""
Migrate the store's database schema with Alembic, programmatically.

``shoal control serve`` upgrades in place (:func:`upgrade`); on PostgreSQL the
whole upgrade is one transaction under an advisory lock, so replicas started
at the same moment migrate one after the other (the later ones find nothing
left to do);
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
from control.store.pglocks import MIGRATION_LOCK, hold_transaction_lock

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaMismatch(Unavailable):
    """The database's schema is not the one this version of Shoal uses (503)."""


def alembic_config(
    connection: Connection | None = None, migrations: Path = MIGRATIONS
) -> Config:
    """An Alembic configuration for the migrations in ``migrations``, using ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
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


def upgrade(url: str, revision: str = "head", migrations: Path = MIGRATIONS) -> None:
    """Create or upgrade the schema at ``url`` to ``revision``, keeping its data.

    On PostgreSQL the upgrade waits for, and holds until it commits, the
    store's migration lock (see :mod:`control.store.pglocks`).
    """
    engine = make_engine(url)
    try:
        with unavailable_on_failure(url), engine.connect() as connection:
            connection.execution_options(**{WRITE: True})
            if connection.dialect.name == "postgresql":
                hold_transaction_lock(connection, MIGRATION_LOCK)
            check_not_newer(connection, url, migrations)
            command.upgrade(alembic_config(connection, migrations), revision)
            connection.commit()
    finally:
        engine.dispose()


def known_revisions(migrations: Path = MIGRATIONS) -> frozenset[str]:
    """Every revision the migrations in ``migrations`` know."""
    scripts = ScriptDirectory.from_config(alembic_config(migrations=migrations))
    return frozenset(script.revision for script in scripts.walk_revisions())


def check_not_newer(connection: Connection, url: str, migrations: Path = MIGRATIONS) -> None:
    """Raise :class:`SchemaMismatch` if a newer Shoal migrated the database past what we know.

    That happens to an old replica restarted during a rolling upgrade: it must
    not write to a schema it does not know (docs/operations.md, "Rolling upgrades").
    """
    current = current_revision(connection)
    if current is None or current in known_revisions(migrations):
        return
    raise SchemaMismatch(
        f"The database {describe(url)} is at schema revision {current!r}, which a newer Shoal "
        f"made; this Shoal knows revisions up to {head_revision()!r}. Upgrade Shoal on this "
        "machine to the version the other replicas run, then start it again."
    )


def check_at_head(connection: Connection, url: str) -> None:
    """Raise :class:`SchemaMismatch` unless the database is at :func:`head_revision`."""
    current = current_revision(connection)
    head = head_revision()
    if current == head:
        return
    check_not_newer(connection, url)
    problem = "has no Shoal schema" if current is None else f"is at schema revision {current!r}"
    raise SchemaMismatch(
        f"The database {describe(url)} {problem}, but this Shoal needs revision {head!r}. "
        "Start `shoal control serve`, which upgrades it in place, or run "
        "control.store.migrate.upgrade() on it first."
    )
