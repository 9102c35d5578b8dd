"""
A simulated cluster for convergence tests: several agents, one fake SAN.

:class:`SimulatedCluster` runs one real :class:`~agent.loop.ConvergenceLoop`
per node, all sharing one :class:`~agent.backends.fake.FakeStorage`, with a
:class:`~control.store.memory.MemoryStore` (through the real client, in memory) as the
control service. Each node pass is one pass of its loop: fetch the node's
configuration, observe, report, calculate, act (synchronously), in the order
the test chooses. :meth:`SimulatedCluster.check_invariants`
asserts the safety properties, and :meth:`SimulatedCluster.converged` whether
the nodes reached the configuration.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from random import Random
from typing import Any
from uuid import UUID, uuid4

from attrs import define, evolve, field
from twisted.python.failure import Failure

from agent.backends.eventual import EventuallyConsistentBlockDeviceAPI
from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage, blockdevice_id_for
from agent.backends.interface import BlockDeviceAPI, BlockDeviceVolume
from agent.changes import Change, NoOp
from agent.discovery import mount_point
from agent.executor import Executor
from agent.fencing import FenceView
from agent.fs.fake import FakeFilesystems
from agent.fs.interface import Mount
from agent.loop import ConvergenceLoop, LoopSettings, NodeFacts
from agent.observe import discover
from agent.policy import ClusterView, calculate_changes
from control.client.http import HTTPClient
from control.client.testing import FlushingClock, MemoryControl
from control.model import MINIMUM_DATASET_SIZE, Condition, Dataset, Fence, Node
from control.runners import synchronous_runner
from control.store.memory import MemoryStore

MARKER = "shoal-marker"
DATASET_BACKOFF = 0.5
"""Seconds a failing dataset waits in the simulation: passes are a second apart, so a failed
dataset sits out at most one pass."""


class InvariantViolated(AssertionError):
    """A safety property of the agents does not hold."""


@define
class SimulatedNode:
    """One agent: its identity, its era, and its view of the shared storage."""

    node_uuid: UUID
    instance_id: str
    era: str
    backend: BlockDeviceAPI
    filesystems: FakeFilesystems
    truth: FakeBlockDeviceAPI
    executor: Executor
    loop: ConvergenceLoop


@define
class SimulatedCluster:
    """
    ``node_count`` agents over one fake SAN, optionally eventually consistent.

    ``lag`` wraps every node's backend in an
    :class:`~agent.backends.eventual.EventuallyConsistentBlockDeviceAPI`.
    ``shuffle``, if given, orders the nodes' passes of every round at random.
    ``failures`` collects the condition of every failed change (the loop backs
    the dataset off and a later pass retries it). Each node runs a real
    :class:`~agent.loop.ConvergenceLoop`, one pass at a time
    (:meth:`~agent.loop.ConvergenceLoop.one_pass`), over the real client in memory on
    the shared store.
    """

    node_count: int
    lag: int = 0
    shuffle: Random | None = None
    mount_root: str = "/shoal"
    cluster_id: UUID = field(factory=uuid4)
    storage: FakeStorage = field(factory=FakeStorage)
    store: MemoryStore = field(factory=MemoryStore)
    now: float = 1_000_000.0
    nodes: list[SimulatedNode] = field(factory=list)
    failures: list[Condition] = field(factory=list)
    _seen_attempts: dict[Condition, int] = field(factory=dict)
    markers: dict[UUID, bytes] = field(factory=dict)
    volume_of: dict[UUID, str] = field(factory=dict)
    deleted: set[UUID] = field(factory=set)
    clock: FlushingClock = field(factory=FlushingClock)
    client: HTTPClient = field(init=False)
    _eras: int = 0

    def __attrs_post_init__(self) -> None:
        self.clock.advance(self.now)
        self.client = MemoryControl(clock=self.clock, store=self.store).client
        for index in range(self.node_count):
            node_uuid = UUID(int=index + 1)
            self.nodes.append(self._boot(node_uuid, str(node_uuid)))

    def _boot(self, node_uuid: UUID, instance_id: str) -> SimulatedNode:
        self._eras += 1
        era = f"era-{self._eras}"
        truth = FakeBlockDeviceAPI(self.storage, self.cluster_id, instance_id)
        backend: BlockDeviceAPI = truth
        if self.lag:
            backend = EventuallyConsistentBlockDeviceAPI(truth, self.lag)
        self.store.register_node(
            Node(
                uuid=node_uuid,
                host=instance_id,
                era=era,
                last_seen=self.now,
                mount_root=self.mount_root,
            )
        )
        filesystems = FakeFilesystems(self.storage, instance_id)
        executor = Executor(backend, filesystems, synchronous_runner)
        loop = ConvergenceLoop(
            self.client,
            self.clock,
            NodeFacts(node_uuid, instance_id, era),
            executor,
            LoopSettings(
                mount_root=self.mount_root,
                dataset_backoff_initial=DATASET_BACKOFF,
                dataset_backoff_cap=DATASET_BACKOFF,
            ),
            random=lambda: 0.5,
            run_blocking=synchronous_runner,
        )
        return SimulatedNode(
            node_uuid, instance_id, era, backend, filesystems, truth, executor, loop
        )

    # -- the operator --------------------------------------------------------

    def create(self, primary: int, maximum_size: int | None = MINIMUM_DATASET_SIZE) -> UUID:
        """Create a dataset on node number ``primary``; returns its id."""
        dataset = Dataset(uuid4(), self.nodes[primary].node_uuid, maximum_size=maximum_size)
        self.store.create_dataset(dataset, None)
        return dataset.dataset_id

    def move(self, dataset_id: UUID, primary: int) -> None:
        """Make node number ``primary`` the dataset's primary."""
        self.store.move_dataset(dataset_id, self.nodes[primary].node_uuid, None, self.now)

    def delete(self, dataset_id: UUID) -> None:
        """Delete the dataset."""
        self.store.delete_dataset(dataset_id, None, self.now)
        self.deleted.add(dataset_id)

    def reboot(self, index: int, lose_attachments: bool = False) -> None:
        """Reboot node ``index``: new era, mounts gone, devices (or attachments) gone."""
        node = self.nodes[index]
        with self.storage.lock:
            for volume in list(self.storage.volumes.values()):
                if volume.attached_to != node.instance_id:
                    continue
                if lose_attachments:
                    self.storage.volumes[volume.blockdevice_id] = _detached(volume)
                else:
                    self.storage.lose_device(volume.blockdevice_id)
        self.nodes[index] = self._boot(node.node_uuid, node.instance_id)

    # -- the agents ----------------------------------------------------------

    def pass_node(self, index: int) -> Change:
        """One pass of node ``index``'s real loop (fetch, observe, report, calculate, act),
        woken as by the watch with the store's current versions; returns the changes it ran."""
        node = self.nodes[index]
        self.now += 1.0
        self.clock.advance(self.now - self.clock.seconds())
        done: list[Any] = []
        node.loop.one_pass(self.store.versions()).addBoth(done.append)
        if not done:
            raise InvariantViolated(f"the pass of node {index} did not finish synchronously")
        if isinstance(done[0], Failure):
            done[0].raiseException()
        for failing in node.loop.memory.troubles.failing.values():
            if failing.condition.attempts > self._seen_attempts.get(failing.condition, 0):
                self.failures.append(failing.condition)
                self._seen_attempts[failing.condition] = failing.condition.attempts
        return done[0]

    def round(self, order: Iterable[int] | None = None, check: bool = True) -> list[Change]:
        """One pass of every node (in ``order``), checking the invariants after each."""
        done = []
        if order is None:
            order = list(range(self.node_count))
            if self.shuffle is not None:
                self.shuffle.shuffle(order)
        for index in order:
            done.append(self.pass_node(index))
            if check:
                self.check_invariants()
        return done

    def converge(self, max_rounds: int) -> int:
        """Run rounds until converged and idle; returns how many, or raises."""
        for rounds in range(max_rounds + 1):
            if self.converged():
                return rounds
            self.round()
        raise InvariantViolated(
            f"not converged after {max_rounds} rounds: {self.divergence()}; "
            f"failures: {self.failures[-3:]}"
        )

    # -- observations --------------------------------------------------------

    def _volumes(self) -> list[BlockDeviceVolume]:
        with self.storage.lock:
            return [v for v in self.storage.volumes.values() if v.cluster_id == self.cluster_id]

    def _fenced_mount(self, node: SimulatedNode, mount: Mount) -> bool:
        """Whether a mount can no longer write: shut down, or its volume fenced from the node."""
        fenced = (self.cluster_id, node.instance_id, blockdevice_id_for(mount.device) or "")
        return node.filesystems.is_shut_down(mount.path) or fenced in self.storage.fenced

    def _mounted(self) -> dict[tuple[int, str], UUID]:
        """(node index, path) -> dataset id of every writable mount of a cluster volume.

        Mounts a fence made unwritable (shut down, or of a volume fenced away
        from the node) are left out: they are leftovers to clean up, not writers.
        """
        by_id = {v.blockdevice_id: v for v in self._volumes()}
        found = {}
        for index, node in enumerate(self.nodes):
            for mount in node.filesystems.mounts():
                if self._fenced_mount(node, mount):
                    continue
                volume = by_id.get(blockdevice_id_for(mount.device) or "")
                if volume is None:
                    raise InvariantViolated(f"{mount} on node {index} has no volume")
                if volume.attached_to != node.instance_id:
                    raise InvariantViolated(
                        f"{mount} on node {index}: volume attached to {volume.attached_to}"
                    )
                found[(index, mount.path)] = volume.dataset_id
        return found

    def check_invariants(self) -> None:
        """Raise :class:`InvariantViolated` unless every safety property holds."""
        mounted = self._mounted()
        nodes_per_dataset = Counter(
            dataset for dataset, _ in {(d, i) for (i, _), d in mounted.items()}
        )
        twice = [d for d, count in nodes_per_dataset.items() if count > 1]
        if twice:
            raise InvariantViolated(f"mounted on two nodes: {twice}")
        volumes = self._volumes()
        duplicates = [d for d, n in Counter(v.dataset_id for v in volumes).items() if n > 1]
        if duplicates:
            raise InvariantViolated(f"several volumes for datasets {duplicates}")
        existing = {v.blockdevice_id for v in volumes}
        for dataset_id, blockdevice_id in self.volume_of.items():
            if dataset_id not in self.deleted and blockdevice_id not in existing:
                raise InvariantViolated(f"volume {blockdevice_id} of live {dataset_id} destroyed")
        self.volume_of.update({v.dataset_id: v.blockdevice_id for v in volumes})
        self._check_markers(mounted)

    def _check_markers(self, mounted: dict[tuple[int, str], UUID]) -> None:
        for (index, path), dataset_id in mounted.items():
            fs = self.nodes[index].filesystems
            marker = f"{path}/{MARKER}"
            if dataset_id in self.markers:
                if fs.read_file(marker) != self.markers[dataset_id]:
                    raise InvariantViolated(f"data of {dataset_id} changed")
            else:
                self.markers[dataset_id] = f"data of {dataset_id}".encode()
                fs.write_file(marker, self.markers[dataset_id])

    def divergence(self) -> list[str]:
        """What still differs from the configuration (empty once converged)."""
        config = self.store.configuration(self.now)
        volumes = {v.dataset_id: v for v in self._volumes()}
        mounted = self._mounted()
        problems = [
            f"record of deleted {d} not purged" for d in config.datasets if d in self.deleted
        ]
        problems += [f"volume of deleted {d} remains" for d in volumes if d in self.deleted]
        problems += [f"unexpected mount {key}" for key, d in mounted.items() if d in self.deleted]
        for dataset in config.datasets.values():
            if dataset.deleted:
                continue
            index = next(i for i, n in enumerate(self.nodes) if n.node_uuid == dataset.primary)
            path = mount_point(self.mount_root, dataset.dataset_id)
            if mounted.get((index, path)) != dataset.dataset_id:
                problems.append(f"{dataset.dataset_id} not mounted on node {index}")
            others = [k for k, d in mounted.items() if d == dataset.dataset_id and k[0] != index]
            problems += [f"{dataset.dataset_id} still mounted at {k}" for k in others]
        return problems

    def converged(self) -> bool:
        """Whether every node reached the configuration and no agent would act."""
        return not self.divergence() and all(
            isinstance(self._would_do(i), NoOp) for i in range(self.node_count)
        )

    def _would_do(self, index: int) -> Change:
        """What node ``index`` would do given the true (not lagging) backend state."""
        node = self.nodes[index]
        _, records = self.store.datasets_for_node(node.node_uuid, node.loop.memory.also)
        desired = {record.dataset_id: record for record in records}
        local = discover(node.truth, node.filesystems, self.mount_root, node.instance_id)
        view = ClusterView(node.node_uuid, fence=self.fence_view(index))
        return calculate_changes(desired, view, local, node.instance_id, self.mount_root)

    def fence_view(self, index: int) -> FenceView:
        """What node ``index`` is told of fencing (its lease is not simulated here)."""
        fenced = {n.uuid for n in self.store.nodes() if n.fence is not None}
        return FenceView(
            fenced=self.nodes[index].node_uuid in fenced,
            fenced_nodes=frozenset(str(uuid) for uuid in fenced),
        )

    # -- failover (docs/failover.md) ------------------------------------------

    def fence(self, index: int, reason: str = "simulated failure") -> None:
        """Fence node ``index`` as the control service's failover does."""
        fence = Fence(at=self.now, reason=reason, actor="failover", automatic=False)
        self.store.fence_node(self.nodes[index].node_uuid, fence)

    def fail_over(self, dataset_id: UUID, to: int) -> None:
        """Give the dataset to node ``to`` as a failover does (its primary must be fenced)."""
        record = self.store.dataset(dataset_id)
        assert record is not None
        moved = self.store.fail_over(
            dataset_id,
            record.primary,
            self.nodes[to].node_uuid,
            self.now,
            actor="failover",
            reason="simulated",
        )
        assert moved is not None, "the failover rule refused: is the primary fenced?"


def _detached(volume: BlockDeviceVolume) -> BlockDeviceVolume:
    return evolve(volume, attached_to=None)
