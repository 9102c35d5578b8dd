"""
A checker thread counting the moments when two filesystems of one dataset are writable.

Every few milliseconds it reads ``/proc/<pid>/mountinfo`` of one process in
each mount namespace on the machine, maps each mounted loop device to the
dataset whose volume file backs it (``/sys/dev/block/M:m/loop/backing_file``)
and calls a filesystem *writable* when it is mounted read-write (mount and
superblock options) on a device that is not read-only. Two writable
filesystems (two devices) of one dataset at once is a violation; two mounts
of one device (a bind mount, another namespace) are one filesystem.

Mountinfo cannot show a filesystem shut down (``FS_IOC_SHUTDOWN``) but still
mounted read-write, so the writers' logs complete the picture:
:meth:`WritableChecker.writer_overlaps` lists the records a writer fsynced
while another filesystem of its dataset was seen writable. The pure parts
(:func:`parse_mounts`, :func:`doubles`) are tested without root.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Mapping

from attrs import define, field, frozen

from tests.failover.records import WriterLog

SYS_DEV_BLOCK = "/sys/dev/block"


@frozen
class MountLine:
    """One mount of a block device: ``major:minor``, where, and whether mounted read-write."""

    device: str
    path: str
    read_write: bool


def _options(text: str) -> set[str]:
    return set(text.split(","))


def parse_mounts(text: str) -> list[MountLine]:
    """Every mount in a mountinfo text, read-write when both its mount and superblock are."""
    found = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
            device, path, mount_options = fields[2], fields[4], fields[5]
            super_options = fields[separator + 3]
        except (ValueError, IndexError):
            continue
        read_write = "rw" in _options(mount_options) and "rw" in _options(super_options)
        found.append(MountLine(device, path, read_write))
    return found


@frozen
class Filesystem:
    """A dataset's filesystem seen mounted: its device, where, and whether writable."""

    dataset: str
    device: str
    path: str
    writable: bool


def filesystems(
    mounts: Iterable[MountLine], datasets: Mapping[str, str], read_only: Mapping[str, bool]
) -> list[Filesystem]:
    """The mounts of datasets' devices (``datasets``: device -> dataset), with writability."""
    return [
        Filesystem(
            datasets[m.device], m.device, m.path, m.read_write and not read_only.get(m.device, True)
        )
        for m in mounts
        if m.device in datasets
    ]


def doubles(seen: Iterable[Filesystem]) -> dict[str, set[str]]:
    """Each dataset with more than one writable filesystem (device), and those devices."""
    writable: dict[str, set[str]] = {}
    for fs in seen:
        if fs.writable:
            writable.setdefault(fs.dataset, set()).add(fs.device)
    return {d: devices for d, devices in writable.items() if len(devices) > 1}


@define
class Period:
    """One stretch of time a device held a dataset's filesystem, mounted somewhere.

    Times are ``time.monotonic()``; ``writable_from`` / ``writable_until`` bound
    the checks that saw it writable (None: never).
    """

    dataset: str
    device: str
    first: float
    last: float
    first_wall: float
    paths: set[str] = field(factory=set)
    writable_from: float | None = None
    writable_until: float | None = None

    def writable_at(self, moment: float) -> bool:
        """Whether the checks saw it writable around ``moment``."""
        return (
            self.writable_from is not None
            and self.writable_until is not None
            and self.writable_from <= moment <= self.writable_until
        )


def loop_dataset(device: str, pool: str) -> str | None:
    """The dataset whose volume file in ``pool`` backs loop device ``device``, if any."""
    try:
        with open(os.path.join(SYS_DEV_BLOCK, device, "loop", "backing_file")) as f:
            backing = f.read().strip()
    except OSError:
        return None
    backing = backing.removesuffix(" (deleted)")
    if not backing.startswith(os.path.realpath(pool).rstrip("/") + "/"):
        return None
    name = os.path.basename(backing)
    return name[: -len(".img")] if name.endswith(".img") else None


def device_read_only(device: str) -> bool:
    """Whether the block device refuses writes (``/sys/dev/block/M:m/ro``)."""
    try:
        with open(os.path.join(SYS_DEV_BLOCK, device, "ro")) as f:
            return f.read().strip() != "0"
    except OSError:
        return True


def mount_namespaces() -> dict[int, int]:
    """One process id per mount namespace on the machine: ``{namespace inode: pid}``."""
    found: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError):
            found.setdefault(os.stat(f"/proc/{name}/ns/mnt").st_ino, int(name))
    return found


class WritableChecker(threading.Thread):
    """Watch every mount namespace for datasets of ``pool`` writable on two devices at once."""

    def __init__(self, pool: str, interval: float = 0.002, rescan: float = 0.1) -> None:
        super().__init__(daemon=True, name="writable-checker")
        self.pool = pool
        self.interval = interval
        self.rescan = rescan
        self.checks = 0
        self.double_writable = 0
        self.violations: list[str] = []
        self.periods: list[Period] = []
        self._open: dict[tuple[str, str], Period] = {}
        self._namespaces: dict[int, int] = {}
        self._scanned = 0.0
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Check every ``interval`` until stopped."""
        while not self._stop_event.is_set():
            self.check_once()
            time.sleep(self.interval)

    def _mount_lines(self) -> list[MountLine]:
        now = time.monotonic()
        if now - self._scanned > self.rescan:
            self._namespaces, self._scanned = mount_namespaces(), now
        lines: list[MountLine] = []
        for namespace, pid in list(self._namespaces.items()):
            try:
                with open(f"/proc/{pid}/mountinfo") as f:
                    lines.extend(parse_mounts(f.read()))
            except OSError:
                self._namespaces.pop(namespace, None)
                self._scanned = 0.0
        return lines

    def check_once(self) -> None:
        """One look at every namespace's mounts; counts and records a double if there is one."""
        lines = self._mount_lines()
        devices = {m.device for m in lines if m.device.startswith("7:")}
        datasets = {d: ds for d in devices if (ds := loop_dataset(d, self.pool)) is not None}
        read_only = {d: device_read_only(d) for d in datasets}
        # A device detached between the reads above reads writable (a free loop device's ro
        # is 0): count a writable one only if the same dataset still backs it after the read.
        datasets = {
            d: ds for d, ds in datasets.items()
            if read_only[d] or loop_dataset(d, self.pool) == ds
        }
        seen = filesystems(lines, datasets, read_only)
        now, wall = time.monotonic(), time.time()
        with self._lock:
            self.checks += 1
            self._record(seen, now, wall)
            found = doubles(seen)
            if found:
                self.double_writable += 1
                if len(self.violations) < 20:
                    self.violations.extend(
                        f"{dataset} writable on devices {sorted(devices)} at {now:.3f}"
                        for dataset, devices in sorted(found.items())
                    )

    def _record(self, seen: list[Filesystem], now: float, wall: float) -> None:
        current: dict[tuple[str, str], Period] = {}
        for fs in seen:
            key = (fs.dataset, fs.device)
            period = current.get(key) or self._open.get(key)
            if period is None:
                period = Period(fs.dataset, fs.device, now, now, wall)
                self.periods.append(period)
            period.last = now
            period.paths.add(fs.path)
            if fs.writable:
                if period.writable_from is None:
                    period.writable_from = now
                period.writable_until = now
            current[key] = period
        self._open = current

    def stop(self) -> None:
        """Stop checking."""
        self._stop_event.set()
        self.join(5)

    # -- questions the tests ask ------------------------------------------------

    def periods_of(self, dataset_id: object) -> list[Period]:
        """Every period a filesystem of the dataset was seen mounted, oldest first."""
        with self._lock:
            return [p for p in self.periods if p.dataset == str(dataset_id)]

    def mounted_under(self, dataset_id: object, root: str, after: float = 0.0) -> list[Period]:
        """The dataset's periods mounted below ``root`` and seen after ``after``."""
        prefix = os.path.realpath(root).rstrip("/") + "/"
        return [
            p for p in self.periods_of(dataset_id)
            if p.last > after and any(path.startswith(prefix) for path in p.paths)
        ]

    def writer_overlaps(self, log: WriterLog, dataset_id: object) -> list[int]:
        """Records the writer fsynced while another filesystem of its dataset was writable."""
        others = [p for p in self.periods_of(dataset_id) if p.device != log.device]
        return [n for n, at in log.fsynced if any(p.writable_at(at) for p in others)]
