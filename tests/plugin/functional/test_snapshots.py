"""Restores and clones as Docker volumes: a real Docker engine, plugin, agent and CLI (issue 8)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.plugin.runtimes import IMAGE, DockerDaemon, PluginProcess
from tests.processes import ControlProcess, shoal

pytestmark = [pytest.mark.functional, pytest.mark.root, pytest.mark.docker]


def write(docker: DockerDaemon, volume: str, text: str) -> None:
    """A container writes ``text`` to ``/data/note`` in ``volume``."""
    docker.docker("run", "--rm", "--network", "none", "-v", f"{volume}:/data", IMAGE,
                  "sh", "-c", f"echo {text} > /data/note")


def read(docker: DockerDaemon, volume: str) -> str:
    """What a container finds in ``/data/note`` of ``volume``."""
    out: str = docker.docker("run", "--rm", "--network", "none", "-v", f"{volume}:/data", IMAGE,
                             "cat", "/data/note").stdout
    return out.strip()


def test_volumes_from_a_snapshot_and_a_clone(
    real_agents: Callable[[str], Any],
    plugins: Callable[..., PluginProcess],
    docker_plugin_socket: tuple[str, str],
    dockerd: DockerDaemon,
    control: ControlProcess,
) -> None:
    """`docker volume create -o from-snapshot=NAME` holds the snapshot's data and `-o
    clone-of=VOLUME` the volume's as it is now; writes in either never show in the source."""
    driver, socket = docker_plugin_socket
    real_agents("node1")
    plugins("node1", socket=socket)
    dockerd.docker("volume", "create", "-d", driver, "--opt", "size=64M", "source")
    write(dockerd, "source", "first")
    made = shoal("--url", control.url, "--json", "snapshot", "create", "source",
                 "--name", "snap1", "--wait")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["ready"]
    write(dockerd, "source", "second")

    dockerd.docker("volume", "create", "-d", driver, "-o", "from-snapshot=snap1", "restored")
    dockerd.docker("volume", "create", "-d", driver, "-o", "clone-of=source", "cloned")
    assert read(dockerd, "restored") == "first"
    assert read(dockerd, "cloned") == "second"

    write(dockerd, "restored", "restored-write")
    write(dockerd, "cloned", "cloned-write")
    assert read(dockerd, "source") == "second"
    assert (read(dockerd, "restored"), read(dockerd, "cloned")) == (
        "restored-write", "cloned-write")
    inspected = json.loads(dockerd.docker("volume", "inspect", "restored").stdout)[0]
    assert inspected["Driver"] == driver

    refused = dockerd.docker("volume", "create", "-d", driver, "-o", "from-snapshot=nope",
                             "lost", check=False)
    assert refused.returncode != 0 and "No snapshot is named 'nope'" in refused.stderr
