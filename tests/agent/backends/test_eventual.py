"""The eventually consistent wrapper lags its listings behind changes."""

from __future__ import annotations

from uuid import uuid4

import pytest

from agent.backends.eventual import EventuallyConsistentBlockDeviceAPI
from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.backends.interface import AlreadyAttachedVolume, BlockDeviceAPI


@pytest.fixture
def fake() -> FakeBlockDeviceAPI:
    """The wrapped, immediately consistent backend."""
    return FakeBlockDeviceAPI(FakeStorage(), uuid4(), "a")


def test_provides_interface(fake: FakeBlockDeviceAPI) -> None:
    """The wrapper is a backend with the wrapped one's unit and instance id."""
    api = EventuallyConsistentBlockDeviceAPI(fake, lag=2)
    assert isinstance(api, BlockDeviceAPI)
    assert (api.allocation_unit(), api.compute_instance_id()) == (2**20, "a")


def test_create_visible_after_lag(fake: FakeBlockDeviceAPI) -> None:
    """A created volume shows up only after ``lag`` stale listings."""
    api = EventuallyConsistentBlockDeviceAPI(fake, lag=2)
    volume = api.create_volume(uuid4(), 1)
    assert [api.list_volumes() for _ in range(3)] == [[], [], [volume]]


def test_zero_lag_is_consistent(fake: FakeBlockDeviceAPI) -> None:
    """With no lag every listing is current."""
    api = EventuallyConsistentBlockDeviceAPI(fake, lag=0)
    volume = api.create_volume(uuid4(), 1)
    assert api.list_volumes() == [volume]


def test_each_change_restarts_lag(fake: FakeBlockDeviceAPI) -> None:
    """A change during the lag keeps the oldest stale view for ``lag`` more listings."""
    api = EventuallyConsistentBlockDeviceAPI(fake, lag=2)
    volume = api.create_volume(uuid4(), 1)
    assert api.list_volumes() == []
    attached = api.attach_volume(volume.blockdevice_id, "a")
    assert [api.list_volumes() for _ in range(3)] == [[], [], [attached]]


def test_detach_and_destroy_lag(fake: FakeBlockDeviceAPI) -> None:
    """Detach and destroy are hidden for ``lag`` listings too."""
    volume = fake.create_volume(uuid4(), 1)
    attached = fake.attach_volume(volume.blockdevice_id, "a")
    api = EventuallyConsistentBlockDeviceAPI(fake, lag=1)
    api.detach_volume(volume.blockdevice_id)
    assert [api.list_volumes() for _ in range(2)] == [[attached], [volume]]
    api.destroy_volume(volume.blockdevice_id)
    assert [api.list_volumes() for _ in range(2)] == [[volume], []]


def test_no_op_and_failure_do_not_restart_lag(fake: FakeBlockDeviceAPI) -> None:
    """Re-creating an existing volume or a refused call leaves the view current."""
    volume = fake.create_volume(uuid4(), 1)
    attached = fake.attach_volume(volume.blockdevice_id, "a")
    api = EventuallyConsistentBlockDeviceAPI(fake, lag=3)
    assert api.create_volume(volume.dataset_id, 1) == attached
    with pytest.raises(AlreadyAttachedVolume):
        api.attach_volume(volume.blockdevice_id, "a")
    assert api.list_volumes() == [attached]


def test_device_path_not_stale(fake: FakeBlockDeviceAPI) -> None:
    """Device paths are local facts and are never stale."""
    api = EventuallyConsistentBlockDeviceAPI(fake, lag=5)
    volume = api.create_volume(uuid4(), 1)
    api.attach_volume(volume.blockdevice_id, "a")
    assert api.get_device_path(volume.blockdevice_id) == fake.get_device_path(volume.blockdevice_id)


def test_restore_clone_and_resize_lag(fake: FakeBlockDeviceAPI) -> None:
    """Restores, clones and resizes show up in listings only after ``lag`` stale ones."""
    api = EventuallyConsistentBlockDeviceAPI(fake, lag=1)
    source = fake.create_volume(uuid4(), 1)
    snapshot = api.create_snapshot(source.blockdevice_id, "s1")
    assert api.list_snapshots() == [snapshot]
    restored = api.create_volume_from_snapshot(uuid4(), "s1", 1)
    assert [api.list_volumes() for _ in range(2)] == [[source], fake.list_volumes()]
    clone = api.clone_volume(uuid4(), source.blockdevice_id, 1)
    assert clone not in api.list_volumes()
    assert clone in api.list_volumes()
    grown = api.resize_volume(restored.blockdevice_id, 2 * 2**20)
    assert grown not in api.list_volumes()
    assert grown in api.list_volumes()
    api.destroy_snapshot("s1")
    assert api.list_snapshots() == []
