"""
The kernel's complaints about this node's devices: I/O errors, data loss.

A thin pool that runs full, or a failing disk under a loopback pool, makes
the kernel log lines such as ``EXT4-fs warning (device loop4): ... I/O error``
or ``EXT4-fs (loop4): failed to convert unwritten extents ... potential data
loss!`` while the writer sees no error at all. :class:`KmsgLog` reads
``/dev/kmsg`` (non-blocking, from where it last stopped; it starts at the end
of the log when the agent starts) during discovery, so the agent reports an
``io_error`` condition instead of a healthy ``mounted``.

A device's errors are remembered until it is no longer attached here (its
volume detached); lines logged before the agent started are not seen.
Where ``/dev/kmsg`` cannot be read (not root, no such device) the log fails
soft: it reports nothing and logs why once.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import structlog

KMSG = "/dev/kmsg"
ERROR_LEVEL = 3
"""Syslog levels up to this one (emerg, alert, crit, err) are errors whatever they say."""
_ERROR_WORDS = re.compile(r"I/O error|data loss|error", re.IGNORECASE)
_HARMLESS = re.compile(r"operation not supported error", re.IGNORECASE)
"""Errors that lose no data: a discard or write-zeroes the backing file cannot do (mkfs tries)."""
MAX_LINE = 300
"""A reported line is cut to this many characters."""


class KernelLog(Protocol):
    """Errors the kernel logged for devices (discovery calls it in a thread)."""

    def errors(self, devices: Iterable[str]) -> Mapping[str, str]:
        """For each of ``devices`` (paths) with a logged error since attached: its latest line."""
        ...


def parse_record(raw: bytes) -> tuple[int, str] | None:
    """A ``/dev/kmsg`` record as ``(level, message)``, or ``None`` if it is not one."""
    text = raw.decode("utf-8", "replace")
    header, sep, message = text.partition(";")
    if not sep:
        return None
    try:
        priority = int(header.split(",", 1)[0])
    except ValueError:
        return None
    return priority & 7, message.split("\n", 1)[0]


def is_error(level: int, message: str) -> bool:
    """Whether a kernel line reports an error (by level or by its words)."""
    if _HARMLESS.search(message):
        return False
    return level <= ERROR_LEVEL or _ERROR_WORDS.search(message) is not None


def mentions(message: str, name: str) -> bool:
    """Whether ``message`` names the device ``name`` (``loop1``, not ``loop10``)."""
    return re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", message) is not None


class KmsgLog:
    """A :class:`KernelLog` reading ``/dev/kmsg`` (see the module docstring)."""

    def __init__(self, path: str = KMSG, logger: Any = None) -> None:
        self._path = path
        self._fd: int | None = None
        self._failed = False
        self._errors: dict[str, str] = {}
        self._log = logger if logger is not None else structlog.get_logger("shoal.agent")

    def _open(self) -> int | None:
        if self._fd is None and not self._failed:
            try:
                self._fd = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
                os.lseek(self._fd, 0, os.SEEK_END)
            except OSError as e:
                self._failed = True
                self._log.warning(
                    "agent.kernel_log_unavailable",
                    path=self._path,
                    error=str(e),
                    effect="I/O errors of devices are not reported",
                )
        return self._fd

    def _records(self) -> Iterable[bytes]:
        fd = self._open()
        if fd is None:
            return
        while True:
            try:
                raw = os.read(fd, 8192)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.EPIPE:  # records were overwritten before we read them
                    continue
                raise
            if not raw:
                return
            yield raw

    def errors(self, devices: Iterable[str]) -> Mapping[str, str]:
        """The latest error line of each attached device in ``devices``."""
        paths = {os.path.basename(device): device for device in devices}
        for raw in self._records():
            record = parse_record(raw)
            if record is None or not is_error(*record):
                continue
            for name in paths:
                if mentions(record[1], name):
                    self._errors[name] = record[1][:MAX_LINE]
        self._errors = {name: line for name, line in self._errors.items() if name in paths}
        return {paths[name]: line for name, line in self._errors.items()}

    def close(self) -> None:
        """Close ``/dev/kmsg``."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class FakeKernelLog:
    """A :class:`KernelLog` whose lines tests write with :meth:`log`."""

    def __init__(self) -> None:
        self.lines: dict[str, str] = {}

    def log(self, device: str, line: str) -> None:
        """Pretend the kernel logged ``line`` as an error of ``device``."""
        self.lines[device] = line

    def errors(self, devices: Iterable[str]) -> Mapping[str, str]:
        """The logged line of each of ``devices`` that has one."""
        return {device: self.lines[device] for device in devices if device in self.lines}
