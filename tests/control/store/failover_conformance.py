"""
The Store contract of fencing, draining and failover writes (docs/failover.md).

Mixed into each store's test class next to
:class:`~tests.control.store.conformance.StoreConformance`, whose fixtures
(``store``, ``reopen``) it uses.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from attrs import evolve

from control.errors import InvalidRequest, NotAllowed, NotFound, PreconditionFailed
from control.events import EventQuery
from control.model import Dataset, Fence, Lease, Node
from control.store.interface import Store
from tests.control.store.conformance import NOW, add_dataset, add_node, report

AUTO = Fence(at=NOW + 10, reason="silent for 10 s", actor="failover", automatic=True)
MANUAL = Fence(at=NOW + 20, reason="disk replaced", actor="alice", automatic=False)


def node_of(store: Store, uuid: object) -> Node:
    """The stored node ``uuid``."""
    return next(n for n in store.nodes() if n.uuid == uuid)


class FailoverConformance:
    """Fences, drains, failovers and failover options, as every store keeps them."""

    def test_move_grows_epoch(self, store: Store) -> None:
        """Every change of primary grows the epoch by one; a move to the same primary does not."""
        a, b = add_node(store), add_node(store, "10.0.0.2")
        dataset = add_dataset(store, a)
        moved, _ = store.move_dataset(dataset.dataset_id, b, None, NOW)
        same, _ = store.move_dataset(dataset.dataset_id, b, None, NOW)
        back, _ = store.move_dataset(dataset.dataset_id, a, None, NOW)
        assert (dataset.epoch, moved.epoch, same.epoch, back.epoch) == (0, 1, 1, 2)
        assert store.configuration(NOW).datasets[dataset.dataset_id].epoch == 2

    def test_fence_and_unfence(self, store: Store) -> None:
        """A fence is stored with the node, bumps the state version, and is lifted again."""
        a = add_node(store)
        before = store.versions()
        fenced, changed = store.fence_node(a, MANUAL)
        assert changed and fenced.fence == MANUAL and node_of(store, a) == fenced
        assert store.versions().state == before.state + 1
        assert store.versions().configuration == before.configuration
        assert store.fence_node(a, MANUAL) == (fenced, False)
        lifted, changed = store.unfence_node(a, NOW + 30, actor="alice", reason="fixed")
        assert changed and lifted.fence is None and node_of(store, a).fence is None
        assert store.unfence_node(a, NOW + 31, actor="alice", reason="again") == (lifted, False)
        kinds = [(e.kind, e.actor) for e in store.events(EventQuery(node_uuid=a))]
        assert kinds == [("node_fenced", "alice"), ("node_unfenced", "alice")]

    def test_automatic_fence_skips_node_heard_from(self, store: Store) -> None:
        """An automatic fence changes nothing when the node reported after the silence seen."""
        a = add_node(store)
        store.report_state(report(a, 0, at=NOW + 5))
        node, changed = store.fence_node(a, AUTO, silent_since=NOW)
        assert not changed and node.fence is None
        node, changed = store.fence_node(a, AUTO, silent_since=NOW + 5)
        assert changed and node.fence == AUTO

    def test_operator_fence_overrides_automatic(self, store: Store) -> None:
        """An operator's fence replaces an automatic one; an automatic one never replaces it."""
        a = add_node(store)
        store.fence_node(a, AUTO, silent_since=NOW)
        assert store.fence_node(a, MANUAL)[0].fence == MANUAL
        assert store.fence_node(a, AUTO, silent_since=NOW + 99)[0].fence == MANUAL

    def test_unfence_only_if(self, store: Store) -> None:
        """``only_if`` lifts only that very fence."""
        a = add_node(store)
        store.fence_node(a, MANUAL)
        node, changed = store.unfence_node(a, NOW, actor="failover", reason="r", only_if=AUTO)
        assert not changed and node.fence == MANUAL

    def test_registration_keeps_fence_and_notes_rejoin(self, store: Store) -> None:
        """Registering again keeps the fence and draining mark and records when it rejoined."""
        a = add_node(store)
        store.fence_node(a, AUTO, silent_since=NOW)
        store.set_draining(a, True, NOW)
        again = store.register_node(evolve(node_of(store, a), last_seen=NOW + 40, fence=None))
        assert again.fence == evolve(AUTO, rejoined_at=NOW + 40) and again.draining
        assert node_of(store, a) == again

    def test_reports_keep_fence(self, store: Store) -> None:
        """A fenced node's reports are accepted and leave its fence in place."""
        a = add_node(store)
        store.fence_node(a, MANUAL)
        store.report_state(report(a, 0, at=NOW + 50))
        node = node_of(store, a)
        assert node.fence == MANUAL and node.last_seen == NOW + 50

    def test_node_writes_of_unknown_node(self, store: Store) -> None:
        """Fence, unfence and drain of an unregistered node are refused with NotFound."""
        from uuid import uuid4

        ghost = uuid4()
        with pytest.raises(NotFound):
            store.fence_node(ghost, MANUAL)
        with pytest.raises(NotFound):
            store.unfence_node(ghost, NOW, actor=None, reason="r")
        with pytest.raises(NotFound):
            store.set_draining(ghost, True, NOW)

    def test_draining(self, store: Store) -> None:
        """Draining is stored, idempotent, undone, and recorded as events."""
        a = add_node(store)
        assert store.set_draining(a, True, NOW, actor="bob")[1]
        assert not store.set_draining(a, True, NOW, actor="bob")[1]
        assert node_of(store, a).draining
        assert store.set_draining(a, False, NOW + 1, actor="bob")[1]
        kinds = [e.kind for e in store.events(EventQuery(node_uuid=a))]
        assert kinds == ["node_draining", "node_drain_stopped"]

    def test_fail_over_moves_releases_and_grows_epoch(self, store: Store) -> None:
        """A failover releases the old primary's lease and moves with epoch + 1, in one write."""
        a, b = add_node(store), add_node(store, "10.0.0.2")
        dataset = add_dataset(store, a)
        store.acquire_lease(Lease(dataset.dataset_id, a, None), None, NOW)
        store.fence_node(a, AUTO, silent_since=NOW)
        generation = store.versions().configuration
        moved = store.fail_over(
            dataset.dataset_id, a, b, NOW + 11, actor="failover", reason="a fenced"
        )
        assert moved == evolve(dataset, primary=b, epoch=1)
        configuration = store.configuration(NOW + 11)
        assert configuration.datasets[dataset.dataset_id] == moved
        assert configuration.leases == {} and configuration.generation == generation + 1
        found = store.events(EventQuery(dataset_id=dataset.dataset_id))
        assert [(e.kind, e.actor) for e in found[-2:]] == [
            ("lease_released", "failover"),
            ("failed_over", "failover"),
        ]
        assert found[-1].details["reason"] == "a fenced" and found[-1].details["epoch"] == 1

    def test_fail_over_guards(self, store: Store) -> None:
        """A failover changes nothing when its facts no longer hold."""
        a, b, c = add_node(store), add_node(store, "b"), add_node(store, "c")
        dataset = add_dataset(store, a)
        d = dataset.dataset_id
        store.fence_node(c, MANUAL)
        generation = store.versions().configuration
        assert store.fail_over(d, a, b, NOW, actor="f", reason="a is not fenced") is None
        store.fence_node(a, AUTO, silent_since=NOW)
        assert store.fail_over(d, b, c, NOW, actor="f", reason="b is not primary") is None
        assert store.fail_over(d, a, c, NOW, actor="f", reason="c is fenced") is None
        assert store.fail_over(d, a, a, NOW, actor="f", reason="to itself") is None
        store.set_draining(b, True, NOW)
        assert store.fail_over(d, a, b, NOW, actor="f", reason="b is draining") is None
        assert store.versions().configuration == generation
        assert store.dataset(d) == dataset

    def test_drain_move_waits_for_lease(self, store: Store) -> None:
        """A drain moves a dataset off a draining node only while no other node leases it."""
        a, b = add_node(store), add_node(store, "b")
        d = add_dataset(store, a).dataset_id
        store.acquire_lease(Lease(d, a, None), None, NOW)
        assert store.fail_over(d, a, b, NOW, actor="f", reason="r", kind="moved") is None
        store.set_draining(a, True, NOW)
        assert store.fail_over(d, a, b, NOW, actor="f", reason="r", kind="moved") is None
        store.release_lease(d, None, NOW)
        moved = store.fail_over(d, a, b, NOW, actor="f", reason="a drains", kind="moved")
        assert moved is not None and moved.primary == b and moved.epoch == 1
        assert store.events(EventQuery(dataset_id=d))[-1].kind == "moved"

    def test_release_node_lease(self, store: Store) -> None:
        """Only a lease a fenced node still holds is released, with the reason in its event."""
        a, b = add_node(store), add_node(store, "b")
        d = add_dataset(store, a).dataset_id
        store.acquire_lease(Lease(d, a, None), None, NOW)
        assert store.release_node_lease(d, a, NOW, actor="failover", reason="not fenced") is None
        store.fence_node(a, MANUAL)
        store.fence_node(b, MANUAL)
        assert store.release_node_lease(d, b, NOW, actor="failover", reason="r") is None
        released = store.release_node_lease(d, a, NOW, actor="failover", reason="a fenced")
        assert released == Lease(d, a, None) and store.configuration(NOW).leases == {}
        assert store.release_node_lease(d, a, NOW, actor="failover", reason="r") is None
        assert store.events(EventQuery(dataset_id=d))[-1].details["reason"] == "a fenced"

    def test_set_failover(self, store: Store) -> None:
        """Failover options are stored (a configuration write) and refused when invalid."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        d = dataset.dataset_id
        stored, generation = store.set_failover(d, False, 30.0, None, NOW, actor="carol")
        assert stored == evolve(dataset, failover=False, failover_grace=30.0)
        assert store.dataset(d) == stored and generation == 2
        assert store.set_failover(d, False, 30.0, None, NOW) == (stored, 2)
        with pytest.raises(PreconditionFailed):
            store.set_failover(d, True, None, "1", NOW)
        with pytest.raises(InvalidRequest):
            store.set_failover(d, True, -1.0, None, NOW)
        store.delete_dataset(d, None, NOW)
        with pytest.raises(NotAllowed):
            store.set_failover(d, True, None, None, NOW)
        assert store.events(EventQuery(dataset_id=d))[1].kind == "failover_set"

    def test_failover_fields_persist(self, store: Store, reopen: Callable[[], Store]) -> None:
        """Epochs, failover options, fences and draining marks are there after a reopen."""
        a, b = add_node(store), add_node(store, "b")
        dataset = add_dataset(store, a)
        store.move_dataset(dataset.dataset_id, b, None, NOW)
        store.set_failover(dataset.dataset_id, True, 12.5, None, NOW)
        store.fence_node(a, AUTO, silent_since=NOW)
        store.set_draining(b, True, NOW)
        expected = (store.configuration(NOW), store.cluster_state())
        store.close()
        again = reopen()
        assert (again.configuration(NOW), again.cluster_state()) == expected
        assert again.dataset(dataset.dataset_id) == Dataset(
            dataset_id=dataset.dataset_id, primary=b, epoch=1, failover=True, failover_grace=12.5
        )
