"""Mount a filesystem image through a loop device, as ``mount -o loop`` would, without its scan."""

from __future__ import annotations

import subprocess


def mount_image(image: str, path: str) -> str:
    """Attach ``image`` to a free loop device, mount it at ``path``; returns the device.

    Not ``mount -o loop``: that stats the backing file of every loop device on
    the machine first, and hangs behind one whose file is on a stuck FUSE
    filesystem. The device is detached at once: the kernel defers that until
    the unmount (autoclear), so unmounting ``path`` releases the device too.
    """
    device = subprocess.run(
        ["losetup", "--find", "--show", image], check=True, capture_output=True, text=True
    ).stdout.strip()
    mounted = subprocess.run(["mount", device, path], capture_output=True, text=True)
    subprocess.run(["losetup", "-d", device], check=False, capture_output=True)
    if mounted.returncode != 0:
        raise RuntimeError(f"mount {device} {path} ({image}): {mounted.stderr.strip()}")
    return device
