"""The real filesystems pass the conformance suite on loop devices, as root."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.fs.interface import FilesystemBusy, FilesystemError, Filesystems, Mount
from agent.fs.real import (
    CAP_SYS_RESOURCE,
    RealFilesystems,
    has_capability,
    hold_frozen,
    make_mount_point,
    parse_mountinfo,
    remove_mount_point,
    unescape,
)
from tests.agent.fs.conformance import FilesystemsConformance, NewDevice
from tests.agent.fs.growth_conformance import GrowDevice, GrowthConformance, SizedDevice

needs_root = [
    pytest.mark.functional,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup and mount"),
]


@pytest.fixture
def mount_root(tmp_path: Path) -> Iterator[str]:
    """A directory for mount points; anything still mounted below it is unmounted after."""
    root = tmp_path / "mnt"
    root.mkdir()
    try:
        yield str(root)
    finally:
        for mount in reversed(RealFilesystems(under=str(root)).mounts()):
            subprocess.run(["umount", mount.path], check=False)


@pytest.fixture
def new_device(tmp_path: Path, mount_root: str) -> Iterator[NewDevice]:
    """Make loop devices on fresh sparse files; all are detached after the mounts are gone."""
    devices: list[str] = []

    def make() -> str:
        image = tmp_path / f"disk{len(devices)}.img"
        with open(image, "wb") as f:
            f.truncate(16 * 2**20)
        device = subprocess.run(
            ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
        ).stdout.strip()
        devices.append(device)
        return device

    try:
        yield make
    finally:
        for mount in RealFilesystems(under=mount_root).mounts():
            subprocess.run(["umount", mount.path], check=False)
        for device in devices:
            subprocess.run(["losetup", "-d", device], check=False)


class TestRealConformance(FilesystemsConformance, GrowthConformance):
    """RealFilesystems: ext4 and xfs on loop devices of sparse files."""

    pytestmark = needs_root
    online_ext4_grow = has_capability(CAP_SYS_RESOURCE)
    online_ext4_reason = (
        "growing a mounted ext4 needs CAP_SYS_RESOURCE, which this sandbox lacks "
        "(resize2fs: Permission denied; docs/RUNTIMES: tested offline here)"
    )

    @pytest.fixture
    def sized_device(self, tmp_path: Path, new_device: NewDevice) -> Iterator[SizedDevice]:
        """Loop devices on sparse files of a given size (detached with ``new_device``'s)."""
        made: list[str] = []

        def make(size: int) -> str:
            image = tmp_path / f"sized{len(made)}.img"
            with open(image, "wb") as f:
                f.truncate(size)
            device = subprocess.run(
                ["losetup", "--find", "--show", str(image)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            made.append(device)
            return device

        try:
            yield make
        finally:
            for device in made:
                subprocess.run(["losetup", "-d", device], check=False)

    @pytest.fixture
    def grow_device(self) -> GrowDevice:
        """Grow the sparse file behind a loop device and refresh the device's size."""

        def grow(device: str, size: int) -> None:
            backing = Path("/sys/block", os.path.basename(device), "loop", "backing_file")
            with open(backing.read_text().strip(), "r+b") as f:
                f.truncate(size)
            subprocess.run(["losetup", "-c", device], check=True)

        return grow

    @pytest.fixture
    def fs(self) -> Filesystems:
        """The real implementation."""
        return RealFilesystems()

    def write_marker(self, fs: Filesystems, path: str, data: bytes) -> None:
        """Write a real file."""
        Path(path).write_bytes(data)

    def read_marker(self, fs: Filesystems, path: str) -> bytes:
        """Read a real file."""
        return Path(path).read_bytes()

    def bind_device(self, fs: Filesystems, device: str, target: str) -> None:
        """``mount --bind`` the device node onto a new file, as the CSI node does."""
        Path(target).touch()
        subprocess.run(["mount", "--bind", device, target], check=True)

    def unbind_device(self, fs: Filesystems, target: str) -> None:
        """Unmount and remove the file."""
        subprocess.run(["umount", target], check=True)
        os.unlink(target)


@pytest.mark.functional
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup and mount")
def test_mounts_under(new_device: NewDevice, mount_root: str, tmp_path: Path) -> None:
    """With ``under`` set, only mounts below that directory are reported."""
    fs = RealFilesystems(under=mount_root)
    device = new_device()
    fs.make_filesystem(device)
    fs.mount(device, os.path.join(mount_root, "m"))
    assert fs.mounts() == [Mount(device, os.path.join(mount_root, "m"))]
    assert RealFilesystems(under=str(tmp_path / "elsewhere")).mounts() == []
    fs.unmount(os.path.join(mount_root, "m"))


@pytest.mark.functional
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for mkfs and blkid")
def test_missing_device_is_an_error(tmp_path: Path) -> None:
    """Probing a device that does not exist fails with the tool's message."""
    with pytest.raises(FilesystemError, match="does not exist"):
        RealFilesystems().has_filesystem(str(tmp_path / "no-such-device"))


def test_parse_mountinfo() -> None:
    """Block-device mounts are parsed with octal escapes decoded; others are skipped."""
    text = (
        "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - ext4 /dev/loop3 rw,errors=continue\n"
        "37 35 0:25 / /run rw shared:5 - tmpfs tmpfs rw\n"
        "38 35 7:1 / /srv rw - ext4 /dev/loop1 rw\n"
    )
    assert parse_mountinfo(text) == [Mount("/dev/loop3", "/mnt/a b"), Mount("/dev/loop1", "/srv")]


def test_unescape() -> None:
    """Octal escapes for space, tab, newline and backslash are decoded."""
    assert unescape("a\\040b\\011c\\012d\\134e") == "a b\tc\nd\\e"


@pytest.mark.functional
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup and mount")
def test_write_protected_device_is_not_mounted_read_only(
    new_device: NewDevice, mount_root: str
) -> None:
    """A write-protected device fails to mount, saying so, instead of being mounted
    read-only (mount's fallback) and reported mounted while no one can write to it."""
    fs = RealFilesystems(under=mount_root)
    device = new_device()
    fs.make_filesystem(device)
    path = os.path.join(mount_root, "m")
    subprocess.run(["blockdev", "--setro", device], check=True)
    try:
        with pytest.raises(FilesystemError, match="write-protected"):
            fs.mount(device, path)
        assert fs.mounts() == []
    finally:
        subprocess.run(["blockdev", "--setrw", device], check=True)
    fs.mount(device, path)
    Path(path, "written").write_text("yes")


def test_unmount_removes_only_an_empty_mount_point(new_device: NewDevice, mount_root: str) -> None:
    """The emptied mount point is removed; a directory holding files is kept."""
    fs = RealFilesystems(under=mount_root)
    device = new_device()
    fs.make_filesystem(device)
    path = os.path.join(mount_root, "m")
    fs.mount(device, path)
    fs.unmount(path)
    assert not os.path.exists(path)
    os.mkdir(path)
    Path(path, "someone's file").write_text("keep")
    fs.unmount(path)
    assert Path(path, "someone's file").read_text() == "keep"


def test_mount_point_is_made_unwritable(tmp_path: Path) -> None:
    """A new mount point has mode 000 until something is mounted over it."""
    path = tmp_path / "a" / "m"
    make_mount_point(str(path))
    assert path.stat().st_mode & 0o777 == 0
    make_mount_point(str(path))
    remove_mount_point(str(path))
    assert not path.exists()
    remove_mount_point(str(path))


HOLDER = """
import sys, time
from agent.fs.real import hold_frozen
def action():
    print("holding", flush=True)
    time.sleep(60)
hold_frozen(sys.argv[1], action, 120)
"""


def _writable(path: str) -> bool:
    """Whether a file can be written at ``path`` within 5 s (a frozen filesystem blocks)."""
    done = subprocess.run(
        ["sh", "-c", f"echo x > {path}/probe && sync {path}/probe"], timeout=5, check=False
    )
    return done.returncode == 0


@pytest.mark.functional
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup, mount and FIFREEZE")
def test_freeze_released_when_holder_killed(tmp_path: Path, mount_root: str) -> None:
    """A process SIGKILLed while it holds a filesystem frozen leaves it thawed and writable."""
    fs = RealFilesystems()
    image = tmp_path / "frozen.img"
    with open(image, "wb") as f:
        f.truncate(64 * 2**20)
    device = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    path = os.path.join(mount_root, "f")
    try:
        fs.make_filesystem(device)
        fs.mount(device, path)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, path], stdout=subprocess.PIPE, cwd=os.getcwd()
        )
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"holding\n"
        assert fs.is_frozen(path)
        holder.kill()
        holder.wait()
        for _ in range(100):
            if not fs.is_frozen(path):
                break
            time.sleep(0.05)
        assert not fs.is_frozen(path)
        assert _writable(path)
    finally:
        fs.thaw(path)
        fs.unmount(path)
        subprocess.run(["losetup", "-d", device], check=False)


@pytest.mark.functional
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup and mount")
def test_xfs_copy_mounts_beside_its_source(tmp_path: Path, mount_root: str) -> None:
    """A copy of an xfs volume (same UUID) mounts beside its source, each with its own data."""
    fs = RealFilesystems()
    images = [tmp_path / "source.img", tmp_path / "copy.img"]
    with open(images[0], "wb") as f:
        f.truncate(320 * 2**20)
    devices: list[str] = []

    def attach(image: Path) -> str:
        devices.append(
            subprocess.run(
                ["losetup", "--find", "--show", str(image)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        return devices[-1]

    paths = [os.path.join(mount_root, "source"), os.path.join(mount_root, "copy")]
    try:
        source = attach(images[0])
        fs.make_filesystem(source, "xfs")
        fs.mount(source, paths[0])
        Path(paths[0], "marker").write_text("source")
        fs.while_frozen(
            paths[0],
            lambda: subprocess.run(["cp", "--sparse=always", images[0], images[1]], check=True),
        )
        fs.mount(attach(images[1]), paths[1])
        Path(paths[1], "marker").write_text("copy")
        assert Path(paths[0], "marker").read_text() == "source"
    finally:
        for path in paths:
            fs.unmount(path)
        for device in devices:
            subprocess.run(["losetup", "-d", device], check=False)


@pytest.mark.functional
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup, mount and FIFREEZE")
def test_freeze_held_too_long_thaws_and_says_so(new_device: NewDevice, mount_root: str) -> None:
    """A freeze outliving its timeout is thawed by the holder, and the action's caller is told."""
    fs = RealFilesystems()
    device = new_device()
    fs.make_filesystem(device)
    path = os.path.join(mount_root, "t")
    fs.mount(device, path)
    try:
        with pytest.raises(FilesystemError, match="thawed after"):
            hold_frozen(path, lambda: time.sleep(2.5), 1)
        assert not fs.is_frozen(path)
    finally:
        fs.thaw(path)
        fs.unmount(path)


@pytest.mark.functional
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup and mount")
def test_lazy_unmount_of_busy_mount(new_device: NewDevice, mount_root: str) -> None:
    """A mount a process still uses is refused as busy, and detached at once when lazy; its
    device is not mounted again until that process lets go, then it mounts writable."""
    fs = RealFilesystems(under=mount_root)
    device = new_device()
    fs.make_filesystem(device)
    path = os.path.join(mount_root, "busy")
    fs.mount(device, path)
    with open(os.path.join(path, "held"), "wb") as held:
        with pytest.raises(FilesystemBusy):
            fs.unmount(path)
        fs.shutdown(path)
        with pytest.raises(OSError):
            held.write(b"x" * 4096)
            held.flush()
            os.fsync(held.fileno())
        fs.unmount(path, lazy=True)
        assert fs.mounts() == []
        with pytest.raises(FilesystemBusy, match="still in use"):
            fs.mount(device, path)
    fs.mount(device, path)
    Path(path, "after").write_bytes(b"writable again")
    assert Path(path, "after").read_bytes() == b"writable again"
    fs.unmount(path)


@pytest.mark.functional
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup and mkfs")
def test_ext4_made_unzeroed_is_clean_and_checksummed(new_device: NewDevice) -> None:
    """The ext4 made without zeroing its journal passes e2fsck, with a checksummed journal."""
    device = new_device()
    RealFilesystems().make_filesystem(device, "ext4")
    checked = subprocess.run(["e2fsck", "-fn", device], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    features = subprocess.run(
        ["dumpe2fs", "-h", device], capture_output=True, text=True, check=True
    ).stdout
    assert "has_journal" in features and "metadata_csum" in features


@pytest.mark.functional
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup, mount and FIFREEZE")
def test_freeze_is_held_for_the_action_and_its_watcher_thaws_nothing_later(
    new_device: NewDevice, mount_root: str
) -> None:
    """The filesystem is frozen during the action and thawed after; the watching child of a
    finished freeze never thaws a later one, and a freeze someone else holds is refused and
    left as it is."""
    fs = RealFilesystems()
    device = new_device()
    fs.make_filesystem(device)
    path = os.path.join(mount_root, "w")
    fs.mount(device, path)
    try:
        assert hold_frozen(path, lambda: fs.is_frozen(path), 30) is True
        assert not fs.is_frozen(path)
        fs.freeze(path)  # another holder's freeze, after ours
        time.sleep(0.5)  # a watcher left behind would have thawed it by now
        assert fs.is_frozen(path)
        with pytest.raises(FilesystemError, match="Cannot freeze"):
            hold_frozen(path, lambda: None, 30)
        assert fs.is_frozen(path)
    finally:
        fs.thaw(path)
        fs.unmount(path)
