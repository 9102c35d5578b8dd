"""
The operator's controls through the real CLI, and the plugin's leases released by a fence.

`shoal node fence`, `unfence`, `drain` and `list` against a real control
service and real agents on loop devices; the plugin test drives two real
`shoal plugin serve` processes over their sockets, as Docker would.
"""

from __future__ import annotations

import os
import tempfile
import time

import pytest

from tests.agent.functional.cluster import read_marker, write_marker
from tests.failover.harness import FailoverCluster, wait_for
from tests.plugin.runtimes import PluginProcess

pytestmark = [pytest.mark.functional, pytest.mark.root]


def by_uuid(nodes: list[dict], uuid: object) -> dict:
    """The entry of ``shoal node list --json`` for one node."""
    return next(n for n in nodes if n["uuid"] == str(uuid))


def test_fence_and_unfence_through_the_cli(cluster: FailoverCluster) -> None:
    """A fence by hand moves the data at once and stays until lifted; unfence waits for cleanup."""
    one, two = cluster.agents["node1"], cluster.agents["node2"]
    dataset_id = cluster.create(one)
    cluster.wait_mounted(dataset_id, one)
    data = os.urandom(4096)
    write_marker(os.path.join(one.mount_path(dataset_id), "marker"), data)

    cluster.pause(one)  # node1 still reports the dataset mounted until it runs again
    fenced = cluster.cli_json("node", "fence", "node1", "--reason", "disk under repair")
    assert fenced["fence"]["reason"] == "disk under repair"
    assert fenced["fence"]["automatic"] is False
    wait_for(lambda: cluster.primary(dataset_id) == str(two.uuid), 30, "the move to node2")
    refused = cluster.cli("node", "unfence", "node1", expect=1)
    assert "still reports" in refused.stderr
    assert cluster.fenced(one)

    cluster.resume(one)
    cluster.wait_mounted(dataset_id, two)
    assert read_marker(os.path.join(two.mount_path(dataset_id), "marker")) == data
    moved_at = time.time()
    wait_for(lambda: cluster.node(one)["last_seen"] > moved_at + 1, 30, "node1 to report again")
    assert cluster.fenced(one), "a fence by hand is never lifted automatically"
    cluster.api("POST", "/v1/configuration/datasets",
                {"primary": str(one.uuid), "maximum_size": 64 * 1024 * 1024}, 409)

    lifted = cluster.cli_json("node", "unfence", "node1")
    assert lifted["fence"] is None
    listed = by_uuid(cluster.cli_json("node", "list"), one.uuid)
    assert listed["fence"] is None and listed["draining"] is False
    kinds = [e["kind"] for e in cluster.events(node=one.uuid)]
    assert "node_fenced" in kinds and "node_unfenced" in kinds
    moved = cluster.events("failed_over", dataset=dataset_id)
    assert [(e["details"]["from"], e["details"]["to"]) for e in moved] == [
        (str(one.uuid), str(two.uuid))
    ]
    assert cluster.failover(dataset_id)["epoch"] == 1


def test_drain_through_the_cli(cluster: FailoverCluster) -> None:
    """A drain moves every unleased dataset; a leased one once its lease goes; --undo stops."""
    one, two = cluster.agents["node1"], cluster.agents["node2"]
    free = [cluster.create(one) for _ in range(2)]
    leased = cluster.create(one)
    for dataset_id in (*free, leased):
        cluster.wait_mounted(dataset_id, one)
    cluster.api("POST", "/v1/configuration/leases",
                {"dataset_id": str(leased), "node_uuid": str(one.uuid), "expires": None}, 201)

    draining = cluster.cli_json("node", "drain", "node1")
    assert draining["draining"] is True
    for dataset_id in free:
        cluster.wait_mounted(dataset_id, two)
    assert cluster.primary(leased) == str(one.uuid)
    assert cluster.mounted_on(leased, one)
    assert by_uuid(cluster.cli_json("node", "list"), one.uuid)["draining"] is True

    cluster.api("DELETE", f"/v1/configuration/leases/{leased}")
    cluster.wait_mounted(leased, two)
    moves = [e for d in (*free, leased) for e in cluster.events("moved", dataset=d)]
    assert len(moves) == 3
    assert {e["actor"] for e in moves} == {"failover"}

    stopped = cluster.cli_json("node", "drain", "node1", "--undo")
    assert stopped["draining"] is False
    created = cluster.create(one)
    cluster.wait_mounted(created, one)


def test_fence_releases_the_plugins_lease(cluster: FailoverCluster) -> None:
    """The lease node1's plugin took goes with the fence, and node2's plugin gets the data."""
    one, two = cluster.agents["node1"], cluster.agents["node2"]
    plugins = {}
    with tempfile.TemporaryDirectory(prefix="shoal-plugins-") as sockets:
        try:
            for agent in (one, two):
                plugins[agent.name] = PluginProcess(
                    os.path.join(sockets, f"{agent.name}.sock"), cluster.url, agent.state_dir,
                    os.path.join(cluster.base, f"{agent.name}-plugin"),
                    os.path.join(cluster.base, f"{agent.name}-plugin.log"),
                    extra=("--mount-timeout", "30"),
                ).start()
            first, second = plugins["node1"], plugins["node2"]
            assert first.call("VolumeDriver.Create", {"Name": "shared", "Opts": {"size": "64M"}}) \
                == (200, {"Err": ""})
            status, mounted = first.call("VolumeDriver.Mount", {"Name": "shared", "ID": "c1"})
            assert status == 200 and mounted["Err"] == "", mounted
            data = os.urandom(4096)
            write_marker(os.path.join(mounted["Mountpoint"], "marker"), data)
            dataset_id = next(iter(cluster.leases()))
            assert cluster.leases()[dataset_id]["node_uuid"] == str(one.uuid)

            cluster.cli("node", "fence", "node1", "--reason", "kernel panic")
            wait_for(lambda: dataset_id not in cluster.leases(), 30, "the lease released")
            released = cluster.events("lease_released", dataset=dataset_id)
            assert [e["actor"] for e in released] == ["failover"]
            status, there = second.call("VolumeDriver.Mount", {"Name": "shared", "ID": "c2"})
            assert status == 200 and there["Err"] == "", there
            assert there["Mountpoint"] == two.mount_path(dataset_id)
            assert read_marker(os.path.join(there["Mountpoint"], "marker")) == data
            assert cluster.leases()[dataset_id]["node_uuid"] == str(two.uuid)
        finally:
            for plugin in plugins.values():
                plugin.stop()
