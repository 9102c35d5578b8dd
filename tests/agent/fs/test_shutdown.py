"""Finding a device's mounts in mountinfo, for the fence's shutdown (pure parsing)."""

from __future__ import annotations

import os

from agent.fs.shutdown import FS_IOC_SHUTDOWN, mounts_in


def test_ioctl_number() -> None:
    """FS_IOC_SHUTDOWN is _IOR('X', 125, __u32), as in <linux/f2fs.h> and XFS_IOC_GOINGDOWN."""
    read, size, kind, number = 2, 4, ord("X"), 125
    assert (read << 30) | (size << 16) | (kind << 8) | number == FS_IOC_SHUTDOWN


def test_mounts_in_matches_device_number() -> None:
    """Every mount point of the device's major:minor is found, escapes decoded; others not."""
    text = (
        "36 35 7:4 / /mnt/a\\040b rw - ext4 /dev/loop4 rw\n"
        "37 35 7:40 / /other rw - ext4 /dev/loop40 rw\n"
        "38 35 7:4 / /var/lib/shoal/x rw - ext4 /dev/loop4 rw\n"
        "39 35 0:25 / /run rw - tmpfs tmpfs rw\n"
    )
    assert mounts_in(text, os.makedev(7, 4)) == ["/mnt/a b", "/var/lib/shoal/x"]
    assert mounts_in(text, os.makedev(8, 0)) == []
