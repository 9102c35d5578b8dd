"""
Alembic environment of the store.

:func:`control.store.migrate.upgrade` passes an open connection in
``config.attributes["connection"]``; the ``alembic`` command line instead
connects to ``sqlalchemy.url`` from ``alembic.ini`` or ``-x url=...``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from control.store.engine import WRITE, make_engine
from control.store.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = make_engine(str(url))
    try:
        with engine.connect() as connection:
            connection.execution_options(**{WRITE: True})
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Shoal's migrations run online only: give a database URL.")
_online()
