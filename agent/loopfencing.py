"""
The convergence loop's fencing (``docs/failover.md``): the node lease, self-fencing, rejoining.

Mixed into :class:`agent.loop.ConvergenceLoop`. The lease is measured on the
loop's injected monotonic clock from when a report or registration that
succeeded was *sent*; a timer on the reactor fires when ``node_lease`` has
passed since, and the node fences itself (:meth:`LoopFencing.fence_self`).
The decisions themselves are pure (:mod:`agent.fencing`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import evolve
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from agent import memory
from agent.executor import Executor
from agent.fencing import FenceView, self_fence_changes
from agent.lifecycle import Lifecycle
from agent.memory import PassMemory
from control.client.interface import NodeConfiguration, ShoalClient
from control.model import Condition, ConditionKind
from control.reactor import ReactorTime
from control.runners import Runner

SELF_FENCE_RETRY = 1.0
"""Seconds before a self-fence that failed (a mount it could not shut down) is tried again."""


class LoopFencing:
    """The node lease and self-fencing of a convergence loop (a mixin)."""

    # What the mixin uses of ConvergenceLoop, which defines them all.
    client: ShoalClient
    clock: ReactorTime
    node: Any
    executor: Executor
    settings: Any
    memory: PassMemory
    lifecycle: Lifecycle
    _log: Any
    _monotonic: Callable[[], float]
    _run_blocking: Runner
    _lease_timer: Any

    def _call(self, d: Deferred[Any], extra: float = 0.0) -> Deferred[Any]:
        raise NotImplementedError

    @property
    def heartbeat(self) -> float:
        """Report at least this often: the shorter of the setting and the service's."""
        fetched = self.memory.fetched
        told = fetched[1].heartbeat if fetched is not None else None
        return min(self.settings.heartbeat, told) if told else self.settings.heartbeat

    def _fence_view(self, configuration: NodeConfiguration) -> FenceView:
        return FenceView(
            fenced=configuration.fenced,
            fenced_nodes=frozenset(str(node) for node in configuration.fenced_nodes),
            self_fenced=self.memory.self_fenced,
        )

    def _node_conditions(self) -> tuple[Condition, ...]:
        """The node's own conditions: that it fenced itself, until its lease is renewed."""
        since = self.memory.self_fenced_at
        if since is None:
            return ()
        return (
            Condition(
                dataset_id=None,
                kind=ConditionKind.WAITING,
                reason="self_fenced",
                message="this node fenced itself: no successful report or registration within "
                "its node lease; it shut down and unmounted its datasets and mounts nothing "
                "until a report succeeds",
                since=since,
            ),
        )

    def _learned(self, configuration: NodeConfiguration) -> None:
        """Take the fencing facts of a fetched configuration: the lease, and being fenced."""
        if configuration.fenced != self.memory.fenced:
            log = self._log.warning if configuration.fenced else self._log.info
            log(
                "agent.fenced" if configuration.fenced else "agent.unfenced",
                node=str(self.node.node_uuid),
                reason="the control service fenced this node: letting go of every dataset "
                "primary elsewhere, attaching nothing"
                if configuration.fenced
                else "the control service lifted this node's fence",
            )
            self.memory = evolve(self.memory, fenced=configuration.fenced, rejoined=False)
        if self.settings.self_fence and configuration.node_lease != self.memory.lease.length:
            self.memory = memory.lease_told(self.memory, configuration.node_lease)
            self._arm_lease()

    async def _send_registration(self) -> float:
        """Register this node with the control service; returns when it was sent (on the
        monotonic clock, from which a successful one renews the node lease)."""
        node = self.node
        sent_at = self._monotonic()
        await self._call(
            self.client.register_node(
                node.node_uuid, node.host, node.era, node.labels, self.settings.mount_root
            )
        )
        return sent_at

    async def _rejoin(self) -> None:
        """Register again once fenced: the service lifts an automatic fence only after a
        registration and then a report showing nothing held that is now primary elsewhere."""
        node = self.node
        try:
            sent_at = await self._send_registration()
        except Exception as e:  # the next pass tries again
            self._log.warning("agent.rejoin.failed", error=f"{type(e).__name__}: {e}")
            return
        self.memory = evolve(self.memory, rejoined=True)
        self._renewed(sent_at)
        self._log.info("agent.rejoined", node=str(node.node_uuid), reason="this node is fenced")

    def _renewed(self, sent_at: float) -> None:
        """A report or registration sent at ``sent_at`` succeeded: the lease runs from there."""
        if self.memory.self_fenced:
            self._log.warning(
                "agent.self_fence.lifted",
                node=str(self.node.node_uuid),
                reason="a report or registration succeeded again",
            )
        self.memory = memory.lease_renewed(self.memory, sent_at)
        self._arm_lease()

    def _disarm_lease(self) -> None:
        if self._lease_timer is not None and self._lease_timer.active():
            self._lease_timer.cancel()
        self._lease_timer = None

    def _arm_lease(self) -> None:
        """Set the timer for the lease's end (none without a lease, or once self-fenced)."""
        self._disarm_lease()
        end = self.memory.lease.expires_at()
        if not self.settings.self_fence or end is None or self.memory.self_fenced:
            return
        if self.lifecycle.stopping:
            return
        delay = max(0.0, end - self._monotonic())
        self._lease_timer = self.clock.callLater(delay, self._lease_check)

    def _lease_check(self) -> None:
        self._lease_timer = None
        if self.memory.lease.expired(self._monotonic()):
            self.fence_self()
        else:  # woken early (the reactor's clock runs faster than the monotonic one)
            self._arm_lease()

    def fence_self(self) -> Deferred[Any]:
        """Fence this node now: mark it self-fenced, then shut down and unmount its mounts.

        Called by the lease timer; fires once the mounts are shut down and
        unmounted (a failure is logged and retried after
        :data:`SELF_FENCE_RETRY` while the node stays self-fenced).
        """
        lease = self.memory.lease
        silent = self._monotonic() - (lease.renewed_at or 0.0)
        reason = (
            f"no successful report or registration for {silent:.1f} s "
            f"(node lease {lease.length} s)"
        )
        self.memory = memory.fenced_self(self.memory, self.clock.seconds())
        self._log.warning(
            "agent.self_fence",
            node=str(self.node.node_uuid),
            reason=reason,
            node_lease=lease.length,
            silent_for=round(silent, 3),
        )
        return self._shut_down_mounts(reason)

    def _shut_down_mounts(self, reason: str) -> Deferred[Any]:
        filesystems = self.executor.filesystems
        root = self.settings.mount_root
        d: Deferred[Any] = self._run_blocking(filesystems.mounts)
        d.addCallback(lambda mounts: self.executor.run(self_fence_changes(mounts, root, reason)))

        def done(_: object) -> None:
            self._log.warning("agent.self_fence.done", node=str(self.node.node_uuid))

        def failed(failure: Failure) -> None:
            self._log.error(
                "agent.self_fence.failed",
                node=str(self.node.node_uuid),
                error=f"{type(failure.value).__name__}: {failure.value}",
                retry_in=SELF_FENCE_RETRY,
            )
            if not self.lifecycle.stopping:
                self.clock.callLater(SELF_FENCE_RETRY, self._retry_self_fence, reason)

        return d.addCallbacks(done, failed)

    def _retry_self_fence(self, reason: str) -> None:
        if self.memory.self_fenced and not self.lifecycle.stopping:
            self._shut_down_mounts(reason)
