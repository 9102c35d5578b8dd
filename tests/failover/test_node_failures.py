"""
Nodes fail while writers append fsynced records to their datasets: a node dies, freezes or
is cut off, two die at once, or the control service restarts in the middle of a failover.

Each test checks what reached the new node against the writer's log (every
fsynced record, nothing written once fenced), that the checker never saw two
writable filesystems of the dataset nor a writer's fsync while another one
was writable (the fixture asserts the first), and that the failed node comes
back clean: unfenced by the service, its leftovers gone, nothing remounted.
"""

from __future__ import annotations

import time

import pytest

from tests.failover.harness import FailoverCluster, wait_for
from tests.failover.scenario import (
    assert_failed_over_once,
    check_arrived,
    returns_clean,
    writing,
)

pytestmark = [pytest.mark.functional, pytest.mark.root]


def test_killed_node(cluster: FailoverCluster) -> None:
    """SIGKILL of node1's agent: the data is on node2 with every fsynced record, then node1
    returns clean.

    The writer keeps running on node1 (its agent died, the machine did not):
    node2's backend fence gives it I/O errors before node2 mounts.
    """
    one, two = cluster.agents["node1"], cluster.agents["node2"]
    dataset_id, writer = writing(cluster, one)
    killed = time.monotonic()
    one.kill()
    cluster.wait_mounted(dataset_id, two, timeout=20 * cluster.grace)
    wait_for(lambda: writer.log().errors, 30, "the fenced writer's errors")
    log = check_arrived(cluster, dataset_id, writer, two, racing=True)
    assert {name for _, name, _ in log.errors} == {"EIO"}
    assert_failed_over_once(cluster, dataset_id, one, two)
    returns_clean(cluster, one, dataset_id)
    remounted = [p for p in cluster.checker.mounted_under(dataset_id, one.mount_root)
                 if p.first > killed]
    assert remounted == []


def test_zombie_node(cluster: FailoverCluster) -> None:
    """node1's agent and writer frozen past the grace: after SIGCONT, the writer only gets
    errors, nothing it writes reaches node2's copy, and node1 never mounts the dataset again."""
    one, two = cluster.agents["node1"], cluster.agents["node2"]
    dataset_id, writer = writing(cluster, one)
    cluster.pause(one, writer)
    newest = writer.log().last_fsynced + 1  # at most one record was in flight when it froze
    cluster.wait_mounted(dataset_id, two, timeout=20 * cluster.grace)
    failed_over = time.monotonic()
    cluster.resume(one, writer)
    woke = time.monotonic()
    wait_for(lambda: len(writer.log().errors_after(woke)) >= 3, 30, "the zombie's errors")
    log = check_arrived(cluster, dataset_id, writer, two, newest=newest)
    assert log.fsynced_after(woke) == []
    returns_clean(cluster, one, dataset_id)
    assert_failed_over_once(cluster, dataset_id, one, two)
    remounted = [p for p in cluster.checker.mounted_under(dataset_id, one.mount_root)
                 if p.first > failed_over]
    assert remounted == []


def test_partitioned_node_fences_itself_in_time(cluster: FailoverCluster) -> None:
    """node1 alive but cut off from the service: its writer gets errors and its mount is gone
    before the service fences it, and node2 mounts only after that."""
    one, two = cluster.agents["node1"], cluster.agents["node2"]
    dataset_id, writer = writing(cluster, one)
    cluster.proxies["node1"].cut()
    cut = time.monotonic()
    cluster.wait_mounted(dataset_id, two, timeout=20 * cluster.grace)
    wall_offset = time.time() - time.monotonic()
    log = writer.log()
    assert log.errors, "node1's writer never got an error"
    self_fenced = log.errors[0][2]
    fenced_at = cluster.events("node_fenced", node=one.uuid)[0]["at"] - wall_offset
    assert cut < self_fenced < fenced_at
    old, new = (cluster.checker.mounted_under(dataset_id, a.mount_root) for a in (one, two))
    assert old[-1].last < fenced_at < new[0].first  # unmounted before the fence, as promised
    assert one.process is not None and one.process.poll() is None
    check_arrived(cluster, dataset_id, writer, two, racing=True)
    assert_failed_over_once(cluster, dataset_id, one, two)
    cluster.proxies["node1"].heal()
    returns_clean(cluster, one, dataset_id)
    assert cluster.primary(dataset_id) == str(two.uuid)


def test_control_service_restart_during_a_failover(cluster: FailoverCluster) -> None:
    """node1 dies (agent and writer); the control service is killed and restarted as soon as it
    fences node1: the failover still completes, once, with every fsynced record on node2."""
    one, two = cluster.agents["node1"], cluster.agents["node2"]
    dataset_id, writer = writing(cluster, one)
    one.kill()
    writer.kill()
    wait_for(lambda: cluster.fenced(one), 20 * cluster.grace, "node1 fenced")
    cluster.restart_control()
    cluster.wait_mounted(dataset_id, two, timeout=20 * cluster.grace)
    check_arrived(cluster, dataset_id, writer, two)
    assert_failed_over_once(cluster, dataset_id, one, two)
    returns_clean(cluster, one, dataset_id)


def test_two_nodes_die_at_once(make_cluster) -> None:
    """node1 and node2 die together (agents and writers): both datasets move to node3, each
    with every record fsynced."""
    cluster: FailoverCluster = make_cluster(names=("node1", "node2", "node3"))
    one, two, three = (cluster.agents[n] for n in ("node1", "node2", "node3"))
    first, first_writer = writing(cluster, one)
    second, second_writer = writing(cluster, two)
    for process in (one, first_writer, two, second_writer):
        process.kill()
    for dataset_id in (first, second):
        cluster.wait_mounted(dataset_id, three, timeout=20 * cluster.grace)
    for dataset_id, writer, old in ((first, first_writer, one), (second, second_writer, two)):
        check_arrived(cluster, dataset_id, writer, three)
        assert_failed_over_once(cluster, dataset_id, old, three)
    returns_clean(cluster, one, first)
    returns_clean(cluster, two, second)
