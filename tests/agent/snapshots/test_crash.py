"""
A snapshot interrupted by SIGKILL leaves no frozen filesystem and no half-made copy.

The executor runs a real :class:`~agent.changes.CreateSnapshot` of a mounted
ext4 volume in a loopback pool (a sparse copy, slowed down so the kill lands
in the middle of it, while the filesystem is frozen) in a child process, which
the test kills with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from agent.backends import filecopy
from agent.backends.loopback import LoopbackBlockDeviceAPI
from agent.changes import CreateSnapshot
from agent.executor import Executor
from agent.fs.real import RealFilesystems
from control.runners import synchronous_runner
from tests.agent.backends.test_loopback import _release

pytestmark = [
    pytest.mark.functional,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup, mount and FIFREEZE"),
]

MiB = 2**20
CHILD = """
import sys, time
from uuid import UUID
from agent.backends import filecopy
from agent.backends.loopback import LoopbackBlockDeviceAPI
from agent.changes import CreateSnapshot
from agent.executor import Executor
from agent.fs.real import RealFilesystems
from control.runners import synchronous_runner

pool, cluster, blockdevice_id, snapshot_id, path = sys.argv[1:]
copy = filecopy.sparse_copy

def slow_copy(source_fd, destination_fd, size):
    copy(source_fd, destination_fd, size // 2)
    print("copying", flush=True)
    time.sleep(60)

filecopy.sparse_copy = slow_copy
filecopy.reflink = lambda source_fd, destination_fd: False
backend = LoopbackBlockDeviceAPI(pool, UUID(cluster), "node-a")
executor = Executor(backend, RealFilesystems(), synchronous_runner)
executor.run(CreateSnapshot(UUID(blockdevice_id), snapshot_id, blockdevice_id, path))
"""


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[tuple[LoopbackBlockDeviceAPI, str, str]]:
    """(backend, blockdevice id, mount path) of a mounted 128 MiB ext4 volume with data."""
    pool = tmp_path / "pool"
    backend = LoopbackBlockDeviceAPI(str(pool), uuid4(), "node-a")
    volume = backend.create_volume(uuid4(), 128 * MiB)
    backend.attach_volume(volume.blockdevice_id, "node-a")
    device = backend.get_device_path(volume.blockdevice_id)
    fs = RealFilesystems()
    fs.make_filesystem(device)
    path = str(tmp_path / "mnt" / volume.blockdevice_id)
    fs.mount(device, path)
    Path(path, "data").write_bytes(os.urandom(16 * MiB))
    try:
        yield backend, volume.blockdevice_id, path
    finally:
        fs.thaw(path)
        fs.unmount(path)
        _release(pool)


def _writable(path: str) -> bool:
    """Whether a file can be written and synced at ``path`` within 5 s."""
    command = f"echo x > {path}/probe && sync {path}/probe"
    return subprocess.run(["sh", "-c", command], timeout=5, check=False).returncode == 0


def test_sigkill_during_snapshot(mounted: tuple[LoopbackBlockDeviceAPI, str, str]) -> None:
    """Killed mid-copy: thawed at once, nothing listed, the copy swept, and a retry works."""
    backend, blockdevice_id, path = mounted
    fs = RealFilesystems()
    snapshot_id = str(uuid4())
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            backend.pool,
            str(backend.cluster_id),
            blockdevice_id,
            snapshot_id,
            path,
        ],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert child.stdout is not None
    assert child.stdout.readline() == b"copying\n"
    assert fs.is_frozen(path)
    snapshots = Path(backend.pool, str(backend.cluster_id), "snapshots")
    assert [n for n in os.listdir(snapshots) if n.startswith(filecopy.TEMPORARY_PREFIX)]
    child.send_signal(signal.SIGKILL)
    child.wait()
    for _ in range(100):
        if not fs.is_frozen(path):
            break
        time.sleep(0.05)
    assert not fs.is_frozen(path)
    assert _writable(path)
    assert backend.list_snapshots() == []
    assert os.listdir(snapshots) == []
    executor = Executor(backend, fs, synchronous_runner)
    executor.run(CreateSnapshot(UUID(blockdevice_id), snapshot_id, blockdevice_id, path))
    assert [s.snapshot_id for s in backend.list_snapshots()] == [snapshot_id]
    assert not fs.is_frozen(path)


def test_start_up_thaws_leftovers(mounted: tuple[LoopbackBlockDeviceAPI, str, str]) -> None:
    """An agent starting finds its own filesystems frozen (by anyone) and thaws them."""
    backend, _, path = mounted
    fs = RealFilesystems(under=str(Path(path).parent))
    fs.freeze(path)
    assert fs.is_frozen(path)
    assert Executor(backend, fs, synchronous_runner).thaw_leftovers() == [path]
    assert not fs.is_frozen(path)
    assert _writable(path)
