"""
Convergence of several agents sharing one fake SAN, driven by hypothesis.

Every node pass is one pass of that node's real ConvergenceLoop (fetch,
discover, report, calculate, execute, per-dataset backoff); the invariants
(never mounted on two nodes, never detached while mounted, no data lost, no
live volume destroyed, no duplicate volumes) are checked after every pass by
:class:`agent.testing.SimulatedCluster`.
"""

from __future__ import annotations

import logging
from random import Random

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.changes import MakeFilesystem, actions
from agent.testing import SimulatedCluster

ROUNDS = 10
"""Passes per node within which a cluster must converge once the operator stops."""


@pytest.fixture(autouse=True)
def quiet_logs():
    """Keep the agents' structured logs out of hypothesis's many runs."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    yield
    structlog.reset_defaults()


operations = st.one_of(
    st.tuples(st.just("create"), st.integers(0, 2)),
    st.tuples(st.just("move"), st.integers(0, 7), st.integers(0, 2)),
    st.tuples(st.just("delete"), st.integers(0, 7)),
    st.tuples(st.just("rounds"), st.integers(1, 3)),
    st.tuples(st.just("reboot"), st.integers(0, 2), st.booleans()),
)


def apply(cluster: SimulatedCluster, datasets: list, operation: tuple) -> None:
    """Apply one operator action (or let time pass) to the simulated cluster."""
    kind, *args = operation
    if kind == "create":
        datasets.append(cluster.create(args[0] % cluster.node_count))
    elif kind == "rounds":
        for _ in range(args[0]):
            cluster.round()
    elif kind == "reboot":
        cluster.reboot(args[0] % cluster.node_count, lose_attachments=args[1])
    elif datasets:
        dataset_id = datasets[args[0] % len(datasets)]
        if dataset_id in cluster.deleted:
            return
        if kind == "move":
            cluster.move(dataset_id, args[1] % cluster.node_count)
        else:
            cluster.delete(dataset_id)


def run_scenario(
    lag: int, node_count: int, initial: list, later: list, shuffle: Random
) -> SimulatedCluster:
    """Converge to ``initial``, then apply ``later`` mid-flight and converge again."""
    cluster = SimulatedCluster(node_count, lag=lag, shuffle=shuffle)
    datasets: list = []
    for operation in initial:
        apply(cluster, datasets, operation)
    cluster.converge(ROUNDS * (1 + lag))
    for operation in later:
        apply(cluster, datasets, operation)
    cluster.converge(ROUNDS * (1 + lag))
    return cluster


scenario = {
    "node_count": st.integers(2, 3),
    "initial": st.lists(operations, max_size=6),
    "later": st.lists(operations, min_size=1, max_size=8),
    "shuffle": st.randoms(use_true_random=False),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**scenario)
def test_converges_against_consistent_backend(node_count, initial, later, shuffle):
    """From any reached state, any sequence of creates, moves, deletes and reboots converges."""
    cluster = run_scenario(0, node_count, initial, later, shuffle)
    assert cluster.failures == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lag=st.integers(1, 3), **scenario)
def test_converges_against_eventually_consistent_backend(lag, node_count, initial, later, shuffle):
    """With lagging listings, the agents still converge and keep every invariant."""
    run_scenario(lag, node_count, initial, later, shuffle)


def test_bounded_rounds_without_lag():
    """Creating, moving and deleting take a handful of rounds each, not ten (a create three:
    create, attach, mkfs and mount)."""
    cluster = SimulatedCluster(3)
    first, second = cluster.create(0), cluster.create(1)
    assert cluster.converge(ROUNDS) == 3
    cluster.move(first, 2)
    cluster.delete(second)
    assert cluster.converge(ROUNDS) <= 4


def test_data_survives_a_move():
    """A file written into a mounted dataset is there after it moved to another node."""
    cluster = SimulatedCluster(2)
    dataset_id = cluster.create(0)
    cluster.converge(ROUNDS)
    path = f"/shoal/{dataset_id}/file"
    cluster.nodes[0].filesystems.write_file(path, b"precious")
    cluster.move(dataset_id, 1)
    cluster.converge(ROUNDS)
    assert cluster.nodes[1].filesystems.read_file(path) == b"precious"


@pytest.mark.parametrize("lose_attachments", [False, True])
def test_reboot_does_not_act_on_stale_state(lose_attachments):
    """After a reboot the node re-attaches and remounts (in one pass); it never formats or acts
    on old mounts."""
    cluster = SimulatedCluster(2)
    dataset_id = cluster.create(0)
    cluster.converge(ROUNDS)
    cluster.reboot(0, lose_attachments=lose_attachments)
    first = cluster.pass_node(0)
    kinds = {type(change).__name__ for change in actions(first)}
    attach = {"AttachVolume", "MountAttached"}
    assert kinds == (attach if lose_attachments else {"MountFilesystem"})
    cluster.converge(ROUNDS)
    report = cluster.store.cluster_state().reports[cluster.nodes[0].node_uuid]
    assert report.era == cluster.nodes[0].era
    assert dataset_id in report.datasets
    assert not any(isinstance(c, MakeFilesystem) for c in actions(cluster.pass_node(0)))


def test_delete_right_after_create_leaks_nothing_with_lag():
    """A dataset deleted while its new volume is not yet listed is still destroyed and purged."""
    cluster = SimulatedCluster(2, lag=3)
    dataset_id = cluster.create(0)
    cluster.round()
    cluster.delete(dataset_id)
    cluster.converge(ROUNDS * 4)
    assert cluster.storage.volumes == {}
    assert dataset_id not in cluster.store.configuration(cluster.now).datasets
