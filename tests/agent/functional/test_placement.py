"""
Placement on a real cluster: two labelled agents, one per zone, on loop devices.

A control service and agents node1 (zone a) and node2 (zone b) sharing one
loopback pool, and node3 (zone a) with only a ``local`` pool of its own: an
Immediate class places in its zone, a local volume is pinned to node3, a WaitForFirstConsumer
dataset waits unbound and is bound by ``shoal dataset attach``, a move out of
the class's zone is refused naming the term, and a Retain class keeps the
volume of a deleted dataset, which ``shoal dataset adopt`` brings back with
its data. A ReadOnlyMany dataset is read on node1 and node2 at once, read-only on
both, by ``shoal dataset attach`` and through each node's Docker plugin.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from control.model import UNBOUND
from control.topology import ZONE
from tests.agent.functional.cluster import (
    AgentProcess,
    LocalCluster,
    read_marker,
    write_marker,
)
from tests.agent.functional.conftest import _root_or_skip
from tests.plugin.runtimes import PluginProcess
from tests.processes import ROOT, http_json, wait_until

pytestmark = [pytest.mark.functional, pytest.mark.root]


@pytest.fixture(scope="module")
def zoned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """node1 in zone a, node2 in zone b on one shared pool (node2 also with a local pool of
    its own); node3 in zone a with only its own local pool; everything released after."""
    _root_or_skip()
    base = str(tmp_path_factory.mktemp("zoned"))
    local = LocalCluster(base, names=())
    try:
        local.start()
        for name, zone in (("node1", "a"), ("node2", "b")):
            extra = [*local.agent_args, "--label", f"{ZONE}={zone}"]
            if name == "node2":  # also a local pool of its own: two backends in one agent
                own = os.path.join(base, "node2-local")
                extra += ["--backend", "loopback", "--backend", f"local={own}"]
            local.agents[name] = AgentProcess(name, local.url, base, local.pool, extra).start()
        own = os.path.join(base, "node3-local")  # node3's own disk: the local backend
        extra = ["--label", f"{ZONE}=a", "--backend", "local", "--pool", own]
        local.agents["node3"] = AgentProcess("node3", local.url, base, own, extra).start()
        yield local
    finally:
        local.close()


def shoal(cluster: LocalCluster, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``shoal ARGS`` against the cluster."""
    done = subprocess.run(
        [sys.executable, "-m", "control.cli", "--url", cluster.url, *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def create(cluster: LocalCluster, *args: str) -> dict:
    """``shoal dataset create ARGS --json``: the dataset made."""
    return dict(json.loads(shoal(cluster, "dataset", "create", "--json", *args).stdout)["dataset"])


def test_immediate_class_places_in_its_zone_and_refuses_a_cross_zone_move(
    zoned: LocalCluster,
) -> None:
    """An Immediate zone-b class places on node2; a move to node1 (zone a) is refused."""
    one, two = zoned.agents["node1"], zoned.agents["node2"]
    shoal(zoned, "class", "create", "zone-b", "--size", "64M", "--topology", f"{ZONE}=b")
    made = create(zoned, "--class", "zone-b", "--meta", "name=placed")
    dataset = UUID(made["dataset_id"])
    assert made["primary"] == str(two.uuid)
    zoned.wait_mounted(dataset, two)
    status, _, answer = http_json(
        "POST", f"{zoned.url}/v1/configuration/datasets/{dataset}", {"primary": str(one.uuid)}
    )
    assert status == 409 and f"[{ZONE}=b] (it has {ZONE}=a)" in answer["description"]
    refused = shoal(zoned, "dataset", "move", "placed", "--to", "node1", ok=False)
    assert refused.returncode == 1 and f"{ZONE}=b" in refused.stderr
    assert zoned.mounted_on(dataset, two)


def test_wait_for_first_consumer_is_bound_by_attach(zoned: LocalCluster) -> None:
    """A WaitForFirstConsumer dataset is on no node until attach binds it to node1."""
    one = zoned.agents["node1"]
    shoal(zoned, "class", "create", "later", "--size", "64M", "--binding",
          "WaitForFirstConsumer")
    made = create(zoned, "--class", "later", "--meta", "name=waiting")
    dataset = UUID(made["dataset_id"])
    assert made["primary"] == str(UNBOUND)
    assert dataset not in zoned.state()
    assert not os.path.exists(zoned.volume_path(dataset))
    shoal(zoned, "dataset", "attach", "waiting", "--node", "node1", "--wait", "--timeout", "60")
    zoned.wait_mounted(dataset, one)


def test_retain_then_adopt_keeps_the_data(zoned: LocalCluster) -> None:
    """Deleting a Retain dataset keeps its volume; adopt mounts it again with the data."""
    one = zoned.agents["node1"]
    shoal(zoned, "class", "create", "keep", "--size", "64M", "--reclaim", "Retain",
          "--topology", f"{ZONE}=a", "--backend", "loopback")
    dataset = UUID(create(zoned, "--class", "keep", "--meta", "name=kept")["dataset_id"])
    zoned.wait_mounted(dataset, one)
    marker = os.path.join(one.mount_path(dataset), "marker")
    write_marker(marker, b"retained data")
    shoal(zoned, "dataset", "delete", "kept")
    wait_until(lambda: not os.path.ismount(one.mount_path(dataset)), 60,
               "the released volume to be unmounted", interval=0.2)
    assert os.path.exists(zoned.volume_path(dataset))
    released = json.loads(shoal(zoned, "dataset", "released", "--json").stdout)
    assert [d["dataset_id"] for d in released] == [str(dataset)]
    shoal(zoned, "dataset", "adopt", "kept", "--wait", "--timeout", "60")
    zoned.wait_mounted(dataset, one)
    assert read_marker(marker) == b"retained data"


def test_local_volume_is_pinned_to_its_node(zoned: LocalCluster) -> None:
    """A class on the local backend places on node3, the only node with one; no move."""
    three = zoned.agents["node3"]
    shoal(zoned, "class", "create", "pinned", "--size", "64M", "--backend", "local",
          "--topology", f"{ZONE}=a")
    made = create(zoned, "--class", "pinned", "--meta", "name=pinned")
    dataset = UUID(made["dataset_id"])
    assert made["primary"] == str(three.uuid)
    zoned.wait_mounted(dataset, three)
    refused = shoal(zoned, "dataset", "move", "pinned", "--to", "node1", ok=False)
    assert refused.returncode == 1 and "node-local backend 'local'" in refused.stderr
    nodes = json.loads(shoal(zoned, "node", "list", "--json").stdout)
    local = [n["capacity"] for n in nodes if n["uuid"] == str(three.uuid)]
    assert local[0]["backend"] == "local" and local[0]["shared"] is False
    assert zoned.mounted_on(dataset, three)


def test_one_agent_offers_a_shared_and_a_local_backend(zoned: LocalCluster) -> None:
    """node2 runs loopback and local: it reports both; a zone-b local class puts the volume in
    node2's own pool, a zone-b loopback class in the shared pool; the local one is pinned."""
    two = zoned.agents["node2"]
    nodes = json.loads(shoal(zoned, "node", "list", "--json").stdout)
    (mine,) = [n for n in nodes if n["uuid"] == str(two.uuid)]
    assert [(c["backend"], c["shared"]) for c in mine["capacities"]] == [
        ("loopback", True), ("local", False)
    ]
    listed = shoal(zoned, "node", "list").stdout
    assert "loopback" in listed and "node-local" in listed
    for name, backend in (("b-local", "local"), ("b-shared", "loopback")):
        shoal(zoned, "class", "create", name, "--size", "64M", "--backend", backend,
              "--topology", f"{ZONE}=b")
    own = UUID(create(zoned, "--class", "b-local", "--meta", "name=own")["dataset_id"])
    shared = UUID(create(zoned, "--class", "b-shared", "--meta", "name=common")["dataset_id"])
    for dataset in (own, shared):
        zoned.wait_mounted(dataset, two)
    own_pool = os.path.join(zoned.base, "node2-local")
    assert any(str(own) in files for _, _, files in os.walk(own_pool))
    assert not os.path.exists(zoned.volume_path(own))
    assert os.path.exists(zoned.volume_path(shared))
    refused = shoal(zoned, "dataset", "move", "own", "--to", "node1", ok=False)
    assert refused.returncode == 1 and "node-local backend 'local'" in refused.stderr


def _mount_options(path: str) -> list[str]:
    """The options of the mount at ``path`` (``/proc/self/mountinfo``)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ")
            if fields[4] == path:
                return fields[5].split(",")
    return []


def _read_only_on(agent: AgentProcess, dataset: UUID, data: bytes) -> None:
    """The dataset is mounted read-only on ``agent``: it reads ``data``; a write is EROFS."""
    path = agent.mount_path(dataset)
    wait_until(lambda: os.path.ismount(path), 60, f"{dataset} mounted on {agent.name}",
               interval=0.2)
    assert "ro" in _mount_options(path)
    assert read_marker(os.path.join(path, "marker")) == data
    with pytest.raises(OSError) as refused:
        write_marker(os.path.join(path, "written"), b"never")
    assert refused.value.errno == errno.EROFS


def test_read_only_many_is_read_only_on_both_nodes(zoned: LocalCluster) -> None:
    """A ReadOnlyMany dataset restored from a snapshot is mounted read-only on node1 (its
    primary) and node2 (a reader), with the data; writes fail on both; node2 lets go."""
    one, two = zoned.agents["node1"], zoned.agents["node2"]
    source = UUID(create(zoned, "--node", "node1", "--size", "64M",
                         "--meta", "name=filled")["dataset_id"])
    zoned.wait_mounted(source, one)
    write_marker(os.path.join(one.mount_path(source), "marker"), b"shared data")
    shoal(zoned, "snapshot", "create", "filled", "--name", "filled-1", "--wait")
    shoal(zoned, "class", "create", "readonly", "--access-mode", "ROX", "--backend", "loopback")
    made = create(zoned, "--class", "readonly", "--node", "node1", "--from-snapshot", "filled-1",
                  "--meta", "name=shared")
    dataset = UUID(made["dataset_id"])
    _read_only_on(one, dataset, b"shared data")
    shoal(zoned, "dataset", "attach", "shared", "--node", "node2", "--wait", "--timeout", "60")
    _read_only_on(two, dataset, b"shared data")
    _read_only_on(one, dataset, b"shared data")
    refused = shoal(zoned, "dataset", "attach", "filled", "--node", "node2", ok=False)
    assert "only a ReadOnlyMany dataset" in refused.stderr
    shoal(zoned, "dataset", "detach", "shared", "--node", "node2")
    wait_until(lambda: not os.path.ismount(two.mount_path(dataset)), 60,
               "node2 to let go of its read-only mount", interval=0.2)
    assert os.path.ismount(one.mount_path(dataset))


def test_read_only_many_through_the_plugin(zoned: LocalCluster, tmp_path: Path) -> None:
    """Through each node's Docker plugin: a ROX volume restored from a snapshot is mounted by
    a container on node1 and one on node2 at once, read-only on both; node2's Unmount lets go."""
    one, two = zoned.agents["node1"], zoned.agents["node2"]
    source = UUID(create(zoned, "--node", "node1", "--size", "64M",
                         "--meta", "name=published")["dataset_id"])
    zoned.wait_mounted(source, one)
    write_marker(os.path.join(one.mount_path(source), "marker"), b"for every node")
    shoal(zoned, "snapshot", "create", "published", "--name", "published-1", "--wait")
    shoal(zoned, "class", "create", "ro-plugin", "--access-mode", "ROX")
    plugins = {
        agent.name: PluginProcess(
            str(tmp_path / f"{agent.name}.sock"), zoned.url, agent.state_dir,
            str(tmp_path / f"{agent.name}-plugin"), str(tmp_path / f"{agent.name}-plugin.log"),
            extra=("--mount-timeout", "60"),
        )
        for agent in (one, two)
    }
    try:
        for plugin in plugins.values():
            plugin.start()
        opts = {"class": "ro-plugin", "from-snapshot": "published-1"}
        made = plugins["node1"].call("VolumeDriver.Create", {"Name": "reports", "Opts": opts})
        assert made == (200, {"Err": ""})
        for name, agent in (("node1", one), ("node2", two)):
            status, answer = plugins[name].call(
                "VolumeDriver.Mount", {"Name": "reports", "ID": f"c-{name}"}
            )
            assert status == 200 and answer["Err"] == "", answer
            dataset = UUID(os.path.basename(answer["Mountpoint"]))
            assert answer["Mountpoint"] == agent.mount_path(dataset)
            _read_only_on(agent, dataset, b"for every node")
        _read_only_on(one, dataset, b"for every node")
        status, answer = plugins["node2"].call(
            "VolumeDriver.Unmount", {"Name": "reports", "ID": "c-node2"}
        )
        assert status == 200 and answer["Err"] == "", answer
        wait_until(lambda: not os.path.ismount(two.mount_path(dataset)), 60,
                   "node2 to let go once its last container is gone", interval=0.2)
        assert os.path.ismount(one.mount_path(dataset))
    finally:
        for plugin in plugins.values():
            plugin.stop()


def test_a_new_empty_read_only_many_dataset_is_formatted_once_then_read_only(
    zoned: LocalCluster,
) -> None:
    """An empty ReadOnlyMany dataset: node1 (its primary) formats it read-write while no node
    reads it, then mounts it read-only; node2 then reads it too."""
    one, two = zoned.agents["node1"], zoned.agents["node2"]
    shoal(zoned, "class", "create", "ro-empty", "--access-mode", "ROX", "--backend", "loopback",
          "--size", "64M")
    made = create(zoned, "--class", "ro-empty", "--node", "node1", "--meta", "name=blank")
    dataset = UUID(made["dataset_id"])
    path = one.mount_path(dataset)
    wait_until(lambda: os.path.ismount(path), 60, "the empty dataset mounted", interval=0.2)
    assert "ro" in _mount_options(path) and "lost+found" in os.listdir(path)
    shoal(zoned, "dataset", "attach", "blank", "--node", "node2", "--wait", "--timeout", "60")
    assert "ro" in _mount_options(two.mount_path(dataset))
