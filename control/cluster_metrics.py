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
from collections.abc import Iterable, Mapping
from uuid import UUID

from attrs import frozen
from pyrsistent import PMap, pmap

from control.liveness import FailoverSettings, Liveness, liveness
from control.model import (
    ClusterState,
    ConditionKind,
    Configuration,
    Dataset,
    DatasetState,
    Node,
    NodeState,
    VolumeStatus,
)


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


def _holders(
    state: ClusterState, datasets: Mapping[UUID, Dataset]
) -> dict[UUID, list[tuple[UUID, DatasetState]]]:
    """Every node reporting each dataset; a fenced node's reports of datasets now primary
    elsewhere are left out (as :func:`control.failover.visible_state` does)."""
    holders: dict[UUID, list[tuple[UUID, DatasetState]]] = {}
    for node_uuid, report in state.reports.items():
        node = state.nodes.get(node_uuid)
        fenced = node is not None and node.fence is not None
        for dataset_id, found in report.datasets.items():
            if fenced:
                wanted = datasets.get(dataset_id)
                if wanted is not None and wanted.primary != node_uuid:
                    continue
            holders.setdefault(dataset_id, []).append((node_uuid, found))
    return holders


def _in_error(state: ClusterState) -> set[UUID]:
    return {
        condition.dataset_id
        for report in state.reports.values()
        for condition in report.conditions
        if condition.kind is ConditionKind.ERROR and condition.dataset_id is not None
    }


def dataset_states(configuration: Configuration, state: ClusterState) -> dict[DatasetHealth, int]:
    """How many datasets of ``configuration`` are converged, pending or in error."""
    datasets = configuration.datasets
    holders = _holders(state, datasets)
    errors = _in_error(state)
    counts = dict.fromkeys(DatasetHealth, 0)
    nobody: list[tuple[UUID, DatasetState]] = []
    for dataset_id, dataset in datasets.items():
        if reached(dataset, holders.get(dataset_id, nobody)):
            counts[DatasetHealth.CONVERGED] += 1
        elif dataset_id in errors:
            counts[DatasetHealth.ERROR] += 1
        else:
            counts[DatasetHealth.PENDING] += 1
    return counts


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
    """

    by_node: PMap = pmap()
    limit: int = 100_000

    def __len__(self) -> int:
        return sum(len(changes) for changes in self.by_node.values())

    def changed(self, dataset: Dataset, now: float) -> PendingChanges:
        """Record that ``dataset`` was written at ``now`` (a newer change replaces an older)."""
        cleared = self._without(dataset.dataset_id)
        node = _node_of(dataset)
        if node is None:
            return cleared
        changes = cleared.by_node.get(node, pmap())
        by_node = cleared.by_node.set(node, changes.set(dataset.dataset_id, Change(dataset, now)))
        return PendingChanges(by_node, self.limit)._bounded()

    def reported(self, report: NodeState, now: float) -> tuple[PendingChanges, list[float]]:
        """The changes ``report`` shows reached removed, and their lags (seconds)."""
        changes = self.by_node.get(report.node_uuid)
        if not changes:
            return self, []
        lags = []
        kept = changes.evolver()
        for dataset_id, change in changes.items():
            found = report.datasets.get(dataset_id)
            held = [] if found is None else [(report.node_uuid, found)]
            if reached(change.dataset, held):
                lags.append(max(0.0, now - change.since))
                kept.remove(dataset_id)
        if not lags:
            return self, []
        left = kept.persistent()
        by_node = self.by_node.set(report.node_uuid, left) if left else self.by_node.remove(
            report.node_uuid
        )
        return PendingChanges(by_node, self.limit), lags

    def _without(self, dataset_id: UUID) -> PendingChanges:
        for node, changes in self.by_node.items():
            if dataset_id in changes:
                left = changes.remove(dataset_id)
                by_node = self.by_node.set(node, left) if left else self.by_node.remove(node)
                return PendingChanges(by_node, self.limit)
        return self

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
