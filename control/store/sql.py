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

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial, reduce
from typing import Any
from uuid import UUID

from attrs import define, evolve
from pyrsistent import pmap
from sqlalchemy import Connection, Executable

from control import classes as cl
from control import events as ev
from control import failover_events as fev
from control import failover_rules as fr
from control import readers as rd
from control import revocations as rv
from control import rules
from control import snapshot_events as sev
from control import snapshots as snap
from control.classes import StorageClass
from control.errors import ShoalError, Unavailable
from control.events import EventQuery, EventRetention
from control.model import (
    ClusterState,
    Configuration,
    Dataset,
    DatasetSnapshot,
    Event,
    Fence,
    Lease,
    Node,
    NodeState,
    Versions,
)
from control.reach import changed_datasets, state_reach
from control.revocations import Revocation
from control.store import class_records as cq
from control.store import creates as cr
from control.store import eventlog, rows
from control.store import moves as mv
from control.store import queries as q
from control.store import report_writes as rw
from control.store import revocation_records as rq
from control.store import snapshot_records as sq
from control.store.engine import WRITE, is_sqlite, make_engine, unavailable_on_failure
from control.store.interface import (
    Created,
    NewDataset,
    NewMove,
    NodeDatasets,
    Renewal,
    ReportAnswer,
    Reported,
    StateReach,
)
from control.store.migrate import check_at_head
from control.store.node_views import NodeViews
from control.store.pglocks import read_marked_counters
from control.store.pipelining import begun_with, pipelined, read_alone, read_together
from control.store.renewals import Renewals
from control.store.seen import Seen, SeenLog
from control.store.snapshot import Snapshot, SnapshotCache
from control.store.state_cache import StateCache, with_liveness, with_report
from control.store.unsettled import UnsettledAt


@define
class _ConfigurationWrite:
    """One configuration write in progress: its connection and the generation it read."""

    connection: Connection
    generation: int
    update: Callable[[Snapshot], Snapshot] | None = None

    def changed(self, update: Callable[[Snapshot], Snapshot]) -> int:
        """Record that the write changed the configuration as ``update`` does to a snapshot.

        Returns the generation the write creates.
        """
        self.update = update
        return self.generation + 1


_PLACEMENT = (cq.ALL_CLASSES, q.COUNTERS, q.SEEN_TIMES, q.REPORT_TIMES)
"""What a group of creates is placed by (:meth:`SQLStore.placement_inputs`), read together."""


class SQLStore:
    """A store in the SQL database at ``url`` (whose schema must be at the newest revision)."""

    def __init__(
        self, url: str, retention: EventRetention | None = None, seen_in_memory: bool = False,
        snapshots: SnapshotCache | None = None, sole_writer: bool = False,
    ) -> None:
        self._retention = retention if retention is not None else EventRetention()
        self._seen = SeenLog() if seen_in_memory else None
        """With ``seen_in_memory``, heartbeats are kept in memory and written by
        :meth:`flush_seen` (:mod:`control.store.seen`)."""
        self._engine = make_engine(url)
        self._marked = not is_sqlite(self._engine)
        """Write transactions are told by the cluster row's version (PostgreSQL), not counted
        here (:mod:`control.store.renewals`)."""
        self._renewals = (
            Renewals() if seen_in_memory and (sole_writer or self._marked) else None
        )
        """With ``sole_writer`` too (nothing else writes the database while this store is
        open), a repeated heartbeat may be renewed in memory (:meth:`renew_report`); on
        PostgreSQL, by one read (:meth:`renew_reports`)."""
        self.renews_by_reading = self._renewals is not None and self._marked
        """Whether :meth:`renew_reports` may renew (else it answers ``None`` for each)."""
        self._quiet: tuple[int, int] | None = None
        """The counters at which a report last found nothing to purge or settle."""
        self._idle: int | None = None
        """A generation at which no deleted dataset and no unsettled snapshot existed."""
        self._newest_state = 0
        """The newest state version this store read from the database (:meth:`_news`)."""
        self._paths = rw.PathsChecked()
        self._known_nodes: set[UUID] = set()
        """Nodes a group of creates found registered (:func:`.creates.create_group`)."""
        self._same = rw.SameDatasets()
        self._url = url
        self._cache = SnapshotCache() if snapshots is None else snapshots
        self.full_loads = 0
        """How many times the whole configuration was read from the database."""
        self._state_cache = StateCache()
        self._node_views = NodeViews()
        self._unsettled = UnsettledAt()
        self._loading = threading.Lock()
        self._writers: AbstractContextManager[object] = (
            threading.Lock() if is_sqlite(self._engine) else nullcontext()
        )
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
    def _write(self, times_only: bool = False) -> Iterator[tuple[Connection, int, int]]:
        """A write transaction holding the writers' lock, with both counters as read;
        counted for :meth:`renew_report` unless it writes only heartbeat times (``times_only``).

        On PostgreSQL the ``BEGIN`` goes with the locked counters (:func:`begun_with`: one
        round trip). On SQLite the writers of this process also queue on a thread lock
        before ``BEGIN IMMEDIATE``: SQLite admits one writer at a time anyway,
        and its busy handler polls with sleeps of up to 100 ms, which leaves the
        database idle between commits and lets an unlucky writer wait seconds.
        """
        with (
            self._writers,
            self._counted(times_only),
            unavailable_on_failure(self._url),
            self._engine.connect() as connection,
        ):
            connection.execution_options(**{WRITE: True})
            locked: Executable
            if is_sqlite(connection):
                locked = q.COUNTERS
            else:  # a write that may change what a report's judgement reads moves the row
                locked = q.LOCKED_COUNTERS if times_only else q.CLAIMED_COUNTERS
            with begun_with(connection, locked) as counters:
                [(generation, state_version)] = counters
                yield connection, generation, state_version

    def _counted(self, times_only: bool) -> AbstractContextManager[object]:
        """Where a write transaction is counted (:class:`~control.store.renewals.Renewals`)."""
        if self._renewals is None or times_only or self._marked:
            return nullcontext()
        return self._renewals.writing()

    @contextmanager
    def _advancing(self) -> Iterator[Callable[[int, int], None]]:
        """Around a configuration write and its snapshot advance: yields ``expect(before,
        after)``, to call in the write's transaction once its new generation is written
        (before the commit). Until the block ends (the advance done, or the write
        failed), a reader that finds the database at one of those generations waits for
        the advance instead of reloading the whole configuration
        (:meth:`SnapshotCache.expect`)."""
        tokens: list[int] = []
        try:
            yield lambda before, after: tokens.append(self._cache.expect(before, after))
        finally:
            for token in tokens:
                self._cache.settle(token)

    # -- reads ---------------------------------------------------------------

    def versions(self) -> Versions:
        """The current configuration generation and state version: on PostgreSQL read
        with their transaction's ``BEGIN`` and ``COMMIT`` (:func:`read_alone`: one round
        trip, not three; each report group's answer reads them)."""
        with unavailable_on_failure(self._url), self._engine.connect() as connection:
            [[(generation, state_version)]] = read_alone(connection, [q.COUNTERS])
        self._newest_state = max(self._newest_state, state_version)
        return Versions(configuration=generation, state=state_version)

    def configuration(self, now: float) -> Configuration:
        """The whole configuration; leases that expired by ``now`` are left out."""
        snapshot = self._cached_snapshot()
        if snapshot is None:
            with self._loading:  # one thread loads; the others wait for it, then use it
                snapshot = self._cached_snapshot()
                if snapshot is None:
                    with self._read() as connection:
                        generation, _ = q.read_counters(connection)
                        snapshot = self._load(connection, generation)
        return snapshot.configuration(now)

    def cached_configuration(self, now: float) -> Configuration | None:
        """The configuration if the cached snapshot is at the database's generation, else
        ``None`` (nothing is loaded)."""
        snapshot = self._cached_snapshot()
        return None if snapshot is None else snapshot.configuration(now)

    def dataset_listing(self) -> tuple[int, bytes]:
        """``(generation, listing)``: the v1 listing items stored with the rows, joined, in
        one transaction (:func:`control.store.queries.dataset_listing`)."""
        with self._read() as connection:
            generation, _ = q.read_counters(connection)
            return generation, q.dataset_listing(connection)

    def _cached_snapshot(self) -> Snapshot | None:
        """The cached snapshot if it is at the generation the database is at, else ``None``."""
        with self._read() as connection:
            generation, _ = q.read_counters(connection)
        return self._cache.get(generation)

    def dataset(self, dataset_id: UUID) -> Dataset | None:
        """One dataset, deleted or not, or ``None``."""
        with self._read() as connection:
            return q.get_dataset(connection, dataset_id)

    def datasets_of(self, dataset_ids: Iterable[UUID]) -> dict[UUID, Dataset | None]:
        """Each of ``dataset_ids``, deleted or not, or ``None``: from the cached snapshot when
        it is at the generation read, else row by row, in one transaction."""
        with self._read() as connection:
            generation, _ = q.read_counters(connection)
            snapshot = self._cache.get(generation)
            if snapshot is None:
                return {i: q.get_dataset(connection, i) for i in dataset_ids}
        return {i: snapshot.datasets.get(i) for i in dataset_ids}

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

    def node_datasets(self, node_uuid: UUID, also: frozenset[UUID]) -> NodeDatasets:
        """What one node's configuration is made of, from the cached snapshot's index
        (the node's list kept while none of its datasets changed: :mod:`.node_views`),
        with the leases and the unsettled snapshots at the same generation
        (:class:`.UnsettledAt`): one trip to the store's threads per answer.

        The fences come from the cached actual state when it is current, else
        from the nodes' rows. When the snapshot is not cached at the generation
        read (a restart, another replica's write, or a write that committed and
        advanced it since this transaction began), one thread reads again under the
        load lock and loads only if it is still missing: never every dataset outside
        the lock, nor a load of a generation the cache has already passed.
        """
        with self._read() as connection:
            view = self._node_view(connection, node_uuid, also, load=False)
        if view is not None:
            return view
        with self._loading, self._read() as connection:
            view = self._node_view(connection, node_uuid, also, load=True)
        assert view is not None
        return view

    def _node_view(
        self, connection: Connection, node_uuid: UUID, also: frozenset[UUID], load: bool
    ) -> NodeDatasets | None:
        """:meth:`node_datasets` in ``connection``'s transaction; ``None`` when the snapshot
        is not cached at its generation and ``load`` is false."""
        generation, state_version = q.read_counters(connection)
        snapshot = self._cache.get(generation)
        if snapshot is None:
            if not load:
                return None
            snapshot = self._load(connection, generation)
        state = self._state_cache.get(state_version)
        if state is not None:
            fenced = self._node_views.fenced(state.nodes)
        else:
            fenced = q.fenced_nodes(connection)
        unsettled = self._unsettled.get(generation, partial(sq.unsettled, connection))
        return NodeDatasets(
            generation, self._node_views.datasets(snapshot, node_uuid, also), snapshot.copies(),
            snapshot.read(), fenced, snapshot.datasets, snapshot.leases, unsettled,
        )

    def _load(self, connection: Connection, generation: int) -> Snapshot:
        """Read the whole configuration at ``generation`` and cache it."""
        self.full_loads += 1
        snapshot = Snapshot(
            generation, pmap(q.all_datasets(connection)), pmap(q.all_leases(connection))
        )
        self._cache.put(snapshot)
        return snapshot

    def nodes(self) -> list[Node]:
        """Every registered node."""
        with self._read() as connection:
            return self._nodes(connection)

    def _nodes(self, connection: Connection) -> list[Node]:
        found = q.all_nodes(connection)
        return found if self._seen is None else [self._seen.node(n) or n for n in found]

    def node_by_era(self, era: str) -> Node | None:
        """The node whose current era is ``era``, or ``None``."""
        with self._read() as connection:
            found = q.node_with_era(connection, era)
        return found if self._seen is None else self._seen.node(found)

    def cluster_state(self) -> ClusterState:
        """Registered nodes and their latest reports.

        Cached by the state version read in the same transaction
        (:mod:`control.store.state_cache`); the times that move without it are
        read fresh.
        """
        with self._read() as connection:
            return self._cluster_state(connection)

    def cluster_state_of(self, node_uuids: frozenset[UUID]) -> ClusterState:
        """:meth:`cluster_state` with the times of ``node_uuids`` only read fresh (the
        other nodes' as old as the cached state: a group of moves reads its targets')."""
        with self._read() as connection:
            return self._cluster_state(connection, node_uuids)

    def _cluster_state(
        self, connection: Connection, only: frozenset[UUID] | None = None
    ) -> ClusterState:
        _, state_version = q.read_counters(connection)
        if only is None:
            return self._state_at(
                connection, state_version,
                lambda: (q.seen_times(connection), q.report_times(connection)),
            )
        return self._state_at(connection, state_version, lambda: q.times_of(connection, only), only)

    def _state_at(
        self, connection: Connection, state_version: int,
        times: Callable[[], tuple[dict[UUID, float | None], dict[UUID, float | None]]],
        only: frozenset[UUID] | None = None,
    ) -> ClusterState:
        """The cluster state at ``state_version``, read in ``connection``'s transaction: the
        cached one with the nodes' ``times()`` (seen, reported; those of ``only`` when given)
        laid over it, else read whole."""
        cached = self._state_cache.get(state_version)
        if cached is None:
            found = q.all_nodes(connection)
            reports = q.all_reports(connection)
            state = ClusterState(
                version=state_version,
                nodes={n.uuid: n for n in found},
                reports={r.node_uuid: r for r in reports},
            )
            self._state_cache.put(state)
            return state if self._seen is None else self._seen.state(state)
        return self._with_times(cached, *times(), only)

    def _with_times(
        self, cached: ClusterState, seen: dict[UUID, float | None],
        reported: dict[UUID, float | None], only: frozenset[UUID] | None = None,
    ) -> ClusterState:
        """``cached`` with the nodes' times read (``seen``, ``reported``) laid over it, raised
        by those heard here: one pass over the nodes."""
        if self._seen is not None:
            seen, reported = self._seen.times(cached, seen, reported, only)
        return with_liveness(cached, seen, reported)

    def placement_inputs(
        self, nodes: bool
    ) -> tuple[list[StorageClass], ClusterState, list[Node] | None]:
        """The classes, the cluster state and (with ``nodes``) every node, in one read
        transaction (a group of creates read them in three), the classes, the counters and
        the nodes' times sent together: on PostgreSQL one round trip with the transaction's
        ``BEGIN`` and ``COMMIT`` where there were six (:mod:`control.store.pipelining`), when
        the cluster state at the counters read is cached and ``nodes`` is false; else three
        (the ``BEGIN``, the four queries, the ``COMMIT``) and the reads these need."""
        if not nodes:
            with unavailable_on_failure(self._url), self._engine.connect() as connection:
                classes, counters, seen, reported = read_alone(connection, _PLACEMENT)
            [(_, state_version)] = counters
            cached = self._state_cache.get(state_version)
            if cached is not None:  # else read again, with the whole state
                state = self._with_times(cached, q.times_by_node(seen), q.times_by_node(reported))
                return cq.classes_from_rows(classes), state, None
        with self._read() as connection:
            classes, counters, seen, reported = read_together(connection, _PLACEMENT)
            [(_, state_version)] = counters
            state = self._state_at(
                connection, state_version,
                lambda: (q.times_by_node(seen), q.times_by_node(reported)),
            )
            return cq.classes_from_rows(classes), state, (
                self._nodes(connection) if nodes else None
            )

    # -- configuration writes ------------------------------------------------

    @contextmanager
    def _write_configuration(self, if_tag: str | None) -> Iterator[_ConfigurationWrite]:
        """
        The template of every configuration write, in one transaction.

        Takes the writers' lock, checks ``if_tag``, and lets the body load, ask
        :mod:`control.rules` and write. When the body called
        :meth:`_ConfigurationWrite.changed`, the generation moves on and the
        snapshot cache advances from the generation the write started at.
        """
        with self._advancing() as expect:
            with self._write() as (connection, generation, state_version):
                rules.check_tag(generation, if_tag)
                write = _ConfigurationWrite(connection, generation)
                yield write
                if write.update is not None:
                    q.write_counters(connection, generation + 1, state_version)
                    expect(generation, generation + 1)
            if write.update is not None:
                self._cache.advance(generation, write.update)

    def create_dataset(
        self, dataset: Dataset, if_tag: str | None, *, now: float = 0.0, actor: str | None = None
    ) -> tuple[Dataset, int]:
        """Store a new dataset; returns it and the new generation."""
        with self._write_configuration(if_tag) as w:
            return self._create(w, NewDataset(dataset, if_tag, now, actor))

    def _create(self, w: _ConfigurationWrite, new: NewDataset) -> tuple[Dataset, int]:
        """The body of a create, inside its write (whose tag was checked)."""
        dataset = new.dataset
        existing = q.get_dataset(w.connection, dataset.dataset_id)
        known = q.node_exists(w.connection, dataset.primary)
        named = None if dataset.name is None else q.live_named(w.connection, dataset.name)
        stored = rules.create_dataset(existing, known, dataset, named)
        if stored.source is not None:
            snap.check_source(stored.source, _source(w.connection, stored), stored)
        q.put_dataset(w.connection, stored, exists=False)
        made = ev.dataset_created if stored.source is None else sev.dataset_from_source
        eventlog.append(w.connection, [made(stored, new.now, new.actor)], self._retention)
        return stored, w.changed(lambda s: s.with_dataset(stored))

    def create_datasets(self, creates: Sequence[NewDataset]) -> list[Created]:
        """Several creates in one transaction (group commit:
        :meth:`~control.store.interface.Store.create_datasets`): in a few statements for the
        whole group (:mod:`control.store.creates`), else each in a savepoint of its own."""
        one_by_one = [(new.if_tag, partial(self._create, new=new)) for new in creates]
        if not creates or not cr.batchable(creates):
            return self._write_group(one_by_one)
        return self._batched_group(
            partial(cr.create_group, creates=creates, known_nodes=self._known_nodes), one_by_one
        )

    def _write_group(
        self, writes: Sequence[tuple[str | None, Callable[[_ConfigurationWrite], Any]]]
    ) -> list[Any]:
        """
        Configuration writes ``(if_tag, body)`` in one transaction, in order.

        Each body runs in a savepoint of its own, at the generation the ones
        before it left: a refusal (:class:`ShoalError`) rolls back to its
        savepoint and becomes its answer; the others go on. The generation is
        written once, and the snapshot cache advances write by write after the
        commit. Any other failure of a body fails the transaction, after which
        every write runs alone (so that one broken write fails only itself);
        a failure outside the bodies (the database) raises for all.
        """
        answers: list[Any] = []
        advances: list[tuple[int, Callable[[Snapshot], Snapshot]]] = []
        broken = False
        with self._advancing() as expect:
            try:
                with self._write() as (connection, generation, state_version):
                    current = generation
                    for if_tag, body in writes:
                        write = _ConfigurationWrite(connection, current)
                        try:
                            with connection.begin_nested():
                                rules.check_tag(current, if_tag)
                                answers.append(body(write))
                        except ShoalError as refusal:
                            answers.append(refusal)
                            continue
                        except Exception:
                            broken = True
                            raise
                        if write.update is not None:
                            advances.append((current, write.update))
                            current += 1
                    if current != generation:
                        q.write_counters(connection, current, state_version)
                        expect(generation, current)
            except Exception:
                if not broken or len(writes) == 1:
                    raise
            else:
                for before, update in advances:
                    self._cache.advance(before, update)
                return answers
        return [self._alone(write) for write in writes]

    def _alone(self, write: tuple[str | None, Callable[[_ConfigurationWrite], Any]]) -> Any:
        """One write of a broken group, in a transaction of its own: its answer or failure."""
        try:
            return self._write_group([write])[0]
        except Exception as failure:
            return failure

    def resize_dataset(
        self,
        dataset_id: UUID,
        maximum_size: int,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
    ) -> tuple[Dataset, int]:
        """Grow a dataset; the same size returns it without a new generation."""
        with self._write_configuration(if_tag) as w:
            before = q.get_dataset(w.connection, dataset_id)
            stored = snap.resize_dataset(before, dataset_id, maximum_size)
            if stored == before:
                return stored, w.generation
            assert before is not None
            q.put_dataset(w.connection, stored, exists=True)
            resized = sev.dataset_resized(before, stored, now, actor)
            eventlog.append(w.connection, [resized], self._retention)
            generation = w.changed(lambda s: s.with_dataset(stored))
        return stored, generation

    # -- snapshots -------------------------------------------------------------

    def snapshots(self, dataset_id: UUID | None = None) -> list[DatasetSnapshot]:
        """Every snapshot record (of ``dataset_id`` only, if given)."""
        with self._read() as connection:
            return sq.all_snapshots(connection, dataset_id)

    def snapshot(self, snapshot_id: UUID) -> DatasetSnapshot | None:
        """One snapshot record, or ``None``."""
        with self._read() as connection:
            return sq.get_snapshot(connection, snapshot_id)

    def create_snapshot(
        self, snapshot: DatasetSnapshot, if_tag: str | None, *, now: float,
        actor: str | None = None,
    ) -> tuple[DatasetSnapshot, bool, int]:
        """Record a snapshot, or return the live one of that name of the same dataset."""
        with self._write_configuration(if_tag) as w:
            stored, created = snap.create_snapshot(
                q.get_dataset(w.connection, snapshot.dataset_id),
                sq.live_named(w.connection, snapshot.name),
                snapshot,
            )
            if not created:
                return stored, False, w.generation
            sq.put_snapshot(w.connection, stored, exists=False)
            made = sev.snapshot_created(stored, now, actor)
            eventlog.append(w.connection, [made], self._retention)
            generation = w.changed(_next_generation)
        return stored, True, generation

    def delete_snapshot(
        self, snapshot_id: UUID, if_tag: str | None, now: float, *, actor: str | None = None
    ) -> tuple[DatasetSnapshot, int]:
        """Mark a snapshot deleted; a deleted one is returned without a new generation."""
        with self._write_configuration(if_tag) as w:
            existing = sq.get_snapshot(w.connection, snapshot_id)
            pending = snap.restoring(
                snapshot_id,
                sq.copies_of(w.connection, snapshot_id),
                q.all_reports(w.connection),
            )
            stored = snap.delete_snapshot(existing, snapshot_id, w.generation + 1, pending)
            if stored == existing:
                return stored, w.generation
            sq.put_snapshot(w.connection, stored, exists=True)
            deleted = sev.snapshot_deleted(stored, now, actor)
            eventlog.append(w.connection, [deleted], self._retention)
            generation = w.changed(_next_generation)
        return stored, generation

    def move_dataset(
        self,
        dataset_id: UUID,
        primary: UUID,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
    ) -> tuple[Dataset, int]:
        """Give a dataset a new primary; returns it and the new generation."""
        with self._write_configuration(if_tag) as w:
            return self._move(w, NewMove(dataset_id, primary, if_tag, now, actor))

    def move_datasets(self, moves: Sequence[NewMove]) -> list[Created]:
        """Several moves in one transaction (group commit:
        :meth:`~control.store.interface.Store.move_datasets`): in a few statements for the
        whole group (:mod:`control.store.moves`), else each in a savepoint of its own."""
        one_by_one = [(new.if_tag, partial(self._move, new=new)) for new in moves]
        if not moves:
            return []
        return self._batched_group(partial(mv.move_group, moves=moves), one_by_one)

    def _batched_group(
        self,
        store_group: Callable[..., tuple[list[Created], list[Dataset]]],
        one_by_one: Sequence[tuple[str | None, Callable[[_ConfigurationWrite], Any]]],
    ) -> list[Created]:
        """Judge and store a group in one transaction with ``store_group(connection,
        generation, retention=..., state_version=...)`` (:mod:`control.store.creates`,
        :mod:`control.store.moves`: the counters written with the rows, in their round trip),
        then advance the cache by each dataset stored; a group the database refuses is written
        ``one_by_one``, each in a savepoint of its own, to find which."""
        with self._advancing() as expect:
            try:
                with self._write() as (connection, generation, state_version):
                    answers, stored = store_group(
                        connection, generation, retention=self._retention,
                        state_version=state_version,
                    )
                    if stored:
                        expect(generation, generation + len(stored))
            except Unavailable:
                raise
            except Exception:  # an item the database cannot store: the savepoints find which
                return self._write_group(one_by_one)
            for before, dataset in enumerate(stored, generation):
                self._cache.advance(before, partial(Snapshot.with_dataset, dataset=dataset))
        return answers

    def _move(self, w: _ConfigurationWrite, new: NewMove) -> tuple[Dataset, int]:
        """The body of a move, in ``w``'s transaction."""
        before = q.get_dataset(w.connection, new.dataset_id)
        lease = q.get_lease(w.connection, new.dataset_id)
        stored = rules.move_dataset(
            before,
            new.dataset_id,
            new.primary,
            q.node_exists(w.connection, new.primary),
            lease,
            new.now,
            _holder(w.connection, lease),
        )
        q.put_dataset(w.connection, stored, exists=True)
        assert before is not None
        moved = ev.dataset_moved(before, stored, new.now, new.actor)
        eventlog.append(w.connection, [moved] if moved else [], self._retention)
        return stored, w.changed(lambda s: s.with_dataset(stored))

    def delete_dataset(
        self, dataset_id: UUID, if_tag: str | None, now: float, *, actor: str | None = None
    ) -> tuple[Dataset, int]:
        """Mark a dataset deleted; an already deleted one is returned without a new generation."""
        with self._write_configuration(if_tag) as w:
            existing = q.get_dataset(w.connection, dataset_id)
            if existing is not None and existing.released and not existing.deleted:
                reporters = [
                    r.node_uuid for r in q.all_reports(w.connection) if dataset_id in r.datasets
                ]
                doomed = rules.delete_released(existing, reporters, w.generation + 1)
                q.put_dataset(w.connection, doomed, exists=True)
                gone = ev.dataset_deleted(doomed, now, actor)
                eventlog.append(w.connection, [gone], self._retention)
                generation = w.changed(lambda s: s.with_dataset(doomed))
                return doomed, generation
            lease = q.get_lease(w.connection, dataset_id)
            copies = sq.copies_of(w.connection, dataset_id)
            if copies:
                clones = snap.cloning(dataset_id, copies, q.all_reports(w.connection))
                snap.check_not_cloning(dataset_id, clones)
            stored = rules.delete_dataset(
                existing, dataset_id, lease, w.generation + 1, now, _holder(w.connection, lease)
            )
            if stored == existing:
                return stored, w.generation
            q.put_dataset(w.connection, stored, exists=True)
            eventlog.append(
                w.connection, [ev.dataset_deleted(stored, now, actor)], self._retention
            )
            generation = w.changed(lambda s: s.with_dataset(stored))
        return stored, generation

    def release_dataset(
        self, dataset_id: UUID, if_tag: str | None, now: float, *, actor: str | None = None
    ) -> tuple[Dataset, int]:
        """Release a dataset: no node, its volume kept."""
        with self._write_configuration(if_tag) as w:
            existing = q.get_dataset(w.connection, dataset_id)
            lease = q.get_lease(w.connection, dataset_id)
            stored = rules.release_dataset(
                existing, dataset_id, lease, now, _holder(w.connection, lease)
            )
            if stored == existing:
                return stored, w.generation
            assert existing is not None
            q.put_dataset(w.connection, stored, exists=True)
            made = ev.dataset_released(existing, now, actor)
            eventlog.append(w.connection, [made], self._retention)
            generation = w.changed(lambda s: s.with_dataset(stored))
        return stored, generation

    def adopt_dataset(
        self,
        dataset_id: UUID,
        primary: UUID,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
    ) -> tuple[Dataset, int]:
        """Make a released dataset live again on ``primary``."""
        with self._write_configuration(if_tag) as w:
            existing = q.get_dataset(w.connection, dataset_id)
            name = None if existing is None else existing.name
            named = None if name is None else q.live_named(w.connection, name)
            known = q.node_exists(w.connection, primary)
            stored = rules.adopt_released(existing, dataset_id, primary, known, named)
            q.put_dataset(w.connection, stored, exists=True)
            made = ev.dataset_adopted(stored, now, actor)
            eventlog.append(w.connection, [made], self._retention)
            generation = w.changed(lambda s: s.with_dataset(stored))
        return stored, generation

    def set_reader(
        self,
        dataset_id: UUID,
        node_uuid: UUID,
        reading: bool,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
    ) -> tuple[Dataset, int]:
        """Add ``node_uuid`` to a ReadOnlyMany dataset's readers (``reading``), or remove it."""
        with self._write_configuration(if_tag) as w:
            existing = q.get_dataset(w.connection, dataset_id)
            if reading:
                known = q.node_exists(w.connection, node_uuid)
                stored = rd.add_reader(existing, dataset_id, node_uuid, known)
            else:
                stored = rd.remove_reader(existing, dataset_id, node_uuid)
            if stored == existing:
                return stored, w.generation
            q.put_dataset(w.connection, stored, exists=True)
            made = ev.reader_changed(stored, node_uuid, reading, now, actor)
            eventlog.append(w.connection, [made], self._retention)
            generation = w.changed(lambda s: s.with_dataset(stored))
        return stored, generation

    def acquire_lease(
        self,
        lease: Lease,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
        move: bool = False,
    ) -> tuple[Lease, bool, int]:
        """Create or renew a lease (and, with ``move``, make its node the primary, in the same
        transaction); returns it, whether it is new, and the new generation."""
        with self._write_configuration(if_tag) as w:
            existing = q.get_lease(w.connection, lease.dataset_id)
            dataset = q.get_dataset(w.connection, lease.dataset_id)
            holder = _holder(w.connection, existing)
            if not move:
                stored, created = rules.acquire_lease(dataset, existing, lease, now, holder)
                moved = None
            else:
                known = q.node_exists(w.connection, lease.node_uuid)
                stored, created, moved = rules.lease_and_move(
                    dataset, existing, lease, now, known, holder
                )
            q.put_lease(w.connection, stored, exists=existing is not None)
            events = [ev.lease_taken(stored, now, actor)] if created else []
            if moved is not None:
                assert dataset is not None
                q.put_dataset(w.connection, moved, exists=True)
                made = ev.dataset_moved(dataset, moved, now, actor)
                events += [made] if made else []
            eventlog.append(w.connection, events, self._retention)
            if moved is None:
                generation = w.changed(lambda s: s.with_lease(stored))
            else:
                after = moved
                generation = w.changed(lambda s: s.with_lease_and_dataset(stored, after))
        return stored, created, generation

    def release_lease(
        self, dataset_id: UUID, if_tag: str | None, now: float, *, actor: str | None = None
    ) -> tuple[Lease, int]:
        """Remove a dataset's lease; returns the lease released and the new generation."""
        with self._write_configuration(if_tag) as w:
            released = rules.release_lease(q.get_lease(w.connection, dataset_id), dataset_id, now)
            q.delete_lease(w.connection, dataset_id)
            released_event = ev.lease_released(released, now, actor)
            eventlog.append(w.connection, [released_event], self._retention)
            generation = w.changed(lambda s: s.without_lease(dataset_id))
        return released, generation

    def destroy_orphan(
        self, blockdevice_id: str, if_tag: str | None, *, now: float = 0.0, actor: str | None = None
    ) -> tuple[Dataset, int]:
        """Record a deleted dataset owning an orphaned volume; returns it and the generation."""
        with self._advancing() as expect:
            with self._write() as (connection, generation, state_version):
                rules.check_tag(generation, if_tag)
                node, orphan = rules.find_orphan(blockdevice_id, q.all_reports(connection))
                assert orphan.dataset_id is not None
                existing = q.get_dataset(connection, orphan.dataset_id)
                stored = rules.adopt_orphan(node, orphan, existing, generation + 1)
                if stored == existing:
                    return stored, generation
                q.put_dataset(connection, stored, exists=False)
                q.write_counters(connection, generation + 1, state_version)
                gone = ev.dataset_deleted(stored, now, actor)
                eventlog.append(connection, [gone], self._retention)
                expect(generation, generation + 1)
            self._cache.advance(generation, lambda s: s.with_dataset(stored))
        return stored, generation + 1

    # -- state writes --------------------------------------------------------

    # -- storage classes ---------------------------------------------------------

    def classes(self) -> list[StorageClass]:
        """Every storage class, by name."""
        with self._read() as connection:
            return cq.all_classes(connection)

    def storage_class(self, name: str) -> StorageClass | None:
        """One storage class, or ``None``."""
        with self._read() as connection:
            return cq.get_class(connection, name)

    def _put_class(self, connection: Connection, stored: StorageClass, exists: bool) -> None:
        for other in cl.unset_other_defaults(stored, cq.all_classes(connection)):
            cq.put_class(connection, other, exists=True)
        cq.put_class(connection, stored, exists)

    def create_class(
        self, cls: StorageClass, *, now: float, actor: str | None = None
    ) -> tuple[StorageClass, bool]:
        """Store a new class, or answer the same one again."""
        with self._write() as (connection, _, _):
            stored, created = cl.create_class(cq.get_class(connection, cls.name), cls)
            if created:
                self._put_class(connection, stored, exists=False)
                made = cl.class_event("class_created", stored, now, actor)
                eventlog.append(connection, [made], self._retention)
        return stored, created

    def update_class(
        self, name: str, changes: Mapping[str, Any], *, now: float, actor: str | None = None
    ) -> StorageClass:
        """Change a class's mutable fields."""
        with self._write() as (connection, _, _):
            existing = cq.get_class(connection, name)
            stored = cl.update_class(existing, name, changes)
            if stored != existing:
                self._put_class(connection, stored, exists=True)
                changed = cl.class_event("class_updated", stored, now, actor)
                eventlog.append(connection, [changed], self._retention)
        return stored

    def delete_class(self, name: str, *, now: float, actor: str | None = None) -> StorageClass:
        """Remove a class no live dataset names."""
        with self._write() as (connection, _, _):
            doomed = cl.delete_class(
                cq.get_class(connection, name), name, cq.users_of(connection, name)
            )
            cq.delete_class(connection, name)
            deleted = cl.class_event("class_deleted", doomed, now, actor)
            eventlog.append(connection, [deleted], self._retention)
        return doomed

    # -- revoked certificates (control.revocations) -------------------------------

    def revocations(self) -> list[Revocation]:
        """Every revoked certificate, oldest first."""
        with self._read() as connection:
            return rq.all_revocations(connection)

    def revoke_certificate(self, revocation: Revocation) -> tuple[Revocation, bool]:
        """Record a revoked certificate, once."""
        with self._write() as (connection, _, _):
            existing = rq.get_revocation(connection, revocation.serial)
            kept, new = rv.revoke(existing, revocation)
            if new:
                rq.put_revocation(connection, kept)
                eventlog.append(connection, [rv.revoked_event(kept)], self._retention)
        return kept, new

    def register_node(self, node: Node) -> Node:
        """Create or update a node; the state version moves only if what it registers changed."""
        again = self._registered_again(node)
        if again is not None:
            return again
        with self._write() as (connection, generation, state_version):
            old = q.get_node(connection, node.uuid)
            stored = rules.register_node(old, node)
            q.put_node(connection, stored, exists=old is not None)
            if old is None or not old.same_registration(stored) or old.fence != stored.fence:
                q.write_counters(connection, generation, state_version + 1)
        return stored

    def report_state(self, report: NodeState, identity: str | None = None) -> bool:
        """Record a node's report, mark it seen, and purge what deletion allows."""
        answer = self.report_states([(report, identity)])[0]
        if isinstance(answer, ShoalError):
            raise answer
        return answer

    def report_states(self, reports: Sequence[Reported]) -> list[ReportAnswer]:
        """Several reports, in order, each answered alone; those not taken in memory as
        heartbeats are written in one transaction (:mod:`control.store.report_writes`)."""
        return self.report_states_reaching(reports)[0]

    def report_states_reaching(
        self, reports: Sequence[Reported]
    ) -> tuple[list[ReportAnswer], StateReach | None]:
        """:meth:`report_states`, and whom the state version it wrote concerns."""
        found: dict[int, tuple[NodeState, frozenset[UUID] | None]] = {}
        answers: dict[int, ReportAnswer] = self._heartbeats(reports, found)
        rest = [index for index in range(len(reports)) if index not in answers]
        reached = None
        if rest:
            tokens: list[int] = []  # a reader of the next state version waits for the advance
            try:
                written, reached = self._write_reports(
                    [reports[index] for index in rest], found, tokens
                )
            finally:
                for token in tokens:
                    self._state_cache.settle(token)
            answers.update(zip(rest, written, strict=True))
        return [answers[index] for index in range(len(reports))], reached

    def _write_reports(
        self, reports: Sequence[Reported],
        found: Mapping[int, tuple[NodeState, frozenset[UUID] | None]],
        tokens: list[int],
    ) -> tuple[list[ReportAnswer], StateReach | None]:
        """Judge and write ``reports`` in one transaction, then purge and settle once; and
        whom the state version written concerns. Before its commit it declares the state
        version it moves (:meth:`StateCache.expect`), its token into ``tokens``."""
        reached = None
        with self._write() as (connection, generation, state_version):
            self._newest_state = max(self._newest_state, state_version)
            group, stored, latest = rw.judge_reports(
                reports,
                generation,
                lambda uuid: self._current_node(connection, uuid, state_version),
                lambda uuid: self._last_report(connection, uuid, state_version),
                self._paths,
                found,
            )
            if not latest:
                return group.answers, None
            changed = bool(group.changed)
            if changed:
                reached = _reached(
                    group, stored, generation, state_version + 1,
                    partial(self._reaching, connection, generation),
                )
                tokens.append(self._state_cache.expect(state_version))
            idle = self._idle == generation  # nothing to purge or settle: nothing to read
            with pipelined(connection):
                rw.write_reports(connection, stored, latest, group)
                if group.events:
                    cr.record_events(
                        connection, [rows.event_row(e) for e in group.events], self._retention
                    )
                if idle and changed:
                    q.write_counters(connection, generation, state_version + 1)
            settled, purged = (False, []) if idle else self._settle_and_purge(
                connection, generation
            )
            bump = bool(purged) or settled
            if not idle and (changed or bump):
                q.write_counters(connection, generation + bump, state_version + changed)
        if changed:
            reports_now = group.changed.values()
            self._state_cache.advance(
                state_version, lambda s: reduce(with_report, reports_now, s)
            )
        if bump:
            self._cache.advance(generation, lambda s: s.without_datasets(purged))
        else:
            self._quiet = (generation, state_version + changed)
        return group.answers, reached

    def _last_report(
        self, connection: Connection, node_uuid: UUID, state_version: int
    ) -> NodeState | None:
        """The node's latest report: the cached actual state's when it is at ``state_version``
        (read under the writers' lock), else decoded from its row.

        Its ``reported_at`` may be older than the row's (it moves without the state
        version); every use here ignores it.
        """
        cached = self._state_cache.get(state_version)
        if cached is None:
            return q.get_report(connection, node_uuid)
        return cached.reports.get(node_uuid)
    def _heartbeats(
        self, reports: Sequence[Reported],
        found: dict[int, tuple[NodeState, frozenset[UUID] | None]],
    ) -> dict[int, ReportAnswer]:
        """Take the reports that say nothing new in memory (:mod:`control.store.seen`), when
        nothing is left for a report to purge or settle (:meth:`_quiet_at`): their answers
        (``False``, or the refusal a written one would get), by index.

        One read for the group; anything else goes to the database, and so do all the
        reports of a node that sent more than one (they are judged in order there), and
        those that differ from their node's in the cached state (:meth:`_news`).
        What it finds changed in each report's datasets goes into ``found``, by ``id(report)``.
        """
        seen = self._seen
        if seen is None or not seen.healthy:
            return {}
        count = Counter(report.node_uuid for report, _ in reports)
        asked = [
            (index, report, identity)
            for index, (report, identity) in enumerate(reports)
            if report.reported_at is not None and count[report.node_uuid] == 1
            and not self._news(report, found)
        ]
        if not asked:
            return {}
        renewals = self._renewals
        mark: int | str | None = None
        if renewals is not None and not self._marked:
            mark = renewals.mark()  # before the read: see Renewals
        with self._read() as connection:
            if self._marked:
                generation, state_version, mark = read_marked_counters(connection)
            else:
                generation, state_version = q.read_counters(connection)
            self._newest_state = max(self._newest_state, state_version)
            if not self._quiet_at(connection, generation, state_version):
                return {}
            read = [
                (
                    index, report, identity,
                    self._current_node(connection, report.node_uuid, state_version),
                    self._last_report(connection, report.node_uuid, state_version),
                )
                for index, report, identity in asked
            ]
        taken: dict[int, ReportAnswer] = {}
        for index, report, identity, node, old in read:
            if node is None or old is None:
                continue
            changes = self._same.changes(old, report)
            found[id(report)] = (old, changes)
            try:
                self._paths.check(node, old, report, generation, identity, changes)
            except ShoalError as refusal:
                taken[index] = refusal
                if renewals is not None:
                    renewals.drop(report.node_uuid)
                continue
            if rw.same_observation(old, report, changes):
                held = self._state_cache.share(state_version, old, report.datasets)
                if held is report.datasets:
                    self._same.forget(report.node_uuid)
                self._paths.passed(node, held)
                assert report.reported_at is not None
                seen.saw(report.node_uuid, Seen(report.reported_at, report.reported_at))
                taken[index] = False
                if renewals is not None and mark is not None:
                    renewals.keep(
                        report.node_uuid, mark, identity, Versions(generation, state_version)
                    )
        return taken

    def _news(
        self, report: NodeState, found: dict[int, tuple[NodeState, frozenset[UUID] | None]]
    ) -> bool:
        """Whether ``report`` says something its node's report in the cached state does
        not, that state being at the newest version this store read: then it goes straight
        to the write, which judges it against the stored one as any other (and answers
        ``False`` if that one, written by another replica since, says the same), without
        first reading the counters to try it as a heartbeat (a read transaction: three
        round trips on PostgreSQL). A cache known to be behind is not asked: its node's
        heartbeats would all be written. What it finds goes into ``found``."""
        cached = self._state_cache.latest()
        if cached is None or cached.version < self._newest_state:
            return False
        old = cached.reports.get(report.node_uuid)
        if old is None:
            return False
        changes = self._same.changes(old, report)
        if rw.same_observation(old, report, changes):
            return False
        found[id(report)] = (old, changes)
        return True

    def renew_report(self, node_uuid: UUID, identity: str | None, at: float) -> Versions | None:
        """Take a report that repeats, byte for byte, the last one :meth:`report_states`
        answered ``False`` (a heartbeat) as that judgement would, if it still holds: renew
        the node's liveness at ``at`` in memory and answer the counters; else ``None``.
        Never blocks or does I/O (the reactor may call it); see
        :mod:`control.store.renewals`."""
        renewals, seen = self._renewals, self._seen
        if self._marked or renewals is None or seen is None or not seen.healthy:
            return None  # marked: only a read of the cluster row's version can tell
        versions = renewals.renewable(node_uuid, identity)
        if versions is None:
            return None
        seen.saw(node_uuid, Seen(at, at))
        return versions

    def renew_reports(self, asked: Sequence[Renewal]) -> list[Versions | None]:
        """Each of ``asked`` renewed as :meth:`renew_report` would, after one read of the
        counters and the cluster row's version (PostgreSQL: the judgement holds while no
        write committed since, by any replica); ``None`` for those not renewed, and for
        all unless :attr:`renews_by_reading`. Blocking."""
        renewals, seen = self._renewals, self._seen
        if not self.renews_by_reading or renewals is None or seen is None or not seen.healthy:
            return [None] * len(asked)
        with unavailable_on_failure(self._url), self._engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            generation, state_version, mark = read_marked_counters(connection)
        versions = Versions(generation, state_version)
        answers: list[Versions | None] = []
        for node_uuid, identity, at in asked:
            if renewals.held(node_uuid, identity, mark):
                seen.saw(node_uuid, Seen(at, at))
                answers.append(versions)
            else:
                answers.append(None)
        return answers

    def _quiet_at(self, connection: Connection, generation: int, state_version: int) -> bool:
        """Whether a report repeating its node's last one has nothing to purge or settle at
        these counters: a report found nothing at them, or nothing is left to purge or
        settle at this generation (kept: only configuration writes add any)."""
        if self._quiet == (generation, state_version) or self._idle == generation:
            return True
        if not rw.quiet(connection):
            return False
        self._idle = generation
        return True

    def _registered_again(self, node: Node) -> Node | None:
        """Take a registration that says nothing new in memory, as a heartbeat
        (:mod:`control.store.seen`): the node it stores, or ``None`` when it must be written.

        An agent registers at every start: 1,000 of them starting at once must
        not cost 1,000 write transactions. The same rule refuses it as a written one.
        """
        seen = self._seen
        if seen is None or not seen.healthy or node.last_seen is None:
            return None
        with self._read() as connection:
            _, state_version = q.read_counters(connection)
            old = self._current_node(connection, node.uuid, state_version)
        if old is None:
            return None
        stored = rules.register_node(old, node)
        if stored != evolve(old, last_seen=stored.last_seen):
            return None
        seen.saw(node.uuid, Seen(node.last_seen, None))
        return stored

    def _current_node(
        self, connection: Connection, node_uuid: UUID, state_version: int
    ) -> Node | None:
        """A registered node: the cached actual state's when it is at ``state_version``, else
        read from its row. Its ``last_seen`` may be older than the row's (it moves without
        the state version); every use here ignores it."""
        cached = self._state_cache.get(state_version)
        if cached is None:
            return q.get_node(connection, node_uuid)
        return cached.nodes.get(node_uuid)

    def flush_seen(self) -> int:
        """Write the heartbeats kept in memory, in one transaction; returns how many."""
        if self._seen is None:
            return 0
        pending = self._seen.take()
        if not pending:
            self._seen.flushed()
            return 0
        try:
            with self._write(times_only=True) as (connection, _, _):
                q.flush_seen(connection, {
                    uuid: (s.last_seen, s.reported_at) for uuid, s in pending.items()
                })
        except BaseException:
            self._seen.failed(pending)
            raise
        self._seen.flushed()
        return len(pending)

    def _settle_and_purge(
        self, connection: Connection, generation: int
    ) -> tuple[bool, list[UUID]]:
        """What a report write settles (:meth:`_settle_snapshots`) and purges (:func:`_purge`)
        at ``generation``; when it found no unsettled snapshot and no deleted dataset at all,
        the generation is known idle (:meth:`_quiet_at`), and the reports written at it
        read neither again (only a configuration write, which moves it, adds any)."""
        unsettled = sq.unsettled(connection)
        settled = self._settle_snapshots(connection, unsettled)
        deleted = q.deleted_datasets(connection)
        purged = _purge(connection, deleted)
        if not unsettled and not deleted:
            self._idle = generation
        return settled, purged

    def _reaching(
        self, connection: Connection, generation: int, ids: frozenset[UUID]
    ) -> list[Dataset]:
        """:func:`control.store.queries.datasets_reaching` at ``generation``, from the cached
        configuration when it is at that generation (no round trip), else read."""
        snapshot = self._cache.get(generation)
        if snapshot is None:
            return q.datasets_reaching(connection, ids)
        return snapshot.reaching(ids)

    def _settle_snapshots(
        self, connection: Connection, unsettled: list[DatasetSnapshot] | None = None
    ) -> bool:
        """Mark ready what nodes report made, forget deleted ones gone; whether any changed.
        ``unsettled``: :func:`~control.store.snapshot_records.unsettled`, if already read."""
        if unsettled is None:
            unsettled = sq.unsettled(connection)
        if not unsettled:
            return False
        reports = q.all_reports(connection)
        ready = snap.seen_ready(unsettled, reports)
        for made in ready:
            sq.put_snapshot(connection, made, exists=True)
        eventlog.append(connection, sev.ready_events(ready, reports), self._retention)
        gone = [s.snapshot_id for s in unsettled if _snapshot_purgeable(connection, s, reports)]
        if gone:
            sq.purge_snapshots(connection, gone)
        return bool(ready or gone)
    # -- fencing, draining, failover ---------------------------------------------

    def set_failover(
        self,
        dataset_id: UUID,
        enabled: bool | None,
        grace: float | None,
        if_tag: str | None,
        now: float,
        *,
        actor: str | None = None,
    ) -> tuple[Dataset, int]:
        """Set a dataset's failover options; returns it and the generation."""
        with self._write_configuration(if_tag) as w:
            existing = q.get_dataset(w.connection, dataset_id)
            stored = fr.set_failover(existing, dataset_id, enabled, grace)
            if stored == existing:
                return stored, w.generation
            q.put_dataset(w.connection, stored, exists=True)
            eventlog.append(
                w.connection, [fev.failover_set(stored, now, actor)], self._retention
            )
            generation = w.changed(lambda s: s.with_dataset(stored))
        return stored, generation

    def _node_write(
        self, node_uuid: UUID, decide: Callable[[Node | None], Node], event: Callable[[Node], Event]
    ) -> tuple[Node, bool]:
        """One state write of a node record: ``decide`` it, store it with its event."""
        with self._write() as (connection, generation, state_version):
            existing = q.get_node(connection, node_uuid)
            if self._seen is not None:
                existing = self._seen.node(existing)
            stored = decide(existing)
            if stored == existing:
                return stored, False
            q.put_node(connection, stored, exists=True)
            eventlog.append(connection, [event(stored)], self._retention)
            q.write_counters(connection, generation, state_version + 1)
        return stored, True

    def fence_node(
        self, node_uuid: UUID, fence: Fence, *, silent_since: float | None = None
    ) -> tuple[Node, bool]:
        """Fence a node as the rule decides; returns it and whether it changed."""
        return self._node_write(
            node_uuid,
            lambda n: fr.fence(n, node_uuid, fence, silent_since),
            lambda n: fev.node_fenced(n, fence),
        )

    def unfence_node(
        self,
        node_uuid: UUID,
        now: float,
        *,
        actor: str | None,
        reason: str,
        only_if: Fence | None = None,
    ) -> tuple[Node, bool]:
        """Lift a node's fence; returns it and whether it changed."""
        return self._node_write(
            node_uuid,
            lambda n: fr.unfence(n, node_uuid, only_if),
            lambda n: fev.node_unfenced(n, now, actor, reason),
        )

    def set_draining(
        self, node_uuid: UUID, draining: bool, now: float, *, actor: str | None = None
    ) -> tuple[Node, bool]:
        """Mark a node draining or not; returns it and whether it changed."""
        return self._node_write(
            node_uuid,
            lambda n: fr.set_draining(n, node_uuid, draining),
            lambda n: fev.node_draining(n, now, actor, draining),
        )

    def fail_over(
        self,
        dataset_id: UUID,
        from_node: UUID,
        to_node: UUID,
        now: float,
        *,
        actor: str | None,
        reason: str,
        kind: str = "failed_over",
    ) -> Dataset | None:
        """Move a dataset off ``from_node`` if the rule allows; returns it or ``None``."""
        with self._write_configuration(None) as w:
            before = q.get_dataset(w.connection, dataset_id)
            lease = q.get_lease(w.connection, dataset_id)
            to = q.get_node(w.connection, to_node)
            origin = q.get_node(w.connection, from_node)
            stored = fr.fail_over(before, lease, origin, to, now, kind)
            if stored is None:
                return None
            assert before is not None
            found = []
            doomed = fr.release_node_lease(lease, origin, now) if kind == fr.FAILED_OVER else None
            if doomed is not None:
                q.delete_lease(w.connection, dataset_id)
                found.append(ev.lease_released(doomed, now, actor, reason))
            q.put_dataset(w.connection, stored, exists=True)
            found.append(fev.failed_over(before, stored, now, actor, reason, kind))
            eventlog.append(w.connection, found, self._retention)
            released = doomed is not None

            def update(s: Snapshot) -> Snapshot:
                moved = s.with_dataset(stored)
                if released:
                    moved = evolve(moved, leases=moved.leases.discard(dataset_id))
                return moved

            w.changed(update)
        return stored

    def release_node_lease(
        self, dataset_id: UUID, node_uuid: UUID, now: float, *, actor: str | None, reason: str
    ) -> Lease | None:
        """Release the dataset's lease if ``node_uuid`` still holds it; returns it or ``None``."""
        with self._write_configuration(None) as w:
            lease = q.get_lease(w.connection, dataset_id)
            holder = q.get_node(w.connection, node_uuid)
            doomed = fr.release_node_lease(lease, holder, now)
            if doomed is None:
                return None
            q.delete_lease(w.connection, dataset_id)
            eventlog.append(
                w.connection, [ev.lease_released(doomed, now, actor, reason)], self._retention
            )
            w.changed(lambda s: s.without_lease(dataset_id))
        return doomed

    # -- events ----------------------------------------------------------------

    def append_events(self, events: Sequence[Event]) -> list[Event]:
        """Record ``events`` with increasing ids and prune; returns them with their ids."""
        with self._write() as (connection, _, _):
            return eventlog.append(connection, events, self._retention)

    def events(self, query: EventQuery) -> list[Event]:
        """The events ``query`` asks for, oldest first."""
        with self._read() as connection:
            return eventlog.query(connection, query)

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()


def _purge(connection: Connection, deleted: list[Dataset] | None = None) -> list[UUID]:
    """Forget the deleted datasets that may be purged; returns their ids. ``deleted``:
    :func:`~control.store.queries.deleted_datasets`, if already read."""
    if deleted is None:
        deleted = q.deleted_datasets(connection)
    if not deleted:
        return []
    reports = q.reports_holding(
        connection, [d.dataset_id for d in deleted], {d.primary for d in deleted}
    )
    primaries = {q.get_node(connection, uuid) for uuid in {d.primary for d in deleted}}
    eras = {node.uuid: node.era for node in primaries if node is not None}
    doomed = [d.dataset_id for d in deleted if rules.purgeable(d, reports, eras)]
    if doomed:
        q.purge_datasets(connection, doomed)
    return doomed


def _next_generation(snapshot: Snapshot) -> Snapshot:
    """The cached configuration at the next generation (a write it does not hold changed)."""
    return snapshot.touched()


def _source(connection: Connection, dataset: Dataset) -> DatasetSnapshot | Dataset | None:
    """The record a restore or clone copies, or ``None``."""
    assert dataset.source is not None
    if dataset.source.kind.value == "snapshot":
        return sq.get_snapshot(connection, dataset.source.source_id)
    return q.get_dataset(connection, dataset.source.source_id)


def _snapshot_purgeable(
    connection: Connection, snapshot: DatasetSnapshot, reports: list[NodeState]
) -> bool:
    if not snapshot.deleted:
        return False
    source = q.get_dataset(connection, snapshot.dataset_id)
    primary = None if source is None else source.primary
    charged = [snapshot.node] + ([primary] if primary is not None else [])
    nodes = [q.get_node(connection, uuid) for uuid in charged]
    eras = {node.uuid: node.era for node in nodes if node is not None}
    return snap.purgeable(snapshot, reports, eras, primary)


def _holder(connection: Connection, lease: Lease | None) -> str | None:
    """The name of the node holding ``lease``, for a refusal."""
    if lease is None:
        return None
    return rules.holder_name(lease, q.get_node(connection, lease.node_uuid))


def _reached(
    group: rw.Group, stored: Mapping[UUID, NodeState | None], generation: int, version: int,
    reaching: Callable[[frozenset[UUID]], list[Dataset]],
) -> StateReach | None:
    """Whom the state ``version`` that ``group`` writes concerns, with the datasets
    ``reaching`` finds at ``generation`` (:func:`control.store.queries.datasets_reaching`);
    ``None``: everyone (:func:`control.reach.state_reach`)."""
    changes = {
        uuid: group.changes[uuid] if uuid in group.changes else rw.dataset_changes(
            stored[uuid], report
        )
        for uuid, report in group.changed.items()
    }
    ids = changed_datasets(changes)
    if ids is None:
        return None
    concerns = state_reach(changes, ids, reaching(ids))
    return None if concerns is None else StateReach(version, version, concerns, generation)
