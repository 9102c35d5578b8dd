"""The loopback backend's sparse copy: data extents only, their blocks of zeros left as holes."""

from __future__ import annotations

import os
from pathlib import Path

from agent.backends import filecopy

KiB = 1024
BLOCK = filecopy.BLOCK


def _data_offsets(path: Path) -> list[tuple[int, int]]:
    """The destination's data extents, as ``(offset, length)``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return list(filecopy._data_extents(fd, os.fstat(fd).st_size))
    finally:
        os.close(fd)


def _copy(tmp_path: Path, content: bytes) -> Path:
    """``content`` written (every byte: no holes) to a source file, then sparse-copied."""
    source, destination = tmp_path / "source", tmp_path / "copy"
    source.write_bytes(content)
    with open(source, "rb") as s, open(destination, "wb") as d:
        os.ftruncate(d.fileno(), len(content))
        filecopy.sparse_copy(s.fileno(), d.fileno(), len(content))
    return destination


def test_copy_is_the_same_bytes_with_zero_blocks_left_as_holes(tmp_path: Path) -> None:
    """Written blocks of zeros read back as zeros from the copy, where they are holes."""
    data = os.urandom(4 * KiB)
    content = data + bytes(BLOCK - len(data)) + bytes(8 * BLOCK) + b"end".ljust(BLOCK, b"x")
    destination = _copy(tmp_path, content)
    assert destination.read_bytes() == content
    extents = _data_offsets(destination)
    assert extents, "the data was not written"
    for offset, length in extents:  # nothing of the eight zero blocks in between was written
        assert offset + length <= BLOCK or offset >= 9 * BLOCK, extents


def test_copy_of_zeros_writes_nothing(tmp_path: Path) -> None:
    """A source of written zeros (a never-used volume's extents) makes a copy of holes only."""
    content = bytes(3 * filecopy.CHUNK + 5 * KiB)
    destination = _copy(tmp_path, content)
    assert destination.read_bytes() == content
    assert _data_offsets(destination) == []


def test_copy_of_data_across_chunks(tmp_path: Path) -> None:
    """Data spanning several read chunks, odd sizes included, is copied byte for byte."""
    content = os.urandom(2 * filecopy.CHUNK + 12345)
    assert _copy(tmp_path, content).read_bytes() == content


def test_nonzero_runs_coalesce_neighbouring_blocks() -> None:
    """Runs join neighbouring non-zero blocks and stop at the zero ones, the last one short."""
    data = b"a" * (2 * BLOCK) + bytes(BLOCK) + b"b" + bytes(10)
    assert list(filecopy._nonzero_runs(data)) == [(0, 2 * BLOCK), (3 * BLOCK, len(data))]
    assert list(filecopy._nonzero_runs(bytes(BLOCK + 7))) == []
