"""
The convergence loop: one node agent's observe -> calculate -> act, forever.

Each pass fetches the node's configuration (its datasets plus those of the
volumes attached here), observes the node (:func:`~agent.discovery.discover`,
in a thread), reports the observation when it changed or a heartbeat is due,
calculates the changes (:func:`~agent.policy.calculate_changes`) and runs
them (:class:`~agent.executor.Executor`, in a thread). A pass that did
something is followed by another at once, so its result is reported without
delay; an idle loop waits on the control service's watch, which answers
within milliseconds of a configuration change (a create, move or delete) or
of another node's state change (the old primary reporting a volume free).
The watch's timeout doubles as the periodic re-check and the heartbeat.

Failures back off exponentially with jitter (capped); a 404 from the control
service (it lost the node) makes the loop register again. The lifecycle is
the explicit state machine of :mod:`agent.lifecycle`. The reactor thread
never blocks: every backend and filesystem call goes through a runner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

import structlog
from attrs import field, frozen
from pyrsistent import PMap, pmap
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import deferLater

from agent.changes import Change, Wait, leaves, sleep_after
from agent.discovery import LocalState, datasets_to_ask_about, discover, local_state_to_report
from agent.executor import Executor
from agent.lifecycle import Event, Lifecycle, Phase
from agent.pacing import (
    NO_STATE_WAKE,
    SHORTEST_WATCH,
    Stopwatch,
    adopt_state_version,
    backoff_delay,
    both,
    reusable_configuration,
)
from agent.passlog import decided_fields, observed_fields
from agent.policy import DEFAULT_VOLUME_SIZE, ClusterView, calculate_changes
from control.api.watch import ReactorTime
from control.client.interface import NodeConfiguration, ShoalClient
from control.errors import Conflict, NotFound
from control.model import NodeState
from control.runners import Runner, synchronous_runner


def freeze_labels(labels: Mapping[str, str]) -> PMap:
    """Labels as a frozen map (an attrs converter)."""
    return labels if isinstance(labels, PMap) else pmap(labels)


@frozen
class NodeFacts:
    """What the agent registers: who the node is, where, in which era, with which labels."""

    node_uuid: UUID
    host: str
    era: str | None
    labels: PMap = field(factory=pmap, converter=freeze_labels)


@frozen
class LoopSettings:
    """
    The loop's tunables, in seconds.

    ``heartbeat``: report at least this often (keep it well under the control
    service's node timeout). ``watch_timeout``: the longest wait on the watch.
    ``call_timeout``: give up on a control-service call after this long (the
    watch gets it on top of its own timeout). Backoff after the n-th
    consecutive failure: ``min(backoff_cap, backoff_initial * 2**(n-1))``,
    of which a random half is jitter.
    """

    mount_root: str
    heartbeat: float = 5.0
    watch_timeout: float = 60.0
    call_timeout: float = 30.0
    backoff_initial: float = 0.1
    backoff_cap: float = 10.0
    default_size: int = DEFAULT_VOLUME_SIZE


class NodeLost(Exception):
    """The control service does not know this node: it must register again."""


class ConvergenceLoop:
    """
    Drive one node toward its configuration; see the module docstring.

    ``clock`` is the reactor (or a ``task.Clock``); ``run_blocking`` runs
    discovery off the reactor thread; ``executor`` runs the changes (its own
    runner puts them in a thread too); ``random`` returns floats in [0, 1)
    for the backoff jitter.
    """

    def __init__(
        self,
        client: ShoalClient,
        clock: ReactorTime,
        node: NodeFacts,
        executor: Executor,
        settings: LoopSettings,
        *,
        random: Callable[[], float],
        run_blocking: Runner = synchronous_runner,
        logger: Any = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.node = node
        self.executor = executor
        self.settings = settings
        self.instance_id = executor.backend.compute_instance_id()
        self._random = random
        self._run_blocking = run_blocking
        self._log = logger if logger is not None else structlog.get_logger("shoal.agent")
        self.lifecycle = Lifecycle(self._phase_changed)
        self.failures = 0
        self.passes = 0
        self._need_register = True
        self._also: frozenset[UUID] = frozenset()
        self._generation = 0
        self._fetched: tuple[frozenset[UUID], NodeConfiguration] | None = None
        self._current_generation: int | None = None
        self._state = 0
        self._sleep = 0.0
        self._waiting_on_others = False
        self._previous: tuple[LocalState, Change] | None = None
        self._repeats = 0
        self._last_report: NodeState | None = None
        self._last_report_at = float("-inf")
        self._waiting: Deferred[Any] | None = None
        self._calls: set[Deferred[Any]] = set()
        self._stopped: list[Deferred[None]] = []
        self._done: Deferred[None] | None = None

    # -- lifecycle -----------------------------------------------------------

    @property
    def phase(self) -> Phase:
        """Where the loop is now."""
        return self.lifecycle.phase

    def start(self) -> Deferred[None]:
        """Start looping; the Deferred fires once the loop has stopped."""
        self.lifecycle.handle(Event.START)
        self._done = Deferred.fromCoroutine(self._run())
        return self._done

    def stop(self) -> Deferred[None]:
        """Stop after the change in flight, if any; fires once stopped (or crashed)."""
        if self.phase is Phase.STOPPED or (self._done is not None and self._done.called):
            return succeed(None)
        self.lifecycle.handle(Event.STOP)
        if self.phase is Phase.STOPPED:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._stopped.append(d)
        if self._waiting is not None:
            self._waiting.cancel()
        for call in list(self._calls):
            call.cancel()
        return d

    def _phase_changed(self, before: Phase, event: Event, after: Phase) -> None:
        self._log.debug("agent.phase", before=before.value, on=event.value, after=after.value)

    async def _run(self) -> None:
        steps: Mapping[Phase, Callable[[], Any]] = {
            Phase.REGISTERING: self._register,
            Phase.CONVERGING: self._converge,
            Phase.WAITING: self._wait,
            Phase.BACKING_OFF: self._back_off,
        }
        try:
            while not self.lifecycle.stopping:
                await steps[self.phase]()
        except Exception as e:
            self._log.critical("agent.crashed", error=f"{type(e).__name__}: {e}")
            self._release_stoppers()
            raise
        if self.phase is Phase.STOPPING:
            self.lifecycle.handle(Event.FINISHED)
        self._log.info("agent.stopped", passes=self.passes)
        self._release_stoppers()

    def _release_stoppers(self) -> None:
        waiting, self._stopped = self._stopped, []
        for d in waiting:
            d.callback(None)

    def _failed(self, what: str, error: BaseException) -> None:
        self.failures += 1
        self._previous = None  # the retry after the backoff is no hot loop
        log = self._log.info if self.lifecycle.stopping else self._log.warning
        log("agent.failed", step=what, failures=self.failures,
            error=f"{type(error).__name__}: {error}")
        self.lifecycle.handle(Event.FAILED)

    def _call(self, d: Deferred[Any], extra: float = 0.0) -> Deferred[Any]:
        """A control-service call, given up after its timeout or when the loop stops."""
        d.addTimeout(self.settings.call_timeout + extra, self.clock)  # type: ignore[arg-type]
        self._calls.add(d)

        def forget(result: Any) -> Any:
            self._calls.discard(d)
            return result

        return d.addBoth(forget)

    # -- the steps -----------------------------------------------------------

    async def _register(self) -> None:
        node = self.node
        try:
            await self._call(
                self.client.register_node(
                    node.node_uuid, node.host, node.era, node.labels, self.settings.mount_root
                )
            )
        except Exception as e:
            self._failed("register", e)
            return
        self._need_register = False
        self._last_report = None
        self._log.info("agent.registered", node=str(node.node_uuid), host=node.host, era=node.era)
        self.lifecycle.handle(Event.REGISTERED)

    async def _converge(self) -> None:
        try:
            self._sleep = await self._pass()
        except NodeLost:
            self._log.warning("agent.node_lost", node=str(self.node.node_uuid))
            self._need_register = True
            self.lifecycle.handle(Event.NODE_LOST)
            return
        except Exception as e:
            self._failed("pass", e)
            return
        self.failures = 0
        self.lifecycle.handle(Event.ACTED if self._sleep <= 0 else Event.IDLE)

    async def _wait(self) -> None:
        now = self.clock.seconds()
        heartbeat_due = self._last_report_at + self.settings.heartbeat - now
        timeout = min(self._sleep, self.settings.watch_timeout, heartbeat_due)
        if timeout >= SHORTEST_WATCH:
            state = self._state if self._waiting_on_others else NO_STATE_WAKE
            watch = self.client.watch(self._generation, state, round(timeout, 3))
            self._waiting = self._call(watch, extra=timeout)
            try:
                versions = await self._waiting
            except Exception as e:
                if not self.lifecycle.stopping:
                    self._failed("watch", e)
                return
            finally:
                self._waiting = None
            self._state = max(self._state, versions.state)
            self._current_generation = versions.configuration
        self.lifecycle.handle(Event.WOKEN)

    async def _back_off(self) -> None:
        s = self.settings
        delay = backoff_delay(self.failures, self._random(), s.backoff_initial, s.backoff_cap)
        self._log.info("agent.backing_off", seconds=round(delay, 3), failures=self.failures)
        self._waiting = deferLater(self.clock, delay)  # type: ignore[arg-type]
        try:
            await self._waiting
        except Exception:
            return
        finally:
            self._waiting = None
        self.lifecycle.handle(Event.RETRY_REGISTER if self._need_register else Event.RETRY)

    # -- one pass ------------------------------------------------------------

    async def _pass(self) -> float:
        """Fetch, observe, report, calculate, act; returns how long the loop may wait.

        The report goes out while the changes run: it describes the
        observation, which acting does not change, and the next pass waits
        for both.
        """
        self.passes += 1
        times = Stopwatch(self.clock)
        also = self._also
        configuration: NodeConfiguration = await self._configuration(also)
        times.lap("fetch")
        local: LocalState = await self._run_blocking(
            discover,
            self.executor.backend,
            self.executor.filesystems,
            self.settings.mount_root,
            self.instance_id,
            self.executor.recently_created,
        )
        times.lap("discover")
        self.executor.observed(local.volumes)
        desired = {d.dataset_id: d for d in configuration.datasets}
        now = self.clock.seconds()
        report = local_state_to_report(
            local,
            desired,
            configuration.generation,
            self.node.era,
            self.node.node_uuid,
            now,
            asked=also,
        )
        reporting = Deferred.fromCoroutine(self._report(report, now))
        view = ClusterView.from_leases(self.node.node_uuid, configuration.leases, now)
        changes = calculate_changes(
            desired,
            view,
            local,
            self.instance_id,
            self.settings.mount_root,
            self.settings.default_size,
        )
        times.lap("calculate")
        self._generation = configuration.generation
        self._also = datasets_to_ask_about(local, desired)
        sleep = self._no_progress_pause(local, changes, sleep_after(changes))
        self._waiting_on_others = any(isinstance(leaf, Wait) for leaf in leaves(changes))
        if not self._also <= also:
            sleep = 0.0
        acting = succeed(None) if self.lifecycle.stopping else self.executor.run(changes)
        reported, _ = await both(reporting, acting)
        times.lap("act_and_report")
        self._log_pass(local, changes, reported, configuration.generation, times)
        return sleep

    def _no_progress_pause(self, local: LocalState, changes: Change, sleep: float) -> float:
        """``sleep``, unless this pass would repeat the last one exactly: then back off.

        A pass that acts is followed by another at once; if the action had no
        visible effect (a backend that acknowledges but lags), the same
        observation would make the same decision in a hot loop.
        """
        previous, self._previous = self._previous, (local, changes)
        if sleep > 0 or previous != (local, changes):
            self._repeats = 0
            return sleep
        self._repeats += 1
        s = self.settings
        return backoff_delay(self._repeats, self._random(), s.backoff_initial, s.backoff_cap)

    async def _configuration(self, also: frozenset[UUID]) -> NodeConfiguration:
        """The node's configuration, fetched unless the one in hand is still current.

        The last report's or watch's answer told the generation current then
        (after the previous observation, before the coming one); see
        :func:`~agent.pacing.reusable_configuration`.
        """
        current, self._current_generation = self._current_generation, None
        reused = reusable_configuration(self._fetched, current, also, self.node.node_uuid)
        if reused is not None:
            return reused
        try:
            result: NodeConfiguration = await self._call(
                self.client.node_configuration(self.node.node_uuid, sorted(also))
            )
        except NotFound as e:
            raise NodeLost(str(e)) from e
        self._fetched = (also, result)
        return result

    async def _report(self, report: NodeState, now: float) -> bool:
        """Report if the observation changed or a heartbeat is due; returns whether it did."""
        last = self._last_report
        changed = last is None or not report.same_observation(last)
        if not changed and now - self._last_report_at < self.settings.heartbeat:
            return False
        try:
            answer = await self._call(self.client.report_state(report))
        except NotFound as e:
            raise NodeLost(str(e)) from e
        except Conflict:
            # Refused as stale: the service holds another era for this node (its
            # database was restored, or the node was registered by someone else).
            # Register again after the backoff, then report afresh.
            self._need_register = True
            raise
        self._last_report, self._last_report_at = report, now
        self._state = adopt_state_version(self._state, answer.versions.state, answer.changed)
        self._current_generation = answer.versions.configuration
        return changed

    def _log_pass(
        self, local: LocalState, changes: Change, reported: bool, generation: int, times: Stopwatch
    ) -> None:
        busy = reported or sleep_after(changes) <= 0
        log = self._log.info if busy else self._log.debug
        log("agent.observed", generation=generation, reported=reported, **observed_fields(local))
        log("agent.decided", **decided_fields(changes))
        log("agent.pass.done", **times.fields())
