"""The control service's dataset counts over a real SQL store: patched per change, never stale."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from control.cluster_metrics import DatasetHealth, dataset_states
from control.dataset_tally import Tally
from control.model import Dataset, Fence, NodeState
from control.store.migrate import upgrade
from control.store.sql import SQLStore
from tests.control.api.test_metrics import GIB, N1, Service, create
from tests.control.test_cluster_metrics import attached, error_of, mounted

NOW = 1_700_000_000.0


@pytest.fixture
def sql(tmp_path: Path) -> Iterator[SQLStore]:
    """A SQL store on a fresh SQLite database."""
    url = f"sqlite:///{tmp_path / 'control.db'}"
    upgrade(url)
    store = SQLStore(url)
    yield store
    store.close()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the dataset counts were made from scratch."""
    made: list[int] = []
    original = Tally.of.__func__  # type: ignore[attr-defined]

    def of(cls: type[Tally], *args: Any) -> Tally:
        made.append(1)
        return original(cls, *args)  # type: ignore[no-any-return]

    monkeypatch.setattr(Tally, "of", classmethod(of))
    return made


def scraped(service: Service) -> dict[DatasetHealth, int]:
    """``shoal_datasets`` by state, from a scrape."""
    found = service.scrape()
    return {h: int(found.value("shoal_datasets", state=h.value)) for h in DatasetHealth}


def from_scratch(store: SQLStore) -> dict[DatasetHealth, int]:
    """The counts computed from the store's whole configuration and state."""
    return dataset_states(store.configuration(NOW), store.cluster_state())


def test_writes_reports_and_fences_patch_the_counts(sql: SQLStore, counted: list[int]) -> None:
    """After each change the scrape shows a fresh count's answer, counted from scratch once."""
    service = Service(sql)
    service.register()
    ids = [UUID(int=0xD000 + i) for i in range(4)]
    for dataset_id in ids[:3]:
        assert create(service, dataset_id).code == 201
    assert scraped(service) == from_scratch(sql)
    assert len(counted) == 1
    generation = sql.versions().configuration

    def report(*found: Any, **kwargs: Any) -> None:
        sql.report_state(NodeState(N1, "era", generation, {f.dataset_id: f for f in found},
                                   NOW, **kwargs))

    changes = [
        lambda: report(mounted(ids[0]), attached(ids[1]), conditions=(error_of(ids[1]),)),
        lambda: create(service, ids[3]),
        lambda: service.request("DELETE", f"/v1/configuration/datasets/{ids[2]}"),
        lambda: report(mounted(ids[0]), mounted(ids[1])),
        lambda: sql.fence_node(N1, Fence(NOW, "test", "t")),
        lambda: sql.create_dataset(Dataset(uuid4(), N1, GIB), None),
    ]
    for change in changes:
        change()
        assert scraped(service) == from_scratch(sql)
    assert len(counted) == 1


def test_another_process_write_is_seen(sql: SQLStore, tmp_path: Path, counted: list[int]) -> None:
    """A write by another store on the same database is counted (from scratch), not missed."""
    service = Service(sql)
    service.register()
    create(service, UUID(int=0xD001))
    scraped(service)
    other = SQLStore(f"sqlite:///{tmp_path / 'control.db'}")
    try:
        other.create_dataset(Dataset(uuid4(), N1, GIB), None)
    finally:
        other.close()
    assert scraped(service)[DatasetHealth.PENDING] == 2
    assert len(counted) == 2
