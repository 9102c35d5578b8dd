"""The loopback backend passes the conformance suite on real loop devices."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from agent.backends import loopdev
from agent.backends.interface import BackendError, BlockDeviceAPI, UnknownVolume
from agent.backends.loopback import LoopbackBlockDeviceAPI
from tests.agent.backends.conformance import BlockDeviceAPIConformance, MakeAPI

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
            subprocess.run(["losetup", "-d", "/dev/" + name], check=False)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Path]:
    """A pool directory; its loop devices are released afterwards, even on failure."""
    path = tmp_path / "pool"
    try:
        yield path
    finally:
        _release(path)


class TestLoopbackConformance(BlockDeviceAPIConformance):
    """LoopbackBlockDeviceAPI over one temporary pool."""

    @pytest.fixture
    def make_api(self, pool: Path) -> MakeAPI:
        """Loopback backends sharing one pool."""

        def make(cluster_id: UUID, instance_id: str) -> BlockDeviceAPI:
            return LoopbackBlockDeviceAPI(str(pool), cluster_id, instance_id)

        return make

    def vanish_device(self, api: BlockDeviceAPI, blockdevice_id: str) -> None:
        """Detach the loop device behind the backend's back."""
        device = api.get_device_path(blockdevice_id)
        subprocess.run(["losetup", "-d", device], check=True)


def _api(
    pool: Path, instance_id: str = "a", cluster_id: UUID | None = None
) -> LoopbackBlockDeviceAPI:
    return LoopbackBlockDeviceAPI(str(pool), cluster_id or uuid4(), instance_id)


def test_volume_is_sparse_file(pool: Path) -> None:
    """A volume is a sparse file of the rounded size in the cluster's part of the pool."""
    api = _api(pool)
    dataset_id = uuid4()
    volume = api.create_volume(dataset_id, 64 * 2**20)
    image = pool / str(api.cluster_id) / "volumes" / f"{dataset_id}.img"
    assert image.stat().st_size == volume.size == 64 * 2**20
    assert image.stat().st_blocks == 0


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
