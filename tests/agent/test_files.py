"""The one atomic file write and the one command runner."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.commands import check_command, run_command
from agent.files import write_atomically


def test_write_replaces_the_whole_file(tmp_path: Path) -> None:
    """The new content replaces the old, readable by its owner only, and no temporary is left."""
    path = tmp_path / "state.json"
    path.write_bytes(b"old content, longer")
    write_atomically(str(path), b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["state.json"]


def test_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails before the rename leaves the old file and no temporary file."""
    path = tmp_path / "state.json"
    path.write_bytes(b"old")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        write_atomically(str(path), b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_write_fsyncs_the_file_and_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both the data and the rename are made durable."""
    synced: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    write_atomically(str(tmp_path / "x"), b"1")
    assert synced == ["file", "dir"]


class Refused(Exception):
    """The caller's own error type."""


def test_commands_raise_the_callers_error() -> None:
    """A command that fails, or cannot start, raises the caller's error with what went wrong."""
    assert check_command(["sh", "-c", "echo hi"], Refused) == "hi\n"
    with pytest.raises(Refused, match="exit code 3: oops"):
        check_command(["sh", "-c", "echo oops >&2; exit 3"], Refused)
    with pytest.raises(Refused, match="Cannot run no-such-tool-x: .* Install it."):
        run_command(["no-such-tool-x"], Refused, hint="Install it.")
    assert run_command(["sh", "-c", "exit 2"], Refused).returncode == 2
