"""A flapping node: silent past the suspect mark, back inside the grace, again and again."""

from __future__ import annotations

import os
import time

import pytest

from tests.agent.functional.cluster import read_marker, write_marker
from tests.failover.harness import FailoverCluster, wait_for

pytestmark = [pytest.mark.functional, pytest.mark.root]

FLAP_GRACE = 6.0
"""The flapping test's grace: room for silences past the suspect mark and well inside the grace."""


def test_flapping_node_never_fails_over(make_cluster) -> None:
    """A node silent past the suspect mark but back inside the grace, twice: no fence, no move.

    The silence may outlast the node lease (half the grace), so the agent may fence itself and
    mount the dataset again; the control service must not fence it or move its data.
    """
    cluster: FailoverCluster = make_cluster(grace=FLAP_GRACE)
    one = cluster.agents["node1"]
    dataset_id = cluster.create(one)
    cluster.wait_mounted(dataset_id, one)
    data = os.urandom(4096)
    write_marker(os.path.join(one.mount_path(dataset_id), "marker"), data)

    silence = 0.55 * FLAP_GRACE  # past two heartbeats (suspect), well inside the grace
    for flap in range(2):
        cluster.pause(one)
        time.sleep(silence)
        cluster.resume(one)
        wait_for(lambda: cluster.node(one)["liveness"] == "live", 30, f"node1 live, flap {flap}")
        wait_for(lambda n=flap + 1: len(cluster.events("node_live", node=one.uuid)) >= n, 30,
                 f"the node_live event of flap {flap}")

    kinds = [e["kind"] for e in cluster.events(node=one.uuid)]
    assert kinds.count("node_suspect") >= 2, kinds  # one per flap; a loaded machine may add one
    assert "node_dead" not in kinds and "node_fenced" not in kinds
    assert cluster.events("failed_over", dataset=dataset_id) == []
    assert cluster.failover(dataset_id)["epoch"] == 0
    assert not cluster.fenced(one)
    assert cluster.primary(dataset_id) == str(one.uuid)
    cluster.wait_mounted(dataset_id, one)
    assert read_marker(os.path.join(one.mount_path(dataset_id), "marker")) == data

