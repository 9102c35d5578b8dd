"""
Conformance cases of storage classes, which every store passes.

Mixed into the store test classes next to :class:`StoreConformance` (same ``store`` fixture).
"""

from __future__ import annotations

from uuid import uuid4

import pytest
from attrs import evolve
from pyrsistent import pmap

from control.classes import StorageClass
from control.errors import Conflict, InvalidRequest, NotFound
from control.events import EventQuery
from control.model import UNBOUND, AccessMode, Dataset
from control.store.interface import Store
from control.topology import ZONE, BindingMode, ReclaimPolicy, Requirement, TopologyTerm
from tests.control.store.conformance import NOW, add_dataset, add_node, report

GiB = 1024**3
ZONE_A = TopologyTerm((Requirement(ZONE, ("a",)),))


def fast(name: str = "fast", **kwargs: object) -> StorageClass:
    """A class with every field set away from its default."""
    values: dict = {
        "backend": "loopback",
        "filesystem": "xfs",
        "default_size": GiB,
        "reclaim_policy": ReclaimPolicy.RETAIN,
        "binding_mode": BindingMode.WAIT,
        "allowed_topologies": (ZONE_A,),
        "access_modes": (AccessMode.RWO, AccessMode.ROX),
        "parameters": {"tier": "ssd"},
        "failover": False,
        "failover_grace": 45.0,
        "created": NOW,
        **kwargs,
    }
    return StorageClass(name, **values)


class ClassConformance:
    """Storage class records in any store."""

    def test_create_read_and_list(self, store: Store) -> None:
        """A class reads back exactly as created, and lists by name."""
        stored, created = store.create_class(fast(), now=NOW)
        assert created and stored == fast()
        store.create_class(StorageClass("basic", created=NOW), now=NOW)
        assert store.storage_class("fast") == fast()
        assert [c.name for c in store.classes()] == ["basic", "fast"]
        assert store.storage_class("nope") is None

    def test_create_is_idempotent_by_name(self, store: Store) -> None:
        """The same class again is answered unchanged; other settings are a conflict."""
        store.create_class(fast(), now=NOW)
        again, created = store.create_class(fast(created=NOW + 5), now=NOW + 5)
        assert not created and again == fast()
        with pytest.raises(Conflict, match="already exists with other settings"):
            store.create_class(fast(filesystem="ext4"), now=NOW)

    def test_one_default(self, store: Store) -> None:
        """A new default class takes the default from the previous one."""
        store.create_class(fast("one", default=True), now=NOW)
        store.create_class(fast("two", default=True), now=NOW)
        assert [(c.name, c.default) for c in store.classes()] == [("one", False), ("two", True)]
        store.update_class("one", {"default": True}, now=NOW)
        assert [(c.name, c.default) for c in store.classes()] == [("one", True), ("two", False)]

    def test_update_changes_mutable_fields_only(self, store: Store) -> None:
        """Parameters and the default size change; the placement rules never do."""
        store.create_class(fast(), now=NOW)
        changed = store.update_class(
            "fast", {"parameters": pmap({"tier": "nvme"}), "default_size": 2 * GiB}, now=NOW
        )
        assert changed == evolve(fast(), parameters={"tier": "nvme"}, default_size=2 * GiB)
        assert store.storage_class("fast") == changed
        with pytest.raises(InvalidRequest, match="allowed_topologies of storage class fast"):
            store.update_class("fast", {"allowed_topologies": ()}, now=NOW)
        with pytest.raises(NotFound):
            store.update_class("nope", {"default": True}, now=NOW)

    def test_delete_refused_while_a_live_dataset_uses_it(self, store: Store) -> None:
        """A class named by a live dataset stays; once the dataset is deleted, it goes."""
        store.create_class(fast(), now=NOW)
        node = add_node(store)
        dataset: Dataset = add_dataset(store, node, storage_class="fast")
        assert dataset.storage_class == "fast"
        with pytest.raises(Conflict, match="used by 1 live dataset"):
            store.delete_class("fast", now=NOW)
        store.delete_dataset(dataset.dataset_id, None, NOW)
        assert store.delete_class("fast", now=NOW) == fast()
        assert store.classes() == []
        with pytest.raises(NotFound):
            store.delete_class("fast", now=NOW)

    def test_dataset_keeps_class_and_access_mode(self, store: Store) -> None:
        """A dataset's class and access mode read back as stored."""
        node = add_node(store)
        dataset = add_dataset(store, node, storage_class="fast", access_mode=AccessMode.ROX)
        assert (dataset.storage_class, dataset.access_mode) == ("fast", AccessMode.ROX)
        assert store.configuration(NOW).datasets[dataset.dataset_id] == dataset

    def test_events(self, store: Store) -> None:
        """Creating, changing and deleting a class are events naming it and who did it."""
        store.create_class(fast(), now=NOW, actor="ops")
        store.create_class(fast(), now=NOW, actor="ops")  # unchanged: no event
        store.update_class("fast", {"default": True}, now=NOW, actor="ops")
        store.delete_class("fast", now=NOW, actor="ops")
        found = [
            (e.kind, e.actor, e.details.get("class"))
            for e in store.events(EventQuery())
            if e.kind.startswith("class_")
        ]
        assert found == [
            ("class_created", "ops", "fast"),
            ("class_updated", "ops", "fast"),
            ("class_deleted", "ops", "fast"),
        ]


class ReleaseConformance:
    """Retain: release, adopt and delete a released dataset, in any store."""

    def test_readers_added_and_removed(self, store: Store) -> None:
        """A ReadOnlyMany dataset gains and loses readers (idempotent), each an event; a move
        to a reader makes it the primary only; readers are stored with the dataset."""
        node, other, third = add_node(store), add_node(store, "10.0.0.2"), add_node(store, "x")
        dataset = add_dataset(store, node, access_mode=AccessMode.ROX, backend="loopback")
        added, generation = store.set_reader(dataset.dataset_id, other, True, None, NOW)
        assert added.readers == {other} and added.backend == "loopback"
        assert store.set_reader(dataset.dataset_id, other, True, None, NOW) == (added, generation)
        assert store.set_reader(dataset.dataset_id, node, True, None, NOW)[0].readers == {other}
        store.set_reader(dataset.dataset_id, third, True, None, NOW, actor="ops")
        assert store.dataset(dataset.dataset_id).readers == {other, third}
        moved, _ = store.move_dataset(dataset.dataset_id, third, None, NOW)
        assert (moved.primary, moved.readers) == (third, {other})
        removed, _ = store.set_reader(dataset.dataset_id, other, False, None, NOW)
        assert removed.readers == frozenset()
        assert store.set_reader(dataset.dataset_id, other, False, None, NOW)[0] == removed
        store.set_reader(dataset.dataset_id, node, True, None, NOW)
        released, _ = store.release_dataset(dataset.dataset_id, None, NOW)
        assert released.readers == frozenset()  # a released dataset has no node at all
        kinds = [e.kind for e in store.events(EventQuery(dataset_id=dataset.dataset_id))]
        assert kinds.count("reader_added") == 3 and kinds.count("reader_removed") == 1

    def test_reader_refusals(self, store: Store) -> None:
        """Only a live, bound ReadOnlyMany dataset has readers, on registered nodes."""
        node, other = add_node(store), add_node(store, "10.0.0.2")
        rwo = add_dataset(store, node)
        with pytest.raises(Conflict, match="only a ReadOnlyMany dataset"):
            store.set_reader(rwo.dataset_id, other, True, None, NOW)
        rox = add_dataset(store, node, access_mode=AccessMode.ROX)
        with pytest.raises(NotFound, match="has not registered"):
            store.set_reader(rox.dataset_id, uuid4(), True, None, NOW)
        with pytest.raises(NotFound):
            store.set_reader(uuid4(), other, True, None, NOW)

    def test_release_then_adopt(self, store: Store) -> None:
        """A released dataset has no node and frees its name; adopting makes it live again."""
        node = add_node(store)
        dataset = add_dataset(store, node, metadata={"name": "db"}, storage_class="keep")
        released, generation = store.release_dataset(dataset.dataset_id, None, NOW)
        assert (released.primary, released.released, released.epoch) == (UNBOUND, True, 1)
        assert store.release_dataset(dataset.dataset_id, None, NOW) == (released, generation)
        adopted, _ = store.adopt_dataset(dataset.dataset_id, node, None, NOW, actor="ops")
        assert (adopted.primary, adopted.released, adopted.epoch) == (node, False, 2)
        assert adopted.metadata == dataset.metadata
        kinds = [e.kind for e in store.events(EventQuery(dataset_id=dataset.dataset_id))]
        assert kinds == ["created", "released", "adopted"]

    def test_adopt_refusals(self, store: Store) -> None:
        """Only a released dataset is adopted, on a known node, if its name is still free."""
        node = add_node(store)
        dataset = add_dataset(store, node, metadata={"name": "db"})
        with pytest.raises(Conflict, match="not released"):
            store.adopt_dataset(dataset.dataset_id, node, None, NOW)
        store.release_dataset(dataset.dataset_id, None, NOW)
        add_dataset(store, node, metadata={"name": "db"})  # the name is free again
        with pytest.raises(Conflict, match="already used"):
            store.adopt_dataset(dataset.dataset_id, node, None, NOW)
        with pytest.raises(Conflict, match="Unknown primary"):
            store.adopt_dataset(dataset.dataset_id, uuid4(), None, NOW)

    def test_deleting_a_released_dataset_has_a_reporting_node_destroy_it(
        self, store: Store
    ) -> None:
        """A released dataset deleted for good goes to the node reporting its volume, else
        to the node it was released from; one that never had a node is refused."""
        node, other = add_node(store), add_node(store, "10.0.0.2")
        dataset = add_dataset(store, node)
        released, _ = store.release_dataset(dataset.dataset_id, None, NOW)
        assert released.released_from == node
        store.report_state(report(other, store.versions().configuration, dataset.dataset_id))
        deleted, _ = store.delete_dataset(dataset.dataset_id, None, NOW)
        assert (deleted.deleted, deleted.primary) == (True, other)
        quiet = add_dataset(store, node)
        store.release_dataset(quiet.dataset_id, None, NOW)
        deleted, _ = store.delete_dataset(quiet.dataset_id, None, NOW)
        assert (deleted.deleted, deleted.primary) == (True, node)
        never = add_dataset(store, UNBOUND)
        store.release_dataset(never.dataset_id, None, NOW)
        with pytest.raises(Conflict, match="No node reports the volume"):
            store.delete_dataset(never.dataset_id, None, NOW)
