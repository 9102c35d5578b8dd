"""The loopback backend passes the conformance suite on real loop devices."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from agent.backends import loopdev
from agent.backends.interface import (
    BackendError,
    BlockDeviceAPI,
    InsufficientCapacity,
    UnknownVolume,
)
from agent.backends.loopback import LoopbackBlockDeviceAPI
from tests.agent.backends.conformance import (
    SMALL_STORAGE,
    BlockDeviceAPIConformance,
    MakeAPI,
)

pytestmark = [
    pytest.mark.functional,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup"),
]


def _release(pool: Path) -> None:
    """Detach every loop device backed by a file under ``pool``."""
    prefix = os.path.realpath(pool) + os.sep
    for name in os.listdir(loopdev.SYS_BLOCK):
        backing = loopdev.backing_file(name)
        if backing and backing.startswith(prefix):
            if loopdev.read_only(name):  # a fence's leftover: the flag outlives the device
                loopdev.set_read_only("/dev/" + name, False)
            subprocess.run(["losetup", "-d", "/dev/" + name], check=False)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Path]:
    """A pool directory; its loop devices are released afterwards, even on failure."""
    path = tmp_path / "pool"
    try:
        yield path
    finally:
        _release(path)


@pytest.fixture
def small_pool(tmp_path: Path) -> Iterator[Path]:
    """A pool on its own 100 MiB tmpfs, unmounted (and its loop devices released) afterwards."""
    path = tmp_path / "small"
    path.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_STORAGE}", "shoal-test", str(path)],
        check=True,
    )
    try:
        yield path
    finally:
        _release(path)
        subprocess.run(["umount", "-l", str(path)], check=False)


class TestLoopbackConformance(BlockDeviceAPIConformance):
    """LoopbackBlockDeviceAPI over one temporary pool."""

    @pytest.fixture
    def make_small_api(self, small_pool: Path) -> MakeAPI:
        """Loopback backends sharing one pool on a 100 MiB tmpfs."""

        def make(cluster_id: UUID, instance_id: str) -> BlockDeviceAPI:
            return LoopbackBlockDeviceAPI(str(small_pool), cluster_id, instance_id)

        return make

    @pytest.fixture
    def make_api(self, pool: Path) -> MakeAPI:
        """Loopback backends sharing one pool."""

        def make(cluster_id: UUID, instance_id: str) -> BlockDeviceAPI:
            return LoopbackBlockDeviceAPI(str(pool), cluster_id, instance_id)

        return make

    def device_refuses_writes(self, api: BlockDeviceAPI, device: str) -> bool:
        """The loop device is read-only, and a write to it fails (EPERM, even for root)."""
        try:
            fd = os.open(device, os.O_WRONLY)
        except OSError as e:
            return loopdev.read_only(device) and e.errno in (errno.EROFS, errno.EPERM, errno.EACCES)
        try:
            os.write(fd, bytes(512))
        except OSError as e:
            return loopdev.read_only(device) and e.errno in (errno.EROFS, errno.EPERM)
        finally:
            os.close(fd)
        return False

    def vanish_device(self, api: BlockDeviceAPI, blockdevice_id: str) -> None:
        """Detach the loop device behind the backend's back."""
        device = api.get_device_path(blockdevice_id)
        subprocess.run(["losetup", "-d", device], check=True)

    def write_data(
        self, api: BlockDeviceAPI, blockdevice_id: str, offset: int, data: bytes
    ) -> None:
        """Write into the volume's file."""
        write_image(api, blockdevice_id, offset, data)

    def read_data(self, api: BlockDeviceAPI, blockdevice_id: str, offset: int, size: int) -> bytes:
        """Read from the volume's file."""
        return read_image(api, blockdevice_id, offset, size)


def image_of(api: BlockDeviceAPI, blockdevice_id: str) -> str:
    """The file of a loopback volume."""
    assert isinstance(api, LoopbackBlockDeviceAPI)
    return os.path.join(api.pool, str(api.cluster_id), "volumes", blockdevice_id + ".img")


def write_image(api: BlockDeviceAPI, blockdevice_id: str, offset: int, data: bytes) -> None:
    """Write ``data`` at ``offset`` into a loopback volume's file."""
    fd = os.open(image_of(api, blockdevice_id), os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def read_image(api: BlockDeviceAPI, blockdevice_id: str, offset: int, size: int) -> bytes:
    """Read ``size`` bytes at ``offset`` from a loopback volume's file."""
    fd = os.open(image_of(api, blockdevice_id), os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def _api(
    pool: Path, instance_id: str = "a", cluster_id: UUID | None = None
) -> LoopbackBlockDeviceAPI:
    return LoopbackBlockDeviceAPI(str(pool), cluster_id or uuid4(), instance_id)


def test_volume_is_allocated_file(pool: Path) -> None:
    """By default a volume is a fully allocated file of the rounded size in the cluster's part."""
    api = _api(pool)
    dataset_id = uuid4()
    volume = api.create_volume(dataset_id, 64 * 2**20)
    image = pool / str(api.cluster_id) / "volumes" / f"{dataset_id}.img"
    assert image.stat().st_size == volume.size == 64 * 2**20
    assert image.stat().st_blocks * 512 >= volume.size


def test_allocation_survives_mkfs(small_pool: Path) -> None:
    """mkfs.ext4 discards the device (tmpfs punches holes), but a thick volume stays allocated."""
    pool = small_pool
    api = _api(pool)
    volume = api.attach_volume(api.create_volume(uuid4(), 64 * 2**20).blockdevice_id, "a")
    device = api.get_device_path(volume.blockdevice_id)
    subprocess.run(["mkfs.ext4", "-q", device], check=True, stdin=subprocess.DEVNULL)
    image = pool / str(api.cluster_id) / "volumes" / f"{volume.blockdevice_id}.img"
    assert image.stat().st_blocks * 512 >= volume.size


def test_thin_volume_is_sparse_file(pool: Path) -> None:
    """In a thin (overcommitted) pool a volume is a sparse file."""
    api = LoopbackBlockDeviceAPI(str(pool), uuid4(), "a", overcommit=2.0)
    volume = api.create_volume(uuid4(), 64 * 2**20)
    image = pool / str(api.cluster_id) / "volumes" / f"{volume.blockdevice_id}.img"
    assert image.stat().st_size == 64 * 2**20
    assert image.stat().st_blocks == 0


def test_overcommit_bounded(pool: Path) -> None:
    """An overcommit ratio outside 1.0..10.0 is refused with the bounds."""
    for ratio in (0.5, 10.5):
        with pytest.raises(BackendError, match="between 1.0 and 10.0"):
            LoopbackBlockDeviceAPI(str(pool), uuid4(), "a", overcommit=ratio)


def test_thin_pool_refuses_beyond_ratio(small_pool: Path) -> None:
    """A thin pool provisions up to ratio x its size across clusters, then refuses."""
    api = LoopbackBlockDeviceAPI(str(small_pool), uuid4(), "a", overcommit=1.5)
    other = LoopbackBlockDeviceAPI(str(small_pool), uuid4(), "a", overcommit=1.5)
    api.create_volume(uuid4(), 64 * 2**20)
    other.create_volume(uuid4(), 64 * 2**20)
    assert (api.capacity().maximum_volume_size or 0) < 64 * 2**20
    with pytest.raises(InsufficientCapacity, match="thin pool overcommitted at most 1.5x"):
        api.create_volume(uuid4(), 64 * 2**20)


def test_full_pool_refuses_fallocate(small_pool: Path) -> None:
    """When the pool's free space was taken behind the backend's back, fallocate's ENOSPC
    refuses the create and leaves no file behind."""
    api = LoopbackBlockDeviceAPI(str(small_pool), uuid4(), "a")
    maximum = api.capacity().maximum_volume_size or 0
    filler = small_pool / "filler"
    with open(filler, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, maximum - 8 * 2**20)
    volumes = small_pool / str(api.cluster_id) / "volumes"
    with pytest.raises(InsufficientCapacity):
        api._create_file(str(volumes / f"{uuid4()}.img"), maximum)
    assert os.listdir(volumes) == []


def _attached_devices(pool: Path) -> list[str]:
    prefix = os.path.realpath(pool) + os.sep
    return [
        name
        for name in os.listdir(loopdev.SYS_BLOCK)
        if (loopdev.backing_file(name) or "").startswith(prefix)
    ]


def test_attach_record_fails_before_losetup(small_pool: Path) -> None:
    """With the pool full, the attachment record cannot be written: nothing is attached."""
    api = LoopbackBlockDeviceAPI(str(small_pool), uuid4(), "a")
    volume = api.create_volume(uuid4(), 64 * 2**20)
    with open(small_pool / "filler", "wb") as f, pytest.raises(OSError):
        while True:
            f.write(b"x" * 2**20)
            f.flush()
    with pytest.raises(OSError) as failed:
        api.attach_volume(volume.blockdevice_id, "a")
    assert failed.value.errno == errno.ENOSPC
    assert _attached_devices(small_pool) == []
    assert api.list_volumes()[0].attached_to is None


def test_attach_record_fails_after_losetup(pool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the record naming the device cannot be written, the loop device is detached again."""
    api = _api(pool)
    volume = api.create_volume(uuid4(), 1)
    writes = []
    real_write = LoopbackBlockDeviceAPI._write_record

    def failing_second(
        self: LoopbackBlockDeviceAPI, blockdevice_id: str, instance_id: str, device: str
    ) -> None:
        writes.append(device)
        if device:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, blockdevice_id, instance_id, device)

    monkeypatch.setattr(LoopbackBlockDeviceAPI, "_write_record", failing_second)
    with pytest.raises(OSError):
        api.attach_volume(volume.blockdevice_id, "a")
    assert writes[0] == "" and writes[1].startswith("/dev/loop")
    assert _attached_devices(pool) == []
    assert api.list_volumes()[0].attached_to is None


def test_attach_record_written_before_losetup(pool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When losetup fails, the record written before it is removed again."""
    api = _api(pool)
    volume = api.create_volume(uuid4(), 1)
    record = pool / str(api.cluster_id) / "attachments" / volume.blockdevice_id
    seen = []

    def failing_losetup(path: str) -> str:
        seen.append(record.exists())
        raise BackendError("losetup: no free loop device")

    monkeypatch.setattr(loopdev, "attach", failing_losetup)
    with pytest.raises(BackendError, match="no free loop device"):
        api.attach_volume(volume.blockdevice_id, "a")
    assert seen == [True]
    assert not record.exists()
    assert api.list_volumes()[0].attached_to is None


def test_attachment_record(pool: Path) -> None:
    """Attaching writes a record naming the instance and a loop device backed by the file."""
    api = _api(pool)
    volume = api.create_volume(uuid4(), 1)
    api.attach_volume(volume.blockdevice_id, "a")
    record_path = pool / str(api.cluster_id) / "attachments" / volume.blockdevice_id
    record = json.loads(record_path.read_text())
    image = pool / str(api.cluster_id) / "volumes" / f"{volume.blockdevice_id}.img"
    assert record["instance_id"] == "a"
    assert loopdev.backing_file(record["device"]) == os.path.realpath(image)
    assert api.get_device_path(volume.blockdevice_id) == record["device"]


def test_survives_restart(pool: Path) -> None:
    """A new backend instance on the same pool sees the same volumes and devices."""
    api = _api(pool)
    volume = api.attach_volume(api.create_volume(uuid4(), 1).blockdevice_id, "a")
    path = api.get_device_path(volume.blockdevice_id)
    restarted = LoopbackBlockDeviceAPI(str(pool), api.cluster_id, "a")
    assert restarted.list_volumes() == [volume]
    assert restarted.get_device_path(volume.blockdevice_id) == path


def test_data_survives_move(pool: Path) -> None:
    """Bytes written through one node's device are read through another's after a move."""
    a = _api(pool, "a")
    b = LoopbackBlockDeviceAPI(str(pool), a.cluster_id, "b")
    volume = a.create_volume(uuid4(), 1)
    a.attach_volume(volume.blockdevice_id, "a")
    with open(a.get_device_path(volume.blockdevice_id), "r+b") as device:
        device.write(b"marker")
    a.detach_volume(volume.blockdevice_id)
    b.attach_volume(volume.blockdevice_id, "b")
    with open(b.get_device_path(volume.blockdevice_id), "rb") as device:
        assert device.read(6) == b"marker"


def test_detach_releases_loop_device(pool: Path) -> None:
    """Detaching frees the loop device."""
    api = _api(pool)
    volume = api.attach_volume(api.create_volume(uuid4(), 1).blockdevice_id, "a")
    device = api.get_device_path(volume.blockdevice_id)
    api.detach_volume(volume.blockdevice_id)
    image = pool / str(api.cluster_id) / "volumes" / f"{volume.blockdevice_id}.img"
    assert loopdev.backing_file(device) != os.path.realpath(image)
    assert loopdev.devices_backed_by(str(image)) == []


def test_crash_between_losetup_and_record(pool: Path) -> None:
    """A loop device left by a crash before the record was written is reused, not doubled."""
    api = _api(pool)
    volume = api.create_volume(uuid4(), 1)
    image = pool / str(api.cluster_id) / "volumes" / f"{volume.blockdevice_id}.img"
    orphan = loopdev.attach(str(image))
    api.attach_volume(volume.blockdevice_id, "a")
    assert api.get_device_path(volume.blockdevice_id) == orphan
    assert loopdev.devices_backed_by(str(image)) == [orphan]


def test_malformed_ids_unknown(pool: Path) -> None:
    """Ids that are not canonical dataset ids (e.g. paths) are unknown volumes."""
    api = _api(pool)
    for bad in ["../x", "not-a-uuid", str(uuid4()).upper()]:
        with pytest.raises(UnknownVolume):
            api.attach_volume(bad, "a")


def test_losetup_failure_names_stderr() -> None:
    """A failing command raises BackendError quoting its stderr."""
    with pytest.raises(BackendError, match="losetup -d /dev/nonexistent"):
        loopdev.run(["losetup", "-d", "/dev/nonexistent"])


def _read_only(device: str) -> bool:
    done = subprocess.run(["blockdev", "--getro", device], check=True, capture_output=True,
                          text=True)
    return done.stdout.strip() == "1"


def test_attach_clears_a_stale_read_only_flag(tmp_path: Path) -> None:
    """A loop device left read-only by its previous user (the flag outlives a detach) is
    writable once a volume is attached to it."""
    scratch, image = tmp_path / "scratch.img", tmp_path / "volume.img"
    for path in (scratch, image):
        with open(path, "wb") as f:
            f.truncate(2**20)
    for _ in range(5):
        tainted = loopdev.run(["losetup", "--find", "--show", str(scratch)]).strip()
        device = None
        try:
            subprocess.run(["blockdev", "--setro", tainted], check=True)
            subprocess.run(["losetup", "-d", tainted], check=True)
            device = loopdev.attach(str(image))
            if device == tainted:
                assert not _read_only(device)
                return
        finally:
            subprocess.run(["blockdev", "--setrw", tainted], check=False)
            if device is not None:
                subprocess.run(["losetup", "-d", device], check=False)
    pytest.fail("another process took the tainted loop device every time; run again")


def test_concurrent_attaches_get_distinct_devices(pool: Path) -> None:
    """Nodes attaching different volumes at once each get their own loop device."""
    cluster_id = uuid4()
    apis = [LoopbackBlockDeviceAPI(str(pool), cluster_id, f"n{i}") for i in range(6)]
    volumes = [api.create_volume(uuid4(), 1) for api in apis]

    def attach(pair: tuple[LoopbackBlockDeviceAPI, str]) -> str:
        api, blockdevice_id = pair
        api.attach_volume(blockdevice_id, api.compute_instance_id())
        return api.get_device_path(blockdevice_id)

    with ThreadPoolExecutor(len(apis)) as executor:
        devices = list(
            executor.map(attach, zip(apis, [v.blockdevice_id for v in volumes], strict=True))
        )
    assert len(set(devices)) == len(devices)


def test_detach_refuses_mounted_device(pool: Path, tmp_path: Path) -> None:
    """A mounted volume is not detached (losetup -d would only defer it) and stays attached."""
    api = _api(pool)
    volume = api.attach_volume(api.create_volume(uuid4(), 64 * 2**20).blockdevice_id, "a")
    device = api.get_device_path(volume.blockdevice_id)
    subprocess.run(["mkfs.ext4", "-q", device], check=True, stdin=subprocess.DEVNULL)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(["mount", device, str(elsewhere)], check=True)
    try:
        with pytest.raises(BackendError, match="in use"):
            api.detach_volume(volume.blockdevice_id)
        assert api.list_volumes()[0].attached_to == "a"
        assert api.get_device_path(volume.blockdevice_id) == device
    finally:
        subprocess.run(["umount", str(elsewhere)], check=True)
    api.detach_volume(volume.blockdevice_id)
    assert api.list_volumes()[0].attached_to is None
