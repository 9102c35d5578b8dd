"""
Read a filesystem's kind and size from its superblock (pure parsing of bytes).

Enough of ext2/3/4 and XFS to tell whether a filesystem fills its device:
:func:`parse` takes the first :data:`HEAD` bytes of a device.
"""

from __future__ import annotations

import struct

from agent.fs.interface import FilesystemInfo

HEAD = 2048
"""How many bytes from the start of a device :func:`parse` needs."""
EXT_SUPER = 1024
EXT_MAGIC = 0xEF53
EXT_INCOMPAT_64BIT = 0x80
XFS_MAGIC = b"XFSB"


def _ext(head: bytes) -> FilesystemInfo | None:
    sb = head[EXT_SUPER : EXT_SUPER + 1024]
    if len(sb) < 0x158 or struct.unpack_from("<H", sb, 0x38)[0] != EXT_MAGIC:
        return None
    blocks = struct.unpack_from("<I", sb, 0x4)[0]
    block_size = 1024 << struct.unpack_from("<I", sb, 0x18)[0]
    if struct.unpack_from("<I", sb, 0x60)[0] & EXT_INCOMPAT_64BIT:
        blocks |= struct.unpack_from("<I", sb, 0x150)[0] << 32
    return FilesystemInfo(kind="ext4", size=blocks * block_size)


def _xfs(head: bytes) -> FilesystemInfo | None:
    if len(head) < 16 or head[:4] != XFS_MAGIC:
        return None
    block_size, blocks = struct.unpack_from(">IQ", head, 4)
    return FilesystemInfo(kind="xfs", size=block_size * blocks)


def parse(head: bytes) -> FilesystemInfo | None:
    """The filesystem whose superblock starts ``head``, or ``None`` if none known."""
    return _xfs(head) or _ext(head)
