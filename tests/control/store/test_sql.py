"""The SQL store passes the conformance suite on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

import pytest

from control.model import Dataset, Lease, Node, NodeState
from control.store.sql import SQLStore
from tests.control.store.class_conformance import ClassConformance, ReleaseConformance
from tests.control.store.conformance import NOW, StoreConformance
from tests.control.store.failover_conformance import FailoverConformance
from tests.control.store.revocation_conformance import RevocationConformance
from tests.control.store.snapshot_conformance import SnapshotConformance


class TestSQLStore(
    ClassConformance, ReleaseConformance, StoreConformance, SnapshotConformance,
    FailoverConformance,
    RevocationConformance,
):
    """SQLStore against the Store contract, on each database."""

    @pytest.fixture
    def store(self, open_sql: Callable[[], SQLStore]) -> SQLStore:
        """An empty store on a freshly migrated database."""
        return open_sql()

    @pytest.fixture
    def with_retention(self, open_sql: Callable[..., SQLStore]) -> Callable[..., SQLStore]:
        """Opens an empty store keeping the given event history."""
        return open_sql

    @pytest.fixture
    def reopen(self, open_sql: Callable[[], SQLStore]) -> Callable[[], SQLStore]:
        """Opens another store on the same database."""
        return open_sql


def test_cached_configuration_matches_database(open_sql: Callable[[], SQLStore]) -> None:
    """After each kind of write, the cached configuration equals a fresh store's reading."""
    store = open_sql()
    node = store.register_node(Node(uuid=uuid4(), host="h")).uuid
    steps: list[Callable[[], object]] = []
    dataset = Dataset(dataset_id=uuid4(), primary=node)
    steps.append(lambda: store.create_dataset(dataset, None))
    steps.append(lambda: store.acquire_lease(Lease(dataset.dataset_id, node, NOW + 1), None, NOW))
    steps.append(lambda: store.move_dataset(dataset.dataset_id, node, None, NOW))
    steps.append(lambda: store.release_lease(dataset.dataset_id, None, NOW))
    steps.append(lambda: store.delete_dataset(dataset.dataset_id, None, NOW))
    steps.append(lambda: store.report_state(NodeState(node_uuid=node, generation=5)))
    for step in steps:
        store.configuration(NOW)
        step()
        fresh = open_sql()
        assert store.configuration(NOW) == fresh.configuration(NOW)
        assert store.datasets_for_node(node, frozenset()) == fresh.datasets_for_node(
            node, frozenset()
        )
        fresh.close()
    assert store.configuration(NOW).datasets == {}
