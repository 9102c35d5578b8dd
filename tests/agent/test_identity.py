"""The node identity in the state directory, and the lock that keeps it to one agent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.identity import StateDirLocked, load_or_create_identity, lock_state_dir
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
