"""
The failover executor: runs :func:`control.failover.plan` twice a heartbeat and applies it.

Each pass reads the configuration and the cluster state, plans, and applies
the decisions one by one through the store's guarded writes
(``fence_node``, ``release_node_lease``, ``fail_over``, ``unfence_node``,
``append_events``), each one transaction with its events; a write whose
facts no longer hold changes nothing, and the next pass plans again. The
whole pass is blocking store work, so it runs through a runner (a thread
pool in the service); the reactor only schedules it. Among several control
replicas only the elected leader runs passes (:mod:`control.leader`): a pass
starts only while the replica leads, and stops applying decisions as soon as
it no longer does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import structlog
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from control import failover_events as fev
from control.errors import NotFound
from control.failover import (
    Decision,
    FenceNode,
    HoldDataset,
    MarkLiveness,
    Memory,
    MoveDataset,
    ReleaseLease,
    plan,
)
from control.liveness import FailoverSettings, Liveness
from control.model import ClusterState, Event
from control.runners import Runner
from control.store.interface import Store

log = structlog.get_logger("shoal.failover")

_LIVENESS_EVENTS = {
    Liveness.LIVE: ("node_live", "heard from again"),
    Liveness.SUSPECT: ("node_suspect", "suspect"),
    Liveness.DEAD: ("node_dead", "dead"),
}


def _liveness_event(decision: MarkLiveness, now: float, state: ClusterState) -> Event:
    node = state.nodes[decision.node_uuid]
    kind, word = _LIVENESS_EVENTS[decision.liveness]
    reason = f"no report for {decision.silent:.1f} s"
    return fev.node_event(kind, node, now, f"{word} ({reason})", fev.FAILOVER_ACTOR, reason)


def mark_liveness(
    store: Store, decisions: Sequence[MarkLiveness], now: float, state: ClusterState
) -> None:
    """Record every liveness change of a pass in one write: when the control service starts
    or a switch fails, hundreds of nodes change at once, and one transaction each
    (an fsync on SQLite) held every other write back for seconds."""
    store.append_events([_liveness_event(d, now, state) for d in decisions])


def apply(store: Store, decision: Decision, now: float, state: ClusterState) -> bool:
    """Apply one decision through ``store``; returns whether it changed anything."""
    actor = fev.FAILOVER_ACTOR
    if isinstance(decision, MarkLiveness):
        mark_liveness(store, [decision], now, state)
        return True
    if isinstance(decision, FenceNode):
        _, changed = store.fence_node(
            decision.node_uuid, decision.fence, silent_since=decision.silent_since
        )
        return changed
    if isinstance(decision, ReleaseLease):
        released = store.release_node_lease(
            decision.dataset_id, decision.node_uuid, now, actor=actor, reason=decision.reason
        )
        return released is not None
    if isinstance(decision, MoveDataset):
        moved = store.fail_over(
            decision.dataset_id,
            decision.from_node,
            decision.to_node,
            now,
            actor=actor,
            reason=decision.reason,
            kind=decision.kind,
        )
        return moved is not None
    if isinstance(decision, HoldDataset):
        event = fev.failover_held(decision.dataset_id, decision.node_uuid, now, decision.reason)
        store.append_events([event])
        return True
    _, changed = store.unfence_node(
        decision.node_uuid, now, actor=actor, reason=decision.reason, only_if=decision.fence
    )
    return changed


def _always() -> bool:
    return True


def run_pass(
    store: Store,
    now: float,
    settings: FailoverSettings,
    started: float,
    memory: Memory,
    leading: Callable[[], bool] = _always,
) -> Memory:
    """One blocking pass: observe, plan, apply; returns the planner's memory for the next.

    ``leading`` is asked before each decision; once it says no (this replica
    lost the leadership) the rest of the pass is dropped.
    """
    configuration = store.configuration(now)
    state = store.cluster_state()
    topologies = {c.name: c.allowed_topologies for c in store.classes()}
    decided = plan(configuration, state, now, settings, started, memory, topologies)
    marks = [d for d in decided.decisions if isinstance(d, MarkLiveness)]
    if marks and leading():
        mark_liveness(store, marks, now, state)
        for mark in marks:
            log.info("failover.decision", decision="MarkLiveness", changed=True, **_fields(mark))
    for decision in decided.decisions:
        if isinstance(decision, MarkLiveness):
            continue
        if not leading():
            log.warning("failover.pass_abandoned", reason="no longer the leader")
            break
        try:
            changed = apply(store, decision, now, state)
        except NotFound:
            changed = False  # the node or dataset went meanwhile; the next pass replans
        log.info(
            "failover.decision",
            decision=type(decision).__name__,
            changed=changed,
            **_fields(decision),
        )
    return decided.memory


def _fields(decision: Decision) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in ("node_uuid", "dataset_id", "from_node", "to_node", "reason", "kind"):
        value = getattr(decision, name, None)
        if value is not None:
            fields[name] = str(value)
    if isinstance(decision, MarkLiveness):
        fields["liveness"] = decision.liveness.value
    return fields


PASSES_PER_HEARTBEAT = 2
"""How many failover passes run per heartbeat: a dead node is noticed within half a heartbeat."""


class FailoverService:
    """
    Runs failover passes twice per ``settings.heartbeat`` on ``clock``.

    ``runner`` runs each blocking pass (a thread pool in the service,
    :func:`~control.runners.synchronous_runner` in tests); ``started`` is when
    the control service started (default: the clock's time at construction),
    from which every node gets a fresh grace. ``leading`` says whether this
    replica may act now (default: always, the single process); a replica that
    becomes the leader after following starts with a fresh memory and gives
    every node a fresh grace from then.
    """

    def __init__(
        self,
        store: Store,
        runner: Runner,
        clock: Any,
        settings: FailoverSettings,
        started: float | None = None,
        leading: Callable[[], bool] = _always,
    ) -> None:
        self._store = store
        self._leading = leading
        self._followed = False
        self._run = runner
        self._clock = clock
        self.settings = settings
        self.started = clock.seconds() if started is None else started
        self.memory = Memory()
        self._loop = LoopingCall(self.run_once)
        self._loop.clock = clock

    def start(self) -> None:
        """Start the periodic passes (the first one an interval from now)."""
        if not self._loop.running:
            self._loop.start(self.settings.heartbeat / PASSES_PER_HEARTBEAT, now=False)

    def stop(self) -> None:
        """Stop the periodic passes."""
        if self._loop.running:
            self._loop.stop()

    def run_once(self) -> Deferred[None]:
        """Run one pass if this replica leads; a failure is logged and the next pass tries again."""
        now = self._clock.seconds()
        if not self._leading():
            self._followed = True
            return succeed(None)
        if self._followed:
            self._followed = False
            self.memory = Memory()
            self.started = now
            log.info("failover.leading", grace_from=now)
        d = self._run(
            run_pass, self._store, now, self.settings, self.started, self.memory, self._leading
        )
        d.addCallbacks(self._remember, self._failed)
        return d

    def _remember(self, memory: Memory) -> None:
        self.memory = memory

    def _failed(self, failure: Failure) -> None:
        log.error("failover.pass_failed", error=failure.getErrorMessage())
