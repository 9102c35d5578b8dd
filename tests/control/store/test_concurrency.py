"""Concurrent conditional writers on one SQL database: a tag is won at most once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID, uuid4

import pytest

from control.errors import Conflict, PreconditionFailed
from control.model import Dataset, Node
from control.store.sql import SQLStore

pytestmark = pytest.mark.functional

THREADS = 20
ROUNDS = 15
NOW = 1_700_000_000.0

Win = tuple[int, int, UUID, UUID]
"""``(tag read, generation written, dataset, new primary)``."""


def _mover(store: SQLStore, datasets: list[UUID], nodes: list[UUID], seed: int,
           start: threading.Barrier) -> list[Win]:
    """Read the tag, then move a dataset conditionally on it; returns the writes that won."""
    start.wait()
    wins = []
    for i in range(ROUNDS):
        tag = store.configuration(NOW).tag
        dataset = datasets[(seed + i) % len(datasets)]
        primary = nodes[(seed * 7 + i) % len(nodes)]
        try:
            _, generation = store.move_dataset(dataset, primary, tag, NOW)
        except PreconditionFailed:
            continue
        wins.append((int(tag), generation, dataset, primary))
    return wins


def test_conditional_moves_never_lose_an_update(open_sql: Callable[[], SQLStore]) -> None:
    """Twenty threads on two stores (two processes) race; the winners replay to the end."""
    stores = [open_sql(), open_sql()]
    setup = stores[0]
    nodes = [setup.register_node(Node(uuid=uuid4(), host=f"h{i}")).uuid for i in range(4)]
    datasets = [
        setup.create_dataset(Dataset(dataset_id=uuid4(), primary=nodes[0]), None)[0].dataset_id
        for _ in range(3)
    ]
    first = setup.versions().configuration
    start = threading.Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [
            pool.submit(_mover, stores[t % 2], datasets, nodes, t, start) for t in range(THREADS)
        ]
        wins = sorted(w for f in futures for w in f.result())
    tags = [tag for tag, _, _, _ in wins]
    assert len(tags) == len(set(tags)), "a tag was won more than once"
    assert [generation for _, generation, _, _ in wins] == [tag + 1 for tag in tags]
    assert tags == list(range(first, first + len(wins))), "the winners do not chain"
    expected = {d: nodes[0] for d in datasets}
    for _, _, dataset, primary in wins:
        expected[dataset] = primary
    for store in stores:
        configuration = store.configuration(NOW)
        assert configuration.generation == first + len(wins)
        assert {d: configuration.datasets[d].primary for d in datasets} == expected
    assert len(wins) >= THREADS // 2


def _creator(store: SQLStore, node: UUID, start: threading.Barrier) -> UUID | None:
    """Create a dataset named ``shared`` (unconditionally); its id, or None if refused."""
    start.wait()
    try:
        created, _ = store.create_dataset(
            Dataset(dataset_id=uuid4(), primary=node, metadata={"name": "shared"}), None
        )
    except Conflict:
        return None
    return created.dataset_id


def test_concurrent_creates_of_one_name(open_sql: Callable[[], SQLStore]) -> None:
    """Twenty threads on two stores create the same name at once: exactly one wins."""
    stores = [open_sql(), open_sql()]
    node = stores[0].register_node(Node(uuid=uuid4(), host="h")).uuid
    start = threading.Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(_creator, stores[t % 2], node, start) for t in range(THREADS)]
        winners = [i for i in (f.result() for f in futures) if i is not None]
    assert len(winners) == 1
    named = [d for d in stores[1].configuration(NOW).datasets.values() if d.name == "shared"]
    assert [d.dataset_id for d in named] == winners
