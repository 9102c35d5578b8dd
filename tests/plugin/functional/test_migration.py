"""End to end: a volume follows its container from a Docker node to a Podman node."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.plugin.runtimes import IMAGE, DockerDaemon, PluginProcess, Podman, unique_plugin_name

from .conftest import podman_engine

pytestmark = [pytest.mark.functional, pytest.mark.root, pytest.mark.docker]


def mounted_roots(dataset_mount_roots: list[str]) -> list[str]:
    """Which of the given mount roots have something mounted below them."""
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return [
        root for root in dataset_mount_roots
        if any(p.startswith(os.path.realpath(root) + "/") for p in points)
    ]


@pytest.fixture
def podman2(workdir: str) -> Iterator[tuple[str, str, Podman]]:
    """Podman for node2, with its plugin socket named in its own containers.conf."""
    name = unique_plugin_name()
    socket = os.path.join(workdir, "node2", "plugin.sock")
    os.makedirs(os.path.dirname(socket), exist_ok=True)
    for engine in podman_engine(workdir, name, socket):
        yield name, socket, engine


def test_volume_follows_its_container(
    real_agents: Callable[[str], Any],
    plugins: Callable[..., PluginProcess],
    docker_plugin_socket: tuple[str, str],
    dockerd: DockerDaemon,
    podman2: tuple[str, str, Podman],
) -> None:
    """node1 (Docker) writes, node2 (Podman) reads the same data; never mounted on both."""
    driver1, socket1 = docker_plugin_socket
    driver2, socket2, podman = podman2
    agent1, agent2 = real_agents("node1"), real_agents("node2")
    plugins("node1", socket=socket1)
    plugins("node2", socket=socket2)
    roots = [agent1.mount_root, agent2.mount_root]

    dockerd.docker("volume", "create", "-d", driver1, "--opt", "size=64M", "shared")
    dockerd.docker("run", "--rm", "--network", "none", "-v", "shared:/data", IMAGE,
                   "sh", "-c", "echo from-node1 > /data/note")
    assert mounted_roots(roots) == [agent1.mount_root]

    podman.podman("volume", "create", "--driver", driver2, "shared")
    out = podman.podman("run", "--rm", "--network", "none", "-v", "shared:/data", IMAGE,
                        "cat", "/data/note").stdout
    assert out == "from-node1\n"
    assert mounted_roots(roots) == [agent2.mount_root]

    dockerd.docker("run", "-d", "--name", "holder", "--network", "none",
                   "-v", "shared:/data", IMAGE, "sleep", "300")
    assert mounted_roots(roots) == [agent1.mount_root]
    refused = podman.podman("run", "--rm", "--network", "none", "-v", "shared:/data", IMAGE,
                            "cat", "/data/note", check=False)
    assert refused.returncode != 0
    assert "in use on node node1" in refused.stderr
    assert mounted_roots(roots) == [agent1.mount_root]
