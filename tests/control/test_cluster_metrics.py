"""The pure side of the control service's metrics: datasets by state, nodes, convergence lag."""

from __future__ import annotations

from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrsistent import pmap

from control.cluster_metrics import (
    DatasetHealth,
    PendingChanges,
    dataset_states,
    node_counts,
    reached,
)
from control.liveness import FailoverSettings, Liveness
from control.model import (
    UNBOUND,
    ClusterState,
    Condition,
    ConditionKind,
    Configuration,
    Dataset,
    DatasetState,
    Fence,
    Node,
    NodeState,
    VolumeStatus,
)

N1, N2 = UUID(int=1), UUID(int=2)
D1, D2, D3 = UUID(int=11), UUID(int=12), UUID(int=13)
GIB = 1 << 30


def mounted(dataset_id: UUID, size: int | None = GIB) -> DatasetState:
    """A dataset reported mounted."""
    return DatasetState(dataset_id, VolumeStatus.MOUNTED, size, "/dev/x", f"/m/{dataset_id}")


def attached(dataset_id: UUID) -> DatasetState:
    """A dataset reported attached, not mounted."""
    return DatasetState(dataset_id, VolumeStatus.ATTACHED, GIB, "/dev/x")


def report(node: UUID, *found: DatasetState, conditions: tuple[Condition, ...] = ()) -> NodeState:
    """A node's report of ``found``."""
    return NodeState(node, datasets={f.dataset_id: f for f in found}, conditions=conditions)


def configuration(*datasets: Dataset) -> Configuration:
    """A configuration of ``datasets``."""
    return Configuration(1, pmap({d.dataset_id: d for d in datasets}))


def state(*reports: NodeState, nodes: tuple[Node, ...] = ()) -> ClusterState:
    """A cluster state of ``reports``; nodes default to unfenced ones for each report."""
    known = {n.uuid: n for n in nodes} or {r.node_uuid: Node(r.node_uuid, "h") for r in reports}
    return ClusterState(1, pmap(known), pmap({r.node_uuid: r for r in reports}))


def error_of(dataset_id: UUID) -> Condition:
    """An error condition for ``dataset_id``."""
    return Condition(dataset_id, ConditionKind.ERROR, "busy", "mount failed", 0.0, "mount")


def counts(converged: int = 0, pending: int = 0, error: int = 0) -> dict[DatasetHealth, int]:
    """An expected :func:`dataset_states` answer."""
    return {
        DatasetHealth.CONVERGED: converged,
        DatasetHealth.PENDING: pending,
        DatasetHealth.ERROR: error,
    }


class TestDatasetStates:
    """Each dataset counts once: converged, else error if a node reports one, else pending."""

    def test_mounted_on_primary_is_converged_unreported_is_pending(self) -> None:
        """A dataset mounted on its primary converged; one nobody reports is pending."""
        config = configuration(Dataset(D1, N1, GIB), Dataset(D2, N1, GIB))
        assert dataset_states(config, state(report(N1, mounted(D1)))) == counts(1, 1, 0)

    def test_mounted_elsewhere_or_only_attached_is_pending(self) -> None:
        """Mounted on another node, or attached but not mounted, is not converged."""
        config = configuration(Dataset(D1, N1, GIB), Dataset(D2, N1, GIB))
        found = state(report(N2, mounted(D1)), report(N1, attached(D2)))
        assert dataset_states(config, found) == counts(0, 2, 0)

    def test_error_condition_counts_as_error_unless_converged(self) -> None:
        """An error reported for an unconverged dataset is an error; a converged one stays."""
        config = configuration(Dataset(D1, N1, GIB), Dataset(D2, N1, GIB))
        found = state(report(N1, mounted(D1), conditions=(error_of(D1), error_of(D2))))
        assert dataset_states(config, found) == counts(1, 0, 1)

    def test_smaller_than_wanted_is_pending(self) -> None:
        """A resize is not reached until the primary reports the new size."""
        config = configuration(Dataset(D1, N1, 2 * GIB))
        assert dataset_states(config, state(report(N1, mounted(D1, GIB)))) == counts(0, 1, 0)

    def test_deleted_dataset_converges_once_nobody_reports_it(self) -> None:
        """A deleted dataset still reported is pending, unreported converged."""
        config = configuration(Dataset(D1, N1, GIB, deleted=True), Dataset(D2, N1, deleted=True))
        assert dataset_states(config, state(report(N1, attached(D1)))) == counts(1, 1, 0)

    def test_unbound_dataset_is_converged_while_mounted_nowhere(self) -> None:
        """A dataset waiting for its first consumer wants nothing yet."""
        assert dataset_states(configuration(Dataset(D1, UNBOUND)), state()) == counts(1, 0, 0)

    def test_fenced_node_reports_of_datasets_primary_elsewhere_are_ignored(self) -> None:
        """A fenced node still reporting a failed-over dataset does not make it look held."""
        fenced = Node(N1, "h", fence=Fence(at=1.0, reason="dead", actor="failover"))
        config = configuration(Dataset(D1, N2, GIB, deleted=True))
        found = state(report(N1, mounted(D1)), nodes=(fenced, Node(N2, "h")))
        assert dataset_states(config, found) == counts(1, 0, 0)


def test_node_counts_by_liveness_fence_and_drain() -> None:
    """Nodes are counted by liveness at ``now``, and fenced and draining ones on the side."""
    settings = FailoverSettings(grace=10.0)  # suspect after 4 s, dead after 10 s
    nodes = [
        Node(N1, "h", last_seen=100.0),
        Node(N2, "h", last_seen=95.0, draining=True),
        Node(UUID(int=3), "h", last_seen=80.0, fence=Fence(90.0, "dead", "failover")),
    ]
    found = node_counts(nodes, now=100.0, settings=settings, started=0.0)
    assert found.liveness == {Liveness.LIVE: 1, Liveness.SUSPECT: 1, Liveness.DEAD: 1}
    assert (found.fenced, found.draining) == (1, 1)


def test_reached_wants_the_primary_to_mount() -> None:
    """Reached means mounted on the primary; a report from another node does not count."""
    dataset = Dataset(D1, N1, GIB)
    assert reached(dataset, [(N1, mounted(D1))])
    assert not reached(dataset, [(N2, mounted(D1))])
    assert not reached(dataset, [])


class TestPendingChanges:
    """The convergence lag: from a dataset write to the primary's report that shows it."""

    def test_lag_is_observed_when_the_primary_reports_it_mounted(self) -> None:
        """The lag is the time from the change to the report, and the change is forgotten."""
        pending = PendingChanges().changed(Dataset(D1, N1, GIB), 100.0)
        pending, lags = pending.reported(report(N1, attached(D1)), 101.0)
        assert (lags, len(pending)) == ([], 1)
        pending, lags = pending.reported(report(N1, mounted(D1)), 103.5)
        assert (lags, len(pending)) == ([3.5], 0)

    def test_another_nodes_report_does_not_count(self) -> None:
        """Only the primary's report can show a change reached."""
        pending = PendingChanges().changed(Dataset(D1, N1, GIB), 100.0)
        pending, lags = pending.reported(report(N2, mounted(D1)), 101.0)
        assert (lags, len(pending)) == ([], 1)

    def test_a_newer_change_replaces_the_older(self) -> None:
        """A move before the create converged is measured from the move, on the new primary."""
        pending = PendingChanges().changed(Dataset(D1, N1, GIB), 100.0)
        pending = pending.changed(Dataset(D1, N2, GIB), 110.0)
        assert pending.reported(report(N1, mounted(D1)), 111.0)[1] == []
        pending, lags = pending.reported(report(N2, mounted(D1)), 115.0)
        assert (lags, len(pending)) == ([5.0], 0)

    def test_delete_is_reached_when_the_node_no_longer_reports_it(self) -> None:
        """A deleted dataset's change is reached once its node reports it gone."""
        pending = PendingChanges().changed(Dataset(D1, N1, GIB, deleted=True), 100.0)
        assert pending.reported(report(N1, mounted(D1)), 101.0)[1] == []
        assert pending.reported(report(N1), 102.0)[1] == [2.0]

    def test_unbound_datasets_are_not_tracked(self) -> None:
        """A dataset with no node has no report to wait for."""
        assert len(PendingChanges().changed(Dataset(D1, UNBOUND), 100.0)) == 0

    def test_memory_is_bounded(self) -> None:
        """Beyond the limit the oldest changes are forgotten."""
        pending = PendingChanges(limit=20)
        for i in range(25):
            pending = pending.changed(Dataset(UUID(int=1000 + i), N1, GIB), float(i))
        assert len(pending) <= 20
        newest = report(N1, mounted(UUID(int=1024)))
        assert pending.reported(newest, 30.0)[1] == [6.0]

    @given(st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.integers(0, 2)), max_size=40))
    def test_count_and_index_follow_the_changes(
        self, steps: list[tuple[bool, int, int]]
    ) -> None:
        """Whatever the changes and reports, the count and each dataset's node agree with the
        changes kept by node."""
        pending = PendingChanges(limit=4)
        for write, dataset, node in steps:
            dataset_id, node_uuid = UUID(int=100 + dataset), UUID(int=1 + node)
            if write:
                pending = pending.changed(Dataset(dataset_id, node_uuid, GIB), float(len(steps)))
            else:
                pending = pending.reported(report(node_uuid, mounted(dataset_id)), 50.0)[0]
            kept = {d: n for n, changes in pending.by_node.items() for d in changes}
            assert len(pending) == len(kept) <= 4
            assert dict(pending.where) == kept


def naive_states(configuration: Configuration, state: ClusterState) -> dict[DatasetHealth, int]:
    """The definition, one dataset at a time with :func:`reached` (slow, plainly right)."""
    fenced = {n.uuid for n in state.nodes.values() if n.fence is not None}
    found = counts()
    errors = {
        c.dataset_id for r in state.reports.values() for c in r.conditions
        if c.kind is ConditionKind.ERROR
    }
    for dataset_id, dataset in configuration.datasets.items():
        held = [
            (node, r.datasets[dataset_id]) for node, r in state.reports.items()
            if dataset_id in r.datasets
            and not (node in fenced and dataset.primary != node)
        ]
        if reached(dataset, held):
            found[DatasetHealth.CONVERGED] += 1
        elif dataset_id in errors:
            found[DatasetHealth.ERROR] += 1
        else:
            found[DatasetHealth.PENDING] += 1
    return found


DATASETS = [UUID(int=100 + i) for i in range(6)]
NODES = [N1, N2, UNBOUND]
STATUSES = [VolumeStatus.PRESENT, VolumeStatus.ATTACHED, VolumeStatus.MOUNTED,
            VolumeStatus.MOUNTED]
RARELY = st.sampled_from([False, False, False, True])


@st.composite
def clusters(draw: st.DrawFn) -> tuple[Configuration, ClusterState]:
    """Any small configuration and any reports of it."""
    datasets = []
    for dataset_id in draw(st.lists(st.sampled_from(DATASETS), unique=True)):
        datasets.append(Dataset(
            dataset_id, draw(st.sampled_from(NODES)), draw(st.sampled_from([None, GIB, 2 * GIB])),
            deleted=draw(RARELY), released=draw(RARELY),
        ))
    reports = []
    for node in (N1, N2):
        found = {
            dataset_id: DatasetState(
                dataset_id, draw(st.sampled_from(STATUSES)),
                draw(st.sampled_from([None, GIB, 2 * GIB])),
            )
            for dataset_id in draw(st.lists(st.sampled_from(DATASETS), unique=True))
        }
        failing = draw(st.lists(st.sampled_from(DATASETS), unique=True, max_size=2))
        reports.append(report(node, *found.values(),
                              conditions=tuple(error_of(d) for d in failing)))
    nodes = tuple(
        Node(node, "h", fence=Fence(1.0, "x") if draw(RARELY) else None)
        for node in (N1, N2)
    )
    return configuration(*datasets), state(*reports, nodes=nodes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_counts_agree_with_the_definition(cluster: tuple[Configuration, ClusterState]) -> None:
    """The set-based counting gives what :func:`reached` gives one dataset at a time."""
    config, found = cluster
    assert dataset_states(config, found) == naive_states(config, found)


def test_larger_than_wanted_is_converged() -> None:
    """A volume reported larger than asked (rounded up by the backend) is converged."""
    config = configuration(Dataset(D1, N1, GIB))
    assert dataset_states(config, state(report(N1, mounted(D1, 2 * GIB)))) == counts(1, 0, 0)
