"""
What the convergence loop remembers between passes: one frozen value, updated by pure functions.

:class:`PassMemory` holds every fact a pass leaves for the next (counters,
the configuration in hand, the last report, the state version to watch
from, the per-dataset troubles); each function here returns a new memory
from the old one and the facts of one step. The loop keeps a single
reference and replaces it; the in-flight Deferreds it also holds are not
memory but handles on work under way.
"""

from __future__ import annotations

from uuid import UUID

from attrs import evolve, frozen

from agent.changes import Change
from agent.conditions import Troubles
from agent.discovery import LocalState
from agent.fencing import Lease
from agent.pacing import adopt_state_version, heartbeat_pace
from agent.policy import ClusterView
from control.client.interface import NodeConfiguration, Reported
from control.model import NodeState, Versions


@frozen
class Calculated:
    """The changes :func:`agent.policy.calculate_changes` returned for a configuration, a view
    of the cluster and an observation."""

    configuration: NodeConfiguration
    view: ClusterView
    local: LocalState
    changes: Change


@frozen
class PassMemory:
    """
    The loop's memory between passes.

    ``passes`` and ``failures`` (consecutive) count; ``need_register`` says
    the next step is a registration. ``also`` are the datasets to ask about
    besides the node's own, ``fetched`` what was asked last and the answer,
    ``generation`` the configuration generation the last pass acted on, and
    ``current_generation`` the one the latest report or watch said is
    current (``None`` once used). ``state`` is the state version to watch
    from, ``sleep`` how long the loop may wait, ``waiting_on_others``
    whether a dataset waits on another node (then the state version wakes
    the loop). ``previous`` and ``repeats`` catch a pass repeating the last
    one exactly. ``last_report``, ``last_report_at`` and ``report_pace`` (the
    fraction of the heartbeat to wait after it, :func:`agent.pacing.heartbeat_pace`)
    pace the reports;
    ``troubles`` are the per-dataset conditions and backoffs. ``lease`` is
    the node lease (:class:`~agent.fencing.Lease`, monotonic);
    ``self_fenced_at`` when the node fenced itself (the loop's clock; ``None``
    while its lease holds); ``fenced`` whether the last configuration said
    the node is fenced, ``rejoined`` whether it registered again since it
    learned that (the service lifts an automatic fence only after that).
    ``last_seen`` is the last pass's observation with its changes' known
    effects (:func:`agent.effects.after_changes`): what the next pass's
    freezes ahead go by (:func:`agent.policy.freezes_ahead`).
    ``calculated`` is what the last pass calculated and from what
    (:func:`calculated_before`).
    """

    passes: int = 0
    failures: int = 0
    need_register: bool = True
    also: frozenset[UUID] = frozenset()
    generation: int = 0
    fetched: tuple[frozenset[UUID], NodeConfiguration] | None = None
    current_generation: int | None = None
    state: int = 0
    sleep: float = 0.0
    waiting_on_others: bool = False
    previous: tuple[LocalState, Change] | None = None
    repeats: int = 0
    last_report: NodeState | None = None
    last_report_at: float = float("-inf")
    report_pace: float = 1.0
    troubles: Troubles = Troubles()
    lease: Lease = Lease()
    self_fenced_at: float | None = None
    fenced: bool = False
    rejoined: bool = False
    last_seen: LocalState | None = None
    calculated: Calculated | None = None

    @property
    def self_fenced(self) -> bool:
        """Whether the node has fenced itself and not renewed its lease since."""
        return self.self_fenced_at is not None


def lease_renewed(memory: PassMemory, sent_at: float) -> PassMemory:
    """After a report or registration sent at ``sent_at`` (monotonic) succeeded."""
    return evolve(memory, lease=memory.lease.renewed(sent_at), self_fenced_at=None)


def lease_told(memory: PassMemory, length: float | None) -> PassMemory:
    """After a configuration gave the node lease ``length`` (seconds; ``None``: not said)."""
    return evolve(memory, lease=memory.lease.with_length(length))


def fenced_self(memory: PassMemory, now: float) -> PassMemory:
    """The node fenced itself at ``now`` (the loop's clock)."""
    return evolve(memory, self_fenced_at=memory.self_fenced_at or now)


def registered(memory: PassMemory) -> PassMemory:
    """After a registration: report afresh."""
    return evolve(memory, need_register=False, last_report=None)


def node_lost(memory: PassMemory) -> PassMemory:
    """The control service does not know the node: register next."""
    return evolve(memory, need_register=True)


def failed(memory: PassMemory) -> PassMemory:
    """After a failed step: one more consecutive failure; the retry is no hot loop."""
    return evolve(memory, failures=memory.failures + 1, previous=None)


def succeeded(memory: PassMemory, sleep: float) -> PassMemory:
    """After a pass that worked: no failures, and how long the loop may wait."""
    return evolve(memory, failures=0, sleep=sleep)


def woken(memory: PassMemory, versions: Versions) -> PassMemory:
    """After the watch answered ``versions``."""
    return evolve(
        memory,
        state=max(memory.state, versions.state),
        current_generation=versions.configuration,
    )


def started_pass(memory: PassMemory) -> tuple[int | None, PassMemory]:
    """A pass begins: counted, and the current generation in hand is used up (returned)."""
    return memory.current_generation, evolve(
        memory, passes=memory.passes + 1, current_generation=None
    )


def fetched(
    memory: PassMemory, also: frozenset[UUID], configuration: NodeConfiguration
) -> PassMemory:
    """After fetching ``configuration`` asking about ``also``."""
    return evolve(memory, fetched=(also, configuration))


def heartbeat_due(memory: PassMemory, heartbeat: float) -> float:
    """When the next heartbeat is due (the loop's clock): the last report's time, plus
    the heartbeat shortened by that report's pace."""
    return memory.last_report_at + heartbeat * memory.report_pace


def report_needed(memory: PassMemory, report: NodeState, now: float, heartbeat: float) -> bool:
    """Whether ``report`` must be sent: the observation changed, or a heartbeat is due."""
    last = memory.last_report
    changed = last is None or not report.same_observation(last)
    return changed or now >= heartbeat_due(memory, heartbeat)


def reported(
    memory: PassMemory, report: NodeState, now: float, answer: Reported, jitter: float = 0.0
) -> PassMemory:
    """After the control service answered ``report``; ``jitter`` in [0, 1) shortens the
    wait for the next heartbeat (:func:`agent.pacing.heartbeat_pace`)."""
    return evolve(
        memory,
        last_report=report,
        last_report_at=now,
        report_pace=heartbeat_pace(jitter),
        state=adopt_state_version(memory.state, answer.versions.state, answer.changed),
        current_generation=answer.versions.configuration,
    )


def repeated(memory: PassMemory, local: LocalState, changes: Change, sleep: float) -> PassMemory:
    """Remember this pass; ``repeats`` counts passes that act exactly as the last one did."""
    previous = memory.previous
    same = sleep <= 0 and previous == (local, changes)
    return evolve(memory, previous=(local, changes), repeats=memory.repeats + 1 if same else 0)


def decided(
    memory: PassMemory,
    generation: int,
    also: frozenset[UUID],
    waiting_on_others: bool,
    troubles: Troubles,
) -> PassMemory:
    """After calculating a pass acting on ``generation``."""
    return evolve(
        memory,
        generation=generation,
        also=also,
        waiting_on_others=waiting_on_others,
        troubles=troubles,
    )


def seen(memory: PassMemory, local: LocalState) -> PassMemory:
    """After a pass observed ``local`` (or learned its changes' effects on it)."""
    return evolve(memory, last_seen=local)


def troubled(memory: PassMemory, troubles: Troubles) -> PassMemory:
    """After a pass's changes ran: the per-dataset troubles they left."""
    return evolve(memory, troubles=troubles)


def calculated_before(
    memory: PassMemory, configuration: NodeConfiguration, view: ClusterView, local: LocalState
) -> Change | None:
    """The changes the last pass calculated, if it did so from an equal configuration, view
    and observation; else ``None``. (A configuration reused without a fetch shares its
    records with the last one: comparing them is by identity, cheap.)

    :func:`~agent.policy.calculate_changes` is pure (it reads no clock), so the
    same inputs make the same changes: an idle node's heartbeat pass (1,000 of
    them every few seconds in the scale bench, issue 16) need not work them
    out again from its hundreds of datasets.
    """
    last = memory.calculated
    if last is None or last.view != view or last.local != local:
        return None
    if last.configuration != configuration:
        return None
    return last.changes


def calculated(
    memory: PassMemory,
    configuration: NodeConfiguration,
    view: ClusterView,
    local: LocalState,
    changes: Change,
) -> PassMemory:
    """After a pass calculated ``changes`` from these inputs."""
    return evolve(memory, calculated=Calculated(configuration, view, local, changes))
