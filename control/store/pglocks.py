"""
PostgreSQL advisory locks and notification channels, named per Shoal database.

Advisory locks and ``NOTIFY`` channels belong to a whole PostgreSQL database,
while a Shoal store may live in one schema of it (the tests give each store
its own). Keys and channels are therefore derived from the database *and*
the schema, so two stores sharing a server never wait on each other's locks
or wake each other's watchers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from control.store.tables import CLUSTER_ROW

MIGRATION_LOCK = "migrate"
"""The advisory lock held while the schema is migrated."""
LEADER_LOCK = "leader"
"""The advisory lock held by the replica that runs the background work."""

_KEY = "hashtextextended(current_database() || '/' || current_schema() || '/' || :name, 0)"
KEY_SQL = _KEY
"""SQL for the advisory-lock key of the lock named ``:name`` in the current database and schema."""

CHANGES_CHANNEL_SQL = "'shoal_changes/' || current_schema()"
"""SQL for the name of the channel on which writes announce new counters."""


def hold_transaction_lock(connection: Connection, name: str) -> None:
    """Wait for the advisory lock ``name``, held until ``connection``'s transaction ends."""
    connection.execute(text(f"SELECT pg_advisory_xact_lock({_KEY})"), {"name": name})


def notify_counters(connection: Connection, generation: int, state_version: int) -> None:
    """Announce new counters on commit of ``connection``'s transaction (counters only)."""
    connection.execute(
        text(f"SELECT pg_notify({CHANGES_CHANNEL_SQL}, :payload)"),
        {"payload": f"{generation} {state_version}"},
    )


_WRITE_AND_NOTIFY = text(
    "WITH written AS (UPDATE cluster SET generation = :generation, "
    "state_version = :state_version WHERE id = :row RETURNING generation, state_version) "
    f"SELECT pg_notify({CHANGES_CHANNEL_SQL}, generation || ' ' || state_version) FROM written"
)


def write_and_notify_counters(connection: Connection, generation: int, state_version: int) -> None:
    """Store both counters in the cluster row and announce them on commit
    (:func:`notify_counters`), in one statement: one round trip instead of two."""
    counters = {"generation": generation, "state_version": state_version, "row": CLUSTER_ROW}
    connection.execute(_WRITE_AND_NOTIFY, counters)


_MARKED_COUNTERS = text(
    "SELECT generation, state_version, xmin::text FROM cluster WHERE id = :row"
)


def read_marked_counters(connection: Connection) -> tuple[int, int, str]:
    """Both counters and the cluster row's version (``xmin``): the id of the last write
    transaction committed (every one but the flush of heartbeat times rewrites the row:
    :data:`~control.store.queries.CLAIMED_COUNTERS`), in one statement."""
    generation, state_version, mark = connection.execute(
        _MARKED_COUNTERS, {"row": CLUSTER_ROW}
    ).one()
    return generation, state_version, mark


def libpq_conninfo(
    url: str, timeout: float, name: str, statements_too: bool = True
) -> dict[str, Any]:
    """psycopg connection arguments for the SQLAlchemy ``url``, with short timeouts.

    TCP keepalives and ``tcp_user_timeout`` notice a dead peer within about
    ``timeout`` seconds; with ``statements_too``, ``statement_timeout`` also
    ends a statement that runs longer. ``name`` is the application name the
    server shows in ``pg_stat_activity``.
    """
    parsed = make_url(url)
    milliseconds = max(int(timeout * 1000), 1)
    options = f"-c statement_timeout={milliseconds if statements_too else 0}"
    extra = dict(parsed.query)
    if "options" in extra:
        options = f"{extra.pop('options')} {options}"
    args: dict[str, Any] = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "dbname": parsed.database,
        "user": parsed.username,
        "password": parsed.password,
        "connect_timeout": max(int(timeout + 0.999), 1),
        "keepalives": 1,
        "keepalives_idle": 1,
        "keepalives_interval": 1,
        "keepalives_count": 2,
        "tcp_user_timeout": milliseconds * 2,
        "options": options,
        "application_name": name,
        **extra,
    }
    return {k: v for k, v in args.items() if v is not None}
