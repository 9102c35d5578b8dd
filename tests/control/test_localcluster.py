"""``make run``'s parts that need no processes: supervision, the run-dir lock, the ready message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from attrs import define

from control.localcluster import (
    RESTART_DELAY,
    AlreadyRunning,
    Supervisor,
    exit_text,
    lock_run_dir,
    ready_message,
)


@define
class FakeChild:
    """A child process that ends when told to."""

    pid: int
    status: int | None = None

    def poll(self) -> int | None:
        """Its exit status, or None while it runs."""
        return self.status


def test_dead_agent_is_reported_and_restarted_after_a_delay() -> None:
    """An agent that dies is said to have died, then restarted once the delay is over."""
    spawned: list[FakeChild] = []
    said: list[str] = []

    def spawn(name: str) -> FakeChild:
        spawned.append(FakeChild(100 + len(spawned)))
        return spawned[-1]

    supervisor = Supervisor(spawn, ["node1", "node2"], said.append, lambda name: "")
    supervisor.start()
    supervisor.check(0.0)
    assert said == [] and supervisor.pids() == {"node1": 100, "node2": 101}
    spawned[1].status = -9
    supervisor.check(1.0)
    assert said == [f"agent node2 (pid 101) was killed by SIGKILL; restarting it in "
                    f"{RESTART_DELAY:g} s"]
    assert supervisor.pids() == {"node1": 100}
    supervisor.check(1.0 + RESTART_DELAY / 2)
    assert len(spawned) == 2
    supervisor.check(1.0 + RESTART_DELAY)
    assert said[-1] == "agent node2 restarted (pid 102)"
    assert supervisor.pids() == {"node1": 100, "node2": 102}


def test_exit_text() -> None:
    """Exit statuses and signals read as words."""
    assert exit_text(3) == "exited with status 3"
    assert exit_text(-15) == "was killed by SIGTERM"


def test_second_run_on_a_directory_is_refused(tmp_path: Path) -> None:
    """The run directory's lock is held by one process at a time, naming the holder."""
    fd = lock_run_dir(str(tmp_path))
    with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
        lock_run_dir(str(tmp_path))
    os.close(fd)
    os.close(lock_run_dir(str(tmp_path)))


def test_ready_message_has_the_export_line_and_how_to_fail_a_node() -> None:
    """The ready message gives the export line, the dashboard and how to freeze and resume
    an agent."""
    text = ready_message("http://127.0.0.1:4523", {"node1": 11, "node2": 12}, "/r")
    assert "SHOAL_URL=http://127.0.0.1:4523" in text and "export PATH=" in text
    assert "kill -STOP 12" in text and "kill -CONT 12" in text
    assert "dashboard at http://127.0.0.1:4523/ui/" in text


def test_death_message_quotes_the_end_of_the_log() -> None:
    """Why an agent died is quoted from the end of its log."""
    said: list[str] = []
    child = FakeChild(7, status=1)
    supervisor = Supervisor(lambda name: child, ["node1"], said.append,
                            lambda name: "error: Another agent (pid 3) is running\n")
    supervisor.start()
    supervisor.check(0.0)
    assert said == [f"agent node1 (pid 7) exited with status 1; restarting it in "
                    f"{RESTART_DELAY:g} s. Its log ends: error: Another agent (pid 3) is running"]
