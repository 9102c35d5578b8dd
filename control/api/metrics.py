"""
The control service's Prometheus metrics (the list and their meaning: docs/operations.md).

- :class:`ControlMetrics` holds the process's own registry and the metrics
  updated as things happen: request latency by route template, method and
  status, writes by kind and result, watch waiters, and the convergence lag.
- :class:`MeteredStore` wraps the blocking store: it counts every write and
  feeds the convergence lag (a dataset write starts the clock, the report that
  shows it reached stops it; :class:`control.cluster_metrics.PendingChanges`).
- :class:`ClusterCollector` yields datasets by state and nodes by liveness at
  scrape time: the dataset counts are a :class:`control.dataset_tally.Tally`
  patched with what changed since the last scrape (the datasets the store's
  change log names, the nodes whose report changed, the fences), keyed by the
  configuration generation and the state version; the reports come from a
  :class:`ReportCache` (each summarised once). The scrape runs in the
  database thread pool (:class:`control.metrics_http.MetricsResource`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from uuid import UUID

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from twisted.web.resource import Resource
from twisted.web.server import Request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, RequestRedirect

from control.cluster_metrics import (
    DatasetHealth,
    NodeCounts,
    NodeSummary,
    PendingChanges,
    node_counts,
    summarise,
)
from control.dataset_tally import Tally
from control.errors import ShoalError
from control.liveness import FailoverSettings, Liveness
from control.metrics_http import MetricsResource, TimedResource
from control.model import Dataset, NodeState, Versions
from control.reactor import ReactorTime
from control.runners import Runner
from control.store.interface import (
    Created,
    NewDataset,
    NewMove,
    Renewal,
    ReportAnswer,
    Reported,
    StateReach,
    Store,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                   30.0, 60.0, 300.0)
"""Request latency buckets (seconds): a watch may be held for up to 300 s."""
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
"""Convergence lag buckets (seconds)."""

WRITES = frozenset({
    "create_dataset", "move_dataset", "delete_dataset", "release_dataset", "adopt_dataset",
    "resize_dataset", "destroy_orphan", "set_failover", "acquire_lease", "release_lease",
    "create_snapshot", "delete_snapshot", "create_class", "update_class", "delete_class",
    "register_node", "report_state", "fence_node", "unfence_node", "set_draining", "fail_over",
    "release_node_lease",
})
"""The store's write methods: the values of the ``kind`` label of ``shoal_control_writes_total``."""

PLACING = frozenset({
    "create_dataset", "move_dataset", "delete_dataset", "release_dataset", "adopt_dataset",
    "resize_dataset", "destroy_orphan", "fail_over",
})
"""Writes that change where or how a dataset should be: they start its convergence lag."""

UNMATCHED = "unmatched"
"""The route label of a request no route matches (its path is never a label)."""

log = structlog.get_logger("shoal.control.metrics")


class ControlMetrics:
    """The control service's metrics, in a registry of its own (injected, or a new one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        self.requests = Histogram(
            "shoal_http_request_duration_seconds",
            "Time to answer an API request, by route template, method and status code.",
            ["route", "method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._timers: dict[tuple[str, str, int], Any] = {}
        """Each (route, method, status)'s histogram child, looked up once (issue 16)."""
        self.writes = Counter(
            "shoal_control_writes",
            "Store writes, by kind (the store method) and result (ok, refused, failed).",
            ["kind", "result"],
            registry=self.registry,
        )
        for kind in sorted(WRITES):  # every kind shows from the start, so rate() sees the first
            self.writes.labels(kind, "ok")
        self.watch_waiters = Gauge(
            "shoal_watch_waiters",
            "Watch requests (GET /v1/shoal/watch) waiting for a change now.",
            registry=self.registry,
        )
        self.convergence_lag = Histogram(
            "shoal_convergence_lag_seconds",
            "Time from a dataset's configuration change to the report showing it reached.",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.pending_changes = Gauge(
            "shoal_convergence_pending_changes",
            "Dataset changes made by this control service that no report has shown reached yet.",
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, code: int, seconds: float) -> None:
        """Record one answered request."""
        timer = self._timers.get((route, method, code))
        if timer is None:
            timer = self._timers[route, method, code] = self.requests.labels(
                route, method, str(code)
            )
        timer.observe(seconds)

    def watch(self, waiting: Callable[[], int]) -> None:
        """Report ``waiting()`` (the notifier's waiter count) as the watch waiters gauge."""
        self.watch_waiters.set_function(lambda: float(waiting()))

    def collect_cluster(
        self, store: MeteredStore, clock: ReactorTime, failover: FailoverSettings, started: float
    ) -> ClusterCollector:
        """Register (and return) the scrape-time collector of datasets and nodes."""
        collector = ClusterCollector(store, store.reports, clock, failover, started)
        self.registry.register(collector)
        return collector

    def root(
        self, inner: Resource, url_map: Map, clock: ReactorTime, runner: Runner,
        guard: Callable[[Resource], Resource] | None = None,
    ) -> TimedResource:
        """``inner`` timed by route template, with ``/metrics`` served ahead of it (behind
        ``guard``: the API's revocation and read rule)."""
        exposition: Resource = MetricsResource(self.registry, runner)
        return TimedResource(
            inner,
            clock,
            route_template(url_map),
            self.observe_request,
            exposition if guard is None else guard(exposition),
        )


def route_template(url_map: Map) -> Callable[[Request], str]:
    """A function naming a request's route by its template (``/v1/configuration/datasets/
    <dataset_id>``), or :data:`UNMATCHED`: never the raw path, so labels stay bounded."""
    adapter = url_map.bind("localhost")

    def route_of(request: Request) -> str:
        try:
            path = request.path.decode("utf-8")
            method = request.method.decode("ascii")
            rule, _ = adapter.match(path, method=method, return_rule=True)
        except (HTTPException, RequestRedirect, UnicodeDecodeError):
            return UNMATCHED
        return str(rule.rule)

    return route_of


class MeteredStore:
    """A store that counts its writes and tracks the convergence lag of dataset writes.

    Every other attribute is the wrapped store's. Safe to call from several
    threads (the store is called from the database thread pool).
    """

    def __init__(self, store: Store, metrics: ControlMetrics, clock: ReactorTime) -> None:
        self.store = store
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._pending = PendingChanges()
        self.reports = ReportCache()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        if name not in WRITES:
            return method

        def write(*args: Any, **kwargs: Any) -> Any:
            try:
                result = method(*args, **kwargs)
            except ShoalError:
                self._metrics.writes.labels(name, "refused").inc()
                raise
            except Exception:
                self._metrics.writes.labels(name, "failed").inc()
                raise
            self._metrics.writes.labels(name, "ok").inc()
            self._wrote(name, args, result)
            return result

        write.__name__ = name
        return write

    def create_datasets(self, creates: Sequence[NewDataset]) -> list[Created]:
        """The wrapped store's group of creates, each counted as one ``create_dataset``."""
        try:
            answers = self.store.create_datasets(creates)
        except Exception:
            self._metrics.writes.labels("create_dataset", "failed").inc(len(creates))
            raise
        for new, answer in zip(creates, answers, strict=True):
            if isinstance(answer, ShoalError):
                self._metrics.writes.labels("create_dataset", "refused").inc()
            elif isinstance(answer, Exception):
                self._metrics.writes.labels("create_dataset", "failed").inc()
            else:
                self._metrics.writes.labels("create_dataset", "ok").inc()
                self._wrote("create_dataset", (new.dataset,), answer)
        return answers

    def move_datasets(self, moves: Sequence[NewMove]) -> list[Created]:
        """The wrapped store's group of moves, each counted as one ``move_dataset``."""
        try:
            answers = self.store.move_datasets(moves)
        except Exception:
            self._metrics.writes.labels("move_dataset", "failed").inc(len(moves))
            raise
        for answer in answers:
            if isinstance(answer, ShoalError):
                self._metrics.writes.labels("move_dataset", "refused").inc()
            elif isinstance(answer, Exception):
                self._metrics.writes.labels("move_dataset", "failed").inc()
            else:
                self._metrics.writes.labels("move_dataset", "ok").inc()
                self._wrote("move_dataset", (), answer)
        return answers

    def report_states(self, reports: Sequence[Reported]) -> list[ReportAnswer]:
        """The wrapped store's group of reports, each counted as one ``report_state``."""
        return self.report_states_reaching(reports)[0]

    def report_states_reaching(
        self, reports: Sequence[Reported]
    ) -> tuple[list[ReportAnswer], StateReach | None]:
        """:meth:`report_states`, and whom the state versions written concern."""
        try:
            answers, reached = self.store.report_states_reaching(reports)
        except Exception:
            self._metrics.writes.labels("report_state", "failed").inc(len(reports))
            raise
        for (report, _), answer in zip(reports, answers, strict=True):
            if isinstance(answer, ShoalError):
                self._metrics.writes.labels("report_state", "refused").inc()
            else:
                self._metrics.writes.labels("report_state", "ok").inc()
                self._wrote("report_state", (report,), answer)
        return answers, reached

    def renew_report(self, node_uuid: UUID, identity: str | None, at: float) -> Versions | None:
        """The wrapped store's renewal, counted as one ``report_state`` when it renews (an
        unchanged report: nothing for the report cache or the convergence lag, which the
        same report already went through when it was judged)."""
        renewed = self.store.renew_report(node_uuid, identity, at)
        if renewed is not None:
            self._metrics.writes.labels("report_state", "ok").inc()
        return renewed

    def renew_reports(self, asked: Sequence[Renewal]) -> list[Versions | None]:
        """The wrapped store's renewals, each renewed counted as one ``report_state``
        (:meth:`renew_report`)."""
        renewed = self.store.renew_reports(asked)
        done = sum(1 for versions in renewed if versions is not None)
        if done:
            self._metrics.writes.labels("report_state", "ok").inc(done)
        return renewed

    def _wrote(self, name: str, args: tuple[Any, ...], result: Any) -> None:
        if name == "report_state" and args and isinstance(args[0], NodeState):
            if result:  # a new observation (an unchanged one leaves the cached one right)
                self.reports.wrote(args[0])
            self._reported(args[0])
            return
        if name not in PLACING:
            return
        dataset = result[0] if isinstance(result, tuple) else result
        if isinstance(dataset, Dataset):
            now = self._clock.seconds()
            with self._lock:
                self._pending = self._pending.changed(dataset, now)
                self._metrics.pending_changes.set(len(self._pending))

    def _reported(self, report: NodeState) -> None:
        now = self._clock.seconds()
        with self._lock:
            self._pending, lags = self._pending.reported(report, now)
            if lags:
                self._metrics.pending_changes.set(len(self._pending))
        for lag in lags:
            self._metrics.convergence_lag.observe(lag)


RESYNC = 60.0
"""Seconds after which the report cache is read again from the store whole."""


class ReportCache:
    """The latest report of each node, each with its :class:`NodeSummary`; thread-safe.

    Fed by the reports this process writes (:class:`MeteredStore`), and loaded
    whole from the store (its cached state) by the collector whenever the state
    version moved since the last load, and every :data:`RESYNC` seconds. A
    node's entry is only ever replaced by a report received later. Each report
    is summarised once, when a scrape first needs it (a node reporting changes
    faster than the scrapes is summarised once per scrape at most).
    """

    def __init__(self, resync: float = RESYNC) -> None:
        self._lock = threading.Lock()
        self._resync = resync
        self._reports: dict[UUID, NodeState] = {}
        self._summaries: dict[UUID, tuple[NodeState, NodeSummary]] = {}
        self._version = 0
        self._loaded_at: float | None = None

    def wrote(self, report: NodeState) -> None:
        """Keep ``report``, which this process just stored (summarised when a scrape first
        needs it: a changed report no longer costs O(report) to write, issue 16)."""
        with self._lock:
            self._put(report)

    def stale(self, now: float) -> bool:
        """Whether the cache must be loaded from the store (never was, or long ago)."""
        with self._lock:
            return self._loaded_at is None or now - self._loaded_at >= self._resync

    def load(self, reports: Iterable[NodeState], now: float) -> None:
        """Take the store's reports (those newer than what is kept, with new facts)."""
        with self._lock:
            for report in reports:
                old = self._reports.get(report.node_uuid)
                if old is None or not old.same_observation(report):
                    self._put(report)
            self._loaded_at = now

    def _put(self, report: NodeState) -> bool:
        """Keep ``report`` unless a later one is kept; whether it was."""
        old = self._reports.get(report.node_uuid)
        if old is not None and (old.reported_at or 0.0) > (report.reported_at or 0.0):
            return False
        self._reports[report.node_uuid] = report
        self._version += 1
        return True

    def summaries(self) -> tuple[int, dict[UUID, NodeSummary]]:
        """A version that moves whenever a report is replaced, and every node's summary."""
        with self._lock:
            version, reports = self._version, dict(self._reports)
            done = dict(self._summaries)
        found = {}
        for node, report in reports.items():
            kept = done.get(node)
            if kept is None or kept[0] is not report:
                kept = (report, summarise(report))
                with self._lock:
                    self._summaries[node] = kept
            found[node] = kept[1]
        return version, found


class ClusterCollector:
    """Datasets by state and nodes by liveness, computed at each scrape.

    Blocking (it reads the store): it runs where the scrape runs, in the
    database thread pool. It reads the versions and the nodes (a few rows).
    The dataset counts are a :class:`~control.dataset_tally.Tally` kept between
    scrapes and keyed by the configuration generation, the state version and
    the fenced nodes, so they are never stale: when the configuration moved, the
    tally is patched with the datasets its change log says changed
    (:attr:`Configuration.changes <control.model.Configuration.changes>`), or
    counted from scratch when the log cannot say; when the state version moved, the reports are read
    again (the store's cached state) into the :class:`ReportCache`, and only
    the nodes whose report changed are summarised and judged again.
    """

    def __init__(
        self,
        store: Store,
        reports: ReportCache,
        clock: ReactorTime,
        failover: FailoverSettings,
        started: float,
    ) -> None:
        self._store = store
        self._reports = reports
        self._clock = clock
        self._failover = failover
        self._started = started
        self._lock = threading.Lock()
        self._tally: Tally | None = None
        self._state_seen: int | None = None

    def describe(self) -> Iterator[Metric]:
        """The families this collector yields, without reading the store."""
        return iter(self._families(None, None))

    def collect(self) -> Iterator[Metric]:
        """Read the store and yield the families (``shoal_store_up`` 0 if it cannot be read)."""
        try:
            datasets, nodes = self._read()
        except Exception as e:
            log.warning("metrics.store_unreadable", error=f"{type(e).__name__}: {e}")
            return iter(self._families(None, None, up=False))
        return iter(self._families(datasets, nodes))

    def _read(self) -> tuple[Mapping[DatasetHealth, int], NodeCounts]:
        now = self._clock.seconds()
        versions = self._store.versions()
        if self._state_seen != versions.state or self._reports.stale(now):
            state = self._store.cluster_state()
            self._reports.load(state.reports.values(), now)
            self._state_seen = versions.state
            nodes = list(state.nodes.values())
        else:
            nodes = self._store.nodes()
        fenced = frozenset(n.uuid for n in nodes if n.fence is not None)
        _, summaries = self._reports.summaries()
        with self._lock:
            tally = self._tally
        if tally is None or tally.generation != versions.configuration:
            tally = self._configured(tally, now, summaries, fenced)
        tally = tally.with_summaries(summaries).with_fenced(fenced)
        with self._lock:
            self._tally = tally
        return tally.counts, node_counts(nodes, now, self._failover, self._started)

    def _configured(
        self,
        tally: Tally | None,
        now: float,
        summaries: Mapping[UUID, NodeSummary],
        fenced: frozenset[UUID],
    ) -> Tally:
        """``tally`` moved to the store's configuration: patched with the datasets its
        change log names, else counted from scratch."""
        configuration = self._store.configuration(now)
        generation = configuration.generation
        changed = None if tally is None else configuration.changes.since(tally.generation)
        if tally is None or changed is None:
            return Tally.of(generation, configuration.datasets, summaries, fenced)
        return tally.with_datasets(generation, configuration.datasets, changed)

    def _families(self, datasets: Any, nodes: Any, up: bool = True) -> list[Metric]:
        store_up = GaugeMetricFamily(
            "shoal_store_up", "1 if the last scrape could read the store, else 0."
        )
        by_state = GaugeMetricFamily(
            "shoal_datasets",
            "Datasets by state: converged (the reports match the configuration), error (not "
            "converged, and a node reports an error for it) or pending.",
            labels=["state"],
        )
        by_liveness = GaugeMetricFamily(
            "shoal_nodes", "Registered nodes by liveness (live, suspect, dead).",
            labels=["liveness"],
        )
        fenced = GaugeMetricFamily("shoal_nodes_fenced", "Registered nodes that are fenced.")
        draining = GaugeMetricFamily("shoal_nodes_draining", "Registered nodes being drained.")
        if datasets is not None and nodes is not None:
            store_up.add_metric([], 1.0)
            for health in DatasetHealth:
                by_state.add_metric([health.value], float(datasets[health]))
            for state in Liveness:
                by_liveness.add_metric([state.value], float(nodes.liveness[state]))
            fenced.add_metric([], float(nodes.fenced))
            draining.add_metric([], float(nodes.draining))
        elif not up:
            store_up.add_metric([], 0.0)
        return [store_up, by_state, by_liveness, fenced, draining]
