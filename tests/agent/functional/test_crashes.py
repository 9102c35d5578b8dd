"""
SIGKILL an agent right after each step of a create, a move and a delete.

The agent's test hook ``SHOAL_AGENT_KILL_AFTER_CHANGES=N`` kills it right
after its N-th leaf change; after a restart it must converge, and a marker
written before the operation must be intact. The module's mount checker
asserts throughout that no dataset is ever mounted on both nodes.
"""

from __future__ import annotations

import os
import signal
from uuid import UUID

import pytest

from tests.agent.functional.cluster import (
    AgentProcess,
    LocalCluster,
    read_marker,
    wait_until,
    write_marker,
)

KILLED = -signal.SIGKILL

pytestmark = [pytest.mark.functional, pytest.mark.root]



def mounted_with_marker(cluster: LocalCluster, agent: AgentProcess) -> tuple[UUID, bytes]:
    """A new dataset mounted on ``agent`` holding a random marker file."""
    dataset_id = cluster.create(agent)
    cluster.wait_mounted(dataset_id, agent)
    data = os.urandom(1024)
    write_marker(os.path.join(agent.mount_path(dataset_id), "marker"), data)
    return dataset_id, data


def marker_on(agent: AgentProcess, dataset_id: UUID) -> bytes:
    """The marker file of a dataset mounted on ``agent``."""
    return read_marker(os.path.join(agent.mount_path(dataset_id), "marker"))


def armed(agent: AgentProcess, step: int) -> None:
    """Restart ``agent`` so that it kills itself right after its ``step``-th change."""
    assert agent.stop() == 0
    agent.start(kill_after_changes=step)


def purge(cluster: LocalCluster, *datasets: UUID) -> None:
    """Delete the datasets and wait until they are gone."""
    for dataset_id in datasets:
        cluster.delete(dataset_id)
    for dataset_id in datasets:
        wait_until(lambda d=dataset_id: cluster.gone(d), 30, f"{dataset_id} to be purged")


# The attach's pass also tries to mount (MountAttached: a new volume has no filesystem yet, so
# it does nothing, and the next pass formats and mounts it).
@pytest.mark.parametrize(
    "step", [1, 2, 3, 4, 5], ids=["create", "attach", "mount-attached", "mkfs", "mount"]
)
def test_create_survives_sigkill_after_each_step(cluster: LocalCluster, nodes, step):
    """Killed after any step of a create, the restarted agent mounts it, formatted once."""
    one, _ = nodes
    bystander, data = mounted_with_marker(cluster, one)
    armed(one, step)
    dataset_id = cluster.create(one)
    assert one.wait_exit(30) == KILLED
    one.start()
    cluster.wait_mounted(dataset_id, one)
    # Formatted exactly once: the kill after mkfs (step 4) comes before its log line.
    assert one.changes_done("MakeFilesystem", dataset_id) == (0 if step == 4 else 1)
    assert marker_on(one, bystander) == data
    purge(cluster, dataset_id, bystander)


@pytest.mark.parametrize(
    "who,step",
    [("old", 1), ("old", 2), ("new", 1), ("new", 2)],
    ids=["old-unmount", "old-detach", "new-attach", "new-mount"],
)
def test_move_survives_sigkill_after_each_step(cluster: LocalCluster, nodes, who, step):
    """Killing either side after any step of a move still ends mounted on the new node, intact."""
    one, two = nodes
    dataset_id, data = mounted_with_marker(cluster, one)
    victim = one if who == "old" else two
    armed(victim, step)
    cluster.move(dataset_id, two)
    assert victim.wait_exit(30) == KILLED
    victim.start()
    cluster.wait_mounted(dataset_id, two)
    assert marker_on(two, dataset_id) == data
    assert not os.path.ismount(one.mount_path(dataset_id))
    purge(cluster, dataset_id)


@pytest.mark.parametrize("step", [1, 2, 3], ids=["unmount", "detach", "destroy"])
def test_delete_survives_sigkill_after_each_step(cluster: LocalCluster, nodes, step):
    """Killed after any step of a delete, the volume ends destroyed and nothing else is harmed."""
    one, two = nodes
    kept, kept_data = mounted_with_marker(cluster, one)
    elsewhere, elsewhere_data = mounted_with_marker(cluster, two)
    doomed, _ = mounted_with_marker(cluster, one)
    armed(one, step)
    cluster.delete(doomed)
    assert one.wait_exit(30) == KILLED
    one.start()
    wait_until(lambda: cluster.gone(doomed), 30, f"{doomed} to be purged")
    assert cluster.mounted_on(kept, one) and marker_on(one, kept) == kept_data
    assert cluster.mounted_on(elsewhere, two) and marker_on(two, elsewhere) == elsewhere_data
    purge(cluster, kept, elsewhere)
