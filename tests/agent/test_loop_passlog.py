"""An idle pass builds its log lines only when its logger logs their level (issue 16)."""

from __future__ import annotations

import logging
from typing import Any

from agent.testing import SimulatedCluster


class Recorder:
    """A logger that records the events it was given, and cannot say which levels it logs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        if name == "is_enabled_for":
            raise AttributeError(name)
        return lambda event, **fields: self.events.append((name, event))


class Filtering(Recorder):
    """A recorder that logs at and above ``level``."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def is_enabled_for(self, level: int) -> bool:
        """Whether it logs at ``level``."""
        return level >= self.level


def idle_events(level: int | None) -> list[tuple[str, str]]:
    """The events an idle pass gives a logger at ``level``."""
    cluster = SimulatedCluster(1)
    cluster.create(0)
    cluster.converge(10)
    cluster.pass_node(0)  # reported: the next pass is idle
    recorder = Recorder() if level is None else Filtering(level)
    cluster.nodes[0].loop._log = recorder
    cluster.nodes[0].loop.one_pass()
    return recorder.events


def test_an_idle_pass_logs_at_debug_when_debug_is_on() -> None:
    """With debug on, the idle pass's summary is logged at debug."""
    assert ("debug", "agent.observed") in idle_events(logging.DEBUG)


def test_an_idle_pass_logs_nothing_of_itself_when_debug_is_off() -> None:
    """With debug off, the idle pass's summary is not even handed to the logger."""
    assert not {e for _, e in idle_events(logging.INFO)} & {"agent.observed", "agent.decided"}


def test_a_logger_that_cannot_tell_is_given_every_line() -> None:
    """A logger with no ``is_enabled_for`` still gets the pass's summary, as before."""
    assert ("debug", "agent.observed") in idle_events(None)
