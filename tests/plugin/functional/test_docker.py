"""The plugin process under a real Docker engine, with stand-in agents."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.plugin.diragent import DirectoryAgent
from tests.plugin.runtimes import IMAGE, DockerDaemon, PluginProcess
from tests.processes import ControlProcess, http_json

pytestmark = [pytest.mark.functional, pytest.mark.root, pytest.mark.docker]


def datasets(control: ControlProcess) -> list[dict[str, Any]]:
    """The live datasets in the configuration."""
    _, _, body = http_json("GET", control.url + "/v1/configuration/datasets")
    return [d for d in body if not d["deleted"]]


DIRECTORIES = ("--test-directory-mounts",)
"""The stand-in agent mounts plain directories, which the plugin refuses unless told."""


def leases(control: ControlProcess) -> list[dict[str, Any]]:
    """The live leases."""
    return http_json("GET", control.url + "/v1/configuration/leases")[2]


@pytest.fixture
def node1(
    dir_agents: Callable[[str], DirectoryAgent],
    plugins: Callable[..., PluginProcess],
    docker_plugin_socket: tuple[str, str],
    dockerd: DockerDaemon,
) -> tuple[str, DirectoryAgent, PluginProcess, DockerDaemon]:
    """Node1: a stand-in agent, its plugin where Docker finds it, and the engine."""
    name, socket = docker_plugin_socket
    agent = dir_agents("node1")
    return name, agent, plugins("node1", socket=socket, extra=DIRECTORIES), dockerd


def test_volume_lifecycle(node1: Any, control: ControlProcess) -> None:
    """docker volume create/ls/inspect, a container writing and one reading, then rm."""
    driver, agent, plugin, docker = node1
    docker.docker("volume", "create", "-d", driver, "--opt", "size=128M", "vol1")
    listed = docker.docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}").stdout
    assert f"{driver} vol1" in listed.splitlines()
    inspected = json.loads(docker.docker("volume", "inspect", "vol1").stdout)[0]
    assert inspected["Status"]["size"] == "128M"
    (dataset,) = datasets(control)
    assert dataset["metadata"] == {"name": "vol1"}
    assert dataset["primary"] == str(agent.uuid)

    docker.docker("run", "--rm", "--network", "none", "-v", "vol1:/data", IMAGE,
                  "sh", "-c", "echo hello > /data/greeting")
    path = os.path.join(agent.mount_root, dataset["dataset_id"])
    with open(os.path.join(path, "greeting")) as f:
        assert f.read() == "hello\n"
    out = docker.docker("run", "--rm", "--network", "none", "-v", "vol1:/data", IMAGE,
                        "cat", "/data/greeting").stdout
    assert out == "hello\n"
    assert leases(control) == []

    docker.docker("volume", "rm", "vol1")
    assert datasets(control) == []
    assert "vol1" not in docker.docker("volume", "ls", "-q").stdout.split()


def test_unknown_option_is_refused_with_the_known_ones(node1: Any) -> None:
    """docker volume create with an unknown option fails and lists the known ones."""
    driver, _, _, docker = node1
    done = docker.docker("volume", "create", "-d", driver, "--opt", "color=red", "vol2",
                         check=False)
    assert done.returncode != 0
    assert "Unknown volume option(s) 'color'" in done.stderr and "size:" in done.stderr


def test_running_container_holds_the_volume(
    node1: Any,
    control: ControlProcess,
    dir_agents: Callable[[str], DirectoryAgent],
    plugins: Callable[..., PluginProcess],
) -> None:
    """While a container runs on node1, node2 can neither mount nor remove the volume."""
    driver, agent, plugin, docker = node1
    docker.docker("volume", "create", "-d", driver, "vol3")
    docker.docker("run", "-d", "--name", "holder", "--network", "none", "-v", "vol3:/data",
                  IMAGE, "sleep", "300")
    (dataset,) = datasets(control)
    assert [le["node_uuid"] for le in leases(control)] == [str(agent.uuid)]

    dir_agents("node2")
    other = plugins("node2", extra=DIRECTORIES)
    code, body = other.call("VolumeDriver.Mount", {"Name": "vol3", "ID": "x"})
    assert code == 500 and "in use on node node1" in body["Err"]
    code, body = other.call("VolumeDriver.Remove", {"Name": "vol3"})
    assert code == 500 and "node1" in body["Err"]
    assert datasets(control)[0]["primary"] == str(agent.uuid)

    plugin.stop()
    plugin.start()
    code, _ = other.call("VolumeDriver.Mount", {"Name": "vol3", "ID": "x"})
    assert code == 500, "a plugin restart must not drop the container's lease"

    docker.docker("rm", "-f", "holder")
    assert leases(control) == []
    code, body = other.call("VolumeDriver.Mount", {"Name": "vol3", "ID": "x"})
    assert code == 200 and body["Mountpoint"].endswith(dataset["dataset_id"])
