"""The node identity in the state directory: private to its owner, and locked to one agent."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.files import write_atomically
from agent.identity import (
    StateDirLocked,
    identity_path,
    load_or_create_identity,
    lock_state_dir,
)
from tests.processes import ROOT


def test_second_lock_on_a_state_dir_is_refused(tmp_path: Path) -> None:
    """While one holder has the lock, another is refused with the holder's pid; then it is free."""
    state = str(tmp_path / "state")
    first = lock_state_dir(state)
    with pytest.raises(StateDirLocked, match=f"pid {os.getpid()}.*--state-dir {state}"):
        lock_state_dir(state)
    os.close(first)
    os.close(lock_state_dir(state))


@pytest.mark.functional
def test_second_agent_process_exits_with_a_clear_message(tmp_path: Path) -> None:
    """``shoal agent run`` on a state dir another agent holds exits 1 and says why."""
    state = str(tmp_path / "state")
    load_or_create_identity(state, "node1")
    held = lock_state_dir(state)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "control.cli", "agent", "run", "--node-name", "node1",
             "--state-dir", state, "--backend", "fake", "--mount-root", str(tmp_path / "m"),
             "--url", "http://127.0.0.1:9"],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )
    finally:
        os.close(held)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: Another agent (pid {os.getpid()}) is running")
    assert "Traceback" not in done.stderr


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


def test_a_new_identity_takes_the_certificate_s_node(tmp_path: Path) -> None:
    """On first start with a node certificate, the agent's uuid is the one it is bound to."""
    from uuid import UUID

    bound = UUID("3f9c1a2e-5b7d-4c1e-9a0b-6d2f8e4c7a11")
    identity = load_or_create_identity(str(tmp_path), "n1", bound=bound)
    assert identity.uuid == bound
    assert load_or_create_identity(str(tmp_path), "n1", bound=bound).uuid == bound


def test_another_node_s_certificate_is_refused(tmp_path: Path) -> None:
    """An existing identity with a certificate bound to another node is refused, saying how to
    issue the right one."""
    from uuid import UUID, uuid4

    from agent.identity import IdentityError

    mine = load_or_create_identity(str(tmp_path), "n1")
    other = uuid4()
    with pytest.raises(IdentityError, match=f"--uuid {mine.uuid}") as raised:
        load_or_create_identity(str(tmp_path), "n1", bound=other)
    assert str(other) in str(raised.value)
    assert isinstance(mine.uuid, UUID)
