"""Fixtures: a control service, stand-in or real agents, plugins and container engines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.plugin.diragent import DirectoryAgent
from tests.plugin.runtimes import (
    DOCKER_PLUGIN_DIR,
    DockerDaemon,
    PluginProcess,
    Podman,
    missing,
    unique_plugin_name,
    unmount_under,
    wait_until,
)
from tests.processes import ROOT, ControlProcess, http_json

pytestmark = pytest.mark.functional


def skip_or_fail(reason: str | None) -> None:
    """Skip when something is missing here; in CI, where everything must be, fail."""
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must be able to run this test: {reason}")
    pytest.skip(reason)


@pytest.fixture
def workdir() -> Iterator[str]:
    """A short private directory (Unix socket paths must stay under 108 bytes)."""
    directory = tempfile.mkdtemp(prefix="shoal-plugin-")
    yield directory
    unmount_under(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def control(workdir: str) -> Iterator[ControlProcess]:
    """A control service on SQLite."""
    database = f"sqlite:///{os.path.join(workdir, 'control.db')}"
    service = ControlProcess(database, log_path=os.path.join(workdir, "control.log")).start()
    yield service
    service.stop()


@pytest.fixture
def dir_agents(control: ControlProcess, workdir: str) -> Iterator[Callable[[str], DirectoryAgent]]:
    """Start stand-in agents by node name; all are stopped afterwards."""
    started: list[DirectoryAgent] = []

    def start(name: str) -> DirectoryAgent:
        root = os.path.join(workdir, name)
        agent = DirectoryAgent(control.url, name, os.path.join(root, "agent"),
                               os.path.join(root, "mounts"))
        started.append(agent)
        return agent.start()

    yield start
    for agent in started:
        agent.stop()
        assert not agent.errors, agent.errors


@pytest.fixture
def plugins(control: ControlProcess, workdir: str) -> Iterator[Callable[..., PluginProcess]]:
    """Start plugin processes: ``plugins(node, socket=None)``; stopped afterwards."""
    started: list[PluginProcess] = []

    def start(node: str, socket: str | None = None, extra: tuple[str, ...] = ()) -> PluginProcess:
        root = os.path.join(workdir, node)
        os.makedirs(root, exist_ok=True)
        plugin = PluginProcess(
            socket or os.path.join(root, "plugin.sock"), control.url,
            os.path.join(root, "agent"), os.path.join(root, "plugin"),
            os.path.join(root, "plugin.log"), extra=("--mount-timeout", "30", *extra),
        )
        started.append(plugin)
        return plugin.start()

    yield start
    for plugin in started:
        plugin.stop()


@pytest.fixture
def docker_plugin_socket() -> Iterator[tuple[str, str]]:
    """A unique plugin name and its socket path where Docker discovers plugins."""
    name = unique_plugin_name()
    path = os.path.join(DOCKER_PLUGIN_DIR, f"{name}.sock")
    yield name, path
    if os.path.lexists(path):
        os.unlink(path)


@pytest.fixture
def dockerd(workdir: str) -> Iterator[DockerDaemon]:
    """An isolated Docker engine with the busybox image."""
    skip_or_fail(missing("dockerd", "docker", "busybox", "tar"))
    daemon = DockerDaemon(os.path.join(workdir, "docker"))
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


def podman_engine(workdir: str, plugin: str, socket: str) -> Iterator[Podman]:
    """Podman using ``socket`` as volume plugin ``plugin``, with the busybox image."""
    skip_or_fail(missing("podman", "busybox", "tar"))
    engine = Podman(os.path.join(workdir, "podman"), plugin, socket)
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()


def agent_cli_reason() -> str | None:
    """Why the real agent cannot run here, or None."""
    done = subprocess.run([sys.executable, "-c", "import agent.cli"], cwd=ROOT,
                          capture_output=True)
    if done.returncode != 0:
        return "agent CLI not available"
    return missing("losetup", "mkfs.ext4", "mount")


class AgentProcess:
    """A real ``shoal agent run`` on the loopback backend."""

    def __init__(self, control_url: str, name: str, root: str, pool: str) -> None:
        self.name = name
        self.state_dir = os.path.join(root, "agent")
        self.mount_root = os.path.join(root, "mounts")
        self.log_path = os.path.join(root, "agent.log")
        self.command = [
            sys.executable, "-m", "control.cli", "agent", "run", "--control", control_url,
            "--node-name", name, "--state-dir", self.state_dir, "--backend", "loopback",
            "--pool", pool, "--mount-root", self.mount_root, "--host", name,
            "--era", f"plugin-test-{name}-{os.getpid()}",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, control_url: str) -> AgentProcess:
        """Start the agent and wait until it has registered its node."""
        os.makedirs(self.state_dir, exist_ok=True)
        out = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                        cwd=ROOT)
        out.close()

        def registered() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"agent {self.name} exited; see {self.log_path}")
            _, _, nodes = http_json("GET", control_url + "/v1/shoal/nodes")
            return any(n["host"] == self.name for n in nodes or [])

        wait_until(registered, 30, f"agent {self.name} to register", interval=0.2)
        return self

    def stop(self) -> None:
        """Stop the agent politely, then firmly."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def real_agents(control: ControlProcess, workdir: str) -> Iterator[Callable[[str], Any]]:
    """Start real agents sharing one loopback pool; stopped and cleaned up afterwards."""
    skip_or_fail(missing("losetup"))
    reason = agent_cli_reason()
    if reason == "agent CLI not available":
        pytest.skip(reason)
    skip_or_fail(reason)
    pool = os.path.join(workdir, "pool")
    started: list[AgentProcess] = []

    def start(name: str) -> AgentProcess:
        agent = AgentProcess(control.url, name, os.path.join(workdir, name), pool)
        started.append(agent)
        return agent.start(control.url)

    yield start
    for agent in reversed(started):
        agent.stop()
    unmount_under(workdir)
    detach_loops_under(pool)


def detach_loops_under(pool: str) -> None:
    """Detach loop devices whose backing file is in ``pool`` (left by a failed test)."""
    done = subprocess.run(["losetup", "-J"], capture_output=True, text=True)
    if done.returncode != 0 or not done.stdout.strip():
        return
    import json

    for device in json.loads(done.stdout).get("loopdevices", []):
        if str(device.get("back-file", "")).startswith(os.path.realpath(pool)):
            subprocess.run(["losetup", "-d", device["name"]], capture_output=True)
