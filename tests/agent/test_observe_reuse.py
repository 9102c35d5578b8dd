"""Discovery reuses the sorting of its observations while they equal the last ones, and
sorts again as soon as any of them changes (issue 16: an idle agent's pass)."""

from __future__ import annotations

from uuid import UUID

from attrs import evolve

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.discovery import (
    DiscoveredState,
    LastReported,
    LocalState,
    reported_datasets,
    with_filesystems,
)
from agent.fs.fake import FakeFilesystems
from agent.observe import Classified, discover
from control.model import Dataset, VolumeStatus

HERE = "i-here"
CLUSTER = UUID(int=99)
D = UUID(int=7)
E = UUID(int=8)
ROOT = "/shoal"
SIZE = 64 * 1024 * 1024


def node() -> tuple[FakeBlockDeviceAPI, FakeFilesystems, str]:
    """A node with dataset ``D`` mounted; returns its backend, filesystems and D's device."""
    storage = FakeStorage()
    backend = FakeBlockDeviceAPI(storage, CLUSTER, HERE)
    fs = FakeFilesystems(storage, HERE)
    created = backend.create_volume(D, SIZE)
    backend.attach_volume(created.blockdevice_id, HERE)
    device = backend.get_device_path(created.blockdevice_id)
    fs.make_filesystem(device)
    fs.mount(device, f"{ROOT}/{D}")
    return backend, fs, device


def test_equal_observations_reuse_the_last_state() -> None:
    """A second discovery of an unchanged node returns the very same sorted state."""
    backend, fs, _ = node()
    classified = Classified()
    first = discover(backend, fs, ROOT, HERE, classified=classified)
    second = discover(backend, fs, ROOT, HERE, classified=classified)
    assert second is first
    assert second == discover(backend, fs, ROOT, HERE)


def test_an_unmount_is_seen_at_once() -> None:
    """Once the filesystem is unmounted, the next discovery sorts again and says so."""
    backend, fs, device = node()
    classified = Classified()
    assert discover(backend, fs, ROOT, HERE, classified=classified).datasets[D].state is (
        DiscoveredState.MOUNTED_HERE
    )
    fs.unmount(f"{ROOT}/{D}")
    local = discover(backend, fs, ROOT, HERE, classified=classified)
    assert local.datasets[D].state is DiscoveredState.ATTACHED_HERE
    assert local == discover(backend, fs, ROOT, HERE)


def test_a_new_volume_a_detach_and_a_snapshot_are_seen_at_once() -> None:
    """A volume created elsewhere, a detach, and a new snapshot each make a new state."""
    backend, fs, device = node()
    classified = Classified()
    discover(backend, fs, ROOT, HERE, classified=classified)
    other = backend.create_volume(E, SIZE)
    local = discover(backend, fs, ROOT, HERE, classified=classified)
    assert local.datasets[E].state is DiscoveredState.UNATTACHED
    snapshot = backend.create_snapshot(other.blockdevice_id, "s-1")
    local = discover(backend, fs, ROOT, HERE, classified=classified)
    assert snapshot.snapshot_id in local.snapshots
    fs.unmount(f"{ROOT}/{D}")
    volume = local.datasets[D]
    backend.detach_volume(volume.blockdevice_id)
    local = discover(backend, fs, ROOT, HERE, classified=classified)
    assert local.datasets[D].state is DiscoveredState.UNATTACHED
    assert local == discover(backend, fs, ROOT, HERE)


def test_a_frozen_map_is_not_copied_by_evolve() -> None:
    """Evolving a state keeps its frozen maps as they are, and a plain dict still freezes."""
    backend, fs, _ = node()
    local = discover(backend, fs, ROOT, HERE)
    assert evolve(local, capacity=None).datasets is local.datasets
    rebuilt = with_filesystems(local, {})
    assert rebuilt.datasets[D].filesystem is None
    assert LocalState(HERE, datasets={D: local.datasets[D]}).datasets == {D: local.datasets[D]}



def test_a_new_capacity_is_seen_at_once() -> None:
    """A change of the backend's capacity alone makes a new state that has it."""
    backend, fs, _ = node()
    backend.storage.total = 100 * 1024**3
    classified = Classified()
    first = discover(backend, fs, ROOT, HERE, classified=classified)
    assert discover(backend, fs, ROOT, HERE, classified=classified) is first
    backend.storage.total = 200 * 1024**3
    local = discover(backend, fs, ROOT, HERE, classified=classified)
    assert local is not first and local.capacity != first.capacity
    assert local == discover(backend, fs, ROOT, HERE)


def test_reported_datasets_are_reused_until_the_observation_or_records_change() -> None:
    """The same observation and records give the very same reported map; an unmount or a
    record moved away gives a new one, equal to what is made afresh."""
    backend, fs, _ = node()
    me, other = UUID(int=1), UUID(int=2)
    desired = {D: Dataset(D, me)}
    last = LastReported()
    classified = Classified()
    local = discover(backend, fs, ROOT, HERE, classified=classified)
    first = last.of(local, desired, me)
    assert first[D].status is VolumeStatus.MOUNTED
    assert last.of(discover(backend, fs, ROOT, HERE, classified=classified), dict(desired),
                   me) is first
    fs.unmount(f"{ROOT}/{D}")
    local = discover(backend, fs, ROOT, HERE, classified=classified)
    unmounted = last.of(local, desired, me)
    assert unmounted[D].status is VolumeStatus.ATTACHED
    assert unmounted == reported_datasets(local, desired, me)
    backend.detach_volume(local.datasets[D].blockdevice_id)
    local = discover(backend, fs, ROOT, HERE, classified=classified)
    assert last.of(local, desired, me)[D].status is VolumeStatus.PRESENT
    assert D not in last.of(local, {D: Dataset(D, other)}, me)
