"""
The behaviour every :class:`~control.client.interface.ShoalClient` has.

``ClientContract`` is mixed into one test class per way of running the one
client, each providing a ``harness`` fixture: the HTTP client against the real
API in memory (StubTreq), plainly and as
:class:`control.client.testing.MemoryControl`. Time moves only by ``harness.advance``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from attrs import define
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from control import FLOCKER_API_VERSION
from control.client.interface import NodeCondition, ReportedOrphan, ShoalClient, StateDataset
from control.errors import Conflict, InvalidRequest, NotAllowed, NotFound, PreconditionFailed
from control.model import (
    Condition,
    ConditionKind,
    DatasetState,
    NodeState,
    OrphanVolume,
    Versions,
    VolumeStatus,
)
from tests.control.api.harness import DATASET_1, NODE_A, NODE_B, START, GiB, result_of

__all__ = ["DATASET_1", "NODE_A", "NODE_B", "START", "GiB", "result_of"]


@define
class ClientHarness:
    """A client under test, its clock, and how to deliver pending answers."""

    client: ShoalClient
    clock: Clock
    settle: Callable[[], None] = lambda: None

    def run(self, d: Deferred) -> Any:
        """Deliver what is pending and return ``d``'s result."""
        self.settle()
        return result_of(d)

    def advance(self, seconds: float) -> None:
        """Move time on and deliver what that released."""
        self.clock.advance(seconds)
        self.settle()

    def register(self, node: UUID = NODE_A, host: str = "10.0.0.1", era: str = "e1") -> None:
        """Register a node."""
        self.run(self.client.register_node(node, host, era, {"name": host}, "/shoal"))

    def create(self, primary: UUID = NODE_A, **kw: Any) -> Any:
        """Create a dataset and return it."""
        return self.run(self.client.create_dataset(primary, **kw))

    def report(self, node: UUID, *states: DatasetState, generation: int = 0) -> Any:
        """Report a node's state and return the answer."""
        report = NodeState(node, era="e1", generation=generation, datasets={
            s.dataset_id: s for s in states
        })
        return self.run(self.client.report_state(report))


def mounted(dataset_id: UUID, path: str = "/shoal/x") -> DatasetState:
    """A mounted dataset state."""
    return DatasetState(dataset_id, VolumeStatus.MOUNTED, GiB, "/dev/loop0", path)


class ClientContract:
    """Tests every client passes; subclasses define the ``harness`` fixture."""

    def test_version(self, harness: ClientHarness) -> None:
        """The service reports the Flocker API version it speaks."""
        assert harness.run(harness.client.version()).flocker == FLOCKER_API_VERSION

    def test_empty(self, harness: ClientHarness) -> None:
        """A new cluster has no datasets, at tag '0'."""
        assert harness.run(harness.client.list_datasets()) == ("0", [])

    def test_create_unknown_primary(self, harness: ClientHarness) -> None:
        """Creating on a node that never registered is an InvalidRequest."""
        with pytest.raises(Conflict, match="Unknown primary"):
            harness.create(NODE_A)

    def test_create_and_list(self, harness: ClientHarness) -> None:
        """A created dataset is returned as stored and listed under a new tag."""
        harness.register()
        created = harness.create(maximum_size=GiB, metadata={"name": "db"})
        assert (created.primary, created.maximum_size, created.name) == (NODE_A, GiB, "db")
        tag, datasets = harness.run(harness.client.list_datasets())
        assert (tag, datasets) == ("1", [created])

    def test_create_with_id_conflicts(self, harness: ClientHarness) -> None:
        """An explicit id is kept, and a second create with it is a Conflict."""
        harness.register()
        assert harness.create(dataset_id=DATASET_1).dataset_id == DATASET_1
        with pytest.raises(Conflict):
            harness.create(dataset_id=DATASET_1)

    @pytest.mark.parametrize(
        "kw",
        [{"maximum_size": 1024}, {"maximum_size": GiB + 1}, {"metadata": {"": "x"}},
         {"metadata": {str(i): "v" for i in range(17)}}],
    )
    def test_create_invalid(self, harness: ClientHarness, kw: dict[str, Any]) -> None:
        """Bad sizes and metadata are refused as InvalidRequest."""
        harness.register()
        with pytest.raises(InvalidRequest):
            harness.create(**kw)

    def test_conditional_write(self, harness: ClientHarness) -> None:
        """A write against a stale tag fails; against the current one it succeeds."""
        harness.register()
        harness.create()
        with pytest.raises(PreconditionFailed):
            harness.create(if_tag="0")
        assert harness.create(if_tag="1").primary == NODE_A

    def test_move(self, harness: ClientHarness) -> None:
        """A move changes the primary to another registered node."""
        harness.register()
        harness.register(NODE_B, "10.0.0.2", "e2")
        created = harness.create()
        moved = harness.run(harness.client.move_dataset(created.dataset_id, NODE_B))
        assert (moved.dataset_id, moved.primary) == (created.dataset_id, NODE_B)

    def test_move_refusals(self, harness: ClientHarness) -> None:
        """Moving a missing dataset is NotFound, a deleted one NotAllowed."""
        harness.register()
        with pytest.raises(NotFound):
            harness.run(harness.client.move_dataset(DATASET_1, NODE_A))
        created = harness.create()
        harness.run(harness.client.delete_dataset(created.dataset_id))
        with pytest.raises(NotAllowed):
            harness.run(harness.client.move_dataset(created.dataset_id, NODE_A))

    def test_delete_idempotent(self, harness: ClientHarness) -> None:
        """Deleting marks the dataset deleted, twice over, and it stays listed."""
        harness.register()
        created = harness.create()
        first = harness.run(harness.client.delete_dataset(created.dataset_id))
        again = harness.run(harness.client.delete_dataset(created.dataset_id))
        assert first.deleted and again == first
        assert harness.run(harness.client.list_datasets()).datasets == [first]

    def test_delete_missing(self, harness: ClientHarness) -> None:
        """Deleting a dataset that does not exist is NotFound."""
        with pytest.raises(NotFound):
            harness.run(harness.client.delete_dataset(DATASET_1))

    def test_report_unregistered(self, harness: ClientHarness) -> None:
        """A node must register before it reports."""
        with pytest.raises(NotFound):
            harness.report(NODE_A)

    def test_report_and_state(self, harness: ClientHarness) -> None:
        """A report is a change once; the state lists where the dataset is mounted."""
        harness.register()
        created = harness.create(dataset_id=DATASET_1)
        first = harness.report(NODE_A, mounted(created.dataset_id))
        second = harness.report(NODE_A, mounted(created.dataset_id))
        assert (first.changed, second.changed) == (True, False)
        assert second.versions == first.versions
        assert harness.run(harness.client.list_state_datasets()) == [
            StateDataset(DATASET_1, NODE_A, "/shoal/x", GiB, "/dev/loop0")
        ]

    def test_conditions_listed_with_their_node(self, harness: ClientHarness) -> None:
        """A reported condition comes back whole, with its node, filtered by dataset."""
        harness.register()
        created = harness.create(dataset_id=DATASET_1)
        blocked = Condition(
            DATASET_1, ConditionKind.ERROR, "too_large", "create failed: File too large",
            START, "create", 2, True,
        )
        report = NodeState(NODE_A, era="e1", generation=1, conditions=(blocked,))
        harness.run(harness.client.report_state(report))
        expected = [NodeCondition(NODE_A, blocked)]
        assert harness.run(harness.client.list_conditions()) == expected
        assert harness.run(harness.client.list_conditions(created.dataset_id)) == expected
        assert harness.run(harness.client.list_conditions(NODE_B)) == []

    def test_events_listed_and_paged(self, harness: ClientHarness) -> None:
        """Writes make events; since pages forward, dataset and node filter."""
        harness.register()
        harness.register(NODE_B, "10.0.0.2", "e2")
        harness.create(dataset_id=DATASET_1)
        harness.run(harness.client.move_dataset(DATASET_1, NODE_B))
        found = harness.run(harness.client.list_events(dataset_id=DATASET_1))
        assert [(e.kind, e.node_uuid) for e in found] == [("created", NODE_A), ("moved", NODE_B)]
        assert dict(found[1].details) == {"from": str(NODE_A), "to": str(NODE_B)}
        after = harness.run(harness.client.list_events(since=found[0].event_id, limit=5))
        assert after == found[1:]
        assert harness.run(harness.client.list_events(node_uuid=NODE_A)) == found[:1]

    def test_orphans_listed_and_destroyed(self, harness: ClientHarness) -> None:
        """An orphan a node reports is listed; destroying it answers the deleted record made."""
        harness.register()
        orphan = OrphanVolume("vol-1", DATASET_1, GiB)
        harness.run(harness.client.report_state(
            NodeState(NODE_A, era="e1", generation=0, orphans=[orphan])
        ))
        assert harness.run(harness.client.list_orphans()) == [ReportedOrphan(NODE_A, orphan)]
        record = harness.run(harness.client.destroy_orphan("vol-1"))
        assert (record.dataset_id, record.primary, record.deleted) == (DATASET_1, NODE_A, True)
        assert harness.run(harness.client.list_orphans()) == []
        with pytest.raises(NotFound):
            harness.run(harness.client.destroy_orphan("vol/2"))

    def test_list_nodes_liveness(self, harness: ClientHarness) -> None:
        """A node is live after registering and not live once the timeout has passed."""
        harness.register()
        [info] = harness.run(harness.client.list_nodes())
        assert (info.node.uuid, info.node.host, info.live) == (NODE_A, "10.0.0.1", True)
        assert info.node.last_seen == START and dict(info.node.labels) == {"name": "10.0.0.1"}
        harness.advance(31)
        assert [i.live for i in harness.run(harness.client.list_nodes())] == [False]

    def test_node_by_era(self, harness: ClientHarness) -> None:
        """A node is found by its era; an unknown era is NotFound."""
        harness.register(era="boot-1")
        assert harness.run(harness.client.node_by_era("boot-1")) == NODE_A
        with pytest.raises(NotFound):
            harness.run(harness.client.node_by_era("boot/2"))

    def test_leases(self, harness: ClientHarness) -> None:
        """A lease is created, renewed, listed, refused to others and released."""
        harness.register()
        harness.register(NODE_B, "10.0.0.2", "e2")
        created = harness.create(dataset_id=DATASET_1)
        lease, new = harness.run(harness.client.acquire_lease(DATASET_1, NODE_A, 60))
        assert (lease.node_uuid, lease.expires, new) == (NODE_A, START + 60, True)
        assert harness.run(harness.client.acquire_lease(DATASET_1, NODE_A, None))[1] is False
        assert harness.run(harness.client.list_leases())[0].expires is None
        with pytest.raises(Conflict):
            harness.run(harness.client.acquire_lease(DATASET_1, NODE_B, 60))
        with pytest.raises(Conflict):
            harness.run(harness.client.move_dataset(created.dataset_id, NODE_B))
        released = harness.run(harness.client.release_lease(DATASET_1))
        assert released.node_uuid == NODE_A
        with pytest.raises(NotFound):
            harness.run(harness.client.release_lease(DATASET_1))

    def test_lease_expires(self, harness: ClientHarness) -> None:
        """An expired lease is no longer listed; a non-positive expiry is refused."""
        harness.register()
        harness.create(dataset_id=DATASET_1)
        with pytest.raises(InvalidRequest):
            harness.run(harness.client.acquire_lease(DATASET_1, NODE_A, 0))
        harness.run(harness.client.acquire_lease(DATASET_1, NODE_A, 10))
        harness.advance(11)
        assert harness.run(harness.client.list_leases()) == []

    def test_node_configuration(self, harness: ClientHarness) -> None:
        """A node gets its datasets, those it asks about, and their leases."""
        harness.register()
        harness.register(NODE_B, "10.0.0.2", "e2")
        mine = harness.create(NODE_A)
        other = harness.create(NODE_B)
        harness.run(harness.client.acquire_lease(other.dataset_id, NODE_B, None))
        plain = harness.run(harness.client.node_configuration(NODE_A))
        assert (plain.generation, plain.datasets, plain.leases) == (3, [mine], [])
        asked = harness.run(harness.client.node_configuration(NODE_A, [other.dataset_id]))
        assert sorted(d.dataset_id for d in asked.datasets) == sorted(
            [mine.dataset_id, other.dataset_id], key=str
        )
        assert [x.dataset_id for x in asked.leases] == [other.dataset_id]

    def test_watch_wakes_on_write(self, harness: ClientHarness) -> None:
        """A watch fires as soon as the configuration moves on."""
        harness.register()
        d = harness.client.watch(0, 1, 30)
        harness.settle()
        assert not d.called
        harness.create()
        assert harness.run(d) == Versions(1, 1)

    def test_watch_wakes_on_state(self, harness: ClientHarness) -> None:
        """A watch fires when a node's report changes the state."""
        harness.register()
        d = harness.client.watch(0, 1, 30)
        harness.report(NODE_A)
        assert harness.run(d) == Versions(0, 2)

    def test_watch_times_out(self, harness: ClientHarness) -> None:
        """A watch with nothing changing answers the same counters after its timeout."""
        d = harness.client.watch(0, 0, 5)
        harness.advance(4.9)
        assert not d.called
        harness.advance(0.2)
        assert harness.run(d) == Versions(0, 0)

    def test_watch_past_counters(self, harness: ClientHarness) -> None:
        """A watch on counters already passed answers at once."""
        harness.register()
        assert harness.run(harness.client.watch(0, 0, 30)) == Versions(0, 1)

    def test_watch_timeout_too_long(self, harness: ClientHarness) -> None:
        """A watch longer than the service allows is refused."""
        with pytest.raises(InvalidRequest):
            harness.run(harness.client.watch(0, 0, 301))
