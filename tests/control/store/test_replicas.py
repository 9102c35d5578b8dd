"""The store's parts for several replicas on PostgreSQL: serialised migrations, rolling
upgrades, the leader lock session and the change listener (functional: a real server)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import create_engine, text

from control.leader import PostgresLockSession
from control.model import Dataset, Node
from control.store.listener import ChangeListener
from control.store.migrate import MIGRATIONS, SchemaMismatch, head_revision, upgrade
from control.store.sql import SQLStore
from tests.processes import wait_until

pytestmark = pytest.mark.functional

NODE = UUID(int=1)


def test_replicas_migrating_at_once_all_succeed(postgres_url: str) -> None:
    """Four upgrades racing on one empty schema all return, and the schema is at head."""
    failures: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade(postgres_url)
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            failures.append(e)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert failures == []
    store = SQLStore(postgres_url)
    store.close()


NEXT_MIGRATION = '''"""A next release's migration: additive only, as rolling upgrades require."""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add a nullable column and a table the current release does not know."""
    op.add_column("datasets", sa.Column("next_release_note", sa.Text, nullable=True))
    op.create_table("next_release", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    """Drop them."""
    op.drop_table("next_release")
    op.drop_column("datasets", "next_release_note")
'''


def _next_release(tmp_path: Path) -> Path:
    """The migrations of a made-up next release: ours plus one additive migration."""
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "9001_next.py").write_text(
        NEXT_MIGRATION.format(head=head_revision())
    )
    return migrations


def test_a_running_replica_keeps_serving_while_a_newer_one_migrates(
    postgres_url: str, tmp_path: Path
) -> None:
    """Rolling upgrade: a running replica of this release reads and writes while, and after,
    a next release migrates the schema (additively); restarted, it refuses with the reason."""
    upgrade(postgres_url)
    old = SQLStore(postgres_url)
    try:
        old.register_node(Node(NODE, "h", "era"))
        old.create_dataset(Dataset(UUID(int=10), NODE), None)
        writes: list[BaseException] = []
        stop = threading.Event()

        def keep_writing() -> None:
            n = 11
            while not stop.is_set():
                try:
                    old.create_dataset(Dataset(UUID(int=n), NODE), None)
                except BaseException as e:  # noqa: BLE001 - collected for the assertion
                    writes.append(e)
                n += 1

        writer = threading.Thread(target=keep_writing)
        writer.start()
        upgrade(postgres_url, migrations=_next_release(tmp_path))
        stop.set()
        writer.join(60)
        assert writes == []
        stored, _ = old.create_dataset(Dataset(UUID(int=5), NODE), None)
        assert old.configuration(0).datasets[UUID(int=5)] == stored
        with pytest.raises(SchemaMismatch, match="a newer Shoal made.*Upgrade Shoal"):
            SQLStore(postgres_url)
        with pytest.raises(SchemaMismatch, match="a newer Shoal made"):
            upgrade(postgres_url)
    finally:
        old.close()


def _backend_pids(url: str, application: str) -> list[int]:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :a "
                     "AND datname = current_database()"), {"a": application}
            )
            return [row[0] for row in rows]
    finally:
        engine.dispose()


def _terminate(url: str, pids: list[int]) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for pid in pids:
                connection.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    finally:
        engine.dispose()


def test_the_leader_lock_is_held_by_one_session_and_freed_when_its_backend_dies(
    postgres_url: str,
) -> None:
    """One session wins; when the server kills its backend, its check fails and another wins."""
    upgrade(postgres_url)
    a = PostgresLockSession(postgres_url, timeout=1.0)
    b = PostgresLockSession(postgres_url, timeout=1.0)
    try:
        assert a.try_lock() and a.holds()
        assert not b.try_lock() and not b.holds()
        pids = [p for p in _backend_pids(postgres_url, "shoal-leader")]
        assert len(pids) == 2
        _terminate(postgres_url, pids[:1] if _holder_first(a, pids) else pids[1:])
        with pytest.raises(Exception):  # noqa: B017 - any driver error: the session is gone
            a.holds()
        assert b.try_lock() and b.holds()
        b.close()
        a.close()
        assert a.try_lock()
    finally:
        a.close()
        b.close()


def _holder_first(session: PostgresLockSession, pids: list[int]) -> bool:
    """Whether the first of ``pids`` is ``session``'s backend."""
    row = session._connection.execute("SELECT pg_backend_pid()").fetchone()
    return bool(row and row[0] == pids[0])


def test_the_listener_hears_another_process_write_and_rereads_on_reconnect(
    postgres_url: str,
) -> None:
    """A committed write wakes the listener; a killed listening backend reconnects and
    calls once more for what it may have missed."""
    upgrade(postgres_url)
    calls: list[int] = []
    listener = ChangeListener(postgres_url, lambda: calls.append(1), lambda f: f())
    store = SQLStore(postgres_url)
    try:
        listener.start()
        wait_until(lambda: listener.connections == 1 and calls, 30, "the listener to connect")
        before = len(calls)
        store.register_node(Node(NODE, "h", "era"))
        wait_until(lambda: len(calls) > before, 30, "a notification")
        before = len(calls)
        _terminate(postgres_url, _backend_pids(postgres_url, "shoal-listener"))
        wait_until(lambda: listener.connections == 2 and len(calls) > before, 30,
                   "the listener to reconnect")
    finally:
        listener.stop()
        store.close()
