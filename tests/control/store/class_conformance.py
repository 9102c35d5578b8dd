"""
Conformance cases of storage classes, which every store passes.

Mixed into the store test classes next to :class:`StoreConformance` (same ``store`` fixture).
"""

from __future__ import annotations

import pytest
from attrs import evolve
from pyrsistent import pmap

from control.classes import StorageClass
from control.errors import Conflict, InvalidRequest, NotFound
from control.events import EventQuery
from control.model import AccessMode, Dataset
from control.store.interface import Store
from control.topology import ZONE, BindingMode, ReclaimPolicy, Requirement, TopologyTerm
from tests.control.store.conformance import NOW, add_dataset, add_node

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
