"""
The convergence loop: one node agent's observe -> calculate -> act, forever.

Each pass fetches the node's configuration (its datasets plus those of the
volumes attached here), observes the node (:func:`~agent.discovery.discover`,
in a thread; at the same time as the fetch when the generation is known, see
:func:`~agent.pacing.observed_after`), reports the observation when it
changed or a heartbeat is due, calculates the changes
(:func:`~agent.policy.calculate_changes`) and runs them
(:class:`~agent.executor.Executor`, in a thread). A pass that did something
is followed by another at once, so its result is reported without delay; a
snapshot it made or a filesystem it mounted is reported as soon as the
change is done (:func:`~agent.effects.after_changes`): the snapshot is
ready, the dataset mounted, one observation sooner. A pass whose every action
is a snapshot reports only then (:func:`~agent.effects.reported_after`), not
also while the filesystem is frozen. When that is all the
pass did, the pass that would only confirm it waits on the watch for
:data:`~agent.effects.CONFIRM_AFTER` first, so that a request arriving
meanwhile is acted on at once. An idle
loop waits on the control service's watch, which answers within milliseconds
of a configuration change (a create, move or delete) or of another node's
state change (the old primary reporting a volume free).
The watch's timeout doubles as the periodic re-check and the heartbeat.
The watch names the node and the datasets its next pass asks about besides its own, so
the service wakes it only for the configuration changes that concern it (and
for those it cannot tell: everyone's).

Failures of the loop's own calls back off exponentially with jitter
(capped); a failed change only backs off its dataset
(:mod:`agent.conditions`), reported as that dataset's condition. A 404 from
the control service (it lost the node) makes the loop register again. The lifecycle is
the explicit state machine of :mod:`agent.lifecycle`; what a pass leaves for
the next is one frozen :class:`~agent.memory.PassMemory`, replaced through
the pure updates of :mod:`agent.memory`. The reactor thread
never blocks: every backend and filesystem call goes through a runner.

Fencing (``docs/failover.md``): every pass hands calculate the configuration's
``fenced`` and ``fenced_nodes`` (:class:`~agent.fencing.FenceView`). The loop
also keeps the node lease on an injected monotonic clock: it is renewed when a
report or registration sent at time ``t`` succeeds (from ``t``), and a timer
fires when ``node_lease`` has passed since; then the node fences itself
(:meth:`ConvergenceLoop.fence_self`: every filesystem it mounts is shut down
and unmounted, lazily when busy) and mounts nothing until a report or
registration succeeds again. It reports at least every ``heartbeat`` (the
shorter of its own setting and the service's), each wait shortened at random by up
to 10% so that agents answered together do not go on beating in step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

import structlog
from attrs import evolve, field, frozen
from pyrsistent import PMap, pmap
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from agent import memory
from agent.changes import Change, Wait, leaves, sleep_after
from agent.conditions import BackoffSettings, Troubles, held_back, noticing_waits, settled
from agent.discovery import (
    LastReported,
    LocalState,
    datasets_to_ask_about,
    local_state_to_report,
    reported_snapshots,
)
from agent.effects import CONFIRM_AFTER, after_changes, all_known, reported_after
from agent.executor import ChangeFailed, Executor
from agent.health import observed_health, with_health
from agent.kernlog import KernelLog
from agent.lastcall import LastCall
from agent.lifecycle import Event, Lifecycle, Phase
from agent.loopfencing import LoopFencing
from agent.memory import PassMemory
from agent.metrics import AgentMetrics
from agent.observe import Classified, Together, discover
from agent.pacing import (
    NO_STATE_WAKE,
    SHORTEST_WATCH,
    Stopwatch,
    backoff_delay,
    both,
    observed_after,
    reusable_configuration,
)
from agent.passlog import decided_fields, observed_fields
from agent.policy import (
    DEFAULT_VOLUME_SIZE,
    ClusterView,
    calculate_changes,
    freezes_ahead,
    keeps_freezes_ahead,
    may_freeze_ahead,
)
from control.client.interface import NodeConfiguration, ShoalClient
from control.errors import Conflict, NotFound
from control.model import Condition, NodeState, Versions
from control.reactor import ReactorTime
from control.runners import Runner


def desired_records(configuration: NodeConfiguration) -> dict[UUID, Any]:
    """The configuration's dataset records by id."""
    return {d.dataset_id: d for d in configuration.datasets}


def freeze_labels(labels: Mapping[str, str]) -> PMap:
    """Labels as a frozen map (an attrs converter)."""
    return labels if isinstance(labels, PMap) else pmap(labels)


WATCH_DATASETS = 400
"""The most dataset ids a watch may name (the service's limit); with more, the watch
wakes for every configuration change."""


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
    of which a random half is jitter. A failing dataset backs off on its own
    the same way (``dataset_backoff_*``), leaving the node's other datasets
    and the loop itself at full speed. ``self_fence``: fence the node itself
    once the service's ``node_lease`` passes without a successful report or
    registration (off: never; the service's other fences still hold).
    """

    mount_root: str
    heartbeat: float = 5.0
    watch_timeout: float = 60.0
    call_timeout: float = 30.0
    backoff_initial: float = 0.1
    backoff_cap: float = 10.0
    dataset_backoff_initial: float = 0.5
    dataset_backoff_cap: float = 30.0
    default_size: int = DEFAULT_VOLUME_SIZE
    self_fence: bool = True


class NodeLost(Exception):
    """The control service does not know this node: it must register again."""


class ConvergenceLoop(LoopFencing):
    """
    Drive one node toward its configuration; see the module docstring.

    ``clock`` is the reactor (or a ``task.Clock``); ``run_blocking`` runs
    discovery off the reactor thread; ``executor`` runs the changes (its own
    runner puts them in a thread too); ``random`` returns floats in [0, 1)
    for the backoff jitter; ``kernel_log`` (if given) tells discovery which
    devices the kernel logged errors for; ``monotonic`` is the clock the node
    lease is measured on (default: ``clock.seconds``; the service passes
    ``time.monotonic``); ``together`` how discovery makes its independent
    observations (default: one by one; the service passes
    :func:`~agent.observe.in_threads`); ``metrics`` (default: new ones, on the
    monotonic clock) records each pass, what it discovered and each accepted report;
    ``heartbeat_jitter`` returns floats in [0, 1) that shorten each wait for the next
    heartbeat by up to 10% (:func:`~agent.pacing.heartbeat_pace`; default: none, every
    wait is the whole heartbeat; the service passes a random source).
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
        run_blocking: Runner,
        logger: Any = None,
        kernel_log: KernelLog | None = None,
        monotonic: Callable[[], float] | None = None,
        metrics: AgentMetrics | None = None,
        together: Together | None = None,
        heartbeat_jitter: Callable[[], float] | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.node = node
        self.executor = executor
        self.settings = settings
        self.instance_id = executor.backend.compute_instance_id()
        self._random = random
        self._heartbeat_jitter = heartbeat_jitter or (lambda: 0.0)
        self._run_blocking = run_blocking
        self._kernel_log = kernel_log
        self._together = together
        self._classified = Classified()
        self._desired = LastCall(desired_records)
        self._asking = LastCall(datasets_to_ask_about)
        # The observation and records of the last report found healthy (no conditions: no
        # ``since`` to keep), while they are the very same objects (see agent.lastcall).
        self._healthy: tuple[LocalState, Mapping[UUID, Any]] | None = None
        self._reported = LastReported()
        self._log = logger if logger is not None else structlog.get_logger("shoal.agent")
        self.lifecycle = Lifecycle(self._phase_changed)
        self.memory = PassMemory()
        self._backoff = BackoffSettings(
            settings.dataset_backoff_initial, settings.dataset_backoff_cap
        )
        self._waiting: Deferred[Any] | None = None
        self._calls: set[Deferred[Any]] = set()
        self._stopped: list[Deferred[None]] = []
        self._done: Deferred[None] | None = None
        self._monotonic = monotonic if monotonic is not None else clock.seconds
        self.metrics = AgentMetrics(self._monotonic) if metrics is None else metrics
        self._lease_timer: Any = None
        self._self_fencing: Deferred[Any] | None = None

    # -- lifecycle -----------------------------------------------------------

    @property
    def passes(self) -> int:
        """How many passes the loop has made."""
        return self.memory.passes

    @property
    def failures(self) -> int:
        """How many steps in a row have failed."""
        return self.memory.failures

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
        self._disarm_lease()
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
        self._disarm_lease()
        self._log.info("agent.stopped", passes=self.passes)
        self._release_stoppers()

    def _release_stoppers(self) -> None:
        waiting, self._stopped = self._stopped, []
        for d in waiting:
            d.callback(None)

    def _failed(self, what: str, error: BaseException) -> None:
        self.memory = memory.failed(self.memory)
        log = self._log.info if self.lifecycle.stopping else self._log.warning
        log(
            "agent.failed",
            step=what,
            failures=self.failures,
            error=f"{type(error).__name__}: {error}",
            exc_info=error,
        )
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
            sent_at = await self._send_registration()
        except Exception as e:
            self._failed("register", e)
            return
        self.memory = memory.registered(self.memory)
        self.metrics.reported()
        self._renewed(sent_at)
        self._log.info("agent.registered", node=str(node.node_uuid), host=node.host, era=node.era)
        self.lifecycle.handle(Event.REGISTERED)

    async def _converge(self) -> None:
        try:
            sleep, _ = await self._pass()
        except NodeLost:
            self._log.warning("agent.node_lost", node=str(self.node.node_uuid))
            self.memory = memory.node_lost(self.memory)
            self.lifecycle.handle(Event.NODE_LOST)
            return
        except Exception as e:
            self._failed("pass", e)
            return
        self.memory = memory.succeeded(self.memory, sleep)
        self.lifecycle.handle(Event.ACTED if sleep <= 0 else Event.IDLE)

    async def _wait(self) -> None:
        now = self.clock.seconds()
        m = self.memory
        heartbeat_due = memory.heartbeat_due(m, self.heartbeat) - now
        timeout = min(m.sleep, self.settings.watch_timeout, heartbeat_due)
        if timeout >= SHORTEST_WATCH:
            state = m.state if m.waiting_on_others else NO_STATE_WAKE
            # The datasets the next pass asks about (not those the last fetch asked about: a
            # volume detached since concerns the node no more; woken for it, it would observe
            # the node for nothing, say while another node snapshots that dataset).
            also = m.also
            node = self.node.node_uuid if len(also) <= WATCH_DATASETS else None
            watch = self.client.watch(
                m.generation, state, round(timeout, 3), node, also if node is not None else ()
            )
            self._waiting = self._call(watch, extra=timeout)
            try:
                versions = await self._waiting
            except Exception as e:
                if not self.lifecycle.stopping:
                    self._failed("watch", e)
                return
            finally:
                self._waiting = None
            self.memory = memory.woken(self.memory, versions)
        self.lifecycle.handle(Event.WOKEN)

    async def _back_off(self) -> None:
        s = self.settings
        delay = backoff_delay(self.failures, self._random(), s.backoff_initial, s.backoff_cap)
        delay = min(delay, self.heartbeat)  # heard from within a heartbeat once the service is back
        self._log.info("agent.backing_off", seconds=round(delay, 3), failures=self.failures)
        self._waiting = deferLater(self.clock, delay)  # type: ignore[arg-type]
        try:
            await self._waiting
        except Exception:
            return
        finally:
            self._waiting = None
        self.lifecycle.handle(
            Event.RETRY_REGISTER if self.memory.need_register else Event.RETRY
        )

    # -- one pass ------------------------------------------------------------

    def one_pass(self, versions: Versions | None = None) -> Deferred[Change]:
        """Run one pass now, outside the lifecycle; fires with the changes it ran.

        For simulations that step several agents in a chosen order (see
        :mod:`agent.testing`): ``versions``, if given, stand for the watch's
        answer before the pass. The loop must not be started.
        """
        if versions is not None:
            self.memory = memory.woken(self.memory, versions)

        async def run() -> Change:
            sleep, changes = await self._pass()
            self.memory = memory.succeeded(self.memory, sleep)
            return changes

        return Deferred.fromCoroutine(run())

    async def _pass(self) -> tuple[float, Change]:
        """One pass (:meth:`_pass_once`); a freeze started ahead for it is always released."""
        try:
            return await self._pass_once()
        finally:
            await self._release_ahead()

    async def _pass_once(self) -> tuple[float, Change]:
        """Fetch, observe, report, calculate, act; returns how long the loop may wait, and
        the changes it ran.

        The report goes out while the changes run: it describes the
        observation, which acting does not change, and the next pass waits
        for both.
        """
        current, self.memory = memory.started_pass(self.memory)
        times = Stopwatch(self.clock)
        also = self.memory.also
        configuration, local = await self._fetch_and_observe(also, current, times)
        self.executor.observed(local.volumes)
        self.memory = memory.seen(self.memory, local)
        desired = self._desired(configuration)
        now = self.clock.seconds()
        view = evolve(
            ClusterView.from_leases(self.node.node_uuid, configuration.leases, now),
            fence=self._fence_view(configuration),
        )
        changes = memory.calculated_before(self.memory, configuration, view, local)
        if changes is None:
            changes = calculate_changes(
                desired,
                view,
                local,
                self.instance_id,
                self.settings.mount_root,
                self.settings.default_size,
                snapshots=configuration.snapshots,
            )
            self.memory = memory.calculated(self.memory, configuration, view, local, changes)
        held = self.memory.troubles.held(now)
        to_run = held_back(changes, held)
        troubles = noticing_waits(self.memory.troubles, to_run, now)
        report = self._report_of(local, configuration, troubles, also, now)
        later = reported_after(to_run) and not self.lifecycle.stopping
        reporting = succeed(False) if later else Deferred.fromCoroutine(self._report(report, now))
        times.lap("calculate")
        asking = self._asking(local, desired)
        waiting_on_others = any(isinstance(leaf, Wait) for leaf in leaves(to_run))
        self.memory = memory.decided(
            self.memory, configuration.generation, asking, waiting_on_others, troubles
        )
        sleep = self._no_progress_pause(local, to_run, sleep_after(to_run))
        if not asking <= also:
            sleep = 0.0
        if self.lifecycle.stopping or not keeps_freezes_ahead(to_run):
            await self._release_ahead()  # an unmount (any other action) never meets one
        acting = succeed(()) if self.lifecycle.stopping else self._act(to_run)
        reported, failures = await both(reporting, acting)
        await self._release_ahead()  # before anything else acts on the filesystems
        times.lap("act_and_report")
        effects = self.executor.effects()
        if self.memory.self_fenced:  # what this pass may have mounted as the lease ran out
            await self._shut_down_mounts("the node lease ran out while a pass was acting")
        if configuration.fenced and not self.memory.rejoined:
            await self._rejoin()
        update = None
        if effects and not (
            self.lifecycle.stopping or self.memory.self_fenced or configuration.fenced
        ):
            known = after_changes(local, effects)
            self.memory = memory.seen(self.memory, known)  # the next freezes ahead go by it
            now = self.clock.seconds()
            made = self._report_of(known, configuration, troubles, also, now)
            update = None if made.same_observation(report) else made
            if (
                sleep <= 0
                and asking <= also | desired.keys()  # the watch wakes the node for each
                and not failures
                and all_known(local, to_run, effects)
            ):
                sleep = CONFIRM_AFTER  # all reported already: only confirmed, unless woken sooner
        if update is not None or later:
            reported = await self._report(update or report, self.clock.seconds()) or reported
        after = settled(
            troubles, held, failures, self.clock.seconds(), self._random(), self._backoff
        )
        self.memory = memory.troubled(self.memory, after)
        retry = after.next_retry(self.clock.seconds())
        if retry is not None:
            sleep = min(sleep, retry)
        self._log_pass(local, to_run, reported, configuration.generation, times)
        self.metrics.passed(times.total, local)
        self._log_failures(failures)
        return sleep, to_run

    async def _fetch_and_observe(
        self, also: frozenset[UUID], current: int | None, times: Stopwatch
    ) -> tuple[NodeConfiguration, LocalState]:
        """The configuration and a fresh observation, both at once when that is sound and
        no snapshot could be frozen ahead.

        When the generation current at the start of the pass is known (the
        watch or the last report said it), the observation starts with the
        fetch: it is made after that generation was written, as if it had
        followed the fetch. If the fetch brings a newer generation, or the
        current one is unknown, the node is observed (again) after the fetch
        (:func:`~agent.pacing.observed_after`). While the last observation
        saw a filesystem mounted here (a snapshot the fetch brings may freeze
        it ahead, :func:`~agent.policy.may_freeze_ahead`), the node is observed
        only once the fetch answered and its freezes started: an observation
        alongside slows the fetch (on a loaded 2-core machine 8 -> 20-30 ms,
        for 2-3 ms gained overall), and with it the freeze, the longest step
        of a snapshot.
        """
        fetching = Deferred.fromCoroutine(self._configuration(also, current))
        fetching.addCallback(self._freeze_ahead)
        together = current is not None and not may_freeze_ahead(self.memory.last_seen)
        early = self._observe() if together else None
        configuration: NodeConfiguration
        configuration, local = await both(fetching, early if early is not None else succeed(None))
        times.lap("fetch" if early is None else "fetch_and_discover")
        if local is None or not observed_after(current, configuration.generation):
            local = await self._observe()
            times.lap("discover")
        return configuration, local

    def _freeze_ahead(self, configuration: NodeConfiguration) -> NodeConfiguration:
        """Start the freezes of the snapshots ``configuration`` asks for, where the last
        observation saw their datasets mounted and this node is still in charge of them
        (:func:`~agent.policy.freezes_ahead`); none while the node is fenced or stopping."""
        m = self.memory
        if not (self.lifecycle.stopping or m.self_fenced or configuration.fenced):
            desired = self._desired(configuration)
            self.executor.freeze_ahead(
                freezes_ahead(desired, configuration.snapshots, self.node.node_uuid, m.last_seen)
            )
        return configuration

    async def _release_ahead(self) -> None:
        """Thaw the freezes started ahead and not used by the pass's changes."""
        if self.executor.has_freezes_ahead():
            unused = await self._run_blocking(self.executor.release_ahead)
            if unused:
                self._log.info("agent.thawed_unused", paths=unused)

    def _observe(self) -> Deferred[LocalState]:
        """Discover the node's state, off the reactor thread."""
        return self._run_blocking(
            discover,
            self.executor.backend,
            self.executor.filesystems,
            self.settings.mount_root,
            self.instance_id,
            self.executor.recently_created,
            self._kernel_log,
            self._together,
            self._classified,
        )

    def _report_of(
        self,
        local: LocalState,
        configuration: NodeConfiguration,
        troubles: Troubles,
        also: frozenset[UUID],
        now: float,
    ) -> NodeState:
        """What to report of the observation ``local`` (pure but for the node's conditions)."""
        desired = self._desired(configuration)
        report = local_state_to_report(
            local,
            desired,
            configuration.generation,
            self.node.era,
            self.node.node_uuid,
            now,
            conditions=(*troubles.conditions(), *self._node_conditions()),
            asked=also,
            datasets=self._reported.of(local, desired, self.node.node_uuid),
        )
        healthy = self._healthy
        if healthy is not None and healthy[0] is local and healthy[1] is desired:
            health: tuple[Condition, ...] = ()  # healthy last time, of the very same objects
        else:
            health = observed_health(
                local, desired, self.node.node_uuid, self.settings.default_size, now
            )
            self._healthy = None if health else (local, desired)
        report = with_health(report, local.capacity, health, self.memory.last_report)
        return evolve(
            report,
            snapshots=reported_snapshots(local, configuration.snapshots),
            capacities=local.capacities,
        )

    def _act(self, changes: Change) -> Deferred[tuple[tuple[Change, BaseException], ...]]:
        """Run ``changes``; fires with the failed changes and their errors (maybe none)."""

        def failed(failure: Failure) -> tuple[tuple[Change, BaseException], ...]:
            failure.trap(ChangeFailed)
            error = failure.value
            assert isinstance(error, ChangeFailed)
            return error.failures

        return self.executor.run(changes).addCallbacks(lambda _: (), failed)

    def _log_failures(self, failures: tuple[tuple[Change, BaseException], ...]) -> None:
        for change, error in failures:
            failing = self.memory.troubles.failing.get(getattr(change, "dataset_id", None))
            if failing is None:
                continue
            condition = failing.condition
            self._log.warning(
                "agent.dataset.failing",
                dataset=str(condition.dataset_id),
                step=condition.step,
                reason=condition.reason,
                message=condition.message,
                attempts=condition.attempts,
                permanent=condition.permanent,
                retry_in=round(failing.retry_at - self.clock.seconds(), 3),
                exc_info=error,
            )

    def _no_progress_pause(self, local: LocalState, changes: Change, sleep: float) -> float:
        """``sleep``, unless this pass would repeat the last one exactly: then back off.

        A pass that acts is followed by another at once; if the action had no
        visible effect (a backend that acknowledges but lags), the same
        observation would make the same decision in a hot loop.
        """
        self.memory = memory.repeated(self.memory, local, changes, sleep)
        repeats = self.memory.repeats
        if repeats == 0:
            return sleep
        s = self.settings
        return backoff_delay(repeats, self._random(), s.backoff_initial, s.backoff_cap)

    async def _configuration(
        self, also: frozenset[UUID], current: int | None
    ) -> NodeConfiguration:
        """The node's configuration, fetched unless the one in hand is still current.

        The last report's or watch's answer told the generation current then
        (after the previous observation, before the coming one); see
        :func:`~agent.pacing.reusable_configuration`. Fences and unfences are
        state writes (they leave the generation alone), so the configuration is
        fetched afresh while this node is fenced (to learn its unfence) and while
        it waits on another node (to learn that node's fence).
        """
        m = self.memory
        if not (m.fenced or m.waiting_on_others):
            reused = reusable_configuration(m.fetched, current, also, self.node.node_uuid)
            if reused is not None:
                return reused
        try:
            result: NodeConfiguration = await self._call(
                self.client.node_configuration(self.node.node_uuid, sorted(also))
            )
        except NotFound as e:
            raise NodeLost(str(e)) from e
        self.memory = memory.fetched(self.memory, also, result)
        self._learned(result)
        return result

    async def _report(self, report: NodeState, now: float) -> bool:
        """Report if the observation changed or a heartbeat is due; returns whether it did."""
        last = self.memory.last_report
        changed = last is None or not report.same_observation(last)
        if not memory.report_needed(self.memory, report, now, self.heartbeat):
            return False
        sent_at = self._monotonic()
        try:
            answer = await self._call(self.client.report_state(report))
        except NotFound as e:
            raise NodeLost(str(e)) from e
        except Conflict:
            # Refused as stale: the service holds another era for this node (its
            # database was restored, or the node was registered by someone else).
            # Register again after the backoff, then report afresh.
            self.memory = memory.node_lost(self.memory)
            raise
        self.memory = memory.reported(
            self.memory, report, now, answer, self._heartbeat_jitter()
        )
        self.metrics.reported()
        self._renewed(sent_at)
        return changed

    def _logs_at(self, level: int) -> bool:
        """Whether the logger logs at ``level`` (yes when it cannot tell)."""
        enabled = getattr(self._log, "is_enabled_for", None)
        try:
            return True if enabled is None else bool(enabled(level))
        except Exception:  # a logger whose proxy cannot say: log, as before
            return True

    def _log_pass(
        self, local: LocalState, changes: Change, reported: bool, generation: int, times: Stopwatch
    ) -> None:
        busy = reported or sleep_after(changes) <= 0
        if not self._logs_at(logging.INFO if busy else logging.DEBUG):
            return  # an idle pass's fields are not even built while debug logging is off
        log = self._log.info if busy else self._log.debug
        log("agent.observed", generation=generation, reported=reported, **observed_fields(local))
        log("agent.decided", **decided_fields(changes))
        log("agent.pass.done", **times.fields())
