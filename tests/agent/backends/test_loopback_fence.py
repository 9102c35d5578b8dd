"""The loopback fence really stops a writer: real loop devices, filesystems and processes (root)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from agent.backends import loopdev
from agent.backends.loopback import LoopbackBlockDeviceAPI
from agent.fs import shutdown
from tests.agent.backends.test_loopback import _release

pytestmark = [
    pytest.mark.functional,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup, mount and unshare"),
]

MiB = 2**20
WAIT = 60.0
"""Seconds to wait for a process to show progress (the machine is shared and slow)."""

WRITER = r"""
import os, signal, sys, time
path, after = sys.argv[1], []
signal.signal(signal.SIGUSR1, lambda *_: after.append(True))
fd = os.open(os.path.join(path, "data"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
print("ready", flush=True)
seq = failures = 0
while failures < 10:
    phase = "after" if after else "before"
    record = (b"AFTER-FENCE-%08d\n" if after else b"record-%08d\n") % seq
    try:
        os.write(fd, record)
        os.fsync(fd)
        print("ok", seq, phase, flush=True)
    except OSError as e:
        print("error", seq, e.errno, phase, flush=True)
        failures += 1 if after else 0
    seq += 1
    time.sleep(0.002)
try:
    with open(os.path.join(path, "created-after-fence"), "w") as f:
        f.write("AFTER-FENCE")
    print("created", flush=True)
except OSError as e:
    print("create-error", e.errno, flush=True)
"""


class Writer:
    """A writer process in its own mount namespace, where alone the volume is mounted."""

    def __init__(self, device: str, mount_point: Path, kind: str) -> None:
        options = "-o nouuid " if kind == "xfs" else ""
        script = (
            f"mount {options}{device} {mount_point} && "
            f'exec {sys.executable} -c "$0" {mount_point}'
        )
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, WRITER],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[list[str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.split())

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        """Wait until ``condition`` holds, failing with ``what`` after :data:`WAIT` seconds."""
        deadline = time.monotonic() + WAIT
        while not condition():
            if time.monotonic() > deadline:
                stderr = self.process.stderr.read() if self.process.poll() is not None else ""
                pytest.fail(f"the writer did not {what}: {self.lines[-5:]} {stderr}")
            time.sleep(0.05)

    def acknowledged(self) -> list[int]:
        """The records the writer wrote and fsync'd successfully."""
        return [int(line[1]) for line in self.lines if line[0] == "ok"]

    def errors(self) -> list[int]:
        """The errnos of the writer's failed writes and fsyncs."""
        return [int(line[2]) for line in self.lines if line[0] == "error"]

    def stop(self) -> None:
        """Kill the writer (its namespace, and the mount in it, go with it)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(WAIT)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Path]:
    """A pool directory; its loop devices are released afterwards, even on failure."""
    path = tmp_path / "pool"
    try:
        yield path
    finally:
        _release(path)


def _mkfs(device: str, kind: str) -> None:
    subprocess.run([f"mkfs.{kind}", "-q", device], check=True, stdin=subprocess.DEVNULL)


def _clean_up(api: LoopbackBlockDeviceAPI) -> None:
    """Clean up every leftover of ``api``, retrying while a dying namespace still holds one."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            for leftover in api.fenced_leftovers():
                api.clean_up_fenced(leftover)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("kind", ["ext4", "xfs"])
def test_fence_stops_writer_in_another_namespace(pool: Path, tmp_path: Path, kind: str) -> None:
    """A writer on the fenced node gets EIO; its later writes never reach the volume as the
    new node attaches it, while every record it fsync'd before the fence is there."""
    cluster_id = uuid4()
    a = LoopbackBlockDeviceAPI(str(pool), cluster_id, "node-a")
    b = LoopbackBlockDeviceAPI(str(pool), cluster_id, "node-b")
    volume = a.create_volume(uuid4(), 300 * MiB)
    a.attach_volume(volume.blockdevice_id, "node-a", epoch=1)
    old = a.get_device_path(volume.blockdevice_id)
    _mkfs(old, kind)
    (tmp_path / "a").mkdir()
    writer = Writer(old, tmp_path / "a", kind)
    try:
        writer.wait_for(lambda: len(writer.acknowledged()) >= 50, "fsync 50 records")
        seen = shutdown.mounts_everywhere(old)
        here = os.readlink("/proc/self/ns/mnt")
        assert [mount.namespace != here for mount in seen] == [True]

        # fsync'd before the fence: an fsync in flight as it hits may be lost (docs/failover.md)
        before = writer.acknowledged()
        b.fence(volume.blockdevice_id, "node-a")
        writer.process.send_signal(signal.SIGUSR1)
        writer.wait_for(lambda: writer.process.poll() is not None, "stop after 10 failures")

        assert errno.EIO in writer.errors()
        assert not [line for line in writer.lines if line[0] == "ok" and line[2] == "after"]
        assert ["create-error", str(errno.EIO)] in writer.lines
        first_error = next(int(line[1]) for line in writer.lines if line[0] == "error")
        assert max(writer.acknowledged()) < first_error
        assert loopdev.read_only(old)
        raw = os.open(old, os.O_WRONLY)
        try:
            with pytest.raises(OSError):
                os.pwrite(raw, b"AFTER-FENCE raw", 0)
        finally:
            os.close(raw)
    finally:
        writer.stop()

    b.attach_volume(volume.blockdevice_id, "node-b", epoch=2)
    new = b.get_device_path(volume.blockdevice_id)
    assert new != old
    mounted = tmp_path / "b"
    mounted.mkdir()
    options = ["-o", "nouuid"] if kind == "xfs" else []
    subprocess.run(["mount", *options, new, str(mounted)], check=True)
    try:
        data = (mounted / "data").read_bytes()
        assert not (mounted / "created-after-fence").exists()
    finally:
        subprocess.run(["umount", str(mounted)], check=True)
    records = data.splitlines()
    assert len(before) >= 50
    for seq in before:
        assert b"record-%08d" % seq in records
    assert b"AFTER-FENCE" not in data
    with open(new, "rb") as device:
        assert b"AFTER-FENCE" not in device.read()

    _clean_up(a)
    assert a.fenced_leftovers() == []
    assert loopdev.backing_file(old) != os.path.realpath(
        pool / str(cluster_id) / "volumes" / f"{volume.blockdevice_id}.img"
    )
    assert b.list_volumes()[0].attached_to == "node-b"


def test_fence_of_unmounted_device(pool: Path) -> None:
    """A fenced device that nothing mounts is made read-only; cleaning it makes it writable
    again before it is released, so the kernel's next user of the device can write."""
    a = LoopbackBlockDeviceAPI(str(pool), uuid4(), "node-a")
    volume = a.attach_volume(a.create_volume(uuid4(), 16 * MiB).blockdevice_id, "node-a")
    device = a.get_device_path(volume.blockdevice_id)
    a.fence(volume.blockdevice_id, "node-a")
    assert loopdev.read_only(device)
    (leftover,) = a.fenced_leftovers()
    assert leftover.device_path == device
    a.clean_up_fenced(leftover)
    assert not loopdev.read_only(device)
    assert a.fenced_leftovers() == []


def test_clean_up_refused_while_mounted(pool: Path, tmp_path: Path) -> None:
    """A leftover still mounted is not released (unmount first); it is once unmounted."""
    a = LoopbackBlockDeviceAPI(str(pool), uuid4(), "node-a")
    volume = a.attach_volume(a.create_volume(uuid4(), 64 * MiB).blockdevice_id, "node-a")
    device = a.get_device_path(volume.blockdevice_id)
    _mkfs(device, "ext4")
    mounted = tmp_path / "m"
    mounted.mkdir()
    subprocess.run(["mount", device, str(mounted)], check=True)
    try:
        a.fence(volume.blockdevice_id, "node-a")
        with pytest.raises(OSError) as failed:
            (mounted / "x").write_bytes(b"x")
        assert failed.value.errno == errno.EIO
        (leftover,) = a.fenced_leftovers()
        with pytest.raises(Exception, match="in use"):
            a.clean_up_fenced(leftover)
    finally:
        subprocess.run(["umount", str(mounted)], check=True)
    a.clean_up_fenced(leftover)
    assert a.fenced_leftovers() == []


def test_attach_clears_stale_read_only_flag(pool: Path) -> None:
    """A loop device left read-only by a fence (then released by hand) is writable on reuse."""
    a = LoopbackBlockDeviceAPI(str(pool), uuid4(), "node-a")
    volume = a.attach_volume(a.create_volume(uuid4(), 16 * MiB).blockdevice_id, "node-a")
    device = a.get_device_path(volume.blockdevice_id)
    a.fence(volume.blockdevice_id, "node-a")
    subprocess.run(["losetup", "-d", device], check=True)
    assert loopdev.read_only(device)
    other = a.create_volume(uuid4(), 16 * MiB)
    image = pool / str(a.cluster_id) / "volumes" / f"{other.blockdevice_id}.img"
    reused = loopdev.attach(str(image))
    try:
        assert not loopdev.read_only(reused)
    finally:
        subprocess.run(["losetup", "-d", reused], check=True)
