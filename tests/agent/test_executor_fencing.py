"""The executor's fencing actions, against the fakes: fence, epochs, shutdown, leftovers."""

from uuid import UUID

import pytest
from structlog.testing import capture_logs

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.backends.interface import StaleEpoch
from agent.changes import (
    AttachVolume,
    CleanUpFenced,
    FenceVolume,
    MakeFilesystem,
    MountFilesystem,
    Sequentially,
    ShutDownFilesystem,
    UnmountFilesystem,
)
from agent.conditions import failure_condition
from agent.executor import ChangeFailed, Executor
from agent.fs.fake import FakeFilesystems
from agent.fs.interface import FilesystemError
from control.runners import synchronous_runner

CLUSTER = UUID(int=99)
D = UUID(int=7)
SIZE = 64 * 1024 * 1024
PATH = f"/shoal/{D}"


def executor(storage: FakeStorage, instance: str) -> Executor:
    """An executor for node ``instance`` over ``storage``."""
    backend = FakeBlockDeviceAPI(storage, CLUSTER, instance)
    return Executor(backend, FakeFilesystems(storage, instance), synchronous_runner)


def result_of(d):
    """The synchronous result of a Deferred: its value, or its failure's exception."""
    box: list = []
    d.addBoth(box.append)
    assert box, "the run did not finish synchronously"
    value = box[0]
    return value.value if hasattr(value, "value") and hasattr(value, "trap") else value


@pytest.fixture
def storage():
    """One fake SAN."""
    return FakeStorage()


def mounted_on(ex: Executor, epoch: int = 1) -> str:
    """Create D's volume and mount it through ``ex`` at ``PATH``; returns its blockdevice id."""
    volume = ex.backend.create_volume(D, SIZE)
    device = f"/dev/fake/{volume.blockdevice_id}"
    tree = Sequentially(
        [
            AttachVolume(D, volume.blockdevice_id, epoch),
            MakeFilesystem(D, device),
            MountFilesystem(D, device, PATH),
        ]
    )
    assert result_of(ex.run(tree)) is None
    return volume.blockdevice_id


def test_attach_records_the_epoch(storage):
    """AttachVolume hands its epoch to the backend, which records it."""
    ex = executor(storage, "a")
    blockdevice_id = mounted_on(ex, epoch=4)
    assert ex.backend.list_volumes()[0].epoch == 4
    assert blockdevice_id


def test_stale_attach_fails_as_stale_epoch(storage):
    """An attach below the recorded epoch fails; its condition says stale_epoch, permanent."""
    old, new = executor(storage, "a"), executor(storage, "b")
    blockdevice_id = mounted_on(new, epoch=2)
    result_of(new.run(UnmountFilesystem(D, PATH)))
    new.backend.detach_volume(blockdevice_id)
    error = result_of(old.run(AttachVolume(D, blockdevice_id, 1)))
    assert isinstance(error, ChangeFailed)
    ((change, cause),) = error.failures
    assert isinstance(cause, StaleEpoch)
    condition = failure_condition(change, cause, None, 0.0)
    assert (condition.reason, condition.step, condition.permanent) == (
        "stale_epoch",
        "attach",
        True,
    )
    assert old.backend.list_volumes()[0].attached_to is None


def test_fence_then_attach_takes_the_volume(storage):
    """A new primary fences the old node's attachment and attaches: the old mount cannot write,
    the data written before is there, and the old node has a leftover to clean up."""
    old, new = executor(storage, "a"), executor(storage, "b")
    blockdevice_id = mounted_on(old)
    old.filesystems.write_file(f"{PATH}/kept", b"before the fence")
    reason = "node a is fenced"
    with capture_logs() as logs:
        done = new.run(
            Sequentially(
                [FenceVolume(D, blockdevice_id, "a", reason), AttachVolume(D, blockdevice_id, 2)]
            )
        )
        assert result_of(done) is None
    fenced = [entry for entry in logs if entry["event"] == "agent.fence.volume"]
    assert fenced and fenced[0]["node"] == "a" and fenced[0]["reason"] == reason
    assert fenced[0]["log_level"] == "warning"
    with pytest.raises(FilesystemError):
        old.filesystems.write_file(f"{PATH}/after", b"lost")
    device = new.backend.get_device_path(blockdevice_id)
    assert result_of(new.run(MountFilesystem(D, device, PATH))) is None
    assert new.filesystems.read_file(f"{PATH}/kept") == b"before the fence"
    (leftover,) = old.backend.fenced_leftovers()
    assert result_of(old.run(CleanUpFenced(D, leftover))) is None
    assert old.backend.fenced_leftovers() == []


def test_shutdown_and_lazy_unmount(storage):
    """ShutDownFilesystem stops writes at once; a lazy unmount then removes the mount."""
    ex = executor(storage, "a")
    mounted_on(ex)
    with capture_logs() as logs:
        assert result_of(ex.run(ShutDownFilesystem(D, PATH, "lease ran out"))) is None
    assert [e["reason"] for e in logs if e["event"] == "agent.fence.shutdown"] == [
        "lease ran out"
    ]
    with pytest.raises(FilesystemError, match="Input/output error"):
        ex.filesystems.write_file(f"{PATH}/x", b"x")
    assert result_of(ex.run(UnmountFilesystem(D, PATH, lazy=True))) is None
    assert ex.filesystems.mounts() == []
