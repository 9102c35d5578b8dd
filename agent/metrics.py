"""
An agent's Prometheus metrics (the list and their meaning: docs/operations.md).

:class:`AgentMetrics` keeps them in the agent's own registry: pass duration,
changes executed by kind and result, backend and filesystem operation latency
(through :class:`Timed`, a proxy that times every call of an interface's
methods), datasets by local state (:func:`local_counts`, pure) and the seconds
since the last successful report. ``shoal agent run --metrics-address`` serves
them (:func:`control.metrics_http.listen_metrics`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agent.backends.interface import BlockDeviceAPI
from agent.discovery import DiscoveredState, LocalState
from agent.fs.interface import Filesystems

PASS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Pass duration buckets (seconds): an idle pass takes milliseconds, an mkfs seconds."""
OPERATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                     5.0, 10.0, 30.0, 60.0)
"""Backend and filesystem call buckets (seconds)."""


def operations_of(interface: type) -> frozenset[str]:
    """The public method names of a protocol class: the bounded ``operation`` label values."""
    return frozenset(
        name for name, value in vars(interface).items()
        if not name.startswith("_") and callable(value)
    )


BACKEND_OPERATIONS = operations_of(BlockDeviceAPI)
FILESYSTEM_OPERATIONS = operations_of(Filesystems)


def local_counts(local: LocalState) -> dict[DiscoveredState, int]:
    """How many of the datasets this node sees are in each discovered state (every state
    present, zero included)."""
    counts = dict.fromkeys(DiscoveredState, 0)
    for found in local.datasets.values():
        counts[found.state] += 1
    return counts


class AgentMetrics:
    """One agent's metrics, in its own registry (injected, or a new one).

    ``now`` is the clock the report age is measured on (the loop's monotonic
    clock); until the first successful report it counts from when the metrics
    were made (the agent's start).
    """

    def __init__(
        self, now: Callable[[], float], registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        self._now = now
        self._last_report = now()
        self._counted: LocalState | None = None
        self.pass_duration = Histogram(
            "shoal_agent_pass_duration_seconds",
            "Time of one convergence pass (fetch, discover, calculate, act and report).",
            buckets=PASS_BUCKETS,
            registry=self.registry,
        )
        self.changes = Counter(
            "shoal_agent_changes",
            "Changes executed, by kind (CreateVolume, MountFilesystem, ...) and result "
            "(ok, failed).",
            ["kind", "result"],
            registry=self.registry,
        )
        self.operations = Histogram(
            "shoal_agent_operation_duration_seconds",
            "Time of one backend or filesystem call, by layer (backend, filesystem) and "
            "operation (the interface's method), whether it succeeded or raised.",
            ["layer", "operation"],
            buckets=OPERATION_BUCKETS,
            registry=self.registry,
        )
        self.datasets = Gauge(
            "shoal_agent_datasets",
            "Datasets this node sees, by local state (as the last pass discovered them).",
            ["state"],
            registry=self.registry,
        )
        for state in DiscoveredState:
            self.datasets.labels(state.value)
        self.report_age = Gauge(
            "shoal_agent_seconds_since_last_report",
            "Seconds since the last report (or registration) the control service accepted.",
            registry=self.registry,
        )
        self.report_age.set_function(lambda: max(0.0, self._now() - self._last_report))

    def passed(self, seconds: float, local: LocalState) -> None:
        """Record a finished pass: its duration and what it discovered."""
        self.pass_duration.observe(seconds)
        if local is self._counted:  # discovery reused the last (frozen) state: same counts
            return
        for state, count in local_counts(local).items():
            self.datasets.labels(state.value).set(count)
        self._counted = local

    def changed(self, kind: str, ok: bool) -> None:
        """Record one executed change."""
        self.changes.labels(kind, "ok" if ok else "failed").inc()

    def reported(self) -> None:
        """Record that the control service accepted a report or registration just now."""
        self._last_report = self._now()

    def timed_backend(self, backend: BlockDeviceAPI) -> BlockDeviceAPI:
        """``backend`` with each call timed (layer ``backend``)."""
        timed: Any = Timed(backend, BACKEND_OPERATIONS, self._observer("backend"), self._now)
        return timed  # type: ignore[no-any-return]

    def timed_filesystems(self, filesystems: Filesystems) -> Filesystems:
        """``filesystems`` with each call timed (layer ``filesystem``)."""
        timed: Any = Timed(
            filesystems, FILESYSTEM_OPERATIONS, self._observer("filesystem"), self._now
        )
        return timed  # type: ignore[no-any-return]

    def _observer(self, layer: str) -> Callable[[str, float], None]:
        def observe(operation: str, seconds: float) -> None:
            self.operations.labels(layer, operation).observe(seconds)

        return observe


class Timed:
    """A proxy timing every call of ``inner``'s methods named in ``operations``.

    Other attributes are ``inner``'s own. Times come from ``clock`` (a
    monotonic clock: these are durations on the calling thread).
    """

    def __init__(
        self,
        inner: Any,
        operations: frozenset[str],
        observe: Callable[[str, float], None],
        clock: Callable[[], float],
    ) -> None:
        self.inner = inner
        self._operations = operations
        self._observe = observe
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if name not in self._operations or not callable(value):
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = self._clock()
            try:
                return value(*args, **kwargs)
            finally:
                self._observe(name, self._clock() - started)

        timed.__name__ = name
        return timed
