"""Loopback snapshots, clones and resizes on XFS and btrfs (reflink) and ext4 (copy) pools."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Generator, Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from agent.backends import filecopy
from agent.backends.loopback import LoopbackBlockDeviceAPI
from tests.agent.backends import test_loopback as loopback_tests
from tests.agent.backends.test_loopback import (  # small_pool: a fixture the suite uses
    _release,
    image_of,
    read_image,
    small_pool,  # noqa: F401
    write_image,
)
from tests.agent.loopmount import mount_image

pytestmark = [
    pytest.mark.functional,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup and mount"),
]

MiB = 2**20
MKFS = {
    "xfs": ["mkfs.xfs", "-q", "-m", "reflink=1"],
    "btrfs": ["mkfs.btrfs", "-q"],
    "ext4": ["mkfs.ext4", "-q"],
}


def mounted_pool_filesystem(base: Path, kind: str, size: int = 2048 * MiB) -> Iterator[Path]:
    """A ``kind`` filesystem on a loop-mounted sparse file under ``base``; torn down after."""
    image, mount = base / f"{kind}.fs", base / kind
    mount.mkdir()
    with open(image, "wb") as f:
        f.truncate(size)
    subprocess.run([*MKFS[kind], str(image)], check=True, stdin=subprocess.DEVNULL)
    mount_image(str(image), str(mount))
    try:
        yield mount
    finally:
        _release(mount)
        subprocess.run(["umount", str(mount)], check=False)
        image.unlink()


@pytest.fixture(scope="module")
def xfs_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A loop-mounted XFS filesystem with reflink."""
    yield from mounted_pool_filesystem(tmp_path_factory.mktemp("xfs"), "xfs")


@pytest.fixture(scope="module")
def btrfs_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A loop-mounted btrfs filesystem."""
    yield from mounted_pool_filesystem(tmp_path_factory.mktemp("btrfs"), "btrfs")


def _fresh_pool(mount: Path) -> Generator[Path, None, None]:
    pool = mount / uuid4().hex
    try:
        yield pool
    finally:
        _release(pool)
        subprocess.run(["rm", "-rf", str(pool)], check=False)


class TestXfsReflinkConformance(loopback_tests.TestLoopbackConformance):
    """The whole backend suite on a pool on XFS, which snapshots by reflink."""

    @pytest.fixture
    def pool(self, xfs_mount: Path) -> Iterator[Path]:
        """A fresh pool directory on the XFS filesystem."""
        yield from _fresh_pool(xfs_mount)


class TestBtrfsConformance(loopback_tests.TestLoopbackConformance):
    """The whole backend suite on a pool on btrfs, which snapshots by reflink."""

    @pytest.fixture
    def pool(self, btrfs_mount: Path) -> Iterator[Path]:
        """A fresh pool directory on the btrfs filesystem."""
        yield from _fresh_pool(btrfs_mount)


def _api(pool: Path, overcommit: float | None = None) -> LoopbackBlockDeviceAPI:
    return LoopbackBlockDeviceAPI(str(pool), uuid4(), "a", overcommit=overcommit)


def _used(path: Path) -> int:
    stats = os.statvfs(path)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


@pytest.mark.parametrize("kind", ["xfs", "btrfs"])
def test_reflink_pools_report_reflink(request: pytest.FixtureRequest, kind: str) -> None:
    """A pool on XFS or btrfs makes its copies by reflink and says so in its capacity."""
    mount: Path = request.getfixturevalue(f"{kind}_mount")
    for pool in _fresh_pool(mount):
        assert _api(pool).capacity().snapshot_method == filecopy.REFLINK


def test_ext4_pool_reports_copy(tmp_path: Path) -> None:
    """A pool on ext4 (no reflink) copies, and says so."""
    assert _api(tmp_path / "pool").capacity().snapshot_method == filecopy.COPY


def test_fresh_reflink_snapshot_takes_no_space(xfs_mount: Path) -> None:
    """A snapshot of a 256 MiB volume full of data takes well under 1 MiB of an XFS pool."""
    for pool in _fresh_pool(xfs_mount):
        api = _api(pool)
        volume = api.create_volume(uuid4(), 256 * MiB)
        write_image(api, volume.blockdevice_id, 0, os.urandom(MiB) * 256)
        os.sync()
        before = _used(xfs_mount)
        api.create_snapshot(volume.blockdevice_id, str(uuid4()))
        os.sync()
        assert _used(xfs_mount) - before < MiB


def test_copy_keeps_holes(tmp_path: Path) -> None:
    """On ext4 a snapshot of a thin volume copies its data only; the holes stay holes."""
    api = _api(tmp_path / "pool", overcommit=2.0)
    volume = api.create_volume(uuid4(), 64 * MiB)
    write_image(api, volume.blockdevice_id, 32 * MiB, b"x" * MiB)
    snapshot = api.create_snapshot(volume.blockdevice_id, str(uuid4()))
    image = tmp_path / "pool" / str(api.cluster_id) / "snapshots" / f"{snapshot.snapshot_id}.img"
    assert image.stat().st_size == 64 * MiB
    assert image.stat().st_blocks * 512 <= 2 * MiB
    restored = api.create_volume_from_snapshot(uuid4(), snapshot.snapshot_id, 64 * MiB)
    assert read_image(api, restored.blockdevice_id, 32 * MiB, 4) == b"xxxx"


def test_snapshots_count_as_provisioned(tmp_path: Path) -> None:
    """In a thin pool a snapshot's size counts as provisioned, so the largest volume shrinks."""
    api = _api(tmp_path / "pool", overcommit=1.0)
    volume = api.create_volume(uuid4(), 64 * MiB)
    before = api.capacity().maximum_volume_size
    assert before is not None
    api.create_snapshot(volume.blockdevice_id, str(uuid4()))
    after = api.capacity().maximum_volume_size
    assert after is not None and after <= before - 64 * MiB


def test_half_made_copy_swept(tmp_path: Path) -> None:
    """A temporary copy whose maker died is never listed and is removed by the next listing."""
    api = _api(tmp_path / "pool")
    root = tmp_path / "pool" / str(api.cluster_id)
    for kind in ("snapshots", "volumes"):
        (root / kind / f"{filecopy.TEMPORARY_PREFIX}crashed").write_bytes(b"half")
    (root / "snapshots" / f"{uuid4()}.json").write_text('{"blockdevice_id": "x"}')
    assert api.list_snapshots() == []
    assert api.list_volumes() == []
    assert sorted(os.listdir(root / "snapshots")) == []
    assert os.listdir(root / "volumes") == []


def test_copy_in_progress_not_swept(tmp_path: Path) -> None:
    """A temporary copy still locked by its maker is left alone."""
    directory = tmp_path / "d"
    directory.mkdir()
    seen = []

    def fill(fd: int) -> None:
        os.write(fd, b"data")
        seen.extend(filecopy.sweep(str(directory)))
        seen.append(str(len(os.listdir(directory))))

    assert filecopy.make_whole(str(directory / "done"), fill)
    assert seen == ["1"]
    assert (directory / "done").read_bytes() == b"data"
    assert os.listdir(directory) == ["done"]


def _device_size(device: str) -> int:
    out = subprocess.run(
        ["blockdev", "--getsize64", device], check=True, capture_output=True, text=True
    )
    return int(out.stdout)


@pytest.mark.parametrize("kind", ["xfs", "ext4"])
def test_resize_refreshes_device(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    """Growing an attached volume shows the new size on its loop device at once."""
    pools = _fresh_pool(request.getfixturevalue("xfs_mount")) if kind == "xfs" else None
    pool = next(pools) if pools else tmp_path / "pool"
    try:
        api = _api(pool)
        volume = api.create_volume(uuid4(), 32 * MiB)
        api.attach_volume(volume.blockdevice_id, "a")
        device = api.get_device_path(volume.blockdevice_id)
        api.resize_volume(volume.blockdevice_id, 64 * MiB)
        assert _device_size(device) == 64 * MiB
        assert os.stat(image_of(api, volume.blockdevice_id)).st_blocks * 512 >= 64 * MiB
    finally:
        if pools:
            pools.close()
        else:
            _release(pool)


def test_snapshot_of_other_cluster_unknown(tmp_path: Path) -> None:
    """Clusters sharing a pool never see each other's snapshots."""
    pool = tmp_path / "pool"
    mine, theirs = _api(pool), _api(pool)
    volume = mine.create_volume(uuid4(), 8 * MiB)
    mine.create_snapshot(volume.blockdevice_id, str(uuid4()))
    assert theirs.list_snapshots() == []


def test_listing_never_waits_for_a_snapshot_being_made(tmp_path: Path) -> None:
    """While a snapshot is being made (its lock held), a listing neither waits nor removes it."""
    api = _api(tmp_path / "pool")
    volume = api.create_volume(uuid4(), 8 * MiB)
    snapshot_id = str(uuid4())
    record = tmp_path / "pool" / str(api.cluster_id) / "snapshots" / f"{snapshot_id}.json"
    with api._snapshot_locked(snapshot_id):
        record.write_text(json.dumps({"blockdevice_id": volume.blockdevice_id}))
        assert api.list_snapshots() == []
        assert record.exists()
    assert api.list_snapshots() == []
    assert not record.exists()
