"""
The conformance suite every :class:`~control.store.interface.Store` passes.

Subclass :class:`StoreConformance` and provide a ``store`` fixture (an empty
store) and, for durable stores, a ``reopen`` fixture: a callable opening
another store on the same database. Without it the durability tests skip.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID, uuid4

import pytest
from attrs import evolve

from control.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotAllowed,
    NotFound,
    PreconditionFailed,
)
from control.events import EventQuery, EventRetention
from control.model import (
    MINIMUM_DATASET_SIZE,
    Capacity,
    Condition,
    ConditionKind,
    Dataset,
    DatasetState,
    DataSource,
    Event,
    Fence,
    Lease,
    Node,
    NodeState,
    OrphanVolume,
    SourceKind,
    Versions,
    VolumeStatus,
)
from control.store.interface import Store
from control.wire import dataset_to_json

NOW = 1_700_000_000.0


def add_node(store: Store, host: str = "10.0.0.1", era: str | None = "era") -> UUID:
    """Register a new node (mounting under ``/m``); returns its uuid."""
    node = Node(
        uuid=uuid4(), host=host, era=era, labels={"zone": "a"}, last_seen=NOW, mount_root="/m"
    )
    return store.register_node(node).uuid


def add_dataset(store: Store, primary: UUID, **kwargs: Any) -> Dataset:
    """Create a new dataset on ``primary``; returns it as stored."""
    new = Dataset(dataset_id=uuid4(), primary=primary, **kwargs)
    dataset, _ = store.create_dataset(new, None, now=NOW)
    return dataset


def report(
    node: UUID, generation: int, *dataset_ids: UUID, at: float = NOW, era: str = "era"
) -> NodeState:
    """A report from ``node`` having seen ``generation`` and holding ``dataset_ids`` mounted."""
    states = {
        i: DatasetState(dataset_id=i, status=VolumeStatus.MOUNTED, path=f"/m/{i}", device="/dev/b")
        for i in dataset_ids
    }
    return NodeState(node_uuid=node, era=era, generation=generation, datasets=states,
                     reported_at=at)


def _encoded(datasets: Iterable[Dataset]) -> bytes:
    """``datasets`` as the v1 listing encodes them: compact JSON, ordered by id."""
    items = [dataset_to_json(d) for d in sorted(datasets, key=lambda d: str(d.dataset_id))]
    return json.dumps(items, separators=(",", ":")).encode()


def change_steps(store: Store) -> list[Callable[[], Any]]:
    """Configuration writes of every kind a listing shows (creates, moves, deletes, leases,
    a purge, a snapshot record, a failover option), to run one after another."""
    a, b = add_node(store), add_node(store, "b")
    first, second = add_dataset(store, a), add_dataset(store, a)
    first_id, second_id = first.dataset_id, second.dataset_id
    return [
        lambda: add_dataset(store, b),
        lambda: store.move_dataset(first_id, b, None, NOW),
        lambda: store.acquire_lease(Lease(second_id, a, None), None, NOW),
        lambda: store.set_failover(first_id, False, None, None, NOW),
        lambda: store.release_lease(second_id, None, NOW),
        lambda: store.delete_dataset(second_id, None, NOW),
        lambda: store.report_state(report(a, store.versions().configuration)),
        lambda: add_dataset(store, a, metadata={"name": "later"}),
        lambda: store.move_dataset(first_id, a, None, NOW),
    ]


def _writes(store: Store, dataset_id: UUID, node: UUID) -> dict[str, Callable[[str], Any]]:
    """Each kind of configuration write, given a tag."""
    return {
        "create": lambda tag: store.create_dataset(Dataset(dataset_id=uuid4(), primary=node), tag),
        "move": lambda tag: store.move_dataset(dataset_id, node, tag, NOW),
        "delete": lambda tag: store.delete_dataset(dataset_id, tag, NOW),
        "acquire": lambda tag: store.acquire_lease(Lease(dataset_id, node, None), tag, NOW),
        "release": lambda tag: store.release_lease(dataset_id, tag, NOW),
    }


class StoreConformance:
    """Tests of the Store contract; subclasses supply the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> Store:
        """An empty store (subclasses override this)."""
        raise NotImplementedError

    @pytest.fixture
    def reopen(self) -> Callable[[], Store]:
        """Open another store on the same data (durable subclasses override this)."""
        pytest.skip("this store is not durable: it cannot be reopened")

    # -- basics ---------------------------------------------------------------

    def test_provides_store(self, store: Store) -> None:
        """The implementation satisfies the runtime-checkable protocol."""
        assert isinstance(store, Store)

    def test_starts_empty(self, store: Store) -> None:
        """A new store has no datasets, leases, nodes or reports, and both counters at 0."""
        assert store.versions() == Versions(0, 0)
        configuration = store.configuration(NOW)
        assert (configuration.generation, dict(configuration.datasets)) == (0, {})
        assert store.cluster_state().nodes == {} and store.nodes() == []

    # -- datasets ---------------------------------------------------------------

    def test_create_stores_and_bumps(self, store: Store) -> None:
        """Creating a dataset stores it exactly and bumps the generation by one."""
        node = add_node(store)
        wanted = Dataset(dataset_id=uuid4(), primary=node, maximum_size=MINIMUM_DATASET_SIZE,
                         metadata={"name": "db", "x": "y"})
        stored, generation = store.create_dataset(wanted, store.configuration(NOW).tag)
        assert (stored, generation) == (wanted, 1)
        assert store.dataset(wanted.dataset_id) == wanted
        assert store.configuration(NOW).datasets == {wanted.dataset_id: wanted}

    def test_create_ignores_deletion_fields(self, store: Store) -> None:
        """A created dataset is live whatever deletion fields the request carried."""
        node = add_node(store)
        stored = add_dataset(store, node, deleted=True, deleted_generation=7)
        assert (stored.deleted, stored.deleted_generation) == (False, None)
        assert store.dataset(stored.dataset_id) == stored

    def test_create_unknown_primary(self, store: Store) -> None:
        """A dataset on an unregistered node is refused as a conflict and nothing changes."""
        with pytest.raises(Conflict, match="Unknown primary"):
            store.create_dataset(Dataset(dataset_id=uuid4(), primary=uuid4()), None)
        assert store.versions() == Versions(0, 0)

    def test_create_duplicate_id(self, store: Store) -> None:
        """A dataset id already in use is refused and the first dataset is kept."""
        first = add_dataset(store, add_node(store))
        with pytest.raises(Conflict):
            store.create_dataset(Dataset(dataset_id=first.dataset_id, primary=first.primary,
                                         metadata={"other": "1"}), None)
        assert store.dataset(first.dataset_id) == first
        assert store.versions().configuration == 1

    def test_create_name_in_use(self, store: Store) -> None:
        """A name carried by a live dataset is refused, naming that dataset; nothing changes."""
        first = add_dataset(store, add_node(store), metadata={"name": "db"})
        with pytest.raises(Conflict, match=str(first.dataset_id)):
            store.create_dataset(
                Dataset(dataset_id=uuid4(), primary=first.primary, metadata={"name": "db"}), None
            )
        assert list(store.configuration(NOW).datasets) == [first.dataset_id]
        assert store.versions().configuration == 1

    def test_create_name_of_deleted_dataset(self, store: Store) -> None:
        """The name of a deleted dataset may be used again; other names never clash."""
        first = add_dataset(store, add_node(store), metadata={"name": "db"})
        store.delete_dataset(first.dataset_id, None, NOW)
        again = add_dataset(store, first.primary, metadata={"name": "db"})
        other = add_dataset(store, first.primary, metadata={"name": "dbx", "app": "db"})
        assert {again.name, other.name} == {"db", "dbx"}

    def test_dataset_missing(self, store: Store) -> None:
        """Looking up an unknown dataset gives None."""
        assert store.dataset(uuid4()) is None

    def test_move(self, store: Store) -> None:
        """Moving changes only the primary and bumps the generation once."""
        a, b = add_node(store), add_node(store, "10.0.0.2")
        dataset = add_dataset(store, a, metadata={"name": "n"})
        moved, generation = store.move_dataset(dataset.dataset_id, b, None, NOW)
        assert moved == Dataset(
            dataset_id=dataset.dataset_id, primary=b, metadata={"name": "n"}, epoch=1
        )
        assert generation == 2 and store.dataset(dataset.dataset_id) == moved

    def test_move_to_same_primary_is_a_write(self, store: Store) -> None:
        """Moving a dataset to its own primary succeeds and still bumps the generation."""
        dataset = add_dataset(store, add_node(store))
        assert store.move_dataset(dataset.dataset_id, dataset.primary, None, NOW) == (dataset, 2)

    @pytest.mark.parametrize(
        ("case", "error"),
        [("unknown dataset", NotFound), ("unknown primary", Conflict),
         ("deleted", NotAllowed), ("leased elsewhere", Conflict)],
    )
    def test_move_refused(self, store: Store, case: str, error: type[Exception]) -> None:
        """Each refused move raises its error and changes nothing."""
        a, b, c = add_node(store), add_node(store, "b"), add_node(store, "c")
        dataset = add_dataset(store, a)
        target, dataset_id = b, dataset.dataset_id
        if case == "unknown dataset":
            dataset_id = uuid4()
        elif case == "unknown primary":
            target = uuid4()
        elif case == "deleted":
            store.delete_dataset(dataset_id, None, NOW)
        else:
            store.acquire_lease(Lease(dataset_id, c, NOW + 60), None, NOW)
        before = (store.versions(), store.configuration(NOW))
        with pytest.raises(error):
            store.move_dataset(dataset_id, target, None, NOW)
        assert (store.versions(), store.configuration(NOW)) == before

    def test_move_allowed_by_lease_of_target_or_expired(self, store: Store) -> None:
        """A lease held by the new primary, or one that expired, does not block a move."""
        a, b = add_node(store), add_node(store, "b")
        dataset = add_dataset(store, a)
        store.acquire_lease(Lease(dataset.dataset_id, b, NOW + 10), None, NOW)
        assert store.move_dataset(dataset.dataset_id, b, None, NOW)[0].primary == b
        assert store.move_dataset(dataset.dataset_id, a, None, NOW + 10)[0].primary == a

    def test_delete_marks_deleted_at_new_generation(self, store: Store) -> None:
        """Deleting keeps the record, marked deleted at the generation the delete made."""
        dataset = add_dataset(store, add_node(store))
        deleted, generation = store.delete_dataset(dataset.dataset_id, None, NOW)
        assert (deleted.deleted, deleted.deleted_generation, generation) == (True, 2, 2)
        assert store.configuration(NOW).datasets[dataset.dataset_id] == deleted

    def test_delete_twice_does_not_bump(self, store: Store) -> None:
        """Deleting a deleted dataset returns it and leaves the generation alone."""
        dataset = add_dataset(store, add_node(store))
        first = store.delete_dataset(dataset.dataset_id, None, NOW)
        assert store.delete_dataset(dataset.dataset_id, "2", NOW) == first
        assert store.versions().configuration == 2

    def test_delete_refused(self, store: Store) -> None:
        """Deleting an unknown or leased dataset is refused and changes nothing."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        store.acquire_lease(Lease(dataset.dataset_id, a, None), None, NOW)
        with pytest.raises(NotFound):
            store.delete_dataset(uuid4(), None, NOW)
        with pytest.raises(Conflict):
            store.delete_dataset(dataset.dataset_id, None, NOW)
        assert store.dataset(dataset.dataset_id) == dataset
        assert store.versions().configuration == 2

    def test_delete_with_expired_lease(self, store: Store) -> None:
        """An expired lease does not block a delete."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        store.acquire_lease(Lease(dataset.dataset_id, a, NOW + 5), None, NOW)
        assert store.delete_dataset(dataset.dataset_id, None, NOW + 5)[0].deleted

    # -- the change log of configurations (control.changelog) ---------------------

    def test_change_log_names_every_changed_dataset(self, store: Store) -> None:
        """A configuration's change log, asked about any earlier generation, names every
        dataset created, changed or purged since (or answers ``None``: not known)."""
        seen = [store.configuration(NOW)]
        for step in change_steps(store):
            step()
            now = store.configuration(NOW)
            for before in seen:
                changed = now.changes.since(before.generation)
                if changed is None:
                    continue
                ids = set(before.datasets) | set(now.datasets)
                moved = {i for i in ids if before.datasets.get(i) != now.datasets.get(i)}
                assert moved <= changed, (before.generation, now.generation)
            seen.append(now)
        assert len({c.generation for c in seen}) == len(seen)

    # -- the v1 listing read as stored (Store.dataset_listing) ---------------------

    def test_dataset_listing_is_the_configuration_encoded(self, store: Store) -> None:
        """After every kind of write, the stored listing is, byte for byte, the current
        configuration's datasets encoded as the v1 listing (by id), at its generation."""
        steps = change_steps(store)
        for step in [lambda: None, *steps, lambda: store.report_state(report(
                next(iter(store.configuration(NOW).datasets.values())).primary,
                store.versions().configuration))]:
            step()
            configuration = store.configuration(NOW)
            generation, body = store.dataset_listing()
            assert generation == configuration.generation == store.versions().configuration
            assert body == _encoded(configuration.datasets.values())

    def test_dataset_listing_after_a_purge(self, store: Store) -> None:
        """A deleted dataset is listed deleted until a report lets it be purged, then not."""
        node = add_node(store)
        kept, gone = add_dataset(store, node), add_dataset(store, node)
        store.delete_dataset(gone.dataset_id, None, NOW)
        assert [d["deleted"] for d in json.loads(store.dataset_listing()[1])] == [
            d.dataset_id == gone.dataset_id
            for d in sorted([kept, gone], key=lambda d: str(d.dataset_id))
        ]
        store.report_state(report(node, store.versions().configuration, kept.dataset_id))
        assert store.dataset(gone.dataset_id) is None
        assert store.dataset_listing()[1] == _encoded([store.dataset(kept.dataset_id)])

    def test_dataset_listing_shows_sizes_metadata_and_releases(self, store: Store) -> None:
        """A dataset's size, metadata changes and release show in the stored listing."""
        node = add_node(store)
        dataset = add_dataset(store, node, maximum_size=MINIMUM_DATASET_SIZE,
                              metadata={"name": "first"})
        store.resize_dataset(dataset.dataset_id, 2 * MINIMUM_DATASET_SIZE, None, NOW)
        store.release_dataset(dataset.dataset_id, None, NOW)
        (item,) = json.loads(store.dataset_listing()[1])
        assert item["maximum_size"] == 2 * MINIMUM_DATASET_SIZE and item["deleted"] is True
        assert store.dataset_listing()[1] == _encoded(store.configuration(NOW).datasets.values())

    def test_cached_configuration_is_none_or_current(self, store: Store) -> None:
        """The configuration at hand is absent or the current one, after writes too."""
        for step in [lambda: None, *change_steps(store)]:
            step()
            cached = store.cached_configuration(NOW)
            assert cached is None or cached == store.configuration(NOW)

    def test_dataset_listing_of_another_writer(
        self, store: Store, reopen: Callable[[], Store]
    ) -> None:
        """Writes by another store on the same database (another replica) show in this
        store's listing, and its configuration at hand is never the stale one."""
        other = reopen()
        node = add_node(store)
        store.configuration(NOW)
        dataset = add_dataset(other, node, metadata={"name": "elsewhere"})
        other.move_dataset(dataset.dataset_id, add_node(other, "b"), None, NOW)
        configuration = other.configuration(NOW)
        assert store.dataset_listing() == (
            configuration.generation, _encoded(configuration.datasets.values())
        )
        cached = store.cached_configuration(NOW)
        assert cached is None or cached == configuration

    # -- leases -----------------------------------------------------------------

    def test_acquire_and_renew(self, store: Store) -> None:
        """A new lease is created, a renewal by the same node replaces it; each bumps once."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        first = Lease(dataset.dataset_id, a, NOW + 10)
        assert store.acquire_lease(first, None, NOW) == (first, True, 2)
        renewed = Lease(dataset.dataset_id, a, NOW + 100)
        assert store.acquire_lease(renewed, None, NOW + 5) == (renewed, False, 3)
        assert store.configuration(NOW).leases == {dataset.dataset_id: renewed}

    @pytest.mark.parametrize(
        ("case", "error"),
        [("unknown dataset", NotFound), ("deleted", NotAllowed), ("held", Conflict),
         ("expires in the past", InvalidRequest)],
    )
    def test_acquire_refused(self, store: Store, case: str, error: type[Exception]) -> None:
        """Each refused lease raises its error and changes nothing."""
        a, b = add_node(store), add_node(store, "b")
        dataset = add_dataset(store, a)
        lease = Lease(dataset.dataset_id, b, NOW + 60)
        if case == "unknown dataset":
            lease = Lease(uuid4(), b, None)
        elif case == "deleted":
            store.delete_dataset(dataset.dataset_id, None, NOW)
        elif case == "held":
            store.acquire_lease(Lease(dataset.dataset_id, a, None), None, NOW)
        else:
            lease = Lease(dataset.dataset_id, b, NOW - 1)
        before = (store.versions(), store.configuration(NOW))
        with pytest.raises(error):
            store.acquire_lease(lease, None, NOW)
        assert (store.versions(), store.configuration(NOW)) == before

    def test_acquire_and_move(self, store: Store) -> None:
        """With ``move``, the lease is taken and its node made the primary in one generation,
        with both events."""
        a, b = add_node(store), add_node(store, "b")
        dataset = add_dataset(store, a)
        lease = Lease(dataset.dataset_id, b, None)
        assert store.acquire_lease(lease, None, NOW, move=True) == (lease, True, 2)
        configuration = store.configuration(NOW)
        assert configuration.leases == {dataset.dataset_id: lease}
        moved = configuration.datasets[dataset.dataset_id]
        assert (moved.primary, moved.epoch) == (b, dataset.epoch + 1)
        kinds = [e.kind for e in store.events(EventQuery(dataset_id=dataset.dataset_id))]
        assert kinds[-2:] == ["lease_taken", "moved"]

    @pytest.mark.parametrize("case", ["held", "unknown node", "deleted"])
    def test_acquire_and_move_refused(self, store: Store, case: str) -> None:
        """A lease with ``move`` that cannot be taken, or whose move is refused, changes
        nothing: neither the lease nor the primary."""
        a, b = add_node(store), add_node(store, "b")
        dataset = add_dataset(store, a)
        node = b
        if case == "held":
            store.acquire_lease(Lease(dataset.dataset_id, a, None), None, NOW)
        elif case == "unknown node":
            node = uuid4()
        else:
            store.delete_dataset(dataset.dataset_id, None, NOW)
        before = (store.versions(), store.configuration(NOW))
        with pytest.raises((Conflict, NotFound, NotAllowed, InvalidRequest)):
            store.acquire_lease(Lease(dataset.dataset_id, node, None), None, NOW, move=True)
        assert (store.versions(), store.configuration(NOW)) == before

    def test_expired_lease_is_replaced(self, store: Store) -> None:
        """Another node may take a lease once it has expired: that lease is new."""
        a, b = add_node(store), add_node(store, "b")
        dataset = add_dataset(store, a)
        store.acquire_lease(Lease(dataset.dataset_id, a, NOW + 1), None, NOW)
        mine = Lease(dataset.dataset_id, b, None)
        assert store.acquire_lease(mine, None, NOW + 1)[:2] == (mine, True)

    def test_configuration_omits_expired_leases(self, store: Store) -> None:
        """A lease is listed until ``now`` reaches its expiry, then left out."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        lease = Lease(dataset.dataset_id, a, NOW + 30)
        store.acquire_lease(lease, None, NOW)
        assert store.configuration(NOW + 29.5).leases == {dataset.dataset_id: lease}
        assert store.configuration(NOW + 30).leases == {}

    def test_release(self, store: Store) -> None:
        """Releasing returns the lease, removes it and bumps the generation."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        lease = Lease(dataset.dataset_id, a, None)
        store.acquire_lease(lease, None, NOW)
        assert store.release_lease(dataset.dataset_id, None, NOW) == (lease, 3)
        assert store.configuration(NOW).leases == {}
        with pytest.raises(NotFound):
            store.release_lease(dataset.dataset_id, None, NOW)
        assert store.versions().configuration == 3

    def test_release_expired(self, store: Store) -> None:
        """An expired lease cannot be released: there is nothing to release."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        store.acquire_lease(Lease(dataset.dataset_id, a, NOW + 1), None, NOW)
        with pytest.raises(NotFound):
            store.release_lease(dataset.dataset_id, None, NOW + 2)

    # -- conditional writes -------------------------------------------------------

    @pytest.mark.parametrize("write", ["create", "move", "delete", "acquire", "release"])
    def test_stale_tag_refused(self, store: Store, write: str) -> None:
        """Every write with a stale tag fails with PreconditionFailed and changes nothing."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        store.acquire_lease(Lease(dataset.dataset_id, a, None), None, NOW)
        stale = "1"
        before = (store.versions(), store.configuration(NOW))
        with pytest.raises(PreconditionFailed):
            _writes(store, dataset.dataset_id, a)[write](stale)
        assert (store.versions(), store.configuration(NOW)) == before

    @pytest.mark.parametrize("write", ["create", "move", "acquire", "release"])
    def test_current_tag_accepted(self, store: Store, write: str) -> None:
        """Every write with the current tag succeeds and bumps the generation exactly once."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        store.acquire_lease(Lease(dataset.dataset_id, a, None), None, NOW)
        tag = store.configuration(NOW).tag
        result = _writes(store, dataset.dataset_id, a)[write](tag)
        assert result[-1] == 3 and store.versions().configuration == 3

    # -- nodes and reports -----------------------------------------------------------

    def test_register_node(self, store: Store) -> None:
        """A new node is listed and bumps the state version, never the generation."""
        node = Node(uuid=uuid4(), host="h", era="e1", labels={"k": "v"}, last_seen=NOW)
        assert store.register_node(node) == node
        assert store.nodes() == [node]
        assert store.versions() == Versions(0, 1)

    def test_register_same_facts_does_not_bump(self, store: Store) -> None:
        """Registering again with the same host, era and labels keeps the state version."""
        node = Node(uuid=uuid4(), host="h", era="e1", labels={"k": "v"}, last_seen=NOW)
        store.register_node(node)
        later = Node(uuid=node.uuid, host="h", era="e1", labels={"k": "v"}, last_seen=NOW + 9)
        store.register_node(later)
        assert store.versions() == Versions(0, 1)
        assert store.nodes() == [later]

    def test_register_keeps_mount_root_and_identity(self, store: Store) -> None:
        """A node's mount root and certificate identity are stored with it."""
        node = Node(uuid=uuid4(), host="h", mount_root="/srv/mounts", identity="ab" * 32)
        store.register_node(node)
        assert store.nodes() == [node]

    @pytest.mark.parametrize(
        "change",
        [
            {"host": "h2"},
            {"era": "e2"},
            {"labels": {"k": "w"}},
            {"mount_root": "/elsewhere"},
            {"identity": "cd" * 32},
        ],
    )
    def test_register_changed_facts_bumps(self, store: Store, change: dict[str, Any]) -> None:
        """Registering with a new host, era or labels bumps the state version once."""
        facts: dict[str, Any] = {"host": "h", "era": "e1", "labels": {"k": "v"}}
        node = Node(uuid=uuid4(), **facts)
        store.register_node(node)
        changed = Node(uuid=node.uuid, **{**facts, **change})
        store.register_node(changed)
        assert store.versions() == Versions(0, 2)
        assert store.cluster_state().nodes == {node.uuid: changed}

    def test_node_by_era(self, store: Store) -> None:
        """A node is found by its current era only."""
        node = Node(uuid=uuid4(), host="h", era="boot-1")
        store.register_node(node)
        add_node(store, "other", era="boot-x")
        assert store.node_by_era("boot-1") == node
        rebooted = Node(uuid=node.uuid, host="h", era="boot-2")
        store.register_node(rebooted)
        assert store.node_by_era("boot-1") is None
        assert store.node_by_era("boot-2") == rebooted

    def test_report_unregistered(self, store: Store) -> None:
        """A report from a node that never registered is refused."""
        with pytest.raises(NotFound):
            store.report_state(report(uuid4(), 0))
        assert store.versions() == Versions(0, 0)

    def test_report_state_version(self, store: Store) -> None:
        """Only a changed observation bumps the state version; the generation never moves."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        assert store.report_state(report(a, 1, at=NOW)) is True
        assert store.versions() == Versions(1, 2)
        assert store.report_state(report(a, 1, at=NOW + 5)) is False
        assert store.versions() == Versions(1, 2)
        assert store.report_state(report(a, 1, dataset.dataset_id, at=NOW + 6)) is True
        assert store.versions() == Versions(1, 3)

    def test_report_recorded_and_marks_seen(self, store: Store) -> None:
        """The latest report is kept whole and the node's last_seen is its time."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        store.report_state(report(a, 1, at=NOW))
        latest = report(a, 1, dataset.dataset_id, at=NOW + 7)
        store.report_state(latest)
        state = store.cluster_state()
        assert state.reports == {a: latest}
        assert state.nodes[a].last_seen == NOW + 7
        assert state.version == 3

    def test_flushed_heartbeats_are_durable(
        self, store: Store, reopen: Callable[[], Store]
    ) -> None:
        """A report saying nothing new is seen at once, and after ``flush_seen`` by a
        store opened afterwards; flushing changes nothing a read sees."""
        a = add_node(store)
        store.report_state(report(a, 0, at=NOW + 1))
        assert store.report_state(report(a, 0, at=NOW + 2)) is False
        assert [n.last_seen for n in store.nodes()] == [NOW + 2]
        before = store.cluster_state()
        assert store.flush_seen() >= 0
        assert store.cluster_state() == before
        again = reopen()
        assert again.cluster_state().nodes[a].last_seen == NOW + 2
        assert again.cluster_state().reports[a].reported_at == NOW + 2

    def test_datasets_of_answers_as_dataset_does(self, store: Store) -> None:
        """Several datasets read at once, cold or from a cached configuration, are each what
        ``dataset`` answers: a deleted one as deleted, an unknown one as ``None``."""
        a = add_node(store)
        kept, gone = add_dataset(store, a), add_dataset(store, a)
        store.delete_dataset(gone.dataset_id, None, NOW)
        ids = [kept.dataset_id, gone.dataset_id, uuid4()]
        cold = store.datasets_of(ids)
        store.configuration(NOW)
        warm = store.datasets_of(ids)
        assert cold == warm == {i: store.dataset(i) for i in ids}
        deleted = warm[gone.dataset_id]
        assert deleted is not None and deleted.deleted

    def test_cluster_state_of_some_nodes_has_their_times_current(self, store: Store) -> None:
        """The state of a few nodes has each one's latest times (heartbeats included), and
        every node's and report's other facts, as the whole cluster state has them."""
        a, b = add_node(store), add_node(store)
        store.report_state(report(a, 0, at=NOW + 1))
        store.report_state(report(b, 0, at=NOW + 1))
        store.cluster_state()
        store.report_state(report(a, 0, at=NOW + 4))
        store.report_state(report(b, 0, at=NOW + 5))
        some = store.cluster_state_of(frozenset({a}))
        whole = store.cluster_state()
        assert (some.nodes[a], some.reports[a]) == (whole.nodes[a], whole.reports[a])
        assert (some.nodes[a].last_seen, some.reports[a].reported_at) == (NOW + 4, NOW + 4)
        assert some.version == whole.version and set(some.nodes) == {a, b}
        assert evolve(some.nodes[b], last_seen=None) == evolve(whole.nodes[b], last_seen=None)
        assert store.cluster_state_of(frozenset()).reports.keys() == whole.reports.keys()

    def test_an_unchanged_registration_is_seen_and_durable(
        self, store: Store, reopen: Callable[[], Store]
    ) -> None:
        """A registration that only moves when the node was seen leaves the state version, is
        seen at once, keeps the report's time, and survives ``flush_seen`` and a reopen."""
        a = add_node(store)
        store.report_state(report(a, 0, at=NOW + 1))
        node = store.cluster_state().nodes[a]
        before = store.versions()
        assert store.register_node(evolve(node, last_seen=NOW + 9)).last_seen == NOW + 9
        assert store.versions() == before
        assert [n.last_seen for n in store.nodes()] == [NOW + 9]
        assert store.cluster_state().nodes[a].last_seen == NOW + 9
        assert store.flush_seen() >= 0
        again = reopen().cluster_state()
        assert (again.nodes[a].last_seen, again.reports[a].reported_at) == (NOW + 9, NOW + 1)

    def test_cluster_state_read_after_each_write_sees_it(self, store: Store) -> None:
        """Each read of the actual state after a write (reports, registrations, times seen,
        draining) sees that write, even when the state version did not move."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        store.cluster_state()
        store.report_state(report(a, 1, dataset.dataset_id, at=NOW + 1))
        assert dataset.dataset_id in store.cluster_state().reports[a].datasets
        store.report_state(report(a, 1, dataset.dataset_id, at=NOW + 2))
        state = store.cluster_state()
        assert (state.reports[a].reported_at, state.nodes[a].last_seen) == (NOW + 2, NOW + 2)
        node = store.cluster_state().nodes[a]
        store.register_node(evolve(node, last_seen=NOW + 3))
        assert store.cluster_state().nodes[a].last_seen == NOW + 3
        store.register_node(evolve(node, labels={"zone": "b"}, last_seen=NOW + 4))
        assert store.cluster_state().nodes[a].labels == {"zone": "b"}
        store.set_draining(a, True, NOW + 5)
        assert store.cluster_state().nodes[a].draining is True
        store.report_state(report(a, 1, at=NOW + 6))
        assert store.cluster_state().reports[a].datasets == {}
        b = add_node(store, host="10.0.0.2")
        assert set(store.cluster_state().nodes) == {a, b}

    def test_report_keeps_conditions_capacity_and_orphans(self, store: Store) -> None:
        """Conditions, capacity and orphaned volumes are stored whole and count as facts."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        plain = report(a, 1, at=NOW)
        store.report_state(plain)
        detailed = NodeState(
            node_uuid=a,
            era="era",
            generation=1,
            reported_at=NOW + 1,
            conditions=[
                Condition(
                    dataset_id=dataset.dataset_id,
                    kind=ConditionKind.ERROR,
                    reason="too_large",
                    message="The pool holds at most 1 GiB.",
                    since=NOW,
                    step="create",
                    attempts=3,
                    permanent=True,
                ),
                Condition(None, ConditionKind.WAITING, "pool_low", "The pool is 95% full.", NOW),
            ],
            capacity=Capacity("loopback", total=2**30, free=2**29, maximum_volume_size=2**30),
            orphans=[OrphanVolume("vol-1", uuid4(), 2**26), OrphanVolume("vol-2")],
        )
        assert store.report_state(detailed) is True
        assert store.cluster_state().reports == {a: detailed}
        assert store.report_state(plain) is True

    def test_report_keeps_every_backends_capacity(self, store: Store) -> None:
        """A node with several backends reports each one's capacity; all are stored, in order."""
        a = add_node(store)
        shared = Capacity("loopback", total=2**30, free=2**29, maximum_volume_size=2**29,
                          read_only_many=True)
        own = Capacity("local", total=2**31, free=2**30, maximum_volume_size=2**30, shared=False)
        both = NodeState(node_uuid=a, era="era", generation=0, reported_at=NOW,
                         capacity=shared, capacities=[shared, own])
        assert store.report_state(both) is True
        stored = store.cluster_state().reports[a]
        assert stored == both and stored.capacity_of("local") == own
        assert stored.all_capacities() == (shared, own)

    # -- who may report what ------------------------------------------------------------

    def test_registration_by_another_certificate_refused(self, store: Store) -> None:
        """A node registered with one certificate cannot be re-registered with another."""
        node = Node(uuid=uuid4(), host="h", era="e1", mount_root="/m", identity="ab" * 32)
        store.register_node(node)
        with pytest.raises(Forbidden, match="registered with the client certificate"):
            store.register_node(Node(uuid=node.uuid, host="evil", era="e1", identity="cd" * 32))
        assert store.nodes() == [node] and store.versions() == Versions(0, 1)
        plain = Node(uuid=node.uuid, host="h2", era="e1", mount_root="/m")
        assert store.register_node(plain).identity == node.identity

    def test_report_by_another_certificate_refused(self, store: Store) -> None:
        """Only the certificate that registered a node may report for it; nothing is recorded."""
        node = Node(uuid=uuid4(), host="h", era="era", mount_root="/m", identity="ab" * 32)
        store.register_node(node)
        with pytest.raises(Forbidden, match="report for node"):
            store.report_state(report(node.uuid, 0), "cd" * 32)
        assert store.cluster_state().reports == {}
        assert store.report_state(report(node.uuid, 0), "ab" * 32) is True

    @pytest.mark.parametrize(
        "path", ["/etc", "/m", "/m/../etc", "/m/./x", "/m//x", "/m/x/", "/mnt/x", "m/x"]
    )
    def test_report_path_outside_mount_root_refused(self, store: Store, path: str) -> None:
        """A path not strictly below the registered mount root (normalised) is refused."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        forged = NodeState(node_uuid=a, era="era", generation=1, datasets={
            dataset.dataset_id: DatasetState(dataset.dataset_id, VolumeStatus.MOUNTED, path=path)
        })
        with pytest.raises(Conflict, match="mount root"):
            store.report_state(forged)
        assert store.cluster_state().reports == {} and store.versions() == Versions(1, 1)

    def test_report_path_without_mount_root_refused(self, store: Store) -> None:
        """A node that registered no mount root may report no path at all."""
        node = Node(uuid=uuid4(), host="h", era="era")
        store.register_node(node)
        dataset = add_dataset(store, node.uuid)
        with pytest.raises(Conflict, match="no mount_root"):
            store.report_state(report(node.uuid, 1, dataset.dataset_id))
        assert store.report_state(report(node.uuid, 1)) is True

    @pytest.mark.parametrize("root", ["/", "/m/", "/m/../etc", "//m"])
    def test_unnormalised_mount_root_refused(self, store: Store, root: str) -> None:
        """A mount root of / or one that is not normalised is refused at registration."""
        with pytest.raises(InvalidRequest, match="mount_root"):
            store.register_node(Node(uuid=uuid4(), host="h", mount_root=root))
        assert store.nodes() == []

    def test_stale_reports_refused(self, store: Store) -> None:
        """Reports of another era, a future generation or an older generation are refused."""
        a = add_node(store)
        for _ in range(3):
            add_dataset(store, a)
        store.report_state(report(a, 2))
        for stale in (report(a, 3, era="old-boot"), report(a, 4), report(a, 1)):
            with pytest.raises(Conflict):
                store.report_state(stale)
        assert store.cluster_state().reports[a] == report(a, 2)
        assert store.report_state(report(a, 3)) is True

    def test_forged_empty_report_does_not_purge(self, store: Store) -> None:
        """An empty report of the wrong era or an old generation purges nothing."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        store.report_state(report(a, 1, dataset.dataset_id))
        store.delete_dataset(dataset.dataset_id, None, NOW)
        for forged in (report(a, 2, era="forged"), report(a, 0), report(a, 9)):
            with pytest.raises(Conflict):
                store.report_state(forged)
        assert store.dataset(dataset.dataset_id) is not None
        assert store.versions().configuration == 2

    def test_purge_waits_for_primary_in_its_current_era(self, store: Store) -> None:
        """After the primary re-registers in a new era, its old report no longer counts."""
        a, b = add_node(store), add_node(store, "b")
        dataset = add_dataset(store, a)
        store.delete_dataset(dataset.dataset_id, None, NOW)
        store.report_state(report(a, 2, dataset.dataset_id))
        store.register_node(Node(uuid=a, host="10.0.0.1", era="boot-2", mount_root="/m"))
        store.report_state(report(b, 2))
        assert store.dataset(dataset.dataset_id) is not None
        store.report_state(report(a, 2, era="boot-2"))
        assert store.dataset(dataset.dataset_id) is None

    # -- orphans ---------------------------------------------------------------------------

    def test_destroy_orphan_records_deleted_dataset(self, store: Store) -> None:
        """An orphan gets a deleted record on the first node (by uuid) reporting it, once."""
        a, b = add_node(store), add_node(store, "b")
        lost = uuid4()
        for node in (a, b):
            store.report_state(NodeState(node_uuid=node, era="era", generation=0, orphans=[
                OrphanVolume("vol-9", lost, MINIMUM_DATASET_SIZE)
            ]))
        stored, generation = store.destroy_orphan("vol-9", "0", now=NOW, actor="user-x (admin)")
        first = min((a, b), key=str)
        assert stored == Dataset(
            dataset_id=lost, primary=first, maximum_size=MINIMUM_DATASET_SIZE,
            metadata={"shoal.orphan": "vol-9"}, deleted=True, deleted_generation=1,
        )
        assert generation == 1 and store.dataset(lost) == stored
        assert store.destroy_orphan("vol-9", None) == (stored, 1)
        events = store.events(EventQuery(dataset_id=lost))
        assert [(e.kind, e.actor) for e in events] == [("deleted", "user-x (admin)")]

    def test_destroy_orphan_refusals(self, store: Store) -> None:
        """Unknown ids are 404, a live dataset's volume 409; nothing changes."""
        a = add_node(store)
        live = add_dataset(store, a)
        store.report_state(NodeState(node_uuid=a, era="era", generation=1, orphans=[
            OrphanVolume("vol-live", live.dataset_id), OrphanVolume("vol-anon")
        ]))
        with pytest.raises(NotFound):
            store.destroy_orphan("vol-none", None)
        with pytest.raises(Conflict, match="live dataset"):
            store.destroy_orphan("vol-live", None)
        with pytest.raises(Conflict, match="names no dataset"):
            store.destroy_orphan("vol-anon", None)
        assert store.versions().configuration == 1 and store.dataset(live.dataset_id) == live

    def test_datasets_for_node(self, store: Store) -> None:
        """A node's datasets are those it is primary of plus those asked for, deleted too."""
        a, b = add_node(store), add_node(store, "b")
        mine, gone, theirs, other = (add_dataset(store, n) for n in (a, a, b, b))
        deleted, _ = store.delete_dataset(gone.dataset_id, None, NOW)
        generation, found = store.datasets_for_node(a, frozenset({theirs.dataset_id, uuid4()}))
        assert generation == 5
        assert sorted(found, key=lambda d: str(d.dataset_id)) == sorted(
            [mine, deleted, theirs], key=lambda d: str(d.dataset_id)
        )
        assert store.datasets_for_node(uuid4(), frozenset()) == (5, [])

    def test_node_datasets(self, store: Store) -> None:
        """A node's view: its datasets and those asked for by id, every copy with its source,
        every dataset with readers, and the fenced nodes."""
        a, b = add_node(store), add_node(store, "b")
        mine, theirs = add_dataset(store, a), add_dataset(store, b)
        clone = add_dataset(store, b, source=DataSource(SourceKind.DATASET, mine.dataset_id))
        store.fence_node(b, Fence(at=NOW, reason="test", actor="t"))
        view = store.node_datasets(a, frozenset({theirs.dataset_id, uuid4()}))
        assert view.generation == store.versions().configuration
        assert view.datasets == sorted([mine, theirs], key=lambda d: str(d.dataset_id))
        assert dict(view.copies) == {clone.dataset_id: clone, mine.dataset_id: mine}
        assert view.read == [] and view.fenced == frozenset({b})
        moved, _ = store.move_dataset(mine.dataset_id, b, None, NOW)
        assert store.node_datasets(a, frozenset()).datasets == []
        assert moved in store.node_datasets(b, frozenset()).datasets

    def test_node_datasets_read_again_after_writes(self, store: Store) -> None:
        """A node's datasets read again after each write, whether or not the write concerns
        the node (a store may keep them between reads), are what the configuration holds."""
        a, b = add_node(store), add_node(store, "b")
        mine, theirs = add_dataset(store, a, maximum_size=1024**3), add_dataset(store, b)
        asked = uuid4()

        def check() -> None:
            everything = store.configuration(NOW).datasets.values()
            for node, also in ((a, frozenset()), (b, frozenset()), (a, frozenset({asked}))):
                expected = [d for d in everything if d.primary == node or d.dataset_id in also]
                view = store.node_datasets(node, also)
                assert view.generation == store.versions().configuration
                assert view.datasets == sorted(expected, key=lambda d: str(d.dataset_id))

        check()
        add_dataset(store, b)  # not a's
        check()
        store.resize_dataset(mine.dataset_id, 2 * 1024**3, None, NOW)  # a's own
        check()
        store.move_dataset(theirs.dataset_id, a, None, NOW)  # onto a
        check()
        store.move_dataset(mine.dataset_id, b, None, NOW)  # off a
        check()
        store.create_dataset(Dataset(dataset_id=asked, primary=b), None, now=NOW)  # a asks of it
        check()
        store.delete_dataset(theirs.dataset_id, None, NOW)
        check()

    # -- purging ---------------------------------------------------------------------------

    def test_purge_waits_for_primary_and_volume(self, store: Store) -> None:
        """A deleted dataset is purged once nobody reports it and its primary caught up."""
        a, b = add_node(store), add_node(store, "b")
        dataset = add_dataset(store, a)
        store.acquire_lease(Lease(dataset.dataset_id, a, NOW + 1), None, NOW)
        store.delete_dataset(dataset.dataset_id, None, NOW + 2)
        store.report_state(report(a, 2, dataset.dataset_id))
        store.report_state(report(b, 3))
        assert store.dataset(dataset.dataset_id) is not None
        store.report_state(report(a, 3, dataset.dataset_id))
        assert store.dataset(dataset.dataset_id) is not None
        store.report_state(report(b, 3, dataset.dataset_id))
        store.report_state(report(a, 3))
        assert store.dataset(dataset.dataset_id) is not None
        assert store.versions().configuration == 3
        store.report_state(report(b, 3))
        assert store.dataset(dataset.dataset_id) is None
        configuration = store.configuration(NOW)
        assert (configuration.generation, dict(configuration.datasets)) == (4, {})
        assert configuration.leases == {} and store.configuration(0).leases == {}

    def test_purge_bumps_once(self, store: Store) -> None:
        """Purging several datasets in one report bumps the generation once."""
        a = add_node(store)
        datasets = [add_dataset(store, a) for _ in range(3)]
        for dataset in datasets[:2]:
            store.delete_dataset(dataset.dataset_id, None, NOW)
        store.report_state(report(a, 5))
        assert store.versions().configuration == 6
        assert list(store.configuration(NOW).datasets) == [datasets[2].dataset_id]

    def test_no_purge_of_live_datasets(self, store: Store) -> None:
        """A report never purges datasets that are not deleted."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        store.report_state(report(a, 1))
        assert store.dataset(dataset.dataset_id) == dataset
        assert store.versions().configuration == 1

    # -- durability -------------------------------------------------------------------------

    def test_persists_across_reopen(self, store: Store, reopen: Callable[[], Store]) -> None:
        """Everything written is there, unchanged, in a store opened afterwards."""
        a = add_node(store, era="boot")
        dataset = add_dataset(store, a, maximum_size=MINIMUM_DATASET_SIZE, metadata={"k": "v"})
        gone = add_dataset(store, a)
        store.delete_dataset(gone.dataset_id, None, NOW)
        store.acquire_lease(Lease(dataset.dataset_id, a, NOW + 60), None, NOW)
        store.report_state(report(a, 2, dataset.dataset_id, era="boot"))
        expected = (store.versions(), store.configuration(NOW), store.cluster_state())
        store.close()
        again = reopen()
        assert (again.versions(), again.configuration(NOW), again.cluster_state()) == expected
        assert again.node_by_era("boot") == expected[2].nodes[a]

    def test_sees_writes_of_another_store(
        self, store: Store, reopen: Callable[[], Store]
    ) -> None:
        """A second store on the same database sees writes the first made after it read."""
        a = add_node(store)
        other = reopen()
        assert other.configuration(NOW).generation == 0
        dataset = add_dataset(store, a)
        assert other.configuration(NOW).datasets == {dataset.dataset_id: dataset}
        other.delete_dataset(dataset.dataset_id, "1", NOW)
        assert store.configuration(NOW).datasets[dataset.dataset_id].deleted

    # -- events ----------------------------------------------------------------

    @pytest.fixture
    def with_retention(self) -> Callable[[EventRetention], Store]:
        """Makes an empty store keeping the given event history (subclasses override this)."""
        raise NotImplementedError

    def test_appended_events_get_increasing_ids(self, store: Store) -> None:
        """Appended events come back with ids, in order, and a query returns them oldest first."""
        d = uuid4()
        stored = store.append_events([Event("error", NOW, "one", d), Event("error", NOW, "two", d)])
        assert [e.message for e in stored] == ["one", "two"]
        assert stored[0].event_id is not None and stored[1].event_id is not None
        assert stored[0].event_id < stored[1].event_id
        assert store.events(EventQuery(dataset_id=d)) == stored

    def test_events_query_by_dataset_node_since_and_limit(self, store: Store) -> None:
        """Queries filter by dataset and node; since pages forward; no since gives the newest."""
        d1, d2, n1, n2 = uuid4(), uuid4(), uuid4(), uuid4()
        stored = store.append_events(
            [Event("e", NOW + i, f"m{i}", (d1, d2)[i % 2], (n1, n2)[i // 3]) for i in range(6)]
        )
        assert [e.message for e in store.events(EventQuery(dataset_id=d1))] == ["m0", "m2", "m4"]
        assert [e.message for e in store.events(EventQuery(node_uuid=n2))] == ["m3", "m4", "m5"]
        both = EventQuery(dataset_id=d2, node_uuid=n1)
        assert [e.message for e in store.events(both)] == ["m1"]
        after = EventQuery(since=stored[1].event_id, limit=2)
        assert [e.message for e in store.events(after)] == ["m2", "m3"]
        assert [e.message for e in store.events(EventQuery(limit=2))] == ["m4", "m5"]
        assert store.events(EventQuery(since=stored[-1].event_id)) == []

    def test_events_pruned_per_dataset(
        self, with_retention: Callable[[EventRetention], Store]
    ) -> None:
        """Each dataset keeps its newest events only, others untouched."""
        store = with_retention(EventRetention(per_dataset=3, max_age=1e9))
        busy, quiet = uuid4(), uuid4()
        store.append_events([Event("e", NOW, "quiet", quiet)])
        store.append_events([Event("e", NOW + i, f"m{i}", busy) for i in range(5)])
        store.append_events([Event("e", NOW + 9, "m9", busy)])
        assert [e.message for e in store.events(EventQuery(dataset_id=busy))] == ["m3", "m4", "m9"]
        assert [e.message for e in store.events(EventQuery(dataset_id=quiet))] == ["quiet"]

    def test_events_pruned_by_age(self, with_retention: Callable[[EventRetention], Store]) -> None:
        """Events older than the age limit go on the next write; the newest always stays."""
        store = with_retention(EventRetention(per_dataset=100, max_age=60))
        store.append_events([Event("e", NOW, "old", uuid4()), Event("e", NOW + 30, "mid")])
        store.append_events([Event("e", NOW + 80, "new", uuid4())])
        assert [e.message for e in store.events(EventQuery())] == ["mid", "new"]
        last = store.append_events([Event("e", NOW + 1000, "later")])
        assert store.events(EventQuery()) == last
        again = store.append_events([Event("e", NOW + 5000, "again")])
        assert again[0].event_id is not None and last[0].event_id is not None
        assert again[0].event_id > last[0].event_id

    def test_configuration_writes_record_events_with_actor(self, store: Store) -> None:
        """Create, move, lease taken and released, delete: each an event naming who did it."""
        one, two = add_node(store), add_node(store, "10.0.0.2")
        d = Dataset(dataset_id=uuid4(), primary=one)
        store.create_dataset(d, None, now=NOW, actor="alice")
        store.move_dataset(d.dataset_id, two, None, NOW + 1, actor="bob")
        store.acquire_lease(Lease(d.dataset_id, two, None), None, NOW + 2, actor="plugin")
        store.acquire_lease(Lease(d.dataset_id, two, None), None, NOW + 2.5, actor="plugin")
        store.release_lease(d.dataset_id, None, NOW + 3, actor="plugin")
        store.delete_dataset(d.dataset_id, None, NOW + 4, actor="carol")
        found = store.events(EventQuery(dataset_id=d.dataset_id))
        assert [(e.kind, e.actor, e.at) for e in found] == [
            ("created", "alice", NOW),
            ("moved", "bob", NOW + 1),
            ("lease_taken", "plugin", NOW + 2),
            ("lease_released", "plugin", NOW + 3),
            ("deleted", "carol", NOW + 4),
        ]
        assert dict(found[1].details) == {"from": str(one), "to": str(two)}

    def test_refused_write_records_no_event(self, store: Store) -> None:
        """A write refused by its tag leaves the history alone."""
        node = add_node(store)
        with pytest.raises(PreconditionFailed):
            store.create_dataset(Dataset(dataset_id=uuid4(), primary=node), "99", now=NOW)
        assert store.events(EventQuery()) == []

    def test_reports_record_volume_and_error_events(self, store: Store) -> None:
        """A report's changes against the previous one become events; a repeat adds none."""
        node = add_node(store)
        d = add_dataset(store, node).dataset_id
        store.report_state(report(node, 1, d, at=NOW + 1))
        failing = Condition(d, ConditionKind.ERROR, "busy", "unmount failed: busy", NOW, "unmount")
        store.report_state(evolve(report(node, 1, d, at=NOW + 2), conditions=(failing,)))
        store.report_state(evolve(report(node, 1, d, at=NOW + 3), conditions=(failing,)))
        store.report_state(report(node, 1, at=NOW + 4))
        found = store.events(EventQuery(dataset_id=d))
        assert [(e.kind, e.at, e.node_uuid) for e in found[1:]] == [
            ("attached", NOW + 1, node),
            ("mounted", NOW + 1, node),
            ("error", NOW + 2, node),
            ("unmounted", NOW + 4, node),
            ("detached", NOW + 4, node),
        ]
        assert found[3].message == "unmount failed: busy"
