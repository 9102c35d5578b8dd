"""
Snapshots, restores, clones and online resize of mounted datasets, on real loop devices.

The real executor runs the changes the policy makes against the loopback
backend and the real filesystems (the pool is a plain directory on the test
machine's disk: the sparse copy; tests/agent/backends/test_loopsnap.py covers
reflink pools).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from agent.backends.loopback import LoopbackBlockDeviceAPI
from agent.changes import (
    AttachVolume,
    Change,
    CloneVolume,
    CreateSnapshot,
    CreateVolume,
    GrowFilesystem,
    MakeFilesystem,
    MountFilesystem,
    ResizeVolume,
    RestoreVolume,
)
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
GiB = 1024 * MiB


class Node:
    """The executor of one node over a pool, with its datasets mounted under ``root``."""

    def __init__(self, pool: Path, root: Path) -> None:
        self.backend = LoopbackBlockDeviceAPI(str(pool), uuid4(), "node-a", overcommit=4.0)
        self.fs = RealFilesystems(under=str(root))
        self.executor = Executor(self.backend, self.fs, synchronous_runner)
        self.root = root

    def do(self, change: Change) -> None:
        """Run one change, raising its failure."""
        failures: list[object] = []
        self.executor.run(change).addErrback(failures.append)
        if failures:
            failures[0].raiseException()  # type: ignore[attr-defined]

    def path(self, dataset_id: UUID) -> Path:
        """The dataset's mount point."""
        return self.root / str(dataset_id)

    def device(self, dataset_id: UUID) -> str:
        """The dataset's device here."""
        return self.backend.get_device_path(str(dataset_id))

    def mount(self, dataset_id: UUID) -> None:
        """Attach and mount an existing volume, growing an ext4 that is smaller first."""
        self.do(AttachVolume(dataset_id, str(dataset_id)))
        info = self.fs.filesystem_info(self.device(dataset_id))
        size = [v.size for v in self.backend.list_volumes() if v.dataset_id == dataset_id][0]
        if info is not None and info.kind == "ext4" and info.size < size:
            self.do(GrowFilesystem(dataset_id, self.device(dataset_id)))
        self.do(MountFilesystem(dataset_id, self.device(dataset_id), str(self.path(dataset_id))))

    def create(self, size: int, filesystem: str = "ext4") -> UUID:
        """A new mounted dataset."""
        dataset_id = uuid4()
        self.do(CreateVolume(dataset_id, size))
        self.do(AttachVolume(dataset_id, str(dataset_id)))
        self.do(MakeFilesystem(dataset_id, self.device(dataset_id), filesystem))
        self.do(MountFilesystem(dataset_id, self.device(dataset_id), str(self.path(dataset_id))))
        return dataset_id


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A node over a pool in ``tmp_path``; its mounts and loop devices released after."""
    made = Node(tmp_path / "pool", tmp_path / "mnt")
    try:
        yield made
    finally:
        for mount in reversed(made.fs.mounts()):
            made.fs.thaw(mount.path)
            made.fs.unmount(mount.path)
        _release(tmp_path / "pool")


@pytest.mark.parametrize("filesystem", ["ext4", "xfs"])
def test_restore_and_clone_are_independent(node: Node, filesystem: str) -> None:
    """Restored and cloned datasets mount beside their source; markers never cross over."""
    source = node.create(320 * MiB, filesystem)
    (node.path(source) / "marker").write_text("at snapshot")
    snapshot_id = str(uuid4())
    node.do(CreateSnapshot(source, snapshot_id, str(source), str(node.path(source))))
    (node.path(source) / "marker").write_text("after snapshot")
    restored, clone = uuid4(), uuid4()
    node.do(RestoreVolume(restored, snapshot_id, 640 * MiB))
    node.mount(restored)
    node.do(CloneVolume(clone, str(source), 320 * MiB, str(node.path(source))))
    node.mount(clone)
    if filesystem == "xfs":  # grown online once mounted, as the policy does
        node.do(GrowFilesystem(restored, node.device(restored)))
    assert (node.path(restored) / "marker").read_text() == "at snapshot"
    assert (node.path(clone) / "marker").read_text() == "after snapshot"
    (node.path(restored) / "marker").write_text("restored")
    (node.path(clone) / "marker").write_text("clone")
    (node.path(clone) / "clone-only").write_text("x")
    assert (node.path(source) / "marker").read_text() == "after snapshot"
    assert not (node.path(source) / "clone-only").exists()
    assert (node.path(restored) / "marker").read_text() == "restored"
    info = node.fs.filesystem_info(node.device(restored))
    assert info is not None and info.size > 600 * MiB
    assert not node.fs.is_frozen(str(node.path(source)))


def test_online_resize_while_writing(node: Node) -> None:
    """A mounted xfs grows from 1 GiB to 2 GiB while a writer runs, which never fails."""
    dataset_id = node.create(GiB, "xfs")
    stop, errors, blocks = threading.Event(), [], [0]

    def write() -> None:
        try:
            with open(node.path(dataset_id) / "stream", "wb") as f:
                while not stop.is_set():
                    f.write(b"y" * MiB)
                    f.flush()
                    os.fsync(f.fileno())
                    blocks[0] += 1
        except OSError as e:
            errors.append(e)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        node.do(ResizeVolume(dataset_id, str(dataset_id), 2 * GiB))
        node.do(GrowFilesystem(dataset_id, node.device(dataset_id)))
        during = blocks[0]
        while blocks[0] < during + 5 and writer.is_alive():
            threading.Event().wait(0.05)
    finally:
        stop.set()
        writer.join()
    assert errors == []
    info = node.fs.filesystem_info(node.device(dataset_id))
    assert info is not None and info.size >= 2 * GiB - 64 * MiB
    assert (
        os.statvfs(node.path(dataset_id)).f_blocks * os.statvfs(node.path(dataset_id)).f_frsize
        > 1.5 * GiB
    )
