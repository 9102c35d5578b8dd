"""The loop reports capacity and health conditions, and never tries a create that cannot fit."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage, device_path_for
from agent.executor import Executor
from agent.fs.fake import FakeFilesystems
from agent.kernlog import FakeKernelLog
from agent.loop import ConvergenceLoop, LoopSettings, NodeFacts
from control.model import Dataset, NodeState
from control.runners import synchronous_runner
from tests.agent.test_loop import CLUSTER, ROOT, World

MiB = 2**20
GiB = 2**30


def _report(world: World, node_uuid: UUID) -> NodeState:
    report: NodeState = world.control.store.cluster_state().reports[node_uuid]
    return report


def _create(world: World, primary: UUID, size: int) -> UUID:
    created: list[Any] = []
    world.client.inner.create_dataset(primary, size).addCallback(created.append)
    return created[0].dataset_id


def _create_unchecked(world: World, primary: UUID, size: int) -> UUID:
    """Create a dataset straight in the store, as if admitted before the node's latest report."""
    dataset = Dataset(uuid4(), primary, maximum_size=size)
    world.control.store.create_dataset(dataset, None)
    world.control.api.notifier.check()
    world.control.flush()
    return dataset.dataset_id


def test_capacity_in_every_report():
    """The report carries the backend's capacity."""
    world = World(storage=FakeStorage(total=100 * MiB))
    node = world.node(0)
    capacity = _report(world, node.uuid).capacity
    assert capacity is not None
    assert (capacity.backend, capacity.total, capacity.free) == ("fake", 100 * MiB, 100 * MiB)


def test_too_large_dataset_is_a_permanent_condition_not_a_failing_pass():
    """A dataset larger than the storage is reported too_large; the loop neither creates
    nor fails nor backs off, and the condition's since stays put across heartbeats."""
    world = World(storage=FakeStorage(total=100 * MiB))
    node = world.node(0)
    dataset_id = _create_unchecked(world, node.uuid, GiB)
    [condition] = _report(world, node.uuid).conditions_of(dataset_id)
    assert (condition.reason, condition.permanent, condition.step) == ("too_large", True, "create")
    assert "1 GiB" in condition.message and "100 MiB" in condition.message
    assert world.storage.volumes == {}
    assert node.loop.failures == 0
    world.clock.advance(30)
    assert _report(world, node.uuid).conditions_of(dataset_id) == (condition,)
    assert node.loop.failures == 0


def test_dataset_waits_for_space_then_is_created():
    """A dataset that does not fit now is no_space; once space is freed, it is created."""
    world = World(storage=FakeStorage(total=100 * MiB))
    node = world.node(0)
    first = _create(world, node.uuid, 64 * MiB)
    second = _create_unchecked(world, node.uuid, 64 * MiB)
    assert node.mounted(first) and not node.mounted(second)
    [condition] = _report(world, node.uuid).conditions_of(second)
    assert (condition.reason, condition.permanent) == ("no_space", False)
    world.client.inner.delete_dataset(first)
    world.clock.advance(10)
    assert node.mounted(second)
    assert _report(world, node.uuid).conditions_of(second) == ()


def test_pool_low_is_a_node_condition():
    """Less than 10% free: the node reports pool_low with dataset_id None."""
    world = World(storage=FakeStorage(total=70 * MiB))
    node = world.node(0)
    _create(world, node.uuid, 64 * MiB)
    [condition] = _report(world, node.uuid).conditions_of(None)
    assert condition.reason == "pool_low"


def test_kernel_io_error_is_reported_for_the_dataset():
    """An error the kernel logged for a mounted dataset's device becomes its io_error condition."""
    world = World()
    kernel = FakeKernelLog()
    node_uuid = UUID(int=9)
    backend = FakeBlockDeviceAPI(world.storage, CLUSTER, str(node_uuid))
    loop = ConvergenceLoop(
        world.client,  # type: ignore[arg-type]
        world.clock,
        NodeFacts(node_uuid, "host9", "era-9"),
        Executor(backend, FakeFilesystems(world.storage, str(node_uuid)), synchronous_runner),
        LoopSettings(mount_root=ROOT),
        random=world.random,
        run_blocking=synchronous_runner,
        kernel_log=kernel,
    )
    loop.start()
    dataset_id = _create(world, node_uuid, 64 * MiB)
    assert _report(world, node_uuid).conditions_of(dataset_id) == ()
    blockdevice_id = world.storage.by_dataset[(CLUSTER, dataset_id)]
    kernel.log(device_path_for(blockdevice_id), "EXT4-fs (fake): potential data loss!")
    world.clock.advance(5.1)
    [condition] = _report(world, node_uuid).conditions_of(dataset_id)
    assert condition.reason == "io_error" and "potential data loss" in condition.message
