"""The fake filesystems pass the conformance suite, and data follows a moved volume."""

from __future__ import annotations

from uuid import uuid4

import pytest

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.fs.fake import FakeFilesystems
from agent.fs.interface import FilesystemError, Filesystems
from tests.agent.fs.conformance import FilesystemsConformance, NewDevice
from tests.agent.fs.growth_conformance import GrowDevice, GrowthConformance, SizedDevice


@pytest.fixture
def storage() -> FakeStorage:
    """The shared fake SAN."""
    return FakeStorage()


@pytest.fixture
def backend(storage: FakeStorage) -> FakeBlockDeviceAPI:
    """A fake backend on node ``a``."""
    return FakeBlockDeviceAPI(storage, uuid4(), "a")


class TestFakeConformance(FilesystemsConformance, GrowthConformance):
    """FakeFilesystems on devices of fake volumes attached to node ``a``."""

    @pytest.fixture
    def sized_device(self, backend: FakeBlockDeviceAPI) -> SizedDevice:
        """Create and attach a fake volume of a given size, returning its device."""

        def make(size: int) -> str:
            volume = backend.create_volume(uuid4(), size)
            backend.attach_volume(volume.blockdevice_id, "a")
            return backend.get_device_path(volume.blockdevice_id)

        return make

    @pytest.fixture
    def grow_device(self, backend: FakeBlockDeviceAPI) -> GrowDevice:
        """Resize the fake volume behind a device."""

        def grow(device: str, size: int) -> None:
            backend.resize_volume(device.rsplit("/", 1)[-1], size)

        return grow

    @pytest.fixture
    def fs(self, storage: FakeStorage) -> Filesystems:
        """Node ``a``'s fake filesystems."""
        return FakeFilesystems(storage, "a")

    @pytest.fixture
    def new_device(self, backend: FakeBlockDeviceAPI) -> NewDevice:
        """Create and attach a fake volume, returning its device."""

        def make() -> str:
            volume = backend.create_volume(uuid4(), 1)
            backend.attach_volume(volume.blockdevice_id, "a")
            return backend.get_device_path(volume.blockdevice_id)

        return make

    @pytest.fixture
    def mount_root(self) -> str:
        """A directory for mount points (nothing is created on disk)."""
        return "/fake/mnt"

    def write_marker(self, fs: Filesystems, path: str, data: bytes) -> None:
        """Write through the fake's test helper."""
        assert isinstance(fs, FakeFilesystems)
        fs.write_file(path, data)

    def read_marker(self, fs: Filesystems, path: str) -> bytes:
        """Read through the fake's test helper."""
        assert isinstance(fs, FakeFilesystems)
        return fs.read_file(path)

    def bind_device(self, fs: Filesystems, device: str, target: str) -> None:
        """Through the fake's test helper."""
        assert isinstance(fs, FakeFilesystems)
        fs.bind_device(device, target)

    def unbind_device(self, fs: Filesystems, target: str) -> None:
        """Through the fake's test helper."""
        assert isinstance(fs, FakeFilesystems)
        fs.unbind_device(target)


def test_marker_follows_moved_volume(storage: FakeStorage) -> None:
    """A file written on node a is read on node b after the volume moved there."""
    cluster_id = uuid4()
    a, b = (
        FakeBlockDeviceAPI(storage, cluster_id, "a"),
        FakeBlockDeviceAPI(storage, cluster_id, "b"),
    )
    fs_a, fs_b = FakeFilesystems(storage, "a"), FakeFilesystems(storage, "b")
    volume = a.create_volume(uuid4(), 1)
    a.attach_volume(volume.blockdevice_id, "a")
    device = a.get_device_path(volume.blockdevice_id)
    fs_a.make_filesystem(device)
    fs_a.mount(device, "/mnt/v")
    fs_a.write_file("/mnt/v/marker", b"moved")
    fs_a.unmount("/mnt/v")
    a.detach_volume(volume.blockdevice_id)
    b.attach_volume(volume.blockdevice_id, "b")
    device_b = b.get_device_path(volume.blockdevice_id)
    assert fs_b.has_filesystem(device_b)
    fs_b.mount(device_b, "/mnt/w")
    assert fs_b.read_file("/mnt/w/marker") == b"moved"
    assert fs_a.mounts() == []


def test_device_of_other_node_absent(storage: FakeStorage, backend: FakeBlockDeviceAPI) -> None:
    """A device attached to another node does not exist on this node."""
    volume = backend.attach_volume(backend.create_volume(uuid4(), 1).blockdevice_id, "a")
    with pytest.raises(FilesystemError):
        FakeFilesystems(storage, "b").has_filesystem(backend.get_device_path(volume.blockdevice_id))


def test_destroyed_volume_loses_data(storage: FakeStorage, backend: FakeBlockDeviceAPI) -> None:
    """A volume created again after destruction starts without a filesystem."""
    fs = FakeFilesystems(storage, "a")
    dataset_id = uuid4()
    volume = backend.attach_volume(backend.create_volume(dataset_id, 1).blockdevice_id, "a")
    fs.make_filesystem(backend.get_device_path(volume.blockdevice_id))
    backend.detach_volume(volume.blockdevice_id)
    backend.destroy_volume(volume.blockdevice_id)
    again = backend.attach_volume(backend.create_volume(dataset_id, 1).blockdevice_id, "a")
    assert not fs.has_filesystem(backend.get_device_path(again.blockdevice_id))
