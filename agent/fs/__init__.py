"""Filesystem operations for the node agent: the seam, a fake and the real one."""

from agent.fs.fake import FakeFilesystems
from agent.fs.interface import FilesystemError, FilesystemExists, Filesystems, Mount
from agent.fs.real import RealFilesystems

__all__ = [
    "FakeFilesystems",
    "FilesystemError",
    "FilesystemExists",
    "Filesystems",
    "Mount",
    "RealFilesystems",
]
