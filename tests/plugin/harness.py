"""A two-node cluster for plugin tests: the real API in memory, a clock and two fake agents."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any
from uuid import UUID

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from control.client.http import HTTPClient
from control.client.testing import FlushingClock, MemoryControl, result_of
from control.model import Dataset
from control.runners import synchronous_runner
from plugin.testing import FakeAgent, MemoryMounts
from plugin.volumes import VolumeService

NODE1 = UUID("11111111-1111-1111-1111-111111111111")
NODE2 = UUID("22222222-2222-2222-2222-222222222222")
START = 1_700_000_000.0
MOUNT_TIMEOUT = 60.0


def start(coroutine: Coroutine[Any, Any, Any]) -> Deferred[Any]:
    """Run a coroutine as a Deferred."""
    return Deferred.fromCoroutine(coroutine)


def result(coroutine_or_deferred: Any) -> Any:
    """The result of work that must already have finished."""
    d = coroutine_or_deferred
    return result_of(d if isinstance(d, Deferred) else start(d))


def failure(d: Deferred[Any]) -> BaseException:
    """The exception a finished Deferred failed with."""
    outcome: list[Any] = []
    d.addBoth(outcome.append)
    assert outcome, "the operation has not finished"
    assert isinstance(outcome[0], Failure), f"expected a failure, got {outcome[0]!r}"
    return outcome[0].value


@define
class Cluster:
    """Two registered nodes, their agents and a plugin service on each."""

    clock: FlushingClock
    control: MemoryControl
    agents: dict[UUID, FakeAgent]
    mounts: dict[UUID, MemoryMounts] = field(factory=dict)

    @property
    def client(self) -> HTTPClient:
        """The real client of the in-memory control service."""
        return self.control.client
    services: dict[UUID, VolumeService] = field(factory=dict)

    def service(self, node: UUID, mounts: Any = None) -> VolumeService:
        """A (new) plugin service on ``node``, over its mount store."""
        if mounts is None:
            mounts = self.mounts.setdefault(node, MemoryMounts())
        service = VolumeService(
            self.client,
            lambda: node,
            self.clock,
            mounts,
            self.agents[node].guard(),
            mount_timeout=MOUNT_TIMEOUT,
            run_blocking=synchronous_runner,
        )
        self.services[node] = service
        return service

    def converge(self, *nodes: UUID) -> None:
        """Let the agents of ``nodes`` act, in that order."""
        for node in nodes:
            result(self.agents[node].converge())

    def datasets(self) -> list[Dataset]:
        """Every live dataset in the configuration."""
        return [d for d in result(self.client.list_datasets()).datasets if not d.deleted]

    def lease_holder(self, dataset_id: UUID) -> UUID | None:
        """Which node holds the lease on ``dataset_id``."""
        leases = result(self.client.list_leases())
        return next((le.node_uuid for le in leases if le.dataset_id == dataset_id), None)

    def mounted_on(self, dataset_id: UUID) -> list[UUID]:
        """The nodes whose latest report has ``dataset_id`` mounted."""
        reports = self.control.store.cluster_state().reports.values()
        return [r.node_uuid for r in reports if dataset_id in r.datasets]


def make_cluster(client_class: type[HTTPClient] = HTTPClient) -> Cluster:
    """A fresh cluster with node1 and node2 registered (``client_class`` may wrap calls)."""
    clock = FlushingClock()
    clock.advance(START)
    control = MemoryControl(clock, client_class=client_class)
    client = control.client
    agents = {
        node: FakeAgent(client, node, name, f"/mnt/{name}")
        for node, name in ((NODE1, "node1"), (NODE2, "node2"))
    }
    for agent in agents.values():
        result(agent.register())
    cluster = Cluster(clock, control, agents)
    cluster.service(NODE1)
    cluster.service(NODE2)
    return cluster
