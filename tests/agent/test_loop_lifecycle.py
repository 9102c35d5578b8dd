"""The loop's lifecycle state machine and the loop's pure helpers."""

from __future__ import annotations

import pytest

from agent.lifecycle import TRANSITIONS, BadTransition, Event, Lifecycle, Phase
from agent.pacing import adopt_state_version, backoff_delay


def walk(*events: Event) -> Lifecycle:
    """A lifecycle after ``events``."""
    lifecycle = Lifecycle()
    for event in events:
        lifecycle.handle(event)
    return lifecycle


def test_normal_life():
    """Register, converge, wait, wake, converge again, stop."""
    lifecycle = walk(Event.START, Event.REGISTERED, Event.ACTED, Event.IDLE, Event.WOKEN)
    assert lifecycle.phase is Phase.CONVERGING
    lifecycle.handle(Event.STOP)
    assert lifecycle.phase is Phase.STOPPING and lifecycle.stopping
    lifecycle.handle(Event.ACTED)
    assert lifecycle.phase is Phase.STOPPING
    assert lifecycle.handle(Event.FINISHED) is Phase.STOPPED


def test_failure_backs_off_then_retries():
    """A failure backs off; a retry converges, or registers again when the node was lost."""
    assert walk(Event.START, Event.FAILED).phase is Phase.BACKING_OFF
    assert walk(Event.START, Event.FAILED, Event.RETRY_REGISTER).phase is Phase.REGISTERING
    converging = walk(Event.START, Event.REGISTERED, Event.FAILED, Event.RETRY)
    assert converging.phase is Phase.CONVERGING
    assert converging.handle(Event.NODE_LOST) is Phase.REGISTERING


def test_waiting_fails_when_the_watch_fails():
    """A failed watch backs off like a failed pass."""
    assert walk(Event.START, Event.REGISTERED, Event.IDLE, Event.FAILED).phase is (
        Phase.BACKING_OFF
    )


@pytest.mark.parametrize(
    "events",
    [
        (Event.REGISTERED,),
        (Event.START, Event.ACTED),
        (Event.START, Event.REGISTERED, Event.WOKEN),
        (Event.START, Event.REGISTERED, Event.IDLE, Event.ACTED),
        (Event.START, Event.STOP, Event.FINISHED, Event.START),
    ],
)
def test_refuses_events_out_of_place(events):
    """An event a phase does not expect raises BadTransition."""
    with pytest.raises(BadTransition):
        walk(*events)


def test_every_running_phase_can_stop():
    """STOP is accepted everywhere except after the loop has stopped moving on its own."""
    for phase in Phase:
        assert (phase, Event.STOP) in TRANSITIONS
    assert walk(Event.STOP).phase is Phase.STOPPED


def test_every_phase_is_reachable_and_can_end():
    """Every phase is the target of some transition and has a way to STOPPED."""
    targets = set(TRANSITIONS.values())
    assert set(Phase) - {Phase.NEW} <= targets
    for phase in Phase:
        assert phase is Phase.STOPPED or (phase, Event.STOP) in TRANSITIONS


def test_listener_hears_changes_only():
    """The listener is told of real phase changes, not of self-loops."""
    heard = []
    lifecycle = Lifecycle(lambda before, event, after: heard.append((before, event, after)))
    lifecycle.handle(Event.START)
    lifecycle.handle(Event.REGISTERED)
    lifecycle.handle(Event.ACTED)
    assert heard == [
        (Phase.NEW, Event.START, Phase.REGISTERING),
        (Phase.REGISTERING, Event.REGISTERED, Phase.CONVERGING),
    ]


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap():
    """Half of each delay is fixed, half is jitter; the ceiling doubles up to the cap."""
    assert backoff_delay(1, 0.0, 0.1, 10.0) == pytest.approx(0.05)
    assert backoff_delay(1, 0.999, 0.1, 10.0) == pytest.approx(0.09995)
    assert backoff_delay(4, 0.5, 0.1, 10.0) == pytest.approx(0.6)
    assert backoff_delay(50, 1.0, 0.1, 10.0) == pytest.approx(10.0)
    assert backoff_delay(50, 0.0, 0.1, 10.0) == pytest.approx(5.0)


def test_adopts_the_state_version_only_when_nothing_else_moved_it():
    """Watch from our own report's version only if no other node's change slipped in."""
    assert adopt_state_version(known=7, reported=8, changed=True) == 8
    assert adopt_state_version(known=7, reported=9, changed=True) == 7
    assert adopt_state_version(known=7, reported=7, changed=False) == 7
    assert adopt_state_version(known=7, reported=8, changed=False) == 7
