"""
In-process measurements for ``bench/move.py``: a fleet of real loops on the fake backend,
and ``calculate_changes`` alone.

:func:`converge_fleet` runs N :class:`~agent.loop.ConvergenceLoop` instances
against one in-memory control service (the real API and client,
:class:`~control.client.testing.MemoryControl`) and one fake SAN. Time is a
``task.Clock`` that never moves, so only real work is measured; every
client answer is delivered through ``callLater(0)``, so the loops take turns
like processes would instead of running inside one another's callbacks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import structlog
from attrs import frozen
from twisted.internet.defer import Deferred

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage, device_path_for
from agent.backends.interface import BlockDeviceVolume
from agent.discovery import classify, mount_point
from agent.executor import Executor
from agent.fs.fake import FakeFilesystems
from agent.fs.interface import Mount
from agent.loop import ConvergenceLoop, LoopSettings, NodeFacts
from agent.policy import ClusterView, calculate_changes
from control.client.http import HTTPClient
from control.client.testing import FlushingClock, MemoryControl, result_of
from control.model import MINIMUM_DATASET_SIZE, Dataset, VolumeStatus
from control.runners import synchronous_runner

CLUSTER = UUID(int=7)
ROOT = "/shoal"


class TakingTurns:
    """A client whose every answer arrives in a later reactor turn."""

    def __init__(self, inner: HTTPClient, clock: FlushingClock) -> None:
        self.inner = inner
        self.clock = clock

    def __getattr__(self, name: str) -> Callable[..., Deferred[Any]]:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Deferred[Any]:
            later: Deferred[Any] = Deferred()
            method(*args, **kwargs).addBoth(lambda r: self.clock.callLater(0, later.callback, r))
            return later

        return call


@frozen
class FleetResult:
    """How long the fleet took to converge, and how many passes it made."""

    seconds: float
    passes: int


def _converged(control: MemoryControl, placement: dict[UUID, UUID]) -> bool:
    reports = control.store.cluster_state().reports
    for dataset_id, node_uuid in placement.items():
        report = reports.get(node_uuid)
        state = None if report is None else report.datasets.get(dataset_id)
        if state is None or state.status is not VolumeStatus.MOUNTED:
            return False
    return True


def start_fleet(
    nodes: int, labels: Callable[[int], dict[str, str]] = lambda index: {}
) -> tuple[FlushingClock, MemoryControl, list[ConvergenceLoop]]:
    """``nodes`` started, idle agents (node ``i`` has uuid ``i + 1`` and ``labels(i)``) over one
    fake SAN, taking turns against one in-memory control service."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    clock, storage = FlushingClock(), FakeStorage()
    control = MemoryControl(clock)
    client = TakingTurns(control.client, clock)
    loops = []
    for index in range(nodes):
        node_uuid = UUID(int=index + 1)
        backend = FakeBlockDeviceAPI(storage, CLUSTER, str(node_uuid))
        filesystems = FakeFilesystems(storage, str(node_uuid))
        executor = Executor(backend, filesystems, synchronous_runner)
        facts = NodeFacts(node_uuid, f"host{index}", f"era{index}", labels(index))
        loop = ConvergenceLoop(client, clock, facts, executor,  # type: ignore[arg-type]
                               LoopSettings(mount_root=ROOT), random=lambda: 0.5,
                               run_blocking=synchronous_runner)
        loop.start()
        loops.append(loop)
    clock.advance(0)
    return clock, control, loops


def converge_fleet(datasets: int, nodes: int) -> FleetResult:
    """Create ``datasets`` spread over ``nodes`` idle agents; time until all are mounted."""
    clock, control, loops = start_fleet(nodes)
    placement = {uuid4(): UUID(int=i % nodes + 1) for i in range(datasets)}
    for dataset_id, primary in placement.items():
        size = MINIMUM_DATASET_SIZE
        result_of(control.client.create_dataset(primary, size, dataset_id=dataset_id))
    start = time.perf_counter()  # the agents have not run yet: their wake-ups are queued
    clock.advance(0)
    seconds = time.perf_counter() - start
    if not _converged(control, placement):
        raise RuntimeError("the fleet went idle without converging")
    return FleetResult(seconds, sum(loop.passes for loop in loops))


def time_calculate_changes(count: int, runs: int) -> dict[str, list[float]]:
    """Seconds per ``calculate_changes`` call for one node with ``count`` datasets."""
    me, here = UUID(int=1), "instance-1"
    ids = [uuid4() for _ in range(count)]
    desired = {i: Dataset(i, me, maximum_size=MINIMUM_DATASET_SIZE) for i in ids}
    volumes = [BlockDeviceVolume(f"b{n}", MINIMUM_DATASET_SIZE, CLUSTER, i, here)
               for n, i in enumerate(ids)]
    devices = {v.blockdevice_id: device_path_for(v.blockdevice_id) for v in volumes}
    mounts = [Mount(devices[v.blockdevice_id], mount_point(ROOT, v.dataset_id)) for v in volumes]
    scenarios = {
        "all to create": classify([], here, {}, frozenset(), [], ROOT),
        "all mounted": classify(volumes, here, devices, frozenset(devices.values()), mounts, ROOT),
    }
    view = ClusterView(me)
    samples: dict[str, list[float]] = {}
    for name, local in scenarios.items():
        samples[name] = []
        for _ in range(runs):
            start = time.perf_counter()
            calculate_changes(desired, view, local, here, ROOT)
            samples[name].append(time.perf_counter() - start)
    return samples
