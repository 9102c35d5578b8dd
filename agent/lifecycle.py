"""
The convergence loop's lifecycle as an explicit state machine.

:class:`Lifecycle` holds one :class:`Phase` and moves it only along
:data:`TRANSITIONS` (phase x event -> phase); any other event in a phase is a
bug and raises :class:`BadTransition`. The loop (:mod:`agent.loop`) feeds it
events; it does no I/O and knows no time, so a test can walk every edge::

    NEW -start-> REGISTERING -registered-> CONVERGING -acted-> CONVERGING
    CONVERGING -idle-> WAITING -woken-> CONVERGING
    REGISTERING/CONVERGING/WAITING -failed-> BACKING_OFF -retry-> CONVERGING
    BACKING_OFF -retry_register-> REGISTERING, CONVERGING -node_lost-> REGISTERING
    any running phase -stop-> STOPPING -finished-> STOPPED

While STOPPING, the outcome of the work in flight (``acted``, ``idle``,
``failed``, ...) is absorbed: the loop finishes the executor run it started,
then reports ``finished``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping


class Phase(enum.Enum):
    """Where the loop is in its life."""

    NEW = "new"
    """Built, not started."""
    REGISTERING = "registering"
    """Registering the node with the control service."""
    CONVERGING = "converging"
    """Running a pass: fetch, observe, report, calculate, act."""
    WAITING = "waiting"
    """Nothing to do: waiting on the watch (a change, a timeout, a heartbeat)."""
    BACKING_OFF = "backing_off"
    """A pass or a registration failed: waiting before trying again."""
    STOPPING = "stopping"
    """Asked to stop; finishing the change in flight."""
    STOPPED = "stopped"
    """Stopped for good."""


class Event(enum.Enum):
    """What happened to the loop."""

    START = "start"
    REGISTERED = "registered"
    ACTED = "acted"
    """A pass did something (or learnt something new): pass again at once."""
    IDLE = "idle"
    """A pass found nothing to do."""
    WOKEN = "woken"
    """The watch answered (a change) or timed out (re-check, heartbeat)."""
    FAILED = "failed"
    RETRY = "retry"
    RETRY_REGISTER = "retry_register"
    NODE_LOST = "node_lost"
    """The control service does not know this node (404): register again."""
    STOP = "stop"
    FINISHED = "finished"


_P, _E = Phase, Event

_RUNNING = (_P.REGISTERING, _P.CONVERGING, _P.WAITING, _P.BACKING_OFF)
_ABSORBED_WHILE_STOPPING = (
    _E.REGISTERED,
    _E.ACTED,
    _E.IDLE,
    _E.WOKEN,
    _E.FAILED,
    _E.RETRY,
    _E.RETRY_REGISTER,
    _E.NODE_LOST,
    _E.STOP,
)

TRANSITIONS: Mapping[tuple[Phase, Event], Phase] = {
    (_P.NEW, _E.START): _P.REGISTERING,
    (_P.NEW, _E.STOP): _P.STOPPED,
    (_P.REGISTERING, _E.REGISTERED): _P.CONVERGING,
    (_P.REGISTERING, _E.FAILED): _P.BACKING_OFF,
    (_P.CONVERGING, _E.ACTED): _P.CONVERGING,
    (_P.CONVERGING, _E.IDLE): _P.WAITING,
    (_P.CONVERGING, _E.FAILED): _P.BACKING_OFF,
    (_P.CONVERGING, _E.NODE_LOST): _P.REGISTERING,
    (_P.WAITING, _E.WOKEN): _P.CONVERGING,
    (_P.WAITING, _E.FAILED): _P.BACKING_OFF,
    (_P.BACKING_OFF, _E.RETRY): _P.CONVERGING,
    (_P.BACKING_OFF, _E.RETRY_REGISTER): _P.REGISTERING,
    **{(phase, _E.STOP): _P.STOPPING for phase in _RUNNING},
    **{(_P.STOPPING, event): _P.STOPPING for event in _ABSORBED_WHILE_STOPPING},
    (_P.STOPPING, _E.FINISHED): _P.STOPPED,
    (_P.STOPPED, _E.STOP): _P.STOPPED,
}
"""Every allowed move: (phase, event) -> next phase."""


class BadTransition(Exception):
    """An event arrived in a phase that does not accept it (a bug in the loop)."""


Listener = Callable[[Phase, Event, Phase], None]


class Lifecycle:
    """The current :class:`Phase`, moved only along :data:`TRANSITIONS`."""

    def __init__(self, on_change: Listener | None = None) -> None:
        self.phase = Phase.NEW
        self._on_change = on_change

    def handle(self, event: Event) -> Phase:
        """Apply ``event``; returns the new phase or raises :class:`BadTransition`."""
        before = self.phase
        after = TRANSITIONS.get((before, event))
        if after is None:
            raise BadTransition(f"event {event.value!r} is not allowed in phase {before.value!r}")
        self.phase = after
        if self._on_change is not None and after is not before:
            self._on_change(before, event, after)
        return after

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for (STOPPING or STOPPED)."""
        return self.phase in (Phase.STOPPING, Phase.STOPPED)
