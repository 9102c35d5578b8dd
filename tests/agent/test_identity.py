"""The node identity file: created once, read back, private to its owner."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest

from agent.identity import identity_path, load_or_create_identity, write_atomically


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022), under which files default to 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.usefixtures("open_umask")
def test_identity_file_is_private(tmp_path) -> None:
    """identity.json is created 0600, not 0644."""
    load_or_create_identity(str(tmp_path), "node1")
    assert _mode(identity_path(str(tmp_path))) == 0o600


@pytest.mark.usefixtures("open_umask")
def test_rewrite_makes_a_loose_file_private(tmp_path) -> None:
    """Replacing a file that was 0644 (or left a 0644 temporary) leaves it 0600."""
    path = str(tmp_path / "state.json")
    for loose in (path, f"{path}.tmp"):
        with open(loose, "wb") as f:
            f.write(b"{}")
        os.chmod(loose, 0o644)
    write_atomically(path, b'{"a": 1}')
    assert _mode(path) == 0o600
    with open(path, "rb") as f:
        assert f.read() == b'{"a": 1}'
