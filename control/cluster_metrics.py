"""
What the control service's metrics say about the cluster, as pure functions.

- :func:`dataset_states`: how many datasets are ``converged`` (the actual state
  the nodes report matches the configuration), in ``error`` (not converged, and
  a node reports an error condition for it) or ``pending`` (any other).
- :func:`node_counts`: how many nodes are live, suspect or dead, and how many fenced.
- :class:`PendingChanges`: the configuration changes not reached yet, for the
  convergence lag (from a change to the report that matches it).

Each takes values (a configuration, a cluster state, a report, ``now``) and
returns values; :mod:`control.api.metrics` reads the store and keeps the
metrics.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Set
from uuid import UUID

from attrs import frozen
from pyrsistent import PMap, pmap

from control.liveness import FailoverSettings, Liveness, liveness
from control.model import (
    UNBOUND,
    ClusterState,
    ConditionKind,
    Configuration,
    Dataset,
    DatasetState,
    Node,
    NodeState,
    VolumeStatus,
)

UNBOUND_INT = UNBOUND.int


class DatasetHealth(enum.Enum):
    """A dataset's actual state measured against its desired state."""

    CONVERGED = "converged"
    PENDING = "pending"
    ERROR = "error"


def wants_mounted(dataset: Dataset) -> bool:
    """Whether the configuration wants ``dataset`` mounted on its primary (else: nowhere)."""
    return not (dataset.deleted or dataset.released) and dataset.bound


def _big_enough(dataset: Dataset, found: DatasetState) -> bool:
    wanted, have = dataset.maximum_size, found.maximum_size
    return wanted is None or have is None or have >= wanted


def reached(dataset: Dataset, held: Iterable[tuple[UUID, DatasetState]]) -> bool:
    """Whether ``held`` (each node reporting the dataset, with what it reports) is what
    the configuration wants: mounted on the primary at its size, or, for a deleted
    dataset, reported by no node (a released or unbound one: mounted nowhere)."""
    if wants_mounted(dataset):
        return any(
            node == dataset.primary and found.status is VolumeStatus.MOUNTED
            and _big_enough(dataset, found)
            for node, found in held
        )
    if dataset.deleted:
        return not any(True for _ in held)
    return not any(found.status is VolumeStatus.MOUNTED for _, found in held)


@frozen
class NodeSummary:
    """What one node's report says, reduced to what the dataset counts need.

    Datasets are named by ``uuid.int``: integers hash and compare in C, UUIDs in
    Python, and a scrape looks up every dataset of the cluster.
    """

    mounted: Mapping[int, int | None]
    """The datasets it reports mounted, with the size it reports."""
    reported: frozenset[int]
    """Every dataset it reports, whatever its status."""
    errors: frozenset[int]
    """The datasets it reports an error condition for."""


def summarise(report: NodeState) -> NodeSummary:
    """The :class:`NodeSummary` of ``report`` (one pass over its datasets)."""
    mounted = {
        dataset_id.int: found.maximum_size
        for dataset_id, found in report.datasets.items()
        if found.status is VolumeStatus.MOUNTED
    }
    errors = frozenset(
        c.dataset_id.int for c in report.conditions
        if c.kind is ConditionKind.ERROR and c.dataset_id is not None
    )
    return NodeSummary(mounted, frozenset(k.int for k in report.datasets), errors)


def _visible(summary: NodeSummary, node: UUID, datasets: Mapping[UUID, Dataset]) -> NodeSummary:
    """A fenced node's summary without the datasets now primary elsewhere (as
    :func:`control.failover.visible_state` shows its report)."""

    def own(key: int) -> bool:
        wanted = datasets.get(UUID(int=key))
        return wanted is None or wanted.primary == node

    return NodeSummary(
        {k: v for k, v in summary.mounted.items() if own(k)},
        frozenset(k for k in summary.reported if own(k)),
        summary.errors,
    )


@frozen
class DesiredIndex:
    """A configuration's datasets indexed for counting (by ``uuid.int``).

    Built in one pass over the datasets; a collector keeps it while the
    configuration does not change, so a scrape after a report only does
    set operations (in C) and looks at the few datasets they leave open.
    """

    mounted_on: Mapping[int, Mapping[int, int | None]]
    """Node -> the live datasets it is primary of, with their wanted size."""
    deleted: frozenset[int]
    """Deleted datasets: converged once no node reports them."""
    nowhere: frozenset[int]
    """Released and unbound datasets: converged while mounted nowhere."""
    total: int


def index_datasets(datasets: Mapping[UUID, Dataset]) -> DesiredIndex:
    """The :class:`DesiredIndex` of ``datasets``."""
    mounted_on: dict[int, dict[int, int | None]] = {}
    deleted, nowhere = [], []
    for dataset in datasets.values():
        key, primary = dataset.dataset_id.int, dataset.primary.int
        if dataset.deleted:
            deleted.append(key)
        elif dataset.released or primary == UNBOUND_INT:
            nowhere.append(key)
        else:
            mounted_on.setdefault(primary, {})[key] = dataset.maximum_size
    return DesiredIndex(mounted_on, frozenset(deleted), frozenset(nowhere), len(datasets))


def _big_enough_size(wanted: int | None, have: int | None) -> bool:
    return wanted is None or have is None or have >= wanted


def count_datasets(
    datasets: Mapping[UUID, Dataset],
    summaries: Mapping[UUID, NodeSummary],
    fenced: frozenset[UUID] = frozenset(),
    index: DesiredIndex | None = None,
) -> dict[DatasetHealth, int]:
    """How many ``datasets`` are converged, pending or in error, from each node's summary
    (``fenced``: the nodes whose reports of datasets primary elsewhere are left out;
    ``index``: :func:`index_datasets` of ``datasets``, if at hand).

    The rules are :func:`reached`'s, counted with set operations.
    """
    desired = index_datasets(datasets) if index is None else index
    shown = {
        node.int: _visible(summary, node, datasets) if node in fenced else summary
        for node, summary in summaries.items()
    }
    nothing: frozenset[int] = frozenset()
    # Only deleted, released and unbound datasets need the unions of every node's sets.
    reported = set().union(*(s.reported for s in shown.values())) if desired.deleted else nothing
    mounted_anywhere = (
        set().union(*(s.mounted.keys() for s in shown.values())) if desired.nowhere else nothing
    )
    errors: set[int] = set().union(*(s.errors for s in shown.values()))
    converged = len(desired.deleted - reported) + len(desired.nowhere - mounted_anywhere)
    for node, wanted in desired.mounted_on.items():
        summary = shown.get(node)
        if summary is None:
            continue
        mounted = summary.mounted
        exact = wanted.items() & mounted.items()  # mounted at exactly the wanted size
        converged += len(exact)
        for key, size in wanted.items() - exact:
            if key in mounted and _big_enough_size(size, mounted[key]):
                converged += 1
    error = 0
    for key in errors:
        if not _converged(key, desired, shown, reported, mounted_anywhere):
            error += 1
    return {
        DatasetHealth.CONVERGED: converged,
        DatasetHealth.PENDING: desired.total - converged - error,
        DatasetHealth.ERROR: error,
    }


def _converged(
    key: int,
    desired: DesiredIndex,
    shown: Mapping[int, NodeSummary],
    reported: Set[int],
    mounted_anywhere: Set[int],
) -> bool:
    """Whether dataset ``key`` is converged (the one-dataset form of :func:`count_datasets`);
    ``True`` too for a dataset the configuration does not have (it is not counted)."""
    if key in desired.deleted:
        return key not in reported
    if key in desired.nowhere:
        return key not in mounted_anywhere
    for node, wanted in desired.mounted_on.items():
        if key in wanted:
            summary = shown.get(node)
            mounted = {} if summary is None else summary.mounted
            return key in mounted and _big_enough_size(wanted[key], mounted[key])
    return True


def dataset_states(configuration: Configuration, state: ClusterState) -> dict[DatasetHealth, int]:
    """How many datasets of ``configuration`` are converged, pending or in error, given
    the reports of ``state``."""
    summaries = {node: summarise(report) for node, report in state.reports.items()}
    fenced = frozenset(n.uuid for n in state.nodes.values() if n.fence is not None)
    return count_datasets(configuration.datasets, summaries, fenced)


@frozen
class NodeCounts:
    """Nodes by liveness, and how many are fenced or draining."""

    liveness: Mapping[Liveness, int]
    fenced: int
    draining: int


def node_counts(
    nodes: Iterable[Node], now: float, settings: FailoverSettings, started: float
) -> NodeCounts:
    """How many ``nodes`` are live, suspect or dead at ``now``, fenced and draining."""
    by_liveness = dict.fromkeys(Liveness, 0)
    fenced = draining = 0
    for node in nodes:
        by_liveness[liveness(node, now, settings, started)] += 1
        fenced += node.fence is not None
        draining += node.draining
    return NodeCounts(by_liveness, fenced, draining)


@frozen
class Change:
    """A configuration change of one dataset, made at ``since``, not reached yet."""

    dataset: Dataset
    since: float


def _node_of(dataset: Dataset) -> UUID | None:
    """The node whose report tells whether ``dataset``'s change was reached."""
    if dataset.released:
        return dataset.released_from
    return dataset.primary if dataset.bound else None


@frozen
class PendingChanges:
    """Changes waiting for their node's report, by node then dataset (immutable).

    At most ``limit`` are kept: beyond it the oldest are forgotten (their lag
    is never observed), so memory stays bounded whatever happens to nodes.
    ``where`` (each dataset's node in ``by_node``) and ``count`` are kept with
    them, so that a change costs the same with a thousand nodes as with one
    (a pass over every node per move was 9% of a group of moves, issue 16).
    """

    by_node: PMap = pmap()
    limit: int = 100_000
    where: PMap = pmap()
    count: int = 0

    def __len__(self) -> int:
        return self.count

    def changed(self, dataset: Dataset, now: float) -> PendingChanges:
        """Record that ``dataset`` was written at ``now`` (a newer change replaces an older)."""
        cleared = self._without(dataset.dataset_id)
        node = _node_of(dataset)
        if node is None:
            return cleared
        changes = cleared.by_node.get(node, pmap())
        by_node = cleared.by_node.set(node, changes.set(dataset.dataset_id, Change(dataset, now)))
        where = cleared.where.set(dataset.dataset_id, node)
        return PendingChanges(by_node, self.limit, where, cleared.count + 1)._bounded()

    def reported(self, report: NodeState, now: float) -> tuple[PendingChanges, list[float]]:
        """The changes ``report`` shows reached removed, and their lags (seconds)."""
        changes = self.by_node.get(report.node_uuid)
        if not changes:
            return self, []
        lags = []
        kept = changes.evolver()
        where = self.where.evolver()
        for dataset_id, change in changes.items():
            found = report.datasets.get(dataset_id)
            held = [] if found is None else [(report.node_uuid, found)]
            if reached(change.dataset, held):
                lags.append(max(0.0, now - change.since))
                kept.remove(dataset_id)
                where.remove(dataset_id)
        if not lags:
            return self, []
        left = kept.persistent()
        by_node = self.by_node.set(report.node_uuid, left) if left else self.by_node.remove(
            report.node_uuid
        )
        count = self.count - len(lags)
        return PendingChanges(by_node, self.limit, where.persistent(), count), lags

    def _without(self, dataset_id: UUID) -> PendingChanges:
        node = self.where.get(dataset_id)
        if node is None:
            return self
        left = self.by_node[node].remove(dataset_id)
        by_node = self.by_node.set(node, left) if left else self.by_node.remove(node)
        return PendingChanges(by_node, self.limit, self.where.remove(dataset_id), self.count - 1)

    def _bounded(self) -> PendingChanges:
        excess = len(self) - self.limit
        if excess <= 0:
            return self
        everything = sorted(
            (change.since, str(dataset_id), dataset_id)
            for changes in self.by_node.values()
            for dataset_id, change in changes.items()
        )
        result = self
        for _, _, dataset_id in everything[: max(excess, self.limit // 10)]:
            result = result._without(dataset_id)
        return result
