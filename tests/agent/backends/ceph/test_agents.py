"""
Real agents (``shoal agent run --backend rbd``) on the session's Ceph cluster.

Two agents, each with its own rbd-fuse run directory and mount root, act as
two hosts (one network namespace: each rbd-fuse is its own Ceph client
instance). A dataset moves back and forth with its data; an agent SIGKILLed
right after each step of a create or a move (``SHOAL_AGENT_KILL_AFTER_CHANGES``)
converges after a restart, adopting the rbd-fuse processes and loop devices it
left, with the data intact. The module's mount checker asserts all along that
no dataset is ever mounted on both nodes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from uuid import UUID

import pytest

from agent.backends.rbd import fuse
from agent.backends.rbd.devcluster import DevCluster
from tests.agent.backends.ceph.cluster import RbdCluster
from tests.agent.backends.ceph.conftest import clean_node, remove_images
from tests.agent.functional.cluster import (
    AgentProcess,
    LocalCluster,
    MountChecker,
    read_marker,
    wait_until,
    write_marker,
)
from tests.processes import http_json

pytestmark = [pytest.mark.functional, pytest.mark.root]
KILLED = -signal.SIGKILL


@pytest.fixture(scope="module")
def cluster(
    ceph_cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RbdCluster]:
    """node1 and node2 on the rbd backend; everything released after."""
    base = str(tmp_path_factory.mktemp("rbd-agents"))
    local = RbdCluster(base, ceph_cluster)
    try:
        local.start()
        yield local
    finally:
        local.close()
        clean_node(base)
        remove_images(ceph_cluster, {("rbd", local.cluster_id)})
        local.observer.close()


@pytest.fixture(scope="module")
def checker(cluster: RbdCluster) -> Iterator[MountChecker]:
    """A thread checking that no dataset is ever mounted on both nodes."""
    watching = MountChecker(list(cluster.agents.values()))
    watching.start()
    yield watching
    watching.stop()
    assert watching.violations == []


@pytest.fixture
def nodes(cluster: RbdCluster, checker: MountChecker) -> Iterator[tuple]:
    """node1 and node2, running without the kill hook."""
    for agent in cluster.agents.values():
        if agent.process is None or agent.process.poll() is not None:
            agent.start()
    yield cluster.agents["node1"], cluster.agents["node2"]
    assert checker.violations == []


def mounted_with_marker(cluster: LocalCluster, agent: AgentProcess) -> tuple[UUID, bytes]:
    """A new dataset mounted on ``agent`` holding a random marker file."""
    dataset_id = cluster.create(agent)
    cluster.wait_mounted(dataset_id, agent, timeout=60)
    data = os.urandom(1024)
    write_marker(os.path.join(agent.mount_path(dataset_id), "marker"), data)
    return dataset_id, data


def marker_on(agent: AgentProcess, dataset_id: UUID) -> bytes:
    """The marker file of a dataset mounted on ``agent``."""
    return read_marker(os.path.join(agent.mount_path(dataset_id), "marker"))


def purge(cluster: RbdCluster, *datasets: UUID) -> None:
    """Delete the datasets and wait until their images are gone."""
    for dataset_id in datasets:
        cluster.delete(dataset_id)
    for dataset_id in datasets:
        wait_until(lambda d=dataset_id: cluster.gone(d), 60, f"{dataset_id} to be purged")


def test_move_back_and_forth(cluster: RbdCluster, nodes) -> None:
    """A dataset moves node1 -> node2 -> node1 -> node2 with its data."""
    one, two = nodes
    dataset_id, data = mounted_with_marker(cluster, one)
    for target in (two, one, two):
        cluster.move(dataset_id, target)
        cluster.wait_mounted(dataset_id, target, timeout=60)
        assert marker_on(target, dataset_id) == data
    purge(cluster, dataset_id)


# The attach's pass also tries to mount (MountAttached: a new volume has no filesystem yet, so
# it does nothing, and the next pass formats and mounts it).
@pytest.mark.parametrize(
    "step", [1, 2, 3, 4, 5], ids=["create", "attach", "mount-attached", "mkfs", "mount"]
)
def test_create_survives_sigkill(cluster: RbdCluster, nodes, step: int) -> None:
    """Killed after any step of a create, the restarted agent adopts and mounts the volume."""
    one, _ = nodes
    assert one.stop() == 0
    one.start(kill_after_changes=step)
    dataset_id = cluster.create(one)
    assert one.wait_exit(60) == KILLED
    one.start()
    cluster.wait_mounted(dataset_id, one, timeout=60)
    assert one.changes_done("MakeFilesystem", dataset_id) == (0 if step == 4 else 1)
    purge(cluster, dataset_id)


@pytest.mark.parametrize(
    "who,step",
    [("old", 1), ("old", 2), ("new", 1), ("new", 2)],
    ids=["old-unmount", "old-detach", "new-attach", "new-mount"],
)
def test_move_survives_sigkill(cluster: RbdCluster, nodes, who: str, step: int) -> None:
    """Killing either side after any step of a move ends mounted on the new node, intact."""
    one, two = nodes
    dataset_id, data = mounted_with_marker(cluster, one)
    victim = one if who == "old" else two
    assert victim.stop() == 0
    victim.start(kill_after_changes=step)
    cluster.move(dataset_id, two)
    assert victim.wait_exit(60) == KILLED
    victim.start()
    cluster.wait_mounted(dataset_id, two, timeout=60)
    assert marker_on(two, dataset_id) == data
    assert not os.path.ismount(one.mount_path(dataset_id))
    purge(cluster, dataset_id)


WRITER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
n = 0
while True:
    n += 1
    os.write(fd, b"%d\n" % n)
    os.fsync(fd)
    print(n, flush=True)
"""


def test_fence_while_writing(cluster: RbdCluster, nodes, checker: MountChecker) -> None:
    """node1's agent frozen and node1 fenced by the operator while a writer runs there:
    node2's agent blocklists node1's rbd-fuse (the writer gets EIO) and mounts the dataset
    with every acknowledged fsync; thawed, node1's agent cleans up its leftovers.

    The fenced node's mount stays until its agent lets go, cut off from the volume, so the
    double-mount checker stops before the fence (the last test of the module)."""
    one, two = nodes
    checker.stop()
    assert checker.violations == []
    dataset_id = cluster.create(one)
    cluster.api("PUT", f"/v1/shoal/datasets/{dataset_id}/failover", {"enabled": True})
    cluster.wait_mounted(dataset_id, one, timeout=60)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, os.path.join(one.mount_path(dataset_id), "log")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert writer.stdout is not None and one.process is not None
    while int(writer.stdout.readline()) < 20:
        pass
    one.process.send_signal(signal.SIGSTOP)  # node1 cannot cooperate
    try:
        cluster.api("POST", f"/v1/shoal/nodes/{one.uuid}/fence", {"reason": "test"})
        acknowledged = 0
        for line in writer.stdout:
            acknowledged = int(line)
        assert writer.wait(60) != 0
        errors = writer.stderr.read()
        assert "Input/output error" in errors or "Read-only file system" in errors, errors
        cluster.wait_mounted(dataset_id, two, timeout=60)
        lines = read_marker(os.path.join(two.mount_path(dataset_id), "log")).split()
        assert [int(n) for n in lines[:acknowledged]] == list(range(1, acknowledged + 1))
    finally:
        one.process.send_signal(signal.SIGCONT)
    run_dir = os.path.join(cluster.base, "rbd", str(one.uuid))
    wait_until(lambda: fuse.RbdFuse(cluster.settings, run_dir).local() == [], 60,
               "node1's fenced rbd-fuse to be cleaned up")
    wait_until(lambda: not os.path.ismount(one.mount_path(dataset_id)), 60, "node1 unmounted")
    wait_until(lambda: _unfenced(cluster, one), 60, "node1 unfenced")
    purge(cluster, dataset_id)


def _unfenced(cluster: RbdCluster, node: AgentProcess) -> bool:
    """Try to lift the node's fence; whether it is lifted."""
    status, _, _ = http_json("DELETE", f"{cluster.url}/v1/shoal/nodes/{node.uuid}/fence")
    return status == 200
