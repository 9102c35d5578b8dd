"""The fake backend passes the conformance suite, plus fake-only behaviour."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.backends.interface import BackendError, BlockDeviceAPI
from tests.agent.backends.conformance import SMALL_STORAGE, BlockDeviceAPIConformance, MakeAPI

RAW = ".raw"
"""The fake file that stands for a volume's raw bytes in these tests."""


class TestFakeConformance(BlockDeviceAPIConformance):
    """FakeBlockDeviceAPI over one shared FakeStorage."""

    QUIESCED_SNAPSHOTS = True

    @pytest.fixture
    def make_api(self) -> MakeAPI:
        """Fake backends sharing one storage."""
        storage = FakeStorage()

        def make(cluster_id: UUID, instance_id: str) -> BlockDeviceAPI:
            return FakeBlockDeviceAPI(storage, cluster_id, instance_id)

        return make

    @pytest.fixture
    def make_small_api(self) -> MakeAPI:
        """Fake backends sharing one storage of 100 MiB."""
        storage = FakeStorage(total=SMALL_STORAGE)

        def make(cluster_id: UUID, instance_id: str) -> BlockDeviceAPI:
            return FakeBlockDeviceAPI(storage, cluster_id, instance_id)

        return make

    def device_refuses_writes(self, api: BlockDeviceAPI, device: str) -> bool:
        """The fake storage marks it a read-only attachment of this node (the fake
        filesystems then mount it read-only only, and refuse writes)."""
        assert isinstance(api, FakeBlockDeviceAPI)
        return api.storage.read_only_device(device, api.instance_id)

    def vanish_device(self, api: BlockDeviceAPI, blockdevice_id: str) -> None:
        """Mark the device lost in the shared storage."""
        assert isinstance(api, FakeBlockDeviceAPI)
        api.storage.lose_device(blockdevice_id)

    def write_data(
        self, api: BlockDeviceAPI, blockdevice_id: str, offset: int, data: bytes
    ) -> None:
        """Write into the volume's raw bytes, kept as the file ``RAW`` of its data."""
        assert isinstance(api, FakeBlockDeviceAPI)
        files = api.storage.files.setdefault(blockdevice_id, {})
        raw = bytearray(files.get(RAW, b""))
        raw.extend(bytes(max(0, offset + len(data) - len(raw))))
        raw[offset : offset + len(data)] = data
        files[RAW] = bytes(raw)

    def read_data(self, api: BlockDeviceAPI, blockdevice_id: str, offset: int, size: int) -> bytes:
        """Read the volume's raw bytes (zeros where nothing was written)."""
        assert isinstance(api, FakeBlockDeviceAPI)
        raw = api.storage.files.get(blockdevice_id, {}).get(RAW, b"")
        return raw[offset : offset + size].ljust(size, b"\0")


def test_custom_allocation_unit() -> None:
    """The allocation unit is configurable and sizes round to it."""
    api = FakeBlockDeviceAPI(FakeStorage(), uuid4(), "a", allocation_unit=4096)
    assert api.allocation_unit() == 4096
    assert api.create_volume(uuid4(), 4097).size == 8192


def test_nonpositive_size_refused() -> None:
    """A volume of zero bytes is refused."""
    api = FakeBlockDeviceAPI(FakeStorage(), uuid4(), "a")
    with pytest.raises(BackendError):
        api.create_volume(uuid4(), 0)


def test_injected_failure_fires_once() -> None:
    """An injected failure is raised by the next call of that operation only."""
    storage = FakeStorage()
    api = FakeBlockDeviceAPI(storage, uuid4(), "a")
    storage.inject_failure("create_volume", BackendError("boom"))
    with pytest.raises(BackendError, match="boom"):
        api.create_volume(uuid4(), 1)
    assert api.list_volumes() == []
    api.create_volume(uuid4(), 1)
    assert len(api.list_volumes()) == 1


def test_lost_device_absent_until_restored() -> None:
    """A lost device is absent until get_device_path restores it."""
    storage = FakeStorage()
    api = FakeBlockDeviceAPI(storage, uuid4(), "a")
    volume = api.attach_volume(api.create_volume(uuid4(), 1).blockdevice_id, "a")
    path = api.get_device_path(volume.blockdevice_id)
    storage.lose_device(volume.blockdevice_id)
    assert not storage.device_present(path)
    assert api.get_device_path(volume.blockdevice_id) == path
    assert storage.device_present(path, "a")
    assert not storage.device_present(path, "b")
