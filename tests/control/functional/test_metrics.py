"""
Every process's ``/metrics`` over real HTTP: a control service, an agent and a plugin.

The agent runs on the fake backend (no root needed); each process is given a
``--metrics-address`` on loopback, and every answer is parsed with
prometheus-client's own parser.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest

from tests.plugin.runtimes import PluginProcess
from tests.processes import ROOT, ControlProcess, free_port, http_json, wait_until
from tests.scrape import Scrape, parse

pytestmark = pytest.mark.functional

def scrape(url: str) -> Scrape:
    """GET ``url`` (a /metrics endpoint) and parse it; the content type must be Prometheus's."""
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(response.read().decode())


class Cluster:
    """One control service, one agent (fake backend) and one plugin, all with metrics."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.control_metrics = f"http://127.0.0.1:{free_port()}/metrics"
        self.agent_metrics = f"http://127.0.0.1:{free_port()}/metrics"
        self.plugin_metrics = f"http://127.0.0.1:{free_port()}/metrics"
        self.control = ControlProcess(
            f"sqlite:///{os.path.join(directory, 'control.db')}",
            extra=["--metrics-address", self.control_metrics[len("http://"):-len("/metrics")]],
            log_path=os.path.join(directory, "control.log"),
        )
        self.agent_state = os.path.join(directory, "agent")
        self.agent: subprocess.Popen[bytes] | None = None
        self.plugin: PluginProcess | None = None

    def start(self) -> Cluster:
        """Start all three; returns once the agent registered and the plugin answers."""
        self.control.start()
        log = open(os.path.join(self.directory, "agent.log"), "ab")
        self.agent = subprocess.Popen(
            [
                sys.executable, "-m", "control.cli", "agent", "run",
                "--control", self.control.url, "--node-name", "node1", "--backend", "fake",
                "--state-dir", self.agent_state,
                "--mount-root", os.path.join(self.directory, "mounts"),
                "--era", f"metrics-test-{os.getpid()}",
                "--metrics-address", self.agent_metrics[len("http://"):-len("/metrics")],
            ],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        log.close()
        wait_until(self._registered, 60, "the agent to register", interval=0.2)
        self.plugin = PluginProcess(
            os.path.join(self.directory, "plugin.sock"), self.control.url, self.agent_state,
            os.path.join(self.directory, "plugin"), os.path.join(self.directory, "plugin.log"),
            extra=(
                "--mount-timeout", "30", "--test-directory-mounts",
                "--metrics-address", self.plugin_metrics[len("http://"):-len("/metrics")],
            ),
        ).start()
        return self

    def _registered(self) -> bool:
        assert self.agent is not None
        if self.agent.poll() is not None:
            raise RuntimeError(f"the agent exited; see {self.directory}/agent.log")
        _, _, nodes = http_json("GET", self.control.url + "/v1/shoal/nodes")
        return bool(nodes)

    def stop(self) -> None:
        """Stop the plugin, the agent and the control service."""
        if self.plugin is not None:
            self.plugin.stop()
        if self.agent is not None and self.agent.poll() is None:
            self.agent.terminate()
            try:
                self.agent.wait(30)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()
        self.control.stop()


@pytest.fixture
def cluster(tmp_path) -> Iterator[Cluster]:
    """A started cluster, stopped afterwards."""
    started = Cluster(str(tmp_path))
    try:
        yield started.start()
    finally:
        started.stop()


def test_every_endpoint_scrapes_and_its_values_move(cluster: Cluster) -> None:
    """Control, agent and plugin metrics parse, have their families, and follow a create."""
    assert cluster.plugin is not None
    before = scrape(cluster.control_metrics)
    on_api_port = scrape(cluster.control.url + "/metrics")
    assert set(before.types) == set(on_api_port.types)
    assert before.types["shoal_datasets"] == "gauge"
    assert before.types["shoal_control_writes"] == "counter"
    assert before.types["shoal_convergence_lag_seconds"] == "histogram"
    assert before.value("shoal_nodes", liveness="live") == 1
    assert before.value("shoal_datasets", state="converged") == 0

    created = cluster.plugin.call("VolumeDriver.Create", {"Name": "vol", "Opts": {"size": "1G"}})
    assert created == (200, {"Err": ""})

    def converged() -> Scrape | None:
        found = scrape(cluster.control_metrics)
        return found if found.value("shoal_datasets", state="converged") == 1 else None

    after = wait_until(converged, 60, "the dataset to converge", interval=0.2)
    assert after.value("shoal_control_writes_total", kind="create_dataset", result="ok") == (
        before.value("shoal_control_writes_total", kind="create_dataset", result="ok") + 1
    )
    assert after.value("shoal_control_writes_total", kind="report_state", result="ok") > 0
    assert after.value("shoal_convergence_lag_seconds_count") >= 1
    assert after.total(
        "shoal_http_request_duration_seconds_count",
        route="/v1/shoal/nodes/<node_uuid>/configuration",
    ) >= 1

    agent = scrape(cluster.agent_metrics)
    assert agent.types["shoal_agent_pass_duration_seconds"] == "histogram"
    assert agent.value("shoal_agent_pass_duration_seconds_count") > 0
    assert agent.value("shoal_agent_changes_total", kind="CreateVolume", result="ok") == 1
    assert agent.value(
        "shoal_agent_operation_duration_seconds_count", layer="backend", operation="create_volume"
    ) == 1
    assert agent.value("shoal_agent_datasets", state="mounted_here") == 1
    assert 0 <= agent.value("shoal_agent_seconds_since_last_report") < 30

    cluster.plugin.call("VolumeDriver.Mount", {"Name": "vol", "ID": "c1"})
    plugin = scrape(cluster.plugin_metrics)
    assert plugin.types["shoal_plugin_requests"] == "counter"
    assert plugin.value(
        "shoal_plugin_requests_total", endpoint="/VolumeDriver.Create", result="ok"
    ) == 1
    assert plugin.total("shoal_plugin_requests_total", endpoint="/VolumeDriver.Mount") == 1
    assert plugin.total("shoal_plugin_mount_wait_seconds_count") == 1
