"""
Attach an RBD image with the kernel client (``rbd map``), where the kernel has it.

``rbd map -o exclusive`` makes the kernel client take RBD's exclusive lock at
map time and keep it until unmap, refusing to hand it over: a second client
(another node's map, or a stray rbd-fuse) cannot write while it is mapped. The
device is ``/dev/rbdN``; mapped images are found in ``/sys/bus/rbd/devices``.
Not exercised by this repository's tests (the test machines have no rbd module).
"""

from __future__ import annotations

import os

from agent.backends.interface import BackendError
from agent.backends.rbd.session import CephSettings
from agent.commands import check_command, run_command

SYS_RBD = "/sys/bus/rbd/devices"


def available() -> bool:
    """Whether this kernel has the rbd client loaded."""
    return os.path.isdir("/sys/bus/rbd")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def mapped(settings: CephSettings, image: str) -> list[str]:
    """The ``/dev/rbdN`` devices of ``image`` in the settings' pool."""
    found = []
    try:
        ids = sorted(os.listdir(SYS_RBD))
    except OSError:
        return []
    for dev_id in ids:
        base = os.path.join(SYS_RBD, dev_id)
        if _read(f"{base}/pool") == settings.pool and _read(f"{base}/name") == image:
            found.append(f"/dev/rbd{dev_id}")
    return found


def mapped_images(settings: CephSettings) -> list[str]:
    """The images of the settings' pool mapped on this node."""
    try:
        ids = sorted(os.listdir(SYS_RBD))
    except OSError:
        return []
    return [
        _read(os.path.join(SYS_RBD, i, "name"))
        for i in ids
        if _read(os.path.join(SYS_RBD, i, "pool")) == settings.pool
    ]


def client_address(device: str) -> str | None:
    """The kernel client's address of a mapped device, if the kernel says."""
    dev_id = device.removeprefix("/dev/rbd")
    return _read(os.path.join(SYS_RBD, dev_id, "client_addr")) or None


def attach(settings: CephSettings, image: str) -> str:
    """Map ``image`` (exclusively) unless mapped; its device."""
    existing = mapped(settings, image)
    if existing:
        return existing[0]
    argv = ["rbd", "-c", settings.conf, *settings.cli_args(), "device", "map",
            "-o", "exclusive", f"{settings.pool}/{image}"]
    device = check_command(argv, BackendError, hint="Is ceph-common installed?").strip()
    if not device.startswith("/dev/"):
        raise BackendError(f"rbd map printed {device!r}, not a device.")
    return device


def detach(settings: CephSettings, image: str, force: bool = False) -> None:
    """Unmap every device of ``image`` (``force``: even if in use, for a fenced node)."""
    for device in mapped(settings, image):
        argv = ["rbd", "-c", settings.conf, *settings.cli_args(), "device", "unmap"]
        if force:
            argv += ["-o", "force"]
        done = run_command([*argv, device], BackendError)
        if done.returncode != 0 and device in mapped(settings, image):
            raise BackendError(
                f"rbd unmap {device} failed: {done.stderr.strip()}. Unmount it first."
            )


__all__ = ["attach", "available", "client_address", "detach", "mapped", "mapped_images"]
