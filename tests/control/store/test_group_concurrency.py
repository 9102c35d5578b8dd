"""Group commits racing on one SQL database: every create answered once, none lost."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4

import pytest

from control.errors import Conflict
from control.events import EventQuery
from control.model import Dataset, Node
from control.store.interface import NewDataset
from control.store.sql import SQLStore

pytestmark = pytest.mark.functional

THREADS = 8
GROUPS = 6
SIZE = 5


def _writer(store: SQLStore, node: UUID, seed: int, start: threading.Barrier) -> list[Any]:
    """Groups of creates, every third one named like another thread's (some refused)."""
    start.wait()
    answers: list[Any] = []
    for group in range(GROUPS):
        creates = [
            NewDataset(
                Dataset(dataset_id=uuid4(), primary=node,
                        metadata={"name": f"n{group}-{i}" if i % 3 == 0 else f"{seed}-{group}-{i}"})
            )
            for i in range(SIZE)
        ]
        answers.extend(zip(creates, store.create_datasets(creates), strict=True))
    return answers


def test_racing_groups_answer_every_create_once(open_sql: Callable[[], SQLStore]) -> None:
    """Eight threads on two stores race groups; answers, generations and the database agree."""
    stores = [open_sql(), open_sql()]
    node = stores[0].register_node(Node(uuid=uuid4(), host="h")).uuid
    first = stores[0].versions().configuration
    start = threading.Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(_writer, stores[t % 2], node, t, start) for t in range(THREADS)]
        answers = [a for f in futures for a in f.result()]
    assert len(answers) == THREADS * GROUPS * SIZE
    stored = [(new, a) for new, a in answers if not isinstance(a, Exception)]
    refused = [(new, a) for new, a in answers if isinstance(a, Exception)]
    assert all(isinstance(a, Conflict) for _, a in refused)
    assert len(refused) == (THREADS - 1) * GROUPS * len(range(0, SIZE, 3))
    generations = sorted(generation for _, (_, generation) in stored)
    assert generations == list(range(first + 1, first + 1 + len(stored)))
    fresh = open_sql()
    datasets = fresh.configuration(0.0).datasets
    assert {new.dataset.dataset_id for new, _ in stored} <= set(datasets)
    assert not {new.dataset.dataset_id for new, _ in refused} & set(datasets)
    assert fresh.versions().configuration == first + len(stored)
    created = [e for e in fresh.events(EventQuery(limit=10_000)) if e.kind == "created"]
    by_generation = [new.dataset.dataset_id for new, _ in sorted(stored, key=lambda s: s[1][1])]
    assert [e.dataset_id for e in created] == by_generation


def test_racing_creates_of_one_name_one_wins(open_sql: Callable[[], SQLStore]) -> None:
    """Eight threads on two stores create the same name at once, each in a group with a
    create of its own: exactly one of the named creates is stored, the others refused with
    a Conflict, and every other create stored."""
    stores = [open_sql(), open_sql()]
    node = stores[0].register_node(Node(uuid=uuid4(), host="h")).uuid
    start = threading.Barrier(THREADS)

    def race(index: int) -> list[Any]:
        creates = [
            NewDataset(Dataset(dataset_id=uuid4(), primary=node, metadata={"name": "same"})),
            NewDataset(Dataset(dataset_id=uuid4(), primary=node,
                               metadata={"name": f"own-{index}"})),
        ]
        start.wait()
        return stores[index % 2].create_datasets(creates)

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(race, range(THREADS)))
    named = [a[0] for a in answers]
    assert sum(not isinstance(a, Exception) for a in named) == 1
    assert all(isinstance(a, Conflict) for a in named if isinstance(a, Exception))
    assert not any(isinstance(a[1], Exception) for a in answers)
    live = [d for d in open_sql().configuration(0.0).datasets.values() if d.name == "same"]
    assert len(live) == 1
