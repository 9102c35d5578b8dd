"""A write this process commits never makes a concurrent reader reload the whole configuration."""

from __future__ import annotations

import threading
from collections.abc import Callable
from uuid import uuid4

from pyrsistent import pmap

from control.model import Dataset, Node
from control.store.interface import NewDataset
from control.store.migrate import upgrade
from control.store.snapshot import Snapshot, SnapshotCache
from control.store.sql import SQLStore

GROUPS = 5
SIZE = 8


class _ReadingCache(SnapshotCache):
    """A real cache that, when a write has committed and before it advances, has another
    thread read the whole configuration (as the failover pass does), and waits a while
    for that read (a second for each write that declared itself committing)."""

    def __init__(self) -> None:
        super().__init__()
        self.read: Callable[[], object] = lambda: None
        self.readers: list[threading.Thread] = []
        self._starts: set[int] = set()

    def expect(self, before: int, after: int) -> int:
        self._starts.add(before)
        return super().expect(before, after)

    def advance(self, before: int, change: Callable[[Snapshot], Snapshot]) -> None:
        if before in self._starts:  # the first advance of a write
            reader = threading.Thread(target=self.read)
            self.readers.append(reader)
            reader.start()
            reader.join(timeout=1.0)  # a reload finishes; a reader waiting for this advance
        super().advance(before, change)


def _creates(node: Node) -> list[NewDataset]:
    return [NewDataset(Dataset(dataset_id=uuid4(), primary=node.uuid)) for _ in range(SIZE)]


def test_creates_cause_no_full_reload(sql_url: str) -> None:
    """Groups of creates against a seeded, cached store: a configuration read between each
    commit and its cache advance is answered from the cache, never by a full reload."""
    upgrade(sql_url)
    cache = _ReadingCache()
    store = SQLStore(sql_url, snapshots=cache)
    try:
        node = store.register_node(Node(uuid=uuid4(), host="h"))
        store.create_datasets(_creates(node))
        cache.readers.clear()
        seen: list[int] = []
        cache.read = lambda: seen.append(store.configuration(0.0).generation)
        store.configuration(0.0)
        assert store.full_loads == 1
        for _ in range(GROUPS):
            store.create_datasets(_creates(node))
        store.create_dataset(Dataset(dataset_id=uuid4(), primary=node.uuid), None)
        for reader in cache.readers:
            reader.join()
        assert store.full_loads == 1
        assert len(seen) == len(cache.readers) == GROUPS + 1
        assert len(store.configuration(0.0).datasets) == SIZE * (GROUPS + 1) + 1
    finally:
        store.close()


def test_reader_waits_for_the_committing_write() -> None:
    """A reader asking for a generation a declared write is committing gets the snapshot
    that write advances to."""
    cache = SnapshotCache()
    cache.put(Snapshot(1, pmap(), pmap()))
    token = cache.expect(1, 3)
    got: list[Snapshot | None] = []
    reader = threading.Thread(target=lambda: got.append(cache.get(3)))
    reader.start()
    reader.join(timeout=0.2)
    assert reader.is_alive() and not got
    first, second = Dataset(dataset_id=uuid4(), primary=uuid4()), Dataset(
        dataset_id=uuid4(), primary=uuid4()
    )
    cache.advance(1, lambda s: s.with_dataset(first))
    cache.advance(2, lambda s: s.with_dataset(second))
    cache.settle(token)
    reader.join(timeout=30)
    assert got and got[0] is not None and got[0].generation == 3
    assert set(got[0].datasets) == {first.dataset_id, second.dataset_id}


def test_a_failed_write_releases_its_readers() -> None:
    """A declared write that settles without advancing (it failed) lets its readers go,
    with nothing cached at the generation they asked for."""
    cache = SnapshotCache()
    cache.put(Snapshot(4, pmap(), pmap()))
    token = cache.expect(4, 5)
    got: list[Snapshot | None] = []
    reader = threading.Thread(target=lambda: got.append(cache.get(5)))
    reader.start()
    reader.join(timeout=0.2)
    assert reader.is_alive()
    cache.settle(token)
    reader.join(timeout=30)
    assert got == [None]


def test_no_wait_without_a_committing_write() -> None:
    """Generations no declared write covers are answered at once, as before."""
    cache = SnapshotCache(settle_wait=60.0)
    cache.put(Snapshot(4, pmap(), pmap()))
    cache.expect(4, 5)
    assert cache.get(7) is None
    assert cache.get(4) is not None


class _WritingCache(SnapshotCache):
    """A real cache that, the next time it is asked for a generation, first has another
    thread commit ``write`` (which advances this cache past the generation asked for)."""

    def __init__(self) -> None:
        super().__init__()
        self.write: Callable[[], object] | None = None

    def get(self, generation: int) -> Snapshot | None:
        write, self.write = self.write, None
        if write is not None:
            writer = threading.Thread(target=write)
            writer.start()
            writer.join(timeout=30)
        return super().get(generation)


def test_node_datasets_read_while_a_write_commits_loads_nothing(sql_url: str) -> None:
    """A node's configuration read at a generation the cache has just passed (a write
    committed after the read began) is read again at the newer one, without loading every
    dataset, and holds the write."""
    upgrade(sql_url)
    cache = _WritingCache()
    store = SQLStore(sql_url, snapshots=cache)
    try:
        node = store.register_node(Node(uuid=uuid4(), host="h"))
        store.create_datasets(_creates(node))
        store.node_datasets(node.uuid, frozenset())
        loads, made = store.full_loads, Dataset(dataset_id=uuid4(), primary=node.uuid)
        cache.write = lambda: store.create_dataset(made, None)
        view = store.node_datasets(node.uuid, frozenset())
        assert store.full_loads == loads
        assert view.generation == store.versions().configuration
        assert made.dataset_id in {d.dataset_id for d in view.datasets}
    finally:
        store.close()


def test_node_datasets_loads_once_for_simultaneous_misses(sql_url: str) -> None:
    """Nodes' configurations asked for at once with nothing cached (a restart) load every
    dataset once between them, and each holds the leases and unsettled snapshots."""
    upgrade(sql_url)
    store = SQLStore(sql_url)
    node = store.register_node(Node(uuid=uuid4(), host="h"))
    store.create_datasets(_creates(node))
    store.close()
    store = SQLStore(sql_url)
    try:
        views: list[object] = []

        def read() -> None:
            views.append(store.node_datasets(node.uuid, frozenset()))

        readers = [threading.Thread(target=read) for _ in range(8)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(timeout=30)
        assert store.full_loads == 1 and len(views) == 8
    finally:
        store.close()
