"""The loop's fencing (docs/failover.md): self-fencing on a simulated clock, failovers."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from attrs import define, field
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from twisted.internet.defer import Deferred, fail

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.changes import AttachVolume, FenceVolume, leaves
from agent.discovery import mount_point
from agent.executor import Executor
from agent.fs.fake import FakeFilesystems
from agent.fs.interface import FilesystemError
from agent.lifecycle import Phase
from agent.loop import ConvergenceLoop, LoopSettings, NodeFacts
from agent.testing import SimulatedCluster
from control.client.testing import FlushingClock, MemoryControl
from control.runners import synchronous_runner
from tests.agent.test_loop import CLUSTER, ROOT, Node, World

LEASE = 5.0
"""The node lease the control service gives with its default grace (10 s)."""


@define
class Partition:
    """A client that fails every call while ``cut`` (a network partition), else forwards."""

    inner: Any
    cut: bool = False
    calls: list[str] = field(factory=list)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Deferred:
            self.calls.append(name)
            if self.cut:
                return fail(ConnectionRefusedError("partitioned"))
            return method(*args, **kwargs)

        return call


def partitioned_node(world: World, self_fence: bool = True) -> tuple[Node, Partition]:
    """A started agent whose calls to the control service go through a :class:`Partition`."""
    node_uuid = UUID(int=1)
    backend = FakeBlockDeviceAPI(world.storage, CLUSTER, str(node_uuid))
    filesystems = FakeFilesystems(world.storage, str(node_uuid))
    partition = Partition(world.control.client)
    loop = ConvergenceLoop(
        partition,  # type: ignore[arg-type]
        world.clock,
        NodeFacts(node_uuid, "host0", "era-0"),
        Executor(backend, filesystems, synchronous_runner),
        LoopSettings(mount_root=ROOT, heartbeat=5.0, self_fence=self_fence),
        random=world.random,
        run_blocking=synchronous_runner,
    )
    loop.start()
    return Node(loop, backend, filesystems), partition


def advance(world: World, seconds: float, step: float = 0.1) -> None:
    """Let ``seconds`` pass on the simulated clock, in small steps (timers fire in order)."""
    end = world.clock.seconds() + seconds
    while world.clock.seconds() < end - 1e-9:
        world.clock.advance(min(step, end - world.clock.seconds()))


def create(world: World, node: Node) -> UUID:
    """Create a dataset on ``node`` through the control service."""
    created: list[Any] = []
    world.control.client.create_dataset(node.uuid, 64 * 2**20).addCallback(created.append)
    return created[0].dataset_id


def test_partitioned_node_fences_itself_within_its_lease():
    """Cut off, the agent keeps its mount until the lease (from its last successful report)
    runs out, then shuts it down and unmounts it, and says why."""
    world = World()
    node, partition = partitioned_node(world)
    dataset_id = create(world, node)
    path = mount_point(ROOT, dataset_id)
    assert node.mounted(dataset_id)
    node.filesystems.write_file(f"{path}/kept", b"before")
    advance(world, 1.0)
    renewed = node.loop.memory.lease.renewed_at
    assert renewed is not None and node.loop.memory.lease.length == LEASE
    partition.cut = True
    advance(world, renewed + LEASE - world.clock.seconds() - 0.05)
    assert node.mounted(dataset_id) and not node.loop.memory.self_fenced
    with capture_logs() as logs:
        advance(world, 0.1)
    assert not node.mounted(dataset_id) and node.loop.memory.self_fenced
    fenced = [e for e in logs if e["event"] == "agent.self_fence"]
    assert fenced and "node lease 5.0 s" in fenced[0]["reason"]
    assert fenced[0]["log_level"] == "warning"
    shut = [e for e in logs if e["event"] == "agent.fence.shutdown"]
    assert [e["path"] for e in shut] == [path]
    with pytest.raises(FilesystemError):
        node.filesystems.write_file(f"{path}/after", b"lost")


def test_self_fenced_node_mounts_nothing_until_a_report_succeeds():
    """While cut off it never mounts again; once the service answers, it mounts the data."""
    world = World()
    node, partition = partitioned_node(world)
    dataset_id = create(world, node)
    node.filesystems.write_file(f"{mount_point(ROOT, dataset_id)}/kept", b"before")
    partition.cut = True
    advance(world, 30.0)
    assert not node.mounted(dataset_id)
    assert node.loop.memory.self_fenced
    partition.cut = False
    advance(world, 15.0)
    assert node.mounted(dataset_id)
    assert not node.loop.memory.self_fenced
    assert node.filesystems.read_file(f"{mount_point(ROOT, dataset_id)}/kept") == b"before"
    reports = world.control.store.cluster_state().reports[node.uuid]
    assert dataset_id in reports.datasets


def test_self_fence_is_reported_once_the_service_answers():
    """The first report after a self-fence carries a node condition saying so."""
    world = World()
    node, partition = partitioned_node(world)
    create(world, node)
    partition.cut = True
    advance(world, 8.0)
    assert node.loop.memory.self_fenced
    seen = []
    real_report = world.control.client.report_state

    def report_state(report: Any) -> Deferred:
        seen.append(report)
        return real_report(report)

    world.control.client.report_state = report_state  # type: ignore[method-assign]
    partition.cut = False
    advance(world, 15.0)
    reasons = [[c.reason for c in r.conditions if c.dataset_id is None] for r in seen]
    assert ["self_fenced"] in reasons
    assert reasons[-1] == []


def test_self_fencing_can_be_turned_off():
    """With self-fencing off, a partitioned agent keeps its mounts."""
    world = World()
    node, partition = partitioned_node(world, self_fence=False)
    dataset_id = create(world, node)
    partition.cut = True
    advance(world, 30.0)
    assert node.mounted(dataset_id)
    assert not node.loop.memory.self_fenced


def test_reports_keep_the_lease_alive():
    """Connected, the agent reports at the service's heartbeat and never fences itself."""
    world = World()
    node, partition = partitioned_node(world)
    dataset_id = create(world, node)
    mark = len(partition.calls)
    advance(world, 60.0, step=0.5)
    assert node.mounted(dataset_id) and not node.loop.memory.self_fenced
    assert partition.calls[mark:].count("report_state") >= 60 / 2.0 - 1
    assert node.loop.phase is Phase.WAITING


# -- failover with the simulated cluster ---------------------------------------


def test_failover_fences_the_old_node_and_keeps_the_data():
    """After a fence and a failover, the new primary fences the old attachment and mounts the
    data; the old node's writes fail, and once it sees its fence it cleans up its leftover."""
    cluster = SimulatedCluster(2)
    dataset_id = cluster.create(0)
    cluster.converge(10)
    path = mount_point(cluster.mount_root, dataset_id)
    old, new = cluster.nodes
    old.filesystems.write_file(f"{path}/kept", b"before the failover")
    cluster.fence(0)
    cluster.fail_over(dataset_id, 1)
    epoch = cluster.store.dataset(dataset_id).epoch
    done = list(leaves(cluster.pass_node(1)))
    fence = [leaf for leaf in done if isinstance(leaf, FenceVolume)]
    attach = [leaf for leaf in done if isinstance(leaf, AttachVolume)]
    assert [f.node for f in fence] == [old.instance_id]
    assert [a.epoch for a in attach] == [epoch]
    cluster.check_invariants()
    with pytest.raises(FilesystemError):
        old.filesystems.write_file(f"{path}/zombie", b"lost")
    cluster.converge(10)
    assert new.filesystems.read_file(f"{path}/kept") == b"before the failover"
    assert old.filesystems.mounts() == []
    assert old.truth.fenced_leftovers() == []
    assert "zombie" not in cluster.storage.files[cluster.volume_of[dataset_id]]


def test_fenced_node_lets_go_of_a_volume_still_attached():
    """A fenced node whose dataset moved before anyone fenced its attachment shuts the
    filesystem down, unmounts and detaches it itself; the new primary then takes it."""
    cluster = SimulatedCluster(2)
    dataset_id = cluster.create(0)
    cluster.converge(10)
    cluster.fence(0)
    cluster.fail_over(dataset_id, 1)
    changes = cluster.pass_node(0)
    assert cluster.nodes[0].filesystems.mounts() == []
    (fenced,) = [n for n in cluster.store.nodes() if n.fence is not None]
    assert fenced.uuid == cluster.nodes[0].node_uuid and fenced.fence.rejoined_at is not None
    assert {type(leaf).__name__ for leaf in leaves(changes)} >= {
        "ShutDownFilesystem",
        "UnmountFilesystem",
        "DetachVolume",
    }
    cluster.converge(10)
    assert cluster.divergence() == []


operations = st.lists(
    st.one_of(
        st.tuples(st.just("pass"), st.integers(0, 2)),
        st.tuples(st.just("fail_over"), st.integers(0, 2)),
    ),
    max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_no_two_writers_in_any_interleaving(steps):
    """Whatever the order of passes, fences and failovers, no dataset is ever writable on two
    nodes, no data is lost, and the cluster converges once the agents run."""
    cluster = SimulatedCluster(3)
    dataset_id = cluster.create(0)
    for kind, index in steps:
        if kind == "pass":
            cluster.pass_node(index)
        else:
            record = cluster.store.dataset(dataset_id)
            holder = next(i for i, n in enumerate(cluster.nodes) if n.node_uuid == record.primary)
            fenced = {n.uuid for n in cluster.store.nodes() if n.fence is not None}
            if holder == index or cluster.nodes[index].node_uuid in fenced:
                continue
            cluster.fence(holder)
            cluster.fail_over(dataset_id, index)
        cluster.check_invariants()
    cluster.converge(15)
    cluster.check_invariants()


# -- the whole story, with the control service's failover running -------------------


def _agent(control: MemoryControl, storage: FakeStorage, index: int, client: Any) -> Node:
    """A started agent number ``index`` on ``storage``, calling the service through ``client``."""
    node_uuid = UUID(int=index + 1)
    backend = FakeBlockDeviceAPI(storage, CLUSTER, str(node_uuid))
    filesystems = FakeFilesystems(storage, str(node_uuid))
    loop = ConvergenceLoop(
        client,
        control.clock,  # type: ignore[arg-type]
        NodeFacts(node_uuid, f"host{index}", f"era-{index}"),
        Executor(backend, filesystems, synchronous_runner),
        LoopSettings(mount_root=ROOT, heartbeat=5.0),
        random=lambda: 0.5,
        run_blocking=synchronous_runner,
    )
    loop.start()
    return Node(loop, backend, filesystems)


def test_partitioned_primary_fails_over_and_rejoins_clean():
    """A primary cut off from the service fences itself, is fenced and failed over after the
    grace; the new primary fences its attachment and mounts the data; back in touch, the old
    node registers again, cleans up, and the service lifts its fence."""
    clock = FlushingClock()
    control = MemoryControl(clock, run_failover=True)
    storage = FakeStorage()
    partition = Partition(control.client)
    old = _agent(control, storage, 0, partition)
    new = _agent(control, storage, 1, control.client)
    created: list[Any] = []
    control.client.create_dataset(old.uuid, 64 * 2**20).addCallback(created.append)
    dataset_id = created[0].dataset_id
    path = mount_point(ROOT, dataset_id)
    assert old.mounted(dataset_id)
    old.filesystems.write_file(f"{path}/kept", b"before")

    partition.cut = True
    for _ in range(300):
        clock.advance(0.1)
        if new.mounted(dataset_id):
            break
    assert old.loop.memory.self_fenced and not old.mounted(dataset_id)
    assert new.mounted(dataset_id) and new.filesystems.read_file(f"{path}/kept") == b"before"
    record = control.store.dataset(dataset_id)
    assert record is not None and record.primary == new.uuid and record.epoch >= 1
    fenced = {n.uuid: n.fence for n in control.store.nodes()}
    assert fenced[old.uuid] is not None and fenced[old.uuid].automatic

    partition.cut = False
    for _ in range(300):
        clock.advance(0.1)
        if control.store.nodes()[0].fence is None and not old.backend.fenced_leftovers():
            break
    assert {n.uuid: n.fence for n in control.store.nodes()}[old.uuid] is None
    assert old.backend.fenced_leftovers() == []
    assert old.filesystems.mounts() == []
    assert new.mounted(dataset_id)
    control.failover.stop()
    old.loop.stop()
    new.loop.stop()
