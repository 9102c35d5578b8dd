"""The plugin protocol over HTTP, with StubTreq against the Klein resource."""

from __future__ import annotations

import json
from typing import Any

import pytest
from treq.testing import StubTreq

from plugin.api import PluginAPI
from plugin.testing import mount_path

from .harness import NODE1, Cluster, make_cluster, result

URL = "http://plugin"
DOCKER = {"Accept": "application/vnd.docker.plugins.v1.2+json"}


@pytest.fixture
def cluster() -> Cluster:
    """Two nodes with a plugin service each."""
    return make_cluster()


@pytest.fixture
def stub(cluster: Cluster) -> StubTreq:
    """An in-memory HTTP client of node1's plugin."""
    return StubTreq(PluginAPI(cluster.services[NODE1]).resource())


def call(
    stub: StubTreq, method: str, body: Any = None, raw: bytes | None = None, **headers: str
) -> tuple[int, dict[str, Any]]:
    """POST to ``/<method>``; return the status and the decoded answer."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    response = result(stub.post(f"{URL}/{method}", data=data, headers=headers or None))
    assert response.headers.getRawHeaders("Content-Type") == [
        "application/vnd.docker.plugins.v1+json"
    ]
    return response.code, json.loads(result(response.content()))


def test_activate_announces_a_volume_driver(stub: StubTreq) -> None:
    """Activate answers the driver type, with no body and no headers."""
    assert call(stub, "Plugin.Activate") == (200, {"Implements": ["VolumeDriver"]})


def test_capabilities_are_global(stub: StubTreq) -> None:
    """Volumes are cluster-wide."""
    assert call(stub, "VolumeDriver.Capabilities", {}, **DOCKER) == (
        200,
        {"Capabilities": {"Scope": "global"}},
    )


def test_docker_volume_create_sequence(stub: StubTreq, cluster: Cluster) -> None:
    """Get fails for a new name, Create succeeds, then List and Get show the volume."""
    code, body = call(stub, "VolumeDriver.Get", {"Name": "data"}, **DOCKER)
    assert code == 500 and "no such volume" in body["Err"]
    create = {"Name": "data", "Opts": {"size": "1G"}}
    assert call(stub, "VolumeDriver.Create", create, **DOCKER) == (200, {"Err": ""})
    assert call(stub, "VolumeDriver.List", {}, **DOCKER) == (
        200,
        {"Volumes": [{"Name": "data", "Mountpoint": ""}], "Err": ""},
    )
    code, body = call(stub, "VolumeDriver.Get", {"Name": "data"})
    assert code == 200 and body["Volume"]["Status"]["size"] == "1G"


def test_errors_are_500_with_err(stub: StubTreq) -> None:
    """A refusal is HTTP 500 with a clear Err, which Docker and Podman both read."""
    code, body = call(stub, "VolumeDriver.Create", {"Name": "data", "Opts": {"color": "red"}})
    assert code == 500
    assert "Unknown volume option(s) 'color'" in body["Err"] and "size:" in body["Err"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"{not json", "not JSON"), (b"[1]", "JSON object"), (b"{}", "no volume Name")],
)
def test_malformed_requests(stub: StubTreq, raw: bytes, message: str) -> None:
    """Bodies that are not a JSON object with a Name are refused with Err."""
    code, body = call(stub, "VolumeDriver.Get", raw=raw)
    assert code == 500 and message in body["Err"]


@pytest.mark.parametrize(
    ("method", "raw", "message"),
    [
        ("VolumeDriver.Get", b"[" * 50_000, "not JSON"),
        ("VolumeDriver.Get", b'{"Name": 5}', "Name must be a string"),
        ("VolumeDriver.Mount", b'{"Name": "vol", "ID": ["c1"]}', "ID must be a string"),
        ("VolumeDriver.Unmount", b'{"Name": "vol", "ID": 7}', "ID must be a string"),
    ],
)
def test_wrongly_typed_requests(
    stub: StubTreq, cluster: Cluster, method: str, raw: bytes, message: str
) -> None:
    """Too deep JSON and wrongly typed fields get a clear Err, not an internal error."""
    code, body = call(stub, method, raw=raw)
    assert code == 500 and message in body["Err"] and "Internal" not in body["Err"]
    assert cluster.services[NODE1].table.count("vol") == 0


def test_list_with_an_empty_body(stub: StubTreq) -> None:
    """An empty body (as Podman sends for List) is an empty request."""
    assert call(stub, "VolumeDriver.List") == (200, {"Volumes": [], "Err": ""})


def test_invalid_name_is_refused(stub: StubTreq) -> None:
    """A path-like name never reaches the control service."""
    code, body = call(stub, "VolumeDriver.Create", {"Name": "../../etc"})
    assert code == 500 and "Invalid volume name" in body["Err"]


def test_mount_unmount_and_path(stub: StubTreq, cluster: Cluster) -> None:
    """Mount answers the agent's mount path; Path agrees; Unmount releases the lease."""
    call(stub, "VolumeDriver.Create", {"Name": "data"})
    dataset = cluster.datasets()[0]
    cluster.converge(NODE1)
    here = mount_path("/mnt/node1", dataset.dataset_id)
    mount = {"Name": "data", "ID": "c1"}
    assert call(stub, "VolumeDriver.Mount", mount) == (200, {"Mountpoint": here, "Err": ""})
    assert call(stub, "VolumeDriver.Path", {"Name": "data"}) == (
        200,
        {"Mountpoint": here, "Err": ""},
    )
    assert cluster.lease_holder(dataset.dataset_id) == NODE1
    assert call(stub, "VolumeDriver.Unmount", mount) == (200, {"Err": ""})
    assert cluster.lease_holder(dataset.dataset_id) is None


def test_remove(stub: StubTreq, cluster: Cluster) -> None:
    """Remove deletes the volume; a second Remove says there is no such volume."""
    call(stub, "VolumeDriver.Create", {"Name": "data"})
    assert call(stub, "VolumeDriver.Remove", {"Name": "data"}) == (200, {"Err": ""})
    code, body = call(stub, "VolumeDriver.Remove", {"Name": "data"})
    assert code == 500 and "no such volume" in body["Err"]


def test_unknown_endpoint_is_a_json_404(stub: StubTreq) -> None:
    """An endpoint the plugin does not have is answered 404 with a JSON Err, not HTML."""
    code, answer = call(stub, "VolumeDriver.Frobnicate", {"Name": "x"})
    assert code == 404 and "no endpoint /VolumeDriver.Frobnicate" in answer["Err"]


def test_wrong_method_is_a_json_405_with_allow(stub: StubTreq) -> None:
    """A GET of an endpoint is answered 405 with Allow: POST and a JSON Err."""
    response = result(stub.get(f"{URL}/Plugin.Activate"))
    assert response.code == 405
    assert response.headers.getRawHeaders("Allow") == ["POST"]
    assert response.headers.getRawHeaders("Content-Type") == [
        "application/vnd.docker.plugins.v1+json"
    ]
    assert "use POST" in json.loads(result(response.content()))["Err"]
