"""
Numbered records, as the failover tests' writer appends them, and their checks (pure).

A record is :data:`RECORD_SIZE` bytes: ``R<number, 10 digits> <payload>\\n``,
its payload derived from the number and the writer's seed, so a torn, zeroed
or misplaced record never passes for a good one. The writer's log has one
line per event (:func:`parse_log`); :func:`check_records` compares what a
volume holds with what the writer says it fsynced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from attrs import frozen

RECORD_SIZE = 256
"""Bytes per record."""


def record(seed: str, number: int) -> bytes:
    """Record ``number`` of the writer ``seed``: always :data:`RECORD_SIZE` bytes."""
    head = f"R{number:010d} ".encode()
    digest = hashlib.sha256(f"{seed}:{number}".encode()).hexdigest().encode()
    body = (digest * (RECORD_SIZE // len(digest) + 1))[: RECORD_SIZE - len(head) - 1]
    return head + body + b"\n"


@frozen
class WriterLog:
    """What a writer's log says: where it wrote, what it fsynced and what failed.

    ``fsynced`` is ``(number, monotonic time)`` of each record whose ``fsync``
    returned; ``errors`` is ``(number, errno name, monotonic time)`` of each
    failed ``write`` or ``fsync``. ``device`` is the ``major:minor`` of the
    filesystem the writer's file is on.
    """

    seed: str
    device: str
    fsynced: tuple[tuple[int, float], ...]
    errors: tuple[tuple[int, str, float], ...]

    @property
    def last_fsynced(self) -> int:
        """The number of the last record fsynced, or -1."""
        return self.fsynced[-1][0] if self.fsynced else -1

    def fsynced_after(self, moment: float) -> list[int]:
        """Records whose fsync returned after ``moment`` (monotonic)."""
        return [n for n, at in self.fsynced if at > moment]

    def errors_after(self, moment: float) -> list[tuple[int, str, float]]:
        """Failed writes or fsyncs after ``moment`` (monotonic)."""
        return [e for e in self.errors if e[2] > moment]


def parse_log(lines: Iterable[str]) -> WriterLog:
    """Read a writer's log: ``start SEED DEVICE``, ``ok N T``, ``error N ERRNO T`` lines.

    A last line cut short (the writer killed while writing it) is ignored.
    """
    seed, device = "", ""
    fsynced: list[tuple[int, float]] = []
    errors: list[tuple[int, str, float]] = []
    for line in lines:
        if not line.endswith("\n"):
            break
        fields = line.split()
        if fields[0] == "start":
            seed, device = fields[1], fields[2]
        elif fields[0] == "ok":
            fsynced.append((int(fields[1]), float(fields[2])))
        elif fields[0] == "error":
            errors.append((int(fields[1]), fields[2], float(fields[3])))
    return WriterLog(seed, device, tuple(fsynced), tuple(errors))


@frozen
class RecordCheck:
    """What a volume's copy of the writer's file holds.

    ``intact`` is how many records, from record 0 on, are there whole and in
    order; ``tail`` the bytes after them; ``later`` the numbers of whole records
    found in the tail (records from after a gap).
    """

    intact: int
    tail: int
    later: tuple[int, ...]


def check_records(seed: str, data: bytes) -> RecordCheck:
    """Count the whole, in-order records at the start of ``data`` and look at the rest."""
    intact = 0
    while (intact + 1) * RECORD_SIZE <= len(data):
        chunk = data[intact * RECORD_SIZE : (intact + 1) * RECORD_SIZE]
        if chunk != record(seed, intact):
            break
        intact += 1
    later = []
    for offset in range(intact * RECORD_SIZE, len(data) - RECORD_SIZE + 1, RECORD_SIZE):
        chunk = data[offset : offset + RECORD_SIZE]
        if chunk.startswith(b"R") and chunk[1:11].isdigit():
            number = int(chunk[1:11])
            if chunk == record(seed, number):
                later.append(number)
    return RecordCheck(intact, len(data) - intact * RECORD_SIZE, tuple(later))


def durable_problems(
    log: WriterLog, found: RecordCheck, newest: int | None = None, racing: bool = False
) -> list[str]:
    """What is wrong with a volume's copy, given the writer's log (empty: all good).

    Every record the writer fsynced must be there, whole and in order; at most
    one more record (written, its fsync not logged) may follow, and at most
    one record's worth of torn tail. With ``newest``, no record numbered above
    it may be there (records the writer wrote after it was fenced).

    ``racing``: the writer was running when its filesystem was shut down, so
    its last fsync may have raced the shutdown. ext4 can then answer that
    fsync with success although the record never reaches the device (an
    fsync whose journal commit is aborted before it starts waiting for it);
    so the last fsynced record alone may be missing.
    """
    problems = []
    required = log.last_fsynced + (0 if racing else 1)
    if found.intact < required:
        problems.append(
            f"only records 0..{found.intact - 1} are intact, but the writer fsynced up to "
            f"{log.last_fsynced}"
        )
    if found.intact > log.last_fsynced + 2:
        problems.append(
            f"{found.intact} records are there, more than the {log.last_fsynced + 1} fsynced "
            "and the one in flight"
        )
    if found.tail >= RECORD_SIZE or found.later:
        problems.append(
            f"{found.tail} bytes follow the intact records (whole records {list(found.later)})"
        )
    if newest is not None and found.intact - 1 > newest:
        problems.append(f"records up to {found.intact - 1} are there, written after {newest}")
    return problems
