"""
Backing up a running control service's store and restoring it, as docs/operations.md says.

SQLite: ``sqlite3 control.db ".backup FILE"`` while the service runs, then the
file copied into place. PostgreSQL: ``pg_dump --format=custom`` while the
service runs, then ``pg_restore --no-owner`` into a fresh database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.processes import (
    NO_FAILOVER_GRACE,
    ControlProcess,
    drop_postgres_database,
    fresh_postgres_database,
    http_json,
    postgres_available,
)

pytestmark = pytest.mark.functional

DATASETS = "/v1/configuration/datasets"
SIZE = 64 * 1024 * 1024


def _tool_or_skip(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (Debian package {package})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}, and CI must have it")
        pytest.skip(reason)
    return path


def populate(url: str) -> None:
    """Two nodes, five datasets (one moved, one deleted) and a lease."""
    nodes = [str(uuid.uuid4()) for _ in range(2)]
    for i, node in enumerate(nodes):
        body = {"host": f"10.0.0.{i + 1}", "era": f"era-{i}", "labels": {"zone": f"z{i}"}}
        assert http_json("PUT", f"{url}/v1/shoal/nodes/{node}", body)[0] == 200
    created = []
    for i in range(5):
        body: dict[str, Any] = {
            "primary": nodes[0], "maximum_size": SIZE * (i + 1), "metadata": {"name": f"d{i}"}
        }
        status, _, dataset = http_json("POST", url + DATASETS, body)
        assert status == 201, dataset
        created.append(dataset["dataset_id"])
    assert http_json("POST", f"{url}{DATASETS}/{created[1]}", {"primary": nodes[1]})[0] == 200
    assert http_json("DELETE", f"{url}{DATASETS}/{created[2]}")[0] == 200
    lease = {"dataset_id": created[0], "node_uuid": nodes[0], "expires": None}
    assert http_json("POST", f"{url}/v1/configuration/leases", lease)[0] == 201


def contents(url: str) -> dict[str, Any]:
    """Everything the store keeps that the API shows, without what depends on the time."""
    status, headers, datasets = http_json("GET", url + DATASETS)
    assert status == 200
    leases = http_json("GET", f"{url}/v1/configuration/leases")[2]
    nodes = http_json("GET", f"{url}/v1/shoal/nodes")[2]
    return {
        "tag": headers["X-Configuration-Tag"],
        "datasets": sorted(datasets, key=lambda d: d["dataset_id"]),
        "leases": sorted(leases, key=lambda lease: lease["dataset_id"]),
        "nodes": sorted(
            ({k: node[k] for k in ("uuid", "host", "era", "labels")} for node in nodes),
            key=lambda node: node["uuid"],
        ),
    }


def back_up_and_restore(
    original: str, restored: str, back_up: Callable[[], None], restore: Callable[[], None],
    log: str,
) -> None:
    """Fill a service on ``original``, back it up while it serves, restore into ``restored``,
    and check that a service on the restored store shows the same datasets, leases and nodes.

    The nodes never report: no failover grace may run out while the backup runs (a fence
    would release the lease and refuse the create made after the backup)."""
    quiet = ["--failover-grace", str(NO_FAILOVER_GRACE)]
    service = ControlProcess(original, quiet, log_path=log).start()
    try:
        populate(service.url)
        before = contents(service.url)
        back_up()
        later = {"primary": before["nodes"][0]["uuid"], "metadata": {"name": "after-backup"}}
        assert http_json("POST", service.url + DATASETS, later)[0] == 201
    finally:
        service.stop()
    restore()
    service = ControlProcess(restored, quiet, log_path=log).start()
    try:
        after = contents(service.url)
    finally:
        service.stop()
    assert len(before["datasets"]) == 5
    assert after == before


def test_sqlite_backup_while_serving(tmp_path: Path) -> None:
    """``sqlite3 .backup`` of a serving store, copied into place, brings back every dataset."""
    sqlite3 = _tool_or_skip("sqlite3", "sqlite3")
    database = tmp_path / "control.db"
    backup = tmp_path / "backup" / "control.db"
    restored = tmp_path / "restored" / "control.db"
    backup.parent.mkdir()
    restored.parent.mkdir()

    def back_up() -> None:
        subprocess.run([sqlite3, str(database), f".backup {backup}"], check=True, timeout=60)

    def restore() -> None:
        shutil.copyfile(backup, restored)

    back_up_and_restore(
        f"sqlite:///{database}", f"sqlite:///{restored}", back_up, restore,
        str(tmp_path / "control.log"),
    )


@pytest.fixture
def postgres_databases() -> Iterator[tuple[str, str]]:
    """Two fresh, empty PostgreSQL databases: the original and the restore target."""
    if not postgres_available():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432, and CI must have it")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    names = [f"shoal_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    urls = [fresh_postgres_database(name) for name in names]
    yield urls[0], urls[1]
    for name in names:
        drop_postgres_database(name)


def libpq_url(url: str) -> str:
    """The libpq form (``postgresql://...``) of an SQLAlchemy PostgreSQL URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_postgresql_backup_while_serving(
    postgres_databases: tuple[str, str], tmp_path: Path
) -> None:
    """``pg_dump`` of a serving store, ``pg_restore`` into a fresh database, brings back every
    dataset."""
    pg_dump = _tool_or_skip("pg_dump", "postgresql-client")
    pg_restore = _tool_or_skip("pg_restore", "postgresql-client")
    original, restored = postgres_databases
    dump = tmp_path / "shoal.dump"

    def back_up() -> None:
        command = [pg_dump, "--format=custom", f"--file={dump}", libpq_url(original)]
        subprocess.run(command, check=True, timeout=60)

    def restore() -> None:
        command = [pg_restore, "--no-owner", f"--dbname={libpq_url(restored)}", str(dump)]
        subprocess.run(command, check=True, timeout=60)

    back_up_and_restore(original, restored, back_up, restore, str(tmp_path / "control.log"))
