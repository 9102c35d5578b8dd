"""The control service's dataset counts over a real SQL store: patched per change, never stale."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control.cluster_metrics import DatasetHealth, dataset_states
from control.dataset_tally import Tally
from control.model import Dataset, Fence, Node, NodeState
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
    other = uuid4()
    sql.register_node(Node(other, "h2", "era2", mount_root="/m"))
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
        lambda: service.request("POST", f"/v1/configuration/datasets/{ids[1]}",
                                json={"primary": str(other)}),
        lambda: service.request("DELETE", f"/v1/configuration/datasets/{ids[1]}"),
        # N1 still reports ids[1]: fenced, that report no longer counts.
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


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(0, 5)),
        st.tuples(st.just("move"), st.integers(0, 5)),
        st.tuples(st.just("delete"), st.integers(0, 5)),
        st.tuples(st.just("report"), st.frozensets(st.integers(0, 5)),
                  st.frozensets(st.integers(0, 5), max_size=2)),
        st.tuples(st.just("fence"), st.booleans()),
    ),
    max_size=12,
)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite database file to copy for each example."""
    path = tmp_path_factory.mktemp("template") / "control.db"
    upgrade(f"sqlite:///{path}")
    return path


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_any_sequence_of_changes_scrapes_as_a_count_from_scratch(
    migrated: Path, tmp_path: Path, operations: list[tuple[Any, ...]]
) -> None:
    """Random writes, reports and fences through a real SQL store: every scrape agrees."""
    database = tmp_path / f"{uuid4()}.db"
    shutil.copy(migrated, database)
    store = SQLStore(f"sqlite:///{database}")
    try:
        service = Service(store)
        service.register()
        other = uuid4()
        store.register_node(Node(other, "h2", "era2", mount_root="/m"))
        ids = [UUID(int=0xE000 + i) for i in range(6)]
        for operation in operations:
            apply(service, store, other, ids, operation)
            assert scraped(service) == from_scratch(store)
    finally:
        store.close()


def apply(service: Service, store: SQLStore, other: UUID, ids: list[UUID],
          operation: tuple[Any, ...]) -> None:
    """Make one change (refused ones change nothing, and are fine)."""
    kind = operation[0]
    if kind == "create":
        create(service, ids[operation[1]])
    elif kind == "move":
        dataset = store.dataset(ids[operation[1]])
        target = other if dataset is None or dataset.primary == N1 else N1
        service.request("POST", f"/v1/configuration/datasets/{ids[operation[1]]}",
                        json={"primary": str(target)})
    elif kind == "delete":
        service.request("DELETE", f"/v1/configuration/datasets/{ids[operation[1]]}")
    elif kind == "report":
        _, held, failing = operation
        generation = store.versions().configuration
        found = {ids[i]: mounted(ids[i]) for i in held}
        service.store.report_state(NodeState(
            N1, "era", generation, found, service.clock.seconds(),
            conditions=tuple(error_of(ids[i]) for i in failing),
        ))
        service.clock.advance(1)
    elif operation[1]:
        store.fence_node(N1, Fence(NOW, "test", "t"))
    else:
        store.unfence_node(N1, NOW, actor="t", reason="test")
