"""The SQL store passes the conformance suite on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from control.store.sql import SQLStore
from tests.control.store.conformance import StoreConformance


class TestSQLStore(StoreConformance):
    """SQLStore against the Store contract, on each database."""

    @pytest.fixture
    def store(self, open_sql: Callable[[], SQLStore]) -> SQLStore:
        """An empty store on a freshly migrated database."""
        return open_sql()

    @pytest.fixture
    def reopen(self, open_sql: Callable[[], SQLStore]) -> Callable[[], SQLStore]:
        """Opens another store on the same database."""
        return open_sql
