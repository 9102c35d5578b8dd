"""Discovery makes its independent observations together, on threads in the agent."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.discovery import DiscoveredState
from agent.fs.fake import FakeFilesystems
from agent.observe import discover, in_threads, one_by_one

HERE = "i-here"
CLUSTER = UUID(int=99)
D = UUID(int=7)
ROOT = "/shoal"
PATH = f"{ROOT}/{D}"


def test_discover_hands_the_independent_observations_over_together() -> None:
    """Volumes, mounts, snapshots, leftovers and capacity go to ``together`` as one batch,
    and the observation is the same as one made one by one."""
    storage = FakeStorage()
    backend = FakeBlockDeviceAPI(storage, CLUSTER, HERE)
    fs = FakeFilesystems(storage, HERE)
    created = backend.create_volume(D, 64 * 1024 * 1024)
    backend.attach_volume(created.blockdevice_id, HERE)
    device = backend.get_device_path(created.blockdevice_id)
    fs.make_filesystem(device)
    fs.mount(device, PATH)
    batches: list[int] = []

    def together(calls: Any) -> list[Any]:
        batches.append(len(calls))
        return one_by_one(calls)

    local = discover(backend, fs, ROOT, HERE, together=together)
    assert batches == [5]
    assert local == discover(backend, fs, ROOT, HERE)
    assert local.datasets[D].state is DiscoveredState.MOUNTED_HERE


def test_in_threads_runs_the_calls_at_once_and_keeps_their_order() -> None:
    """Two calls that each wait for the other finish (so they ran at once), in order."""
    meet = threading.Barrier(2, timeout=30)

    def call(value: str) -> Any:
        return lambda: (meet.wait(), value)[1]

    with ThreadPoolExecutor(2) as pool:
        assert in_threads(pool)([call("first"), call("second")]) == ["first", "second"]


def test_in_threads_raises_a_failed_call_s_error_after_all_ran() -> None:
    """A failing call's error is raised once the other calls are done."""
    done: list[str] = []

    def fails() -> None:
        raise OSError("backend gone")

    with ThreadPoolExecutor(2) as pool, pytest.raises(OSError, match="backend gone"):
        in_threads(pool)([fails, lambda: done.append("other")])
    assert done == ["other"]
