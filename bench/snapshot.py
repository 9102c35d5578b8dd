"""
Snapshots, restores, clones and online resize on the loopback backend (root only).

Measured at the agent's level: the real executor runs the changes the policy
makes (``CreateSnapshot`` with the source frozen, ``RestoreVolume``,
``CloneVolume``, ``AttachVolume``, ``MountFilesystem``, ``ResizeVolume``,
``GrowFilesystem``) against the real loopback backend and real filesystems.
The control service's snapshot routes are not on main yet, so "to ready" is
until the backend lists the snapshot whole (which is what the agent reports,
and its report is what marks the snapshot ready), not until the REST API
shows it ready; the agent's loop adds one pass (a few ms) and the report.

Two pools, each a loop-mounted filesystem on a sparse file: XFS with reflink
(snapshots and clones share blocks) and ext4 (no reflink: the sparse copy
fallback). Datasets are ext4 (the default) except for the resize, which is
online on xfs (a mounted ext4 cannot grow without CAP_SYS_RESOURCE).

    sudo .venv/bin/python bench/snapshot.py [--trials 10] [--big-gib 4] [--skip-copy]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID, uuid4

from _common import Table

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

MiB = 1024 * 1024
GiB = 1024 * MiB
CHUNK = os.urandom(MiB)


def run(argv: list[str]) -> None:
    """Run a command, failing loudly."""
    subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL)


def rss_kib() -> int:
    """The peak resident memory of this process, KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@contextmanager
def pool_filesystem(base: str, kind: str, size: int) -> Iterator[str]:
    """A loop-mounted ``kind`` filesystem of ``size`` bytes (sparse file); torn down after."""
    image, mount = os.path.join(base, f"{kind}.fs"), os.path.join(base, kind)
    os.makedirs(mount)
    with open(image, "wb") as f:
        f.truncate(size)
    mkfs = ["mkfs.xfs", "-q", "-m", "reflink=1"] if kind == "xfs" else ["mkfs.ext4", "-q"]
    run([*mkfs, image])
    run(["mount", "-o", "loop", image, mount])
    try:
        yield mount
    finally:
        _release(mount)
        subprocess.run(["umount", mount], check=False)
        os.unlink(image)


class Node:
    """One agent's executor over a pool, mounting under its own root."""

    def __init__(self, pool: str, mount_root: str) -> None:
        self.backend = LoopbackBlockDeviceAPI(pool, uuid4(), "node-a")
        self.fs = RealFilesystems(under=mount_root)
        self.executor = Executor(self.backend, self.fs, synchronous_runner)
        self.mount_root = mount_root

    def do(self, change: Change) -> None:
        """Run one change, raising its failure."""
        failures: list[Any] = []
        self.executor.run(change).addErrback(failures.append)
        if failures:
            failures[0].raiseException()

    def path(self, dataset_id: UUID) -> str:
        """The dataset's mount point."""
        return os.path.join(self.mount_root, str(dataset_id))

    def attach_and_mount(self, dataset_id: UUID) -> str:
        """Attach the dataset's volume here and mount it; returns its device."""
        blockdevice_id = str(dataset_id)
        self.do(AttachVolume(dataset_id, blockdevice_id))
        device = self.backend.get_device_path(blockdevice_id)
        info = self.fs.filesystem_info(device)
        volume_size = os.stat(self.backend._image(blockdevice_id)).st_size
        if info is not None and info.kind == "ext4" and info.size < volume_size:
            self.do(GrowFilesystem(dataset_id, device))
        self.do(MountFilesystem(dataset_id, device, self.path(dataset_id)))
        return device

    def new_dataset(self, size: int, filesystem: str = "ext4", written: int = 0) -> UUID:
        """A mounted dataset of ``size`` bytes with ``written`` bytes of data, synced."""
        dataset_id = uuid4()
        self.do(CreateVolume(dataset_id, size))
        self.do(AttachVolume(dataset_id, str(dataset_id)))
        device = self.backend.get_device_path(str(dataset_id))
        self.do(MakeFilesystem(dataset_id, device, filesystem))
        self.do(MountFilesystem(dataset_id, device, self.path(dataset_id)))
        with open(os.path.join(self.path(dataset_id), "data"), "wb") as f:
            for _ in range(written // MiB):
                f.write(CHUNK)
            f.flush()
            os.fsync(f.fileno())
        return dataset_id

    def remove(self, dataset_id: UUID) -> None:
        """Unmount, detach and destroy a dataset's volume (to keep the pool small)."""
        self.fs.unmount(self.path(dataset_id))
        self.backend.detach_volume(str(dataset_id))
        self.backend.destroy_volume(str(dataset_id))

    def snapshot(self, dataset_id: UUID) -> str:
        """Snapshot the mounted dataset, frozen; returns the snapshot id once listed."""
        snapshot_id = str(uuid4())
        self.do(CreateSnapshot(dataset_id, snapshot_id, str(dataset_id), self.path(dataset_id)))
        if snapshot_id not in {s.snapshot_id for s in self.backend.list_snapshots()}:
            raise RuntimeError(f"snapshot {snapshot_id} not listed")
        return snapshot_id


def timed_each(
    n: int, action: Callable[[], Any], cleanup: Callable[[Any], None] = lambda _: None
) -> list[float]:
    """Seconds of ``action()`` for ``n`` trials; ``cleanup(result)`` after each, not timed."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        result = action()
        samples.append(time.perf_counter() - start)
        cleanup(result)
    return samples


def used_bytes(path: str) -> int:
    """Bytes used in the filesystem of ``path`` once it settles (XFS frees blocks lazily)."""
    last = -1
    for _ in range(50):
        os.sync()
        stats = os.statvfs(path)
        used = (stats.f_blocks - stats.f_bfree) * stats.f_frsize
        if used == last:
            return used
        last = used
        time.sleep(0.2)
    return last


class Writer(threading.Thread):
    """Writes and fsyncs 1 MiB blocks into a file until stopped; counts them."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.blocks = 0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Write until stopped, wrapping around 256 MiB."""
        try:
            with open(self.path, "wb") as f:
                while not self._stop_event.is_set():
                    if self.blocks % 256 == 0:
                        f.seek(0)
                    f.write(CHUNK)
                    f.flush()
                    os.fsync(f.fileno())
                    self.blocks += 1
        except BaseException as e:  # reported by the bench
            self.error = e

    def stop(self) -> None:
        """Stop and wait; raise what the writer hit."""
        self._stop_event.set()
        self.join()
        if self.error is not None:
            raise self.error


def bench_pool(table: Table, label: str, pool: str, trials: int, big: int) -> dict[str, str]:
    """Every scenario on one pool; returns the notes (space used)."""
    root = tempfile.mkdtemp(prefix="shoal-bench-mnt-")
    node = Node(os.path.join(pool, "pool"), root)
    notes = {}
    method = node.backend.snapshot_method()
    try:
        drop = node.backend.destroy_snapshot
        small = node.new_dataset(GiB, written=512 * MiB)
        samples = timed_each(trials, lambda: node.snapshot(small), drop)
        table.add(f"{label}: snapshot to listed, 1 GiB, 512 MiB written", samples, None, rss_kib())
        large = node.new_dataset(big + GiB, written=big)
        samples = timed_each(max(3, trials // 2), lambda: node.snapshot(large), drop)
        node.remove(large)
        table.add(
            f"{label}: snapshot to listed, {(big + GiB) // GiB} GiB, {big // GiB} GiB written",
            samples,
            None,
            rss_kib(),
        )
        before = used_bytes(pool)
        snapshot_id = node.snapshot(small)
        notes[f"{label} ({method}): pool space used by a fresh snapshot of 512 MiB written"] = (
            f"{(used_bytes(pool) - before) / MiB:.2f} MiB"
        )

        def restore() -> UUID:
            dataset_id = uuid4()
            node.do(RestoreVolume(dataset_id, snapshot_id, GiB))
            node.attach_and_mount(dataset_id)
            return dataset_id

        samples = timed_each(trials, restore, node.remove)
        table.add(f"{label}: restore to mounted (1 GiB)", samples, None, rss_kib())

        def clone() -> UUID:
            dataset_id = uuid4()
            node.do(CloneVolume(dataset_id, str(small), GiB, node.path(small)))
            node.attach_and_mount(dataset_id)
            return dataset_id

        samples = timed_each(trials, clone, node.remove)
        table.add(f"{label}: clone to mounted (1 GiB, source frozen)", samples, None, rss_kib())

        def resize(dataset_id: UUID) -> None:
            writer = Writer(os.path.join(node.path(dataset_id), "writing"))
            writer.start()
            time.sleep(0.2)
            start = time.perf_counter()
            node.do(ResizeVolume(dataset_id, str(dataset_id), 2 * GiB))
            node.do(GrowFilesystem(dataset_id, node.backend.get_device_path(str(dataset_id))))
            resize.samples.append(time.perf_counter() - start)  # type: ignore[attr-defined]
            time.sleep(0.1)
            writer.stop()
            info = node.fs.filesystem_info(node.backend.get_device_path(str(dataset_id)))
            if info is None or info.size < 2 * GiB - 64 * MiB:
                raise RuntimeError(f"the filesystem did not grow: {info}")
            node.remove(dataset_id)

        resize.samples = []  # type: ignore[attr-defined]
        for _ in range(max(3, trials // 2)):
            resize(node.new_dataset(GiB, filesystem="xfs"))
        table.add(
            f"{label}: online resize 1->2 GiB (xfs) while a writer runs",
            resize.samples,  # type: ignore[attr-defined]
            None,
            rss_kib(),
        )
    finally:
        for mount in reversed(node.fs.mounts()):
            subprocess.run(["umount", mount.path], check=False)
        _release(pool)
        shutil.rmtree(root, ignore_errors=True)
    return notes


def main() -> int:
    """Run the scenarios and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--big-gib", type=int, default=4, help="GiB written in the large volume")
    parser.add_argument("--skip-copy", action="store_true", help="skip the ext4 (copy) pool")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/snapshot.py needs root (loop devices, mount, FIFREEZE)", file=sys.stderr)
        return 2
    big = args.big_gib * GiB
    table = Table("Snapshots, restores, clones and resize on loopback (agent level)")
    notes: dict[str, str] = {}
    base = tempfile.mkdtemp(prefix="shoal-bench-snap-")
    try:
        pool_size = 2 * big + 8 * GiB
        kinds = ["xfs"] if args.skip_copy else ["xfs", "ext4"]
        for kind in kinds:
            with pool_filesystem(base, kind, pool_size) as pool:
                label = "xfs pool, reflink" if kind == "xfs" else "ext4 pool, copy"
                notes.update(bench_pool(table, label, pool, args.trials, big))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(table.render())
    print()
    for key, value in notes.items():
        print(f"- {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
