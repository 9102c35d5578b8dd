"""
The databases and seeded clusters that ``bench/scale.py``'s parts share (issue 16).

:func:`database` yields the SQLAlchemy URL of an empty, migrated database of either
kind: SQLite in a temporary file, or a throwaway PostgreSQL server of its own
(:mod:`tests.pgserver`, ``fsync=off`` as the tests run it). :func:`seed` stores
datasets spread over registered nodes in one transaction through the store's own
row writes, which is how a cluster that grew over months looks to a restarted
service, and takes seconds instead of the minutes that HTTP creates would.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator

from _common import ROOT  # noqa: F401  (puts the checkout on sys.path)
from sqlalchemy import insert

from control.model import Dataset, Node
from control.store import queries as q
from control.store import rows, tables
from control.store.migrate import upgrade
from control.store.sql import SQLStore

KINDS = ("sqlite", "postgresql")
SIZE = 64 * 1024 * 1024
MOUNT_ROOT = "/m"


@contextlib.contextmanager
def database(kind: str) -> Iterator[str]:
    """An empty database of ``kind`` (``sqlite`` or ``postgresql``) at the newest schema."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="shoal-scale-") as directory:
            url = f"sqlite:///{os.path.join(directory, 'scale.db')}"
            upgrade(url)
            yield url
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database kind {kind!r}: use one of {', '.join(KINDS)}")
    from tests.pgserver import ThrowawayPostgres

    server = ThrowawayPostgres().start()
    try:
        url = server.create_database("scale")
        upgrade(url)
        yield url
    finally:
        server.remove()


def node_ids(count: int) -> list[uuid.UUID]:
    """``count`` node UUIDs, the same on every run (so tables compare across runs)."""
    return [uuid.UUID(int=0x5CA1E_0000 + index) for index in range(count)]


def seed(url: str, nodes: list[uuid.UUID], count: int) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Register ``nodes`` and store ``count`` datasets dealt round-robin onto them.

    Returns the dataset ids by node.
    """
    store = SQLStore(url)
    placed: dict[uuid.UUID, list[uuid.UUID]] = {node: [] for node in nodes}
    try:
        for index, node in enumerate(nodes):
            store.register_node(
                Node(uuid=node, host=f"10.{index // 250}.{index % 250}.1",
                     era=f"era-{index}", labels={"name": f"node{index}"},
                     mount_root=MOUNT_ROOT)
            )
        with store._write() as (connection, generation, state_version):
            batch = []
            for index in range(count):
                node = nodes[index % len(nodes)]
                dataset = Dataset(dataset_id=uuid.uuid4(), primary=node, maximum_size=SIZE,
                                  metadata={"name": f"db-{index:06d}"})
                batch.append(rows.dataset_row(dataset))
                placed[node].append(dataset.dataset_id)
                if len(batch) == 5_000 or index == count - 1:  # one executemany per batch
                    connection.execute(insert(tables.datasets), batch)
                    batch = []
            q.write_counters(connection, generation + 1, state_version)
    finally:
        store.close()
    return placed
