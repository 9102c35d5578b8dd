"""Storage classes through a real Docker engine: Immediate and WaitForFirstConsumer volumes."""

from __future__ import annotations

import os
from typing import Any

import pytest

from control.model import UNBOUND
from tests.plugin.functional import test_docker
from tests.plugin.runtimes import IMAGE
from tests.processes import ControlProcess, http_json

pytestmark = [pytest.mark.functional, pytest.mark.root, pytest.mark.docker]

node1 = test_docker.node1  # node1: a stand-in agent, its plugin, the Docker engine


def _class(control: ControlProcess, **body: Any) -> None:
    status, _, answer = http_json("POST", control.url + "/v1/shoal/classes", body)
    assert status == 201, answer


def _dataset(control: ControlProcess, name: str) -> dict[str, Any]:
    (found,) = [d for d in test_docker.datasets(control) if d["metadata"].get("name") == name]
    return dict(found)


def test_wait_for_first_consumer_binds_on_the_first_container(
    node1: Any, control: ControlProcess
) -> None:
    """-o class=<WaitForFirstConsumer> creates an unbound volume; the first run binds it."""
    driver, agent, _, docker = node1
    _class(control, name="later", binding_mode="WaitForFirstConsumer", default_size=2**27)
    docker.docker("volume", "create", "-d", driver, "--opt", "class=later", "late")
    assert _dataset(control, "late")["primary"] == str(UNBOUND)
    docker.docker("run", "--rm", "--network", "none", "-v", "late:/data", IMAGE,
                  "sh", "-c", "echo bound > /data/greeting")
    dataset = _dataset(control, "late")
    assert dataset["primary"] == str(agent.uuid)
    with open(os.path.join(agent.mount_root, dataset["dataset_id"], "greeting")) as f:
        assert f.read() == "bound\n"
    docker.docker("volume", "rm", "late")


def test_immediate_class_places_at_create(node1: Any, control: ControlProcess) -> None:
    """-o class=<Immediate> places the volume at create, and a container uses it."""
    driver, agent, _, docker = node1
    _class(control, name="now", default_size=2**27)
    docker.docker("volume", "create", "-d", driver, "--opt", "class=now", "early")
    assert _dataset(control, "early")["primary"] == str(agent.uuid)
    out = docker.docker("run", "--rm", "--network", "none", "-v", "early:/data", IMAGE,
                        "sh", "-c", "echo placed > /data/x && cat /data/x").stdout
    assert out == "placed\n"
    docker.docker("volume", "rm", "early")
