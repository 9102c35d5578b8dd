"""
Two nodes on one Ceph pool: moves, a refused second attach, and a fence while a writer runs.

The two "hosts" are two backend instances with their own run directories and
their own Ceph client instances (every rbd-fuse is a client instance of its
own, ``127.0.0.1:0/NONCE``); they share the machine's network namespace, so a
blocklist entry names one client instance, never a whole host.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from agent.backends.interface import AlreadyAttachedVolume, BlockDeviceVolume
from agent.backends.rbd import naming
from agent.backends.rbd.backend import RbdBlockDeviceAPI
from agent.backends.rbd.fuse import RbdFuse
from agent.backends.rbd.session import CephSettings
from tests.agent.backends.ceph.conftest import MakeRbd

pytestmark = [pytest.mark.functional, pytest.mark.root]

MiB = 2**20
WRITER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
n = 0
while True:
    n += 1
    os.write(fd, b"%d\n" % n)
    os.fsync(fd)
    print(n, flush=True)
"""


def _run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, timeout=120)


@pytest.fixture
def nodes(make_rbd: MakeRbd) -> tuple[RbdBlockDeviceAPI, RbdBlockDeviceAPI]:
    """Two nodes of one cluster."""
    cluster_id = uuid4()
    return make_rbd(cluster_id, "host-a"), make_rbd(cluster_id, "host-b")


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Path]:
    """A directory for mount points; whatever is still mounted there is unmounted after."""
    root = tmp_path / "mnt"
    root.mkdir()
    yield root
    with open("/proc/self/mountinfo") as f:
        paths = [line.split(" ")[4] for line in f if f" {root}/" in line]
    for path in sorted(paths, key=len, reverse=True):
        subprocess.run(["umount", "-l", path], check=False)


def _mount(api: RbdBlockDeviceAPI, volume: BlockDeviceVolume, path: Path) -> None:
    path.mkdir(exist_ok=True)
    _run("mount", api.get_device_path(volume.blockdevice_id), str(path))


def test_move_back_and_forth(nodes, mounts: Path) -> None:
    """A filesystem written on one node is intact on the other, and back, several times."""
    one, two = nodes
    volume = one.create_volume(uuid4(), 64 * MiB)
    one.attach_volume(volume.blockdevice_id, "host-a", epoch=1)
    _run("mkfs.ext4", "-q", one.get_device_path(volume.blockdevice_id))
    expected = b""
    for turn, (here, there) in enumerate([(one, two), (two, one), (one, two), (two, one)]):
        path = mounts / here.instance_id
        if turn:
            here.attach_volume(volume.blockdevice_id, here.instance_id, epoch=turn + 1)
        _mount(here, volume, path)
        assert (path / "log").read_bytes() == expected if turn else True
        expected += f"turn {turn} on {here.instance_id}\n".encode()
        (path / "log").write_bytes(expected)
        _run("umount", str(path))
        here.detach_volume(volume.blockdevice_id)
        assert there.list_volumes()[0].attached_to is None
    one.attach_volume(volume.blockdevice_id, "host-a", epoch=9)
    _mount(one, volume, mounts / "last")
    assert (mounts / "last" / "log").read_bytes() == expected
    _run("umount", str(mounts / "last"))
    one.detach_volume(volume.blockdevice_id)


def test_second_attach_refused(nodes) -> None:
    """While one node has the volume, another node's attach is refused and changes nothing."""
    one, two = nodes
    volume = one.create_volume(uuid4(), 16 * MiB)
    attached = one.attach_volume(volume.blockdevice_id, "host-a", epoch=1)
    device = one.get_device_path(volume.blockdevice_id)
    with pytest.raises(AlreadyAttachedVolume, match="host-a"):
        two.attach_volume(volume.blockdevice_id, "host-b", epoch=1)
    assert two.list_volumes() == [attached]
    assert one.get_device_path(volume.blockdevice_id) == device


def test_attach_refused_while_another_client_has_the_image(
    nodes, ceph_settings: CephSettings, tmp_path: Path
) -> None:
    """An rbd-fuse outside Shoal holding the image open makes an attach fail, saying so."""
    one, _ = nodes
    volume = one.create_volume(uuid4(), 16 * MiB)
    image = naming.volume_image(one.cluster_id, volume.dataset_id)
    stray = RbdFuse(ceph_settings, str(tmp_path / "stray"))
    os.makedirs(stray.run_dir)
    stray.attach(image)
    try:
        with pytest.raises(AlreadyAttachedVolume, match="still open by Ceph client"):
            one.attach_volume(volume.blockdevice_id, "host-a")
        assert one.list_volumes()[0].attached_to is None
    finally:
        stray.detach(image)
    assert one.attach_volume(volume.blockdevice_id, "host-a").attached_to == "host-a"


def test_fence_while_writing(nodes, mounts: Path) -> None:
    """Fenced, a node's writer gets errors; the other node mounts the volume with every
    write fsynced before the fence; the fenced node's leftovers are then cleaned."""
    one, two = nodes
    volume = one.create_volume(uuid4(), 64 * MiB)
    one.attach_volume(volume.blockdevice_id, "host-a", epoch=1)
    _run("mkfs.ext4", "-q", one.get_device_path(volume.blockdevice_id))
    _mount(one, volume, mounts / "a")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(mounts / "a" / "log")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert writer.stdout is not None
    synced = 0
    while synced < 50:
        synced = int(writer.stdout.readline())
    two.fence(volume.blockdevice_id, "host-a")
    acknowledged = synced  # the writer may have reported more fsyncs while the fence ran
    for line in writer.stdout:
        acknowledged = int(line)
    assert writer.wait(60) != 0
    errors = writer.stderr.read()
    assert "Input/output error" in errors or "Read-only file system" in errors, errors
    two.attach_volume(volume.blockdevice_id, "host-b", epoch=2)
    device = two.get_device_path(volume.blockdevice_id)
    subprocess.run(["e2fsck", "-p", device], check=False, capture_output=True, timeout=120)
    _mount(two, volume, mounts / "b")
    lines = (mounts / "b" / "log").read_bytes().split()
    assert len(lines) >= acknowledged
    assert [int(n) for n in lines[:acknowledged]] == list(range(1, acknowledged + 1))
    (leftover,) = one.fenced_leftovers()
    assert leftover.blockdevice_id == volume.blockdevice_id
    one.clean_up_fenced(leftover)
    assert one.fenced_leftovers() == []
    assert os.path.ismount(mounts / "b")
    _run("umount", str(mounts / "b"))
    two.detach_volume(volume.blockdevice_id)


def test_dead_rbd_fuse_replaced(nodes) -> None:
    """A volume whose rbd-fuse died (its loop device left on a dead mount) gets a new rbd-fuse
    and loop device, with the data, and the node still holds it."""
    one, two = nodes
    volume = one.create_volume(uuid4(), 16 * MiB)
    one.attach_volume(volume.blockdevice_id, "host-a")
    device = one.get_device_path(volume.blockdevice_id)
    with open(device, "r+b") as f:
        f.seek(4096)
        f.write(b"survives")
        f.flush()
        os.fsync(f.fileno())
    image = naming.volume_image(one.cluster_id, volume.dataset_id)
    fuse_of_one = RbdFuse(one.settings, one.run_dir)
    for pid in fuse_of_one.find(image).pids:
        os.kill(pid, signal.SIGKILL)
    replaced = one.get_device_path(volume.blockdevice_id)
    found = fuse_of_one.find(image)
    assert found.mounted and len(found.pids) == 1 and found.devices == (replaced,)
    with open(replaced, "rb") as f:
        f.seek(4096)
        assert f.read(8) == b"survives"
    with pytest.raises(AlreadyAttachedVolume):
        two.attach_volume(volume.blockdevice_id, "host-b")
    one.detach_volume(volume.blockdevice_id)
    assert fuse_of_one.local() == []
