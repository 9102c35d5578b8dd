"""The in-memory store passes the conformance suite."""

from __future__ import annotations

import pytest

from control.store.memory import MemoryStore
from tests.control.store.class_conformance import ClassConformance, ReleaseConformance
from tests.control.store.conformance import StoreConformance
from tests.control.store.failover_conformance import FailoverConformance
from tests.control.store.group_conformance import GroupConformance
from tests.control.store.move_group_conformance import MoveGroupConformance
from tests.control.store.report_conformance import ReportGroupConformance
from tests.control.store.revocation_conformance import RevocationConformance
from tests.control.store.snapshot_conformance import SnapshotConformance


class TestMemoryStore(
    ClassConformance, ReleaseConformance, StoreConformance, SnapshotConformance,
    FailoverConformance,
    RevocationConformance,
    GroupConformance,
    MoveGroupConformance,
    ReportGroupConformance,
):
    """MemoryStore against the Store contract."""

    @pytest.fixture
    def store(self) -> MemoryStore:
        """An empty in-memory store."""
        return MemoryStore()

    @pytest.fixture
    def with_retention(self) -> type[MemoryStore]:
        """Makes an empty store keeping the given event history."""
        return MemoryStore
