"""Fixtures that run real control services on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.processes import (
    NO_FAILOVER_GRACE,
    ControlProcess,
    drop_postgres_database,
    fresh_postgres_database,
    postgres_available,
)


def _postgres_or_skip() -> None:
    if not postgres_available():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432, and CI must have it")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database URL of each kind the service supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'control.db'}"
        return
    _postgres_or_skip()
    name = f"shoal_test_{uuid.uuid4().hex[:12]}"
    url = fresh_postgres_database(name)
    yield url
    drop_postgres_database(name)


@pytest.fixture
def control(database_url: str, tmp_path) -> Iterator[ControlProcess]:
    """A running control service on a fresh database; its tests' nodes are registered by hand
    and never report, so no failover grace may run out under them."""
    service = ControlProcess(database_url, ["--failover-grace", str(NO_FAILOVER_GRACE)],
                             log_path=str(tmp_path / "control.log")).start()
    yield service
    service.stop()
