"""The plugin hands out only paths its own node vouches for, whatever the reports claim."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
from attrs import evolve
from treq.testing import StubTreq
from twisted.internet.defer import Deferred

from control.client.http import HTTPClient
from control.client.interface import StateDataset
from control.model import DatasetState, NodeState, VolumeStatus
from plugin.api import PluginAPI
from plugin.hostmounts import (
    MountEntry,
    UntrustedMount,
    check_mounted,
    check_reported_path,
    parse_mountinfo,
)
from plugin.testing import mount_path

from .harness import NODE1, Cluster, make_cluster, result, start

URL = "http://plugin"


class ForgingClient(HTTPClient):
    """A client whose state listing says what ``forged`` says (a lying control service)."""

    forged: dict[UUID, str] = {}

    def list_state_datasets(self, node: UUID | None = None) -> Deferred[list[StateDataset]]:
        """The real listing, with the forged paths put on node1."""

        def forge(states: list[StateDataset]) -> list[StateDataset]:
            by_id = {s.dataset_id: s for s in states}
            for dataset_id, path in self.forged.items():
                base = by_id.get(dataset_id, StateDataset(dataset_id))
                by_id[dataset_id] = evolve(base, primary=NODE1, path=path)
            return list(by_id.values())

        return super().list_state_datasets(node).addCallback(forge)


@pytest.fixture
def cluster() -> Cluster:
    """Two nodes over a client that may lie about node1's mounts."""
    cluster = make_cluster(ForgingClient)
    assert isinstance(cluster.client, ForgingClient)
    cluster.client.forged = {}
    return cluster


def _call(cluster: Cluster, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    stub = StubTreq(PluginAPI(cluster.services[NODE1]).resource())
    response = result(stub.post(f"{URL}/{method}", data=json.dumps(body).encode()))
    return response.code, json.loads(result(response.content()))


def _volume(cluster: Cluster, name: str = "vol") -> UUID:
    result(cluster.services[NODE1].create(name, {}))
    return next(d.dataset_id for d in cluster.datasets() if d.metadata.get("name") == name)


def test_forged_etc_refused_by_path_and_mount(cluster: Cluster) -> None:
    """A report of ``/etc`` is refused by Path and Mount, and Get shows nothing mounted."""
    dataset_id = _volume(cluster)
    assert isinstance(cluster.client, ForgingClient)
    cluster.client.forged = {dataset_id: "/etc"}
    code, body = _call(cluster, "VolumeDriver.Path", {"Name": "vol"})
    assert code == 500 and "Refusing the mount path '/etc'" in body["Err"]
    assert "Mountpoint" not in body
    code, body = _call(cluster, "VolumeDriver.Mount", {"Name": "vol", "ID": "c1"})
    assert code == 500 and "'/etc'" in body["Err"] and "Mountpoint" not in body
    assert cluster.services[NODE1].table.count("vol") == 0
    code, body = _call(cluster, "VolumeDriver.Get", {"Name": "vol"})
    assert code == 200 and body["Volume"]["Mountpoint"] == ""


def test_another_datasets_path_refused(cluster: Cluster) -> None:
    """A real report (accepted by the control service) of another dataset's path is refused."""
    mine, other = _volume(cluster, "mine"), _volume(cluster, "other")
    cluster.converge(NODE1)
    stolen = mount_path(cluster.agents[NODE1].mount_root, other)
    configuration = result(cluster.client.node_configuration(NODE1))
    forged = NodeState(
        node_uuid=NODE1,
        generation=configuration.generation,
        datasets={mine: DatasetState(mine, VolumeStatus.MOUNTED, path=stolen)},
    )
    result(cluster.client.report_state(forged))
    code, body = _call(cluster, "VolumeDriver.Path", {"Name": "mine"})
    assert code == 500 and f"mounts it at '{mount_path('/mnt/node1', mine)}'" in body["Err"]
    code, body = _call(cluster, "VolumeDriver.Path", {"Name": "other"})
    assert (code, body) == (200, {"Mountpoint": "", "Err": ""})


def test_reported_but_not_mounted_refused(cluster: Cluster) -> None:
    """The right path is refused when the kernel has nothing mounted there."""
    dataset_id = _volume(cluster)
    cluster.converge(NODE1)
    cluster.agents[NODE1].kernel_mounts = []
    code, body = _call(cluster, "VolumeDriver.Path", {"Name": "vol"})
    assert code == 500 and "nothing is mounted there" in body["Err"]
    cluster.agents[NODE1].kernel_mounts = [
        MountEntry(mount_path("/mnt/node1", dataset_id), "tmpfs", "tmpfs")
    ]
    code, body = _call(cluster, "VolumeDriver.Path", {"Name": "vol"})
    assert code == 500 and "not of a block device" in body["Err"]


def test_genuine_mount_is_answered(cluster: Cluster) -> None:
    """The agent's own block-device mount at ``<root>/<id>`` passes every check."""
    dataset_id = _volume(cluster)
    d = start(cluster.services[NODE1].mount("vol", "c1"))
    cluster.converge(NODE1)
    assert result(d) == mount_path("/mnt/node1", dataset_id)
    code, body = _call(cluster, "VolumeDriver.Path", {"Name": "vol"})
    assert (code, body["Mountpoint"]) == (200, mount_path("/mnt/node1", dataset_id))


D = UUID("dddddddd-0000-4000-8000-000000000001")


@pytest.mark.parametrize(
    "path",
    ["/etc", f"/mnt/node1/../../etc/{D}", f"/mnt/node1/x/../{D}", f"/mnt/node1/{D}/", "/mnt/node1"],
)
def test_check_reported_path_refuses(path: str) -> None:
    """Anything but exactly ``<root>/<dataset id>`` is refused."""
    with pytest.raises(UntrustedMount):
        check_reported_path("/mnt/node1", D, path)
    assert check_reported_path("/mnt/node1", D, f"/mnt/node1/{D}") == f"/mnt/node1/{D}"


def test_check_mounted_uses_the_topmost_mount() -> None:
    """A later mount over the same path decides, and a given device must match."""
    path = f"/mnt/node1/{D}"
    is_block = str.startswith
    entries = [MountEntry(path, "/dev/loop3", "ext4")]
    check_mounted(path, entries, lambda s: is_block(s, "/dev/"), "/dev/loop3")
    with pytest.raises(UntrustedMount, match="not of the volume's device"):
        check_mounted(path, entries, lambda s: is_block(s, "/dev/"), "/dev/loop4")
    covered = [*entries, MountEntry(path, "/etc", "none")]
    with pytest.raises(UntrustedMount, match="not of a block device"):
        check_mounted(path, covered, lambda s: is_block(s, "/dev/"))


def test_parse_mountinfo_reads_every_mount() -> None:
    """Every line is read, octal escapes decoded, with source and type."""
    text = (
        "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - ext4 /dev/loop1 rw\n"
        "37 35 0:5 / /run rw shared:2 - tmpfs tmpfs rw\n"
        "garbage\n"
    )
    assert parse_mountinfo(text) == [
        MountEntry("/mnt/a b", "/dev/loop1", "ext4"),
        MountEntry("/run", "tmpfs", "tmpfs"),
    ]


def test_real_guard_refuses_symlink_and_plain_directory(tmp_path) -> None:
    """Against this machine's mount table: a symlink to /etc and a bare directory are refused."""
    from plugin.hostmounts import MountGuard

    root = str(tmp_path)
    guard = MountGuard(lambda: root)
    (tmp_path / str(D)).symlink_to("/etc")
    with pytest.raises(UntrustedMount, match="symbolic link"):
        guard.verify(D, f"{root}/{D}")
    other = UUID("eeeeeeee-0000-4000-8000-000000000001")
    (tmp_path / str(other)).mkdir()
    with pytest.raises(UntrustedMount, match="nothing is mounted there"):
        guard.verify(other, f"{root}/{other}")
    assert guard.trusted(other, f"{root}/{other}") and not guard.trusted(other, "/etc")
