"""
Attach an RBD image without kernel modules: one ``rbd-fuse -r IMAGE`` process plus a loop device.

Layout on the node, all under the backend's run directory::

    <run dir>/<image>/          the FUSE mount of ``rbd-fuse -r <image>``
    <run dir>/<image>/<image>   the image as a file, behind a loop device

An attachment is found again from the system alone (after an agent restart):
the mount in ``/proc/self/mountinfo``, the process by its command line, the loop
device by its backing file in sysfs. Nothing here ever ``stat``s the image file
of an existing attachment: once its client is blocklisted (fenced), rbd-fuse
hangs and so would any lookup in its mount.

``rbd-fuse`` daemonizes once its FUSE mount exists; its first lookup waits for
it to open the image, so :meth:`RbdFuse.attach` needs no polling. A fenced
rbd-fuse ignores SIGTERM: :meth:`RbdFuse.kill` uses SIGKILL, then detaches
the loop device (lazily unmounting any filesystem left on it) and the mount.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess

from attrs import frozen

from agent.backends import loopdev
from agent.backends.interface import BackendError
from agent.backends.rbd.session import CephSettings
from agent.commands import run_command

EXIT_WAIT = 20.0
"""Seconds to wait for rbd-fuse to exit after ``fusermount -u`` before SIGKILL."""
PROGRAM = "rbd-fuse"


@frozen
class FuseAttachment:
    """What is present on this node for one image (any part may be missing)."""

    image: str
    mountpoint: str
    mounted: bool
    pids: tuple[int, ...]
    devices: tuple[str, ...]


def fuse_mounts() -> set[str]:
    """The mount points of every rbd-fuse mount on this node."""
    found = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ")
            with contextlib.suppress(ValueError, IndexError):
                separator = fields.index("-", 6)
                if fields[separator + 1] == "fuse.rbd-fuse":
                    found.add(fields[4].replace("\\040", " "))
    return found


def processes() -> dict[int, list[str]]:
    """The command lines of every running rbd-fuse process, by pid."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == PROGRAM:
            found[int(entry)] = argv
    return found


def wait_exit(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` (not our child) has exited within ``timeout`` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(fd)


@frozen
class RbdFuse:
    """rbd-fuse attachments of the settings' pool under ``run_dir`` (a real path)."""

    settings: CephSettings
    run_dir: str

    def mountpoint(self, image: str) -> str:
        """Where the image's rbd-fuse is mounted."""
        return os.path.join(self.run_dir, image)

    def image_file(self, image: str) -> str:
        """The image as a file, inside its mount."""
        return os.path.join(self.mountpoint(image), image)

    def _devices(self, image: str) -> tuple[str, ...]:
        target = self.image_file(image)
        names = sorted(n for n in os.listdir(loopdev.SYS_BLOCK) if n.startswith("loop"))
        return tuple("/dev/" + n for n in names if loopdev.backing_file(n) == target)

    def find(
        self,
        image: str,
        running: dict[int, list[str]] | None = None,
        mounted: set[str] | None = None,
    ) -> FuseAttachment:
        """What exists on this node for ``image`` (``running``, ``mounted``: the rbd-fuse
        processes and mounts, if already looked up)."""
        mountpoint = self.mountpoint(image)
        running = processes() if running is None else running
        mounted = fuse_mounts() if mounted is None else mounted
        return FuseAttachment(
            image=image,
            mountpoint=mountpoint,
            mounted=mountpoint in mounted,
            pids=tuple(pid for pid, argv in running.items() if argv[-1] == mountpoint),
            devices=self._devices(image),
        )

    def local(self) -> list[FuseAttachment]:
        """Every image with anything left on this node (mount, process, directory)."""
        names = set()
        with contextlib.suppress(FileNotFoundError):
            names.update(os.listdir(self.run_dir))
        prefix = self.run_dir + os.sep
        running, mounted = processes(), fuse_mounts()
        names.update(m[len(prefix) :] for m in mounted if m.startswith(prefix))
        names.update(
            argv[-1][len(prefix) :] for argv in running.values() if argv[-1].startswith(prefix)
        )
        images = sorted(n for n in names if os.sep not in n)
        return [self.find(name, running, mounted) for name in images]

    def attach(self, image: str) -> str:
        """The loop device of ``image``, starting rbd-fuse and losetup as needed.

        A live rbd-fuse is kept (only its loop device is made again); anything
        of a dead one is removed first.
        """
        found = self.find(image)
        if found.mounted and found.pids:
            return found.devices[0] if found.devices else loopdev.attach(self.image_file(image))
        for device in found.devices:
            run_command(["losetup", "-d", device], BackendError)
        if found.mounted or found.pids or found.devices:
            self.stop(image)
        self._start(image)
        return loopdev.attach(self.image_file(image))

    def _start(self, image: str) -> None:
        mountpoint = self.mountpoint(image)
        os.makedirs(mountpoint, exist_ok=True)
        argv = [PROGRAM, "-c", self.settings.conf, "-p", self.settings.pool, "-r", image,
                mountpoint]
        env = {**os.environ, "CEPH_ARGS": " ".join(self.settings.cli_args())}
        try:
            done = subprocess.run(
                argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=60, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BackendError(
                f"Cannot run {PROGRAM}: {e}. Is the rbd-fuse package installed?"
            ) from e
        if done.returncode != 0:
            raise BackendError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
        if not os.path.exists(self.image_file(image)):  # waits for rbd-fuse to open it
            self.stop(image)
            raise BackendError(
                f"rbd-fuse could not open image {image} in pool {self.settings.pool}; see the "
                "client log (ceph.conf 'log file') for why."
            )

    def detach(self, image: str) -> None:
        """Undo :meth:`attach`: loop device, mount, process; refuses a device in use."""
        found = self.find(image)
        for device in found.devices:
            loopdev.detach(device, self.image_file(image))
        self.stop(image)

    def stop(self, image: str) -> None:
        """Unmount rbd-fuse and wait for it to exit (SIGKILL if it does not); remove the
        mount point. Its loop devices must be gone already."""
        found = self.find(image)
        if found.mounted:
            run_command(["fusermount", "-u", found.mountpoint], BackendError)
        for pid in found.pids:
            if not wait_exit(pid, EXIT_WAIT):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_exit(pid, EXIT_WAIT)
        if found.mountpoint in fuse_mounts():
            run_command(["fusermount", "-u", "-z", found.mountpoint], BackendError)
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(found.mountpoint)

    def kill(self, image: str) -> None:
        """Remove what a fence left of ``image`` here, never waiting on the (hung) mount:
        SIGKILL rbd-fuse, lazily unmount filesystems on its loop device, ``losetup -d``,
        ``fusermount -u``."""
        found = self.find(image)
        for pid in found.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_exit(pid, EXIT_WAIT)
        for device in found.devices:
            for path in mounts_of(device):
                run_command(["umount", "-l", path], BackendError)
            run_command(["losetup", "-d", device], BackendError)
        if found.mountpoint in fuse_mounts():
            run_command(["fusermount", "-u", "-z", found.mountpoint], BackendError)
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(found.mountpoint)


def mounts_of(device: str) -> list[str]:
    """Where ``device`` is mounted on this node (from ``/proc/self/mountinfo``)."""
    from agent.fs.real import parse_mountinfo

    with open("/proc/self/mountinfo") as f:
        return [m.path for m in parse_mountinfo(f.read()) if m.device == device]


__all__ = ["FuseAttachment", "RbdFuse", "fuse_mounts", "processes", "wait_exit"]
