"""An agent's metrics: the loop, executor, fake backend and filesystems, timed and counted."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from prometheus_client import CollectorRegistry

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.changes import CreateVolume
from agent.discovery import DiscoveredDataset, DiscoveredState, LocalState
from agent.executor import ChangeFailed, Executor
from agent.fs.fake import FakeFilesystems
from agent.loop import ConvergenceLoop, LoopSettings, NodeFacts
from agent.metrics import BACKEND_OPERATIONS, AgentMetrics, Timed, local_counts
from control.client.testing import FlushingClock, MemoryControl, result_of
from control.metrics_http import exposition
from control.model import MINIMUM_DATASET_SIZE
from control.runners import synchronous_runner
from tests.scrape import Scrape, parse

CLUSTER = UUID(int=42)
NODE = UUID(int=1)


def scrape(metrics: AgentMetrics) -> Scrape:
    """The agent's exposition, parsed."""
    return parse(exposition(metrics.registry).decode())


def test_local_counts_cover_every_state() -> None:
    """Every discovered state is counted, zero included."""
    one, two = uuid4(), uuid4()
    local = LocalState(
        "i",
        datasets={
            one: DiscoveredDataset(one, DiscoveredState.MOUNTED_HERE),
            two: DiscoveredDataset(two, DiscoveredState.UNATTACHED),
        },
    )
    counts = local_counts(local)
    assert counts[DiscoveredState.MOUNTED_HERE] == 1
    assert counts[DiscoveredState.UNATTACHED] == 1
    assert sum(counts.values()) == 2 and set(counts) == set(DiscoveredState)


class Ticking:
    """A clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_timed_records_each_interface_call_even_when_it_raises() -> None:
    """Calls of interface methods are timed (failures too); other attributes pass through."""
    storage = FakeStorage(largest_volume=MINIMUM_DATASET_SIZE)
    backend = FakeBlockDeviceAPI(storage, CLUSTER, str(NODE))
    seen: list[tuple[str, float]] = []
    timed: Any = Timed(backend, BACKEND_OPERATIONS, lambda op, s: seen.append((op, s)), Ticking())
    assert timed.storage is storage
    assert timed.list_volumes() == []
    with pytest.raises(OSError):
        timed.create_volume(uuid4(), 2 * MINIMUM_DATASET_SIZE)
    assert seen == [("list_volumes", 1.0), ("create_volume", 1.0)]


def test_executor_counts_changes_by_kind_and_result() -> None:
    """A change that fails counts as failed, one that works as ok."""
    storage = FakeStorage(largest_volume=MINIMUM_DATASET_SIZE)
    metrics = AgentMetrics(Ticking(), CollectorRegistry())
    backend = FakeBlockDeviceAPI(storage, CLUSTER, str(NODE))
    executor = Executor(
        backend, FakeFilesystems(storage, str(NODE)), synchronous_runner,
        on_change=metrics.changed,
    )
    result_of(executor.run(CreateVolume(uuid4(), MINIMUM_DATASET_SIZE)))
    with pytest.raises(ChangeFailed):
        result_of(executor.run(CreateVolume(uuid4(), 2 * MINIMUM_DATASET_SIZE)))
    found = scrape(metrics)
    assert found.value("shoal_agent_changes_total", kind="CreateVolume", result="ok") == 1
    assert found.value("shoal_agent_changes_total", kind="CreateVolume", result="failed") == 1


def test_a_converging_agent_moves_its_metrics() -> None:
    """After a create converges: passes timed, changes counted, calls timed, dataset mounted."""
    clock = FlushingClock()
    control = MemoryControl(clock)
    storage = FakeStorage()
    metrics = AgentMetrics(clock.seconds, CollectorRegistry())
    backend = metrics.timed_backend(FakeBlockDeviceAPI(storage, CLUSTER, str(NODE)))
    filesystems = metrics.timed_filesystems(FakeFilesystems(storage, str(NODE)))
    executor = Executor(backend, filesystems, synchronous_runner, on_change=metrics.changed)
    loop = ConvergenceLoop(
        control.client, clock, NodeFacts(NODE, "host", "era"), executor,
        LoopSettings(mount_root="/shoal"), random=lambda: 0.5, run_blocking=synchronous_runner,
        metrics=metrics,
    )
    loop.start()
    result_of(control.client.create_dataset(NODE, MINIMUM_DATASET_SIZE))
    found = scrape(metrics)
    assert found.types["shoal_agent_pass_duration_seconds"] == "histogram"
    assert found.value("shoal_agent_pass_duration_seconds_count") >= 4
    for kind in ("CreateVolume", "AttachVolume", "MakeFilesystem", "MountFilesystem"):
        assert found.value("shoal_agent_changes_total", kind=kind, result="ok") == 1
    assert found.value(
        "shoal_agent_operation_duration_seconds_count", layer="backend", operation="create_volume"
    ) == 1
    assert found.value(
        "shoal_agent_operation_duration_seconds_count", layer="filesystem", operation="mount"
    ) == 1
    assert found.value("shoal_agent_datasets", state="mounted_here") == 1
    assert found.value("shoal_agent_seconds_since_last_report") == 0
    clock.advance(1.5)
    assert scrape(metrics).value("shoal_agent_seconds_since_last_report") == 1.5
    result_of(loop.stop())


def test_timed_keeps_the_backends_capabilities() -> None:
    """A timed MultiBackend is still seen as several backends and as read-only-many capable,
    so the executor routes creates by backend and discovery reports every capacity."""
    from agent.backends.interface import ReadOnlyManyAPI, SeveralBackendsAPI
    from agent.backends.multi import MultiBackend

    multi = MultiBackend([
        ("fake", FakeBlockDeviceAPI(FakeStorage(), CLUSTER, str(NODE))),
        ("other", FakeBlockDeviceAPI(FakeStorage(), CLUSTER, str(NODE))),
    ])
    timed = AgentMetrics(Ticking(), CollectorRegistry()).timed_backend(multi)
    assert isinstance(timed, SeveralBackendsAPI) and isinstance(timed, ReadOnlyManyAPI)
    assert len(timed.capacities()) == 2  # type: ignore[attr-defined]
    single = AgentMetrics(Ticking(), CollectorRegistry()).timed_backend(
        FakeBlockDeviceAPI(FakeStorage(), CLUSTER, str(NODE))
    )
    assert not isinstance(single, SeveralBackendsAPI)


def test_dataset_counts_follow_a_new_state_after_a_reused_one() -> None:
    """The same (reused) state keeps its counts; a different one replaces them."""
    metrics = AgentMetrics(lambda: 0.0, CollectorRegistry())
    one = uuid4()
    mounted = LocalState("i", datasets={one: DiscoveredDataset(one, DiscoveredState.MOUNTED_HERE)})
    metrics.passed(0.01, mounted)
    metrics.passed(0.01, mounted)
    gauge = "shoal_agent_datasets"
    assert scrape(metrics).value(gauge, state="mounted_here") == 1
    free = LocalState("i", datasets={one: DiscoveredDataset(one, DiscoveredState.UNATTACHED)})
    metrics.passed(0.01, free)
    assert scrape(metrics).value(gauge, state="mounted_here") == 0
    assert scrape(metrics).value(gauge, state="unattached") == 1
    assert scrape(metrics).value("shoal_agent_pass_duration_seconds_count") == 3
