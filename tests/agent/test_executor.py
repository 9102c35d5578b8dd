"""Tests for the executor: running change trees against the fakes."""

import time
from uuid import UUID

import pytest
from structlog.testing import capture_logs

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.backends.interface import QuiescedSnapshotsAPI, UnattachedVolume, UnknownVolume
from agent.changes import (
    AttachVolume,
    CloneVolume,
    CreateSnapshot,
    CreateVolume,
    DestroySnapshot,
    DestroyVolume,
    DetachVolume,
    GrowFilesystem,
    InParallel,
    MakeFilesystem,
    MountAttached,
    MountFilesystem,
    ResizeVolume,
    RestoreVolume,
    Sequentially,
    UnmountFilesystem,
    Wait,
)
from agent.effects import AttachedMount
from agent.executor import ChangeFailed, Executor
from agent.fs.fake import FakeFilesystems
from agent.fs.interface import DeviceInUse, FilesystemError, FilesystemInfo
from control.runners import synchronous_runner

CLUSTER = UUID(int=99)
D, E = UUID(int=7), UUID(int=8)
SIZE = 64 * 1024 * 1024


@pytest.fixture
def storage():
    """One fake SAN."""
    return FakeStorage()


def executor(storage, instance="i-1", runner=None):
    """An executor for one node over ``storage``."""
    backend = FakeBlockDeviceAPI(storage, CLUSTER, instance)
    fs = FakeFilesystems(storage, instance)
    return Executor(backend, fs, synchronous_runner if runner is None else runner)


def result_of(d):
    """The synchronous result of a Deferred: its value, or its failure's exception."""
    box: list = []
    d.addBoth(box.append)
    assert box, "the run did not finish synchronously"
    value = box[0]
    return value.value if hasattr(value, "value") and hasattr(value, "trap") else value


def test_runs_a_sequence_against_the_backend(storage):
    """A sequence creates, attaches, formats and mounts a volume for real (in the fakes)."""
    ex = executor(storage)
    assert result_of(ex.run(CreateVolume(D, SIZE))) is None
    (volume,) = ex.backend.list_volumes()
    device = f"/dev/fake/{volume.blockdevice_id}"
    tree = Sequentially(
        [
            AttachVolume(D, volume.blockdevice_id),
            MakeFilesystem(D, device),
            MountFilesystem(D, device, "/shoal/d"),
        ]
    )
    assert result_of(ex.run(tree)) is None
    assert [(m.device, m.path) for m in ex.filesystems.mounts()] == [(device, "/shoal/d")]


def test_sequence_stops_at_first_failure(storage):
    """After a failed change, the rest of a sequence does not run."""
    ex = executor(storage)
    error = result_of(ex.run(Sequentially([AttachVolume(D, "nope"), CreateVolume(D, SIZE)])))
    assert isinstance(error, ChangeFailed)
    assert isinstance(error.failures[0][1], UnknownVolume)
    assert ex.backend.list_volumes() == []


def test_parallel_runs_everything_and_reports_every_failure(storage):
    """In parallel, one failure does not stop the others, and all failures are reported."""
    ex = executor(storage)
    tree = InParallel([AttachVolume(D, "x"), CreateVolume(E, SIZE), DestroyVolume(D, "y")])
    error = result_of(ex.run(tree))
    assert [change for change, _ in error.failures] == [AttachVolume(D, "x"), DestroyVolume(D, "y")]
    assert "AttachVolume" in str(error) and "UnknownVolume" in str(error)
    assert [v.dataset_id for v in ex.backend.list_volumes()] == [E]


def test_detach_refuses_a_volume_attached_to_another_node(storage):
    """A stale DetachVolume never detaches another node's volume."""
    other = executor(storage, "i-2")
    volume = other.backend.create_volume(D, SIZE)
    other.backend.attach_volume(volume.blockdevice_id, "i-2")
    error = result_of(executor(storage).run(DetachVolume(D, volume.blockdevice_id)))
    assert isinstance(error.failures[0][1], UnattachedVolume)
    assert other.backend.list_volumes()[0].attached_to == "i-2"


def test_detach_waits_while_the_device_is_bind_mounted(storage):
    """A raw volume whose device node is bind-mounted (a CSI block volume a pod uses) is not
    detached: DeviceInUse names where; once unbound, the detach goes ahead."""
    ex = executor(storage)
    volume = ex.backend.create_volume(D, SIZE)
    ex.backend.attach_volume(volume.blockdevice_id, "i-1")
    device = ex.backend.get_device_path(volume.blockdevice_id)
    ex.filesystems.bind_device(device, "/kubelet/pods/p/volumeDevices/v")
    error = result_of(ex.run(DetachVolume(D, volume.blockdevice_id)))
    failure = error.failures[0][1]
    assert isinstance(failure, DeviceInUse) and "/kubelet/pods/p/volumeDevices/v" in str(failure)
    assert ex.backend.list_volumes()[0].attached_to == "i-1"
    ex.filesystems.unbind_device("/kubelet/pods/p/volumeDevices/v")
    assert result_of(ex.run(DetachVolume(D, volume.blockdevice_id))) is None
    assert ex.backend.list_volumes()[0].attached_to is None


def test_actions_go_through_the_runner(storage):
    """Every blocking call is handed to the injected runner (a thread pool in production)."""
    from control.store.threaded import synchronous_runner

    calls = []

    def runner(f, *args, **kwargs):
        calls.append(args)
        return synchronous_runner(f, *args, **kwargs)

    ex = executor(storage, runner=runner)
    result_of(ex.run(InParallel([CreateVolume(D, SIZE), UnmountFilesystem(E, "/x")])))
    assert calls == [(CreateVolume(D, SIZE),), (UnmountFilesystem(E, "/x"),)]


def test_remembers_created_volumes_until_listed(storage):
    """A created volume is offered to discovery until a listing shows it, and dropped on destroy."""
    ex = executor(storage)
    result_of(ex.run(CreateVolume(D, SIZE)))
    (created,) = ex.recently_created
    ex.observed([])
    assert ex.recently_created == (created,)
    result_of(ex.run(DestroyVolume(D, created.blockdevice_id)))
    assert ex.recently_created == ()
    result_of(ex.run(CreateVolume(E, SIZE)))
    ex.observed(ex.backend.list_volumes())
    assert ex.recently_created == ()


def test_logs_what_was_done_and_what_failed(storage):
    """Each change done, failed or waited on is one structured log event."""
    ex = executor(storage)
    with capture_logs() as logs:
        result_of(ex.run(InParallel([CreateVolume(D, SIZE), AttachVolume(E, "x"), Wait(E, "why")])))
    events = {(log["event"], log["change"]) for log in logs}
    assert events == {
        ("agent.change.done", "CreateVolume"),
        ("agent.change.failed", "AttachVolume"),
        ("agent.waiting", "Wait"),
    }
    done = next(log for log in logs if log["event"] == "agent.change.done")
    assert done["dataset_id"] == str(D)


def _mounted(ex, dataset_id):
    """Create, attach, format and mount a volume for ``dataset_id``; returns (volume, path)."""
    result_of(ex.run(CreateVolume(dataset_id, SIZE)))
    (volume,) = [v for v in ex.backend.list_volumes() if v.dataset_id == dataset_id]
    device = f"/dev/fake/{volume.blockdevice_id}"
    path = f"/shoal/{dataset_id}"
    tree = Sequentially(
        [
            AttachVolume(dataset_id, volume.blockdevice_id),
            MakeFilesystem(dataset_id, device, "xfs"),
            MountFilesystem(dataset_id, device, path),
        ]
    )
    assert result_of(ex.run(tree)) is None
    return volume, path


class PlainFreezeWatcher:
    """A backend that records whether ``path`` was frozen during each copy (and does not call
    back for the instant of a snapshot's copy)."""

    def __init__(self, backend, filesystems, path):
        self.backend, self.filesystems, self.path, self.seen = backend, filesystems, path, []

    def create_snapshot(self, *args):
        """Record, then snapshot."""
        self.seen.append(self.filesystems.is_frozen(self.path))
        return self.backend.create_snapshot(*args)

    def clone_volume(self, *args):
        """Record, then clone."""
        self.seen.append(self.filesystems.is_frozen(self.path))
        return self.backend.clone_volume(*args)

    def __getattr__(self, name):
        if name == "create_snapshot_quiesced":
            raise AttributeError(name)
        return getattr(self.backend, name)


class FreezeWatcher(PlainFreezeWatcher):
    """A :class:`PlainFreezeWatcher` that calls back for the copy, recording inside it."""

    def create_snapshot_quiesced(self, blockdevice_id, snapshot_id, quiesce):
        """Snapshot, recording inside the backend's copy."""

        def copying(copy):
            return quiesce(lambda: (self.seen.append(self.filesystems.is_frozen(self.path)),
                                    copy())[1])

        return self.backend.create_snapshot_quiesced(blockdevice_id, snapshot_id, copying)


class SlowFreeze(FakeFilesystems):
    """Fake filesystems whose freeze takes a while, as the kernel's does (RCU grace periods)."""

    def freeze(self, path):
        """Freeze after a pause."""
        time.sleep(0.05)
        super().freeze(path)


@pytest.mark.parametrize("watching", [FreezeWatcher, PlainFreezeWatcher])
def test_snapshot_and_clone_freeze_the_mounted_source(storage, watching):
    """A snapshot or clone of a mounted source copies it frozen, and leaves it thawed, whether
    the backend calls back for the copy (the freeze made alongside its checks) or not."""
    volume, path = _mounted(executor(storage), D)
    fs = SlowFreeze(storage, "i-1")
    fs.mount(f"/dev/fake/{volume.blockdevice_id}", path)
    watcher = watching(FakeBlockDeviceAPI(storage, CLUSTER, "i-1"), fs, path)
    assert isinstance(watcher, QuiescedSnapshotsAPI) == (watching is FreezeWatcher)
    ex = Executor(watcher, fs, synchronous_runner)
    assert result_of(ex.run(CreateSnapshot(D, "s1", volume.blockdevice_id, path))) is None
    assert result_of(ex.run(CloneVolume(E, volume.blockdevice_id, SIZE, path))) is None
    assert watcher.seen == [True, True]
    assert not fs.is_frozen(path)
    assert [s.snapshot_id for s in ex.backend.list_snapshots()] == ["s1"]
    assert E in {v.dataset_id for v in ex.recently_created}


def test_failed_snapshot_thaws(storage):
    """A snapshot that fails still thaws its source, and the run fails with the error."""
    ex = executor(storage)
    volume, path = _mounted(ex, D)
    storage.inject_failure("create_snapshot", OSError(5, "I/O error"))
    failed = result_of(ex.run(CreateSnapshot(D, "s1", volume.blockdevice_id, path)))
    assert isinstance(failed, ChangeFailed)
    assert not ex.filesystems.is_frozen(path)


class FrozenElsewhere(FakeFilesystems):
    """Fake filesystems whose freeze fails: someone else froze the filesystem."""

    def freeze(self, path):
        """Refuse, as FIFREEZE does (EBUSY) on a frozen filesystem."""
        raise FilesystemError(f"Cannot freeze {path}: Device or resource busy")


def test_snapshot_whose_freeze_fails_copies_nothing(storage):
    """When the freeze started alongside the backend's checks fails, no snapshot is made and
    the change fails with the freeze's error."""
    volume, path = _mounted(executor(storage), D)
    fs = FrozenElsewhere(storage, "i-1")
    fs.mount(f"/dev/fake/{volume.blockdevice_id}", path)
    ex = Executor(FakeBlockDeviceAPI(storage, CLUSTER, "i-1"), fs, synchronous_runner)
    failed = result_of(ex.run(CreateSnapshot(D, "s1", volume.blockdevice_id, path)))
    assert isinstance(failed, ChangeFailed)
    assert "Device or resource busy" in str(failed.failures[0][1])
    assert ex.backend.list_snapshots() == []


def test_existing_snapshot_is_returned_and_thawed(storage):
    """Making a snapshot that exists already returns it without a copy, and thaws the source."""
    ex = executor(storage)
    volume, path = _mounted(ex, D)
    made = ex.backend.create_snapshot(volume.blockdevice_id, "s1")
    assert result_of(ex.run(CreateSnapshot(D, "s1", volume.blockdevice_id, path))) is None
    assert ex.backend.list_snapshots() == [made]
    assert not ex.filesystems.is_frozen(path)


def test_restore_resize_grow_and_destroy_snapshot(storage):
    """Restore, resize, grow and snapshot destruction reach the backend and filesystems."""
    ex = executor(storage)
    volume, path = _mounted(ex, D)
    result_of(ex.run(CreateSnapshot(D, "s1", volume.blockdevice_id, None)))
    assert result_of(ex.run(RestoreVolume(E, "s1", 2 * SIZE))) is None
    assert [v.size for v in ex.recently_created if v.dataset_id == E] == [2 * SIZE]
    assert result_of(ex.run(ResizeVolume(D, volume.blockdevice_id, 2 * SIZE))) is None
    device = f"/dev/fake/{volume.blockdevice_id}"
    assert result_of(ex.run(GrowFilesystem(D, device))) is None
    info = ex.filesystems.filesystem_info(device)
    assert (info.kind, info.size) == ("xfs", 2 * SIZE)
    assert result_of(ex.run(DestroySnapshot(D, "s1"))) is None
    assert ex.backend.list_snapshots() == []


def test_thaw_leftovers(storage):
    """At start-up every mount of the node is thawed."""
    ex = executor(storage)
    _, path = _mounted(ex, D)
    ex.filesystems.freeze(path)
    assert ex.thaw_leftovers() == [path]
    assert not ex.filesystems.is_frozen(path)


def _attach_and_mount(ex, volume):
    """Attach ``volume`` and mount it in one sequence, as the policy does; the effects."""
    path = "/shoal/d"
    tree = Sequentially(
        [AttachVolume(D, volume.blockdevice_id), MountAttached(D, volume.blockdevice_id, path,
                                                                volume.size)]
    )
    assert result_of(ex.run(tree)) is None
    return ex.effects()


def test_attach_then_mount_mounts_the_device_the_attach_made(storage):
    """A formatted volume attached and mounted in one run is mounted on its device, and the
    effect names that device and its filesystem."""
    first = executor(storage, "i-0")
    volume = first.backend.create_volume(D, SIZE)
    first.backend.attach_volume(volume.blockdevice_id, "i-0")
    device = first.backend.get_device_path(volume.blockdevice_id)
    first.filesystems.make_filesystem(device, "xfs")
    first.backend.detach_volume(volume.blockdevice_id)
    ex = executor(storage)
    effects = _attach_and_mount(ex, volume)
    mine = ex.backend.get_device_path(volume.blockdevice_id)
    assert [(m.device, m.path) for m in ex.filesystems.mounts()] == [(mine, "/shoal/d")]
    (mount,) = [result for change, result in effects if isinstance(change, MountAttached)]
    assert mount == AttachedMount(mine, FilesystemInfo("xfs", SIZE))


def test_attach_then_mount_never_formats(storage):
    """A volume with no filesystem is attached, neither formatted nor mounted: left for the
    next pass (and its effect is nothing)."""
    ex = executor(storage)
    volume = ex.backend.create_volume(D, SIZE)
    effects = _attach_and_mount(ex, volume)
    device = ex.backend.get_device_path(volume.blockdevice_id)
    assert ex.filesystems.mounts() == []
    assert not ex.filesystems.has_filesystem(device)
    assert [result for change, result in effects if isinstance(change, MountAttached)] == [None]


def test_attach_then_mount_leaves_a_small_ext4_to_grow_first(storage):
    """An ext4 smaller than its (grown) volume is not mounted right after the attach: the next
    pass grows it offline first."""
    ex = executor(storage)
    volume = ex.backend.create_volume(D, SIZE)
    ex.backend.attach_volume(volume.blockdevice_id, "i-1")
    ex.filesystems.make_filesystem(ex.backend.get_device_path(volume.blockdevice_id))
    ex.backend.detach_volume(volume.blockdevice_id)
    grown = ex.backend.resize_volume(volume.blockdevice_id, 2 * SIZE)
    _attach_and_mount(ex, grown)
    assert ex.filesystems.mounts() == []


class CountingFreeze(SlowFreeze):
    """Slow fake freezes that count themselves."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.freezes = 0

    def freeze(self, path):
        """Count, then freeze after a pause."""
        self.freezes += 1
        super().freeze(path)


def _wait_frozen(fs, path):
    deadline = time.monotonic() + 30
    while not fs.is_frozen(path):
        assert time.monotonic() < deadline, f"{path} was never frozen"
        time.sleep(0.005)


@pytest.mark.parametrize("watching", [FreezeWatcher, PlainFreezeWatcher])
def test_snapshot_uses_the_freeze_started_ahead(storage, watching):
    """A freeze started ahead of the pass's snapshot is the one its copy is made in (no second
    freeze), and it is thawed after the copy."""
    volume, path = _mounted(executor(storage), D)
    fs = CountingFreeze(storage, "i-1")
    fs.mount(f"/dev/fake/{volume.blockdevice_id}", path)
    watcher = watching(FakeBlockDeviceAPI(storage, CLUSTER, "i-1"), fs, path)
    ex = Executor(watcher, fs, synchronous_runner)
    ex.freeze_ahead([path])
    _wait_frozen(fs, path)
    assert ex.has_freezes_ahead()
    assert result_of(ex.run(CreateSnapshot(D, "s1", volume.blockdevice_id, path))) is None
    assert watcher.seen == [True]
    assert fs.freezes == 1
    assert not fs.is_frozen(path)
    assert not ex.has_freezes_ahead()
    assert ex.release_ahead() == []
    assert [s.snapshot_id for s in ex.backend.list_snapshots()] == ["s1"]


def test_unused_freeze_ahead_is_thawed_copying_nothing(storage):
    """A freeze started ahead that no snapshot uses is thawed by ``release_ahead``, and nothing
    is copied."""
    volume, path = _mounted(executor(storage), D)
    fs = CountingFreeze(storage, "i-1")
    fs.mount(f"/dev/fake/{volume.blockdevice_id}", path)
    ex = Executor(FakeBlockDeviceAPI(storage, CLUSTER, "i-1"), fs, synchronous_runner)
    ex.freeze_ahead([path])
    assert ex.release_ahead() == [path]
    assert not fs.is_frozen(path)
    assert not ex.has_freezes_ahead()
    assert ex.backend.list_snapshots() == []


def test_snapshot_whose_freeze_ahead_failed_copies_nothing(storage):
    """When the freeze started ahead fails, the snapshot using it copies nothing and fails
    with the freeze's error."""
    volume, path = _mounted(executor(storage), D)
    fs = FrozenElsewhere(storage, "i-1")
    fs.mount(f"/dev/fake/{volume.blockdevice_id}", path)
    ex = Executor(FakeBlockDeviceAPI(storage, CLUSTER, "i-1"), fs, synchronous_runner)
    ex.freeze_ahead([path])
    failed = result_of(ex.run(CreateSnapshot(D, "s1", volume.blockdevice_id, path)))
    assert isinstance(failed, ChangeFailed)
    assert "Device or resource busy" in str(failed.failures[0][1])
    assert ex.backend.list_snapshots() == []
    assert not ex.has_freezes_ahead()
