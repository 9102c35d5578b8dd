"""When an observation made alongside the configuration's fetch may stand for one made after it."""

from __future__ import annotations

from agent.pacing import observed_after


def test_same_generation_as_known_before_observing() -> None:
    """The fetch brought the generation the watch had announced: the early observation stands."""
    assert observed_after(7, 7)


def test_older_generation_than_known() -> None:
    """A fetch answered from a lagging replica is no newer than what was known: it stands."""
    assert observed_after(7, 6)


def test_newer_generation_written_while_observing() -> None:
    """A generation newer than the one known when observing began needs a new observation."""
    assert not observed_after(7, 8)


def test_unknown_current_generation() -> None:
    """Without a known current generation the order is unknown: observe after the fetch."""
    assert not observed_after(None, 7)
