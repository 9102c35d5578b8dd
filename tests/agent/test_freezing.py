"""Tests for the freeze held on a thread of its own around a backend's copy."""

import threading
import time
from uuid import UUID

import pytest

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.freezing import FreezeAhead
from agent.fs.fake import FakeFilesystems
from agent.fs.interface import FilesystemError

PATH = "/shoal/d"


def mounted() -> FakeFilesystems:
    """Fake filesystems with one volume's filesystem mounted at ``PATH``."""
    storage = FakeStorage()
    backend = FakeBlockDeviceAPI(storage, UUID(int=99), "i-1")
    volume = backend.create_volume(UUID(int=1), 64 * 2**20)
    backend.attach_volume(volume.blockdevice_id, "i-1")
    fs = FakeFilesystems(storage, "i-1")
    device = backend.get_device_path(volume.blockdevice_id)
    fs.make_filesystem(device, "ext4")
    fs.mount(device, PATH)
    return fs


def wait_thawed(fs: FakeFilesystems) -> None:
    """Return once ``PATH`` is thawed (fails after 30 s)."""
    deadline = time.monotonic() + 30
    while fs.is_frozen(PATH):
        assert time.monotonic() < deadline, "never thawed"
        time.sleep(0.001)


def test_copy_is_made_frozen_and_the_thaw_starts_once_it_is_done() -> None:
    """The copy runs frozen; the filesystem is thawed once it returns, while the backend's
    call (inside the ``with``) goes on, and stays thawed after."""
    fs = mounted()
    seen = []
    with FreezeAhead(fs, PATH) as quiesce:
        assert quiesce(lambda: fs.is_frozen(PATH)) is True
        wait_thawed(fs)
        seen.append(fs.is_frozen(PATH))
    assert seen == [False]
    assert not fs.is_frozen(PATH)


def test_a_failed_copy_is_thawed_too() -> None:
    """A copy that raises leaves the filesystem thawed, and its error goes to the caller."""
    fs = mounted()
    with pytest.raises(RuntimeError, match="copy failed"), FreezeAhead(fs, PATH) as quiesce:

        def fail() -> None:
            raise RuntimeError("copy failed")

        quiesce(fail)
    assert not fs.is_frozen(PATH)


def test_nothing_is_copied_when_the_freeze_fails() -> None:
    """A freeze that cannot be made (nothing mounted there) copies nothing."""
    fs = mounted()
    fs.unmount(PATH)
    copied = threading.Event()
    with pytest.raises(FilesystemError), FreezeAhead(fs, PATH) as quiesce:
        quiesce(copied.set)
    assert not copied.is_set()
