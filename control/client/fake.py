"""
:class:`FakeClient`: an in-memory :class:`~control.client.interface.ShoalClient`.

It builds the same request bodies as the HTTP client, checks them against the
API's own schemas, applies them to a store (which applies the pure rules of
:mod:`control.rules`), and passes answers through the same JSON conversion
as the API, so callers see the same values and the same errors as over HTTP.
Its ``watch`` uses the API's :class:`~control.api.watch.Notifier` driven by
the injected clock. Both clients pass ``tests/control/client/suite.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast
from uuid import UUID, uuid4

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.task import Clock

from control import FLOCKER_API_VERSION, __version__
from control.api import schemas
from control.api.app import WATCH_MAXIMUM
from control.api.body import query_seconds, validate
from control.api.watch import Notifier, ReactorTime
from control.client import messages
from control.client.interface import (
    DatasetListing,
    LeaseGrant,
    NodeConfiguration,
    NodeInfo,
    Reported,
    ReportedOrphan,
    ServiceVersion,
    StateDataset,
)
from control.errors import NotFound
from control.model import Dataset, Lease, Node, NodeState, Versions
from control.rules import reported_orphans
from control.store.interface import Store
from control.store.memory import MemoryStore
from control.wire import (
    dataset_from_json,
    dataset_to_json,
    lease_from_json,
    lease_to_json,
    node_from_json,
    node_state_from_json,
    node_state_to_json,
    node_to_json,
    state_datasets_to_json,
)


def _same_as_wire(dataset: Dataset) -> Dataset:
    return dataset_from_json(dataset_to_json(dataset))


class FakeClient:
    """A :class:`ShoalClient` over ``store`` (a fresh :class:`MemoryStore` by default)."""

    def __init__(
        self,
        store: Store | None = None,
        clock: ReactorTime | None = None,
        node_timeout: float = 30.0,
        new_uuid: Callable[[], UUID] = uuid4,
    ) -> None:
        self.store = store if store is not None else MemoryStore()
        self.clock: ReactorTime = clock if clock is not None else cast(ReactorTime, Clock())
        self.node_timeout = node_timeout
        self._new_uuid = new_uuid
        self._notifier = Notifier(self.clock, lambda: succeed(self.store.versions()))

    def _now(self) -> float:
        return float(self.clock.seconds())

    def _write(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Run a write, then wake the watchers it concerns."""

        def wrote(result: Any) -> Any:
            self._notifier.check()
            return result

        return maybeDeferred(f, *args).addCallback(wrote)

    def version(self) -> Deferred[ServiceVersion]:
        """See :meth:`ShoalClient.version`."""
        return succeed(ServiceVersion(flocker=FLOCKER_API_VERSION, shoal=__version__))

    def list_datasets(self) -> Deferred[DatasetListing]:
        """See :meth:`ShoalClient.list_datasets`."""
        return maybeDeferred(self._list_datasets)

    def _list_datasets(self) -> DatasetListing:
        configuration = self.store.configuration(self._now())
        datasets = sorted(configuration.datasets.values(), key=lambda d: str(d.dataset_id))
        return DatasetListing(configuration.tag, [_same_as_wire(d) for d in datasets])

    def create_dataset(
        self,
        primary: UUID,
        maximum_size: int | None = None,
        metadata: Mapping[str, str] | None = None,
        dataset_id: UUID | None = None,
        if_tag: str | None = None,
    ) -> Deferred[Dataset]:
        """See :meth:`ShoalClient.create_dataset`."""
        body = messages.create_dataset_body(primary, maximum_size, metadata, dataset_id)
        return self._write(self._create, body, if_tag)

    def _create(self, body: dict[str, Any], if_tag: str | None) -> Dataset:
        validate(body, schemas.CREATE_DATASET)
        dataset_id = body.get("dataset_id") or str(self._new_uuid())
        dataset = dataset_from_json({**body, "dataset_id": dataset_id})
        return _same_as_wire(self.store.create_dataset(dataset, if_tag)[0])

    def move_dataset(
        self, dataset_id: UUID, primary: UUID, if_tag: str | None = None
    ) -> Deferred[Dataset]:
        """See :meth:`ShoalClient.move_dataset`."""
        body = messages.move_dataset_body(primary)
        return self._write(self._move, dataset_id, body, if_tag)

    def _move(self, dataset_id: UUID, body: dict[str, Any], if_tag: str | None) -> Dataset:
        validate(body, schemas.MOVE_DATASET)
        primary = UUID(body["primary"])
        moved = self.store.move_dataset(dataset_id, primary, if_tag, self._now())[0]
        return _same_as_wire(moved)

    def delete_dataset(self, dataset_id: UUID, if_tag: str | None = None) -> Deferred[Dataset]:
        """See :meth:`ShoalClient.delete_dataset`."""
        return self._write(self._delete, dataset_id, if_tag)

    def _delete(self, dataset_id: UUID, if_tag: str | None) -> Dataset:
        return _same_as_wire(self.store.delete_dataset(dataset_id, if_tag, self._now())[0])

    def list_state_datasets(self) -> Deferred[list[StateDataset]]:
        """See :meth:`ShoalClient.list_state_datasets`."""
        return maybeDeferred(
            lambda: [
                messages.state_dataset_from_json(o)
                for o in state_datasets_to_json(self.store.cluster_state())
            ]
        )

    def list_nodes(self) -> Deferred[list[NodeInfo]]:
        """See :meth:`ShoalClient.list_nodes`."""
        return maybeDeferred(self._list_nodes)

    def _list_nodes(self) -> list[NodeInfo]:
        now = self._now()
        nodes = sorted(self.store.nodes(), key=lambda n: str(n.uuid))
        return [
            messages.node_info_from_json(node_to_json(n, now, self.node_timeout)) for n in nodes
        ]

    def node_by_era(self, era: str) -> Deferred[UUID]:
        """See :meth:`ShoalClient.node_by_era`."""
        return maybeDeferred(self._node_by_era, era)

    def _node_by_era(self, era: str) -> UUID:
        node = self.store.node_by_era(era)
        if node is None:
            raise NotFound(f"No registered node is in era {era[:80]!r}.")
        return node.uuid

    def list_leases(self) -> Deferred[list[Lease]]:
        """See :meth:`ShoalClient.list_leases`."""
        return maybeDeferred(self._list_leases)

    def _leases(self, now: float, only: Iterable[UUID] | None = None) -> list[Lease]:
        leases = list(self.store.configuration(now).live_leases(now).values())
        if only is not None:
            wanted = set(only)
            leases = [lease for lease in leases if lease.dataset_id in wanted]
        ordered = sorted(leases, key=lambda lease: str(lease.dataset_id))
        return [lease_from_json(lease_to_json(lease, now), now) for lease in ordered]

    def _list_leases(self) -> list[Lease]:
        return self._leases(self._now())

    def acquire_lease(
        self, dataset_id: UUID, node_uuid: UUID, expires: float | None
    ) -> Deferred[LeaseGrant]:
        """See :meth:`ShoalClient.acquire_lease`."""
        body = messages.acquire_lease_body(dataset_id, node_uuid, expires)
        return self._write(self._acquire, body)

    def _acquire(self, body: dict[str, Any]) -> LeaseGrant:
        validate(body, schemas.ACQUIRE_LEASE)
        now = self._now()
        wanted = lease_from_json(body, now)
        lease, created, _ = self.store.acquire_lease(wanted, None, now)
        return LeaseGrant(lease_from_json(lease_to_json(lease, now), now), created)

    def release_lease(self, dataset_id: UUID) -> Deferred[Lease]:
        """See :meth:`ShoalClient.release_lease`."""
        return self._write(self._release, dataset_id)

    def _release(self, dataset_id: UUID) -> Lease:
        now = self._now()
        lease = self.store.release_lease(dataset_id, None, now)[0]
        return lease_from_json(lease_to_json(lease, now), now)

    def register_node(
        self,
        node_uuid: UUID,
        host: str,
        era: str | None,
        labels: Mapping[str, str],
        mount_root: str | None = None,
    ) -> Deferred[Node]:
        """See :meth:`ShoalClient.register_node`."""
        body = messages.register_node_body(host, era, labels, mount_root)
        return self._write(self._register, node_uuid, body)

    def _register(self, node_uuid: UUID, body: dict[str, Any]) -> Node:
        validate(body, schemas.REGISTER_NODE)
        node = Node(
            uuid=node_uuid,
            host=body["host"],
            era=body.get("era"),
            labels=body.get("labels") or {},
            last_seen=self._now(),
            mount_root=body.get("mount_root"),
        )
        stored = self.store.register_node(node)
        return node_from_json(node_to_json(stored, self._now(), self.node_timeout))

    def report_state(self, state: NodeState) -> Deferred[Reported]:
        """See :meth:`ShoalClient.report_state`."""
        return self._write(self._report, state.node_uuid, node_state_to_json(state))

    def _report(self, node_uuid: UUID, body: dict[str, Any]) -> Reported:
        validate(body, schemas.REPORT_STATE)
        report = node_state_from_json(node_uuid, body, self._now())
        changed = self.store.report_state(report)
        return Reported(changed, self.store.versions())

    def node_configuration(
        self, node_uuid: UUID, also: Iterable[UUID] = ()
    ) -> Deferred[NodeConfiguration]:
        """See :meth:`ShoalClient.node_configuration`."""
        return maybeDeferred(self._node_configuration, node_uuid, frozenset(also))

    def _node_configuration(self, node_uuid: UUID, also: frozenset[UUID]) -> NodeConfiguration:
        generation, datasets = self.store.datasets_for_node(node_uuid, also)
        ordered = sorted(datasets, key=lambda d: str(d.dataset_id))
        leases = self._leases(self._now(), (d.dataset_id for d in ordered))
        return NodeConfiguration(generation, [_same_as_wire(d) for d in ordered], leases)

    def list_orphans(self) -> Deferred[list[ReportedOrphan]]:
        """See :meth:`ShoalClient.list_orphans`."""

        def listing() -> list[ReportedOrphan]:
            reports = self.store.cluster_state().reports.values()
            datasets = self.store.configuration(self._now()).datasets
            return [ReportedOrphan(*found) for found in reported_orphans(reports, datasets)]

        return maybeDeferred(listing)

    def destroy_orphan(self, blockdevice_id: str, if_tag: str | None = None) -> Deferred[Dataset]:
        """See :meth:`ShoalClient.destroy_orphan`."""
        return self._write(
            lambda: _same_as_wire(self.store.destroy_orphan(blockdevice_id, if_tag)[0])
        )

    def watch(self, configuration: int, state: int, timeout: float) -> Deferred[Versions]:
        """See :meth:`ShoalClient.watch`."""
        return maybeDeferred(self._watch, configuration, state, timeout)

    def _watch(self, configuration: int, state: int, timeout: float) -> Deferred[Versions]:
        timeout = query_seconds({"timeout": f"{timeout:g}"}, "timeout", timeout, WATCH_MAXIMUM)
        return self._notifier.wait(configuration, state, timeout)
