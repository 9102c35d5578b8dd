"""
The durable :class:`~control.store.interface.Store`: SQLAlchemy 2 Core on SQLite or PostgreSQL.

Every configuration write is one transaction that first takes the writers'
lock (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` of the cluster
row on PostgreSQL), checks the tag against the generation it read, loads the
few rows involved, asks :mod:`control.rules` what to store, writes it and bumps
the generation. A refused write rolls back, so it changes nothing.

Reads of the whole configuration are cached keyed by the generation read
from the database, so several processes may share the database safely.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from pyrsistent import pmap
from sqlalchemy import Connection

from control import rules
from control.errors import NotFound
from control.model import (
    ClusterState,
    Configuration,
    Dataset,
    Lease,
    Node,
    NodeState,
    Versions,
)
from control.store import queries as q
from control.store.engine import WRITE, is_sqlite, make_engine, unavailable_on_failure
from control.store.migrate import check_at_head
from control.store.snapshot import Snapshot, SnapshotCache


class SQLStore:
    """A store in the SQL database at ``url`` (whose schema must be at the newest revision)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._engine = make_engine(url)
        self._cache = SnapshotCache()
        try:
            with self._read() as connection:
                check_at_head(connection, url)
        except BaseException:
            self._engine.dispose()
            raise

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with unavailable_on_failure(self._url), self._engine.connect() as connection:
            if not is_sqlite(connection):
                connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield connection

    @contextmanager
    def _write(self) -> Iterator[tuple[Connection, int, int]]:
        """A write transaction holding the writers' lock, with both counters as read."""
        with unavailable_on_failure(self._url), self._engine.connect() as connection:
            connection.execution_options(**{WRITE: True})
            with connection.begin():
                generation, state_version = q.read_counters(connection, lock=True)
                yield connection, generation, state_version

    # -- reads ---------------------------------------------------------------

    def versions(self) -> Versions:
        """The current configuration generation and state version."""
        with self._read() as connection:
            generation, state_version = q.read_counters(connection)
        return Versions(configuration=generation, state=state_version)

    def configuration(self, now: float) -> Configuration:
        """The whole configuration; leases that expired by ``now`` are left out."""
        with self._read() as connection:
            generation, _ = q.read_counters(connection)
            snapshot = self._cache.get(generation)
            if snapshot is None:
                snapshot = Snapshot(
                    generation, pmap(q.all_datasets(connection)), pmap(q.all_leases(connection))
                )
                self._cache.put(snapshot)
        return snapshot.configuration(now)

    def dataset(self, dataset_id: UUID) -> Dataset | None:
        """One dataset, deleted or not, or ``None``."""
        with self._read() as connection:
            return q.get_dataset(connection, dataset_id)

    def datasets_for_node(
        self, node_uuid: UUID, also: frozenset[UUID]
    ) -> tuple[int, list[Dataset]]:
        """``(generation, datasets)`` whose primary is ``node_uuid`` or whose id is in ``also``."""
        with self._read() as connection:
            generation, _ = q.read_counters(connection)
            snapshot = self._cache.get(generation)
            if snapshot is None:
                return generation, q.datasets_for(connection, node_uuid, also)
        return generation, snapshot.datasets_for(node_uuid, also)

    def nodes(self) -> list[Node]:
        """Every registered node."""
        with self._read() as connection:
            return q.all_nodes(connection)

    def node_by_era(self, era: str) -> Node | None:
        """The node whose current era is ``era``, or ``None``."""
        with self._read() as connection:
            return q.node_with_era(connection, era)

    def cluster_state(self) -> ClusterState:
        """Registered nodes and their latest reports."""
        with self._read() as connection:
            _, state_version = q.read_counters(connection)
            found = q.all_nodes(connection)
            reports = q.all_reports(connection)
        return ClusterState(
            version=state_version,
            nodes={n.uuid: n for n in found},
            reports={r.node_uuid: r for r in reports},
        )

    # -- configuration writes ------------------------------------------------

    def create_dataset(self, dataset: Dataset, if_tag: str | None) -> tuple[Dataset, int]:
        """Store a new dataset; returns it and the new generation."""
        with self._write() as (connection, generation, state_version):
            rules.check_tag(generation, if_tag)
            existing = q.get_dataset(connection, dataset.dataset_id)
            known = q.node_exists(connection, dataset.primary)
            named = None if dataset.name is None else q.live_named(connection, dataset.name)
            stored = rules.create_dataset(existing, known, dataset, named)
            q.put_dataset(connection, stored, exists=False)
            q.write_counters(connection, generation + 1, state_version)
        self._cache.advance(generation, lambda s: s.with_dataset(stored))
        return stored, generation + 1

    def move_dataset(
        self, dataset_id: UUID, primary: UUID, if_tag: str | None, now: float
    ) -> tuple[Dataset, int]:
        """Give a dataset a new primary; returns it and the new generation."""
        with self._write() as (connection, generation, state_version):
            rules.check_tag(generation, if_tag)
            lease = q.get_lease(connection, dataset_id)
            stored = rules.move_dataset(
                q.get_dataset(connection, dataset_id),
                dataset_id,
                primary,
                q.node_exists(connection, primary),
                lease,
                now,
                _holder(connection, lease),
            )
            q.put_dataset(connection, stored, exists=True)
            q.write_counters(connection, generation + 1, state_version)
        self._cache.advance(generation, lambda s: s.with_dataset(stored))
        return stored, generation + 1

    def delete_dataset(
        self, dataset_id: UUID, if_tag: str | None, now: float
    ) -> tuple[Dataset, int]:
        """Mark a dataset deleted; an already deleted one is returned without a new generation."""
        with self._write() as (connection, generation, state_version):
            rules.check_tag(generation, if_tag)
            existing = q.get_dataset(connection, dataset_id)
            lease = q.get_lease(connection, dataset_id)
            stored = rules.delete_dataset(
                existing, dataset_id, lease, generation + 1, now, _holder(connection, lease)
            )
            if stored == existing:
                return stored, generation
            q.put_dataset(connection, stored, exists=True)
            q.write_counters(connection, generation + 1, state_version)
        self._cache.advance(generation, lambda s: s.with_dataset(stored))
        return stored, generation + 1

    def acquire_lease(
        self, lease: Lease, if_tag: str | None, now: float
    ) -> tuple[Lease, bool, int]:
        """Create or renew a lease; returns it, whether it is new, and the new generation."""
        with self._write() as (connection, generation, state_version):
            rules.check_tag(generation, if_tag)
            existing = q.get_lease(connection, lease.dataset_id)
            dataset = q.get_dataset(connection, lease.dataset_id)
            stored, created = rules.acquire_lease(
                dataset, existing, lease, now, _holder(connection, existing)
            )
            q.put_lease(connection, stored, exists=existing is not None)
            q.write_counters(connection, generation + 1, state_version)
        self._cache.advance(generation, lambda s: s.with_lease(stored))
        return stored, created, generation + 1

    def release_lease(
        self, dataset_id: UUID, if_tag: str | None, now: float
    ) -> tuple[Lease, int]:
        """Remove a dataset's lease; returns the lease released and the new generation."""
        with self._write() as (connection, generation, state_version):
            rules.check_tag(generation, if_tag)
            released = rules.release_lease(q.get_lease(connection, dataset_id), dataset_id, now)
            q.delete_lease(connection, dataset_id)
            q.write_counters(connection, generation + 1, state_version)
        self._cache.advance(generation, lambda s: s.without_lease(dataset_id))
        return released, generation + 1

    # -- state writes --------------------------------------------------------

    def register_node(self, node: Node) -> Node:
        """Create or update a node; the state version moves only if what it registers changed."""
        with self._write() as (connection, generation, state_version):
            old = q.get_node(connection, node.uuid)
            q.put_node(connection, node, exists=old is not None)
            if old is None or not old.same_registration(node):
                q.write_counters(connection, generation, state_version + 1)
        return node

    def report_state(self, report: NodeState) -> bool:
        """Record a node's report, mark it seen, and purge what deletion allows."""
        with self._write() as (connection, generation, state_version):
            if not q.node_exists(connection, report.node_uuid):
                raise NotFound(
                    f"Node {report.node_uuid} has not registered; its agent must register first."
                )
            old = q.get_report(connection, report.node_uuid)
            changed = old is None or not old.same_observation(report)
            q.put_report(connection, report, exists=old is not None)
            if report.reported_at is not None:
                q.mark_seen(connection, report.node_uuid, report.reported_at)
            purged = _purge(connection)
            if changed or purged:
                q.write_counters(
                    connection, generation + bool(purged), state_version + changed
                )
        if purged:
            self._cache.advance(generation, lambda s: s.without_datasets(purged))
        return changed

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()


def _holder(connection: Connection, lease: Lease | None) -> str | None:
    """The name of the node holding ``lease``, for a refusal."""
    if lease is None:
        return None
    return rules.holder_name(lease, q.get_node(connection, lease.node_uuid))


def _purge(connection: Connection) -> list[UUID]:
    """Forget the deleted datasets that may be purged; returns their ids."""
    deleted = q.deleted_datasets(connection)
    if not deleted:
        return []
    reports = q.all_reports(connection)
    doomed = [d.dataset_id for d in deleted if rules.purgeable(d, reports)]
    if doomed:
        q.purge_datasets(connection, doomed)
    return doomed
