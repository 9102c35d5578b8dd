"""
Real container runtimes and plugin processes for the plugin's functional tests.

Everything is isolated under one test directory: a ``dockerd`` with its own
socket, data root and exec root; Podman with its own storage and a
``CONTAINERS_CONF`` file naming the plugin socket (no global configuration is
edited); the busybox image built offline with ``docker import``. Docker only
discovers plugins in ``/run/docker/plugins``, so each test's plugin there has
a unique name, removed afterwards. These helpers block, so they are used from
fixtures, never from inside a reactor.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Sequence
from typing import Any

from tests.processes import ROOT, wait_until

DOCKER_PLUGIN_DIR = "/run/docker/plugins"
IMAGE = "local/busybox"
APPLETS = ("sh", "cat", "echo", "ls", "sleep", "mkdir", "touch", "rm", "test", "true", "df")


def missing(*programs: str) -> str | None:
    """Why the runtime tests cannot run here (not root, a program missing), or None."""
    if os.geteuid() != 0:
        return "needs root (a container engine and mounts)"
    for program in programs:
        if shutil.which(program) is None:
            return f"{program} is not installed"
    return None


def unmount_under(directory: str) -> None:
    """Lazily unmount everything mounted at or below ``directory`` (deepest first)."""
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    prefix = os.path.realpath(directory)
    for point in sorted(points, key=len, reverse=True):
        decoded = point.encode().decode("unicode_escape")
        if decoded == prefix or decoded.startswith(prefix + "/"):
            subprocess.run(["umount", "-l", decoded], capture_output=True)


def make_rootfs(directory: str) -> str:
    """A busybox root filesystem in ``directory``/rootfs (static busybox + symlinks)."""
    rootfs = os.path.join(directory, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"), exist_ok=True)
    os.makedirs(os.path.join(rootfs, "data"), exist_ok=True)
    busybox = shutil.which("busybox")
    assert busybox is not None
    shutil.copy(busybox, os.path.join(rootfs, "bin", "busybox"))
    for applet in APPLETS:
        link = os.path.join(rootfs, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    return rootfs


def import_image(command: Sequence[str], directory: str, env: dict[str, str] | None = None) -> None:
    """Build the busybox image offline: ``tar`` the rootfs into ``<command> import``."""
    rootfs = make_rootfs(directory)
    tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(
        [*command, "import", "-c", 'CMD ["/bin/sh"]', "-", IMAGE],
        stdin=tar.stdout, check=True, capture_output=True, env=env, timeout=120,
    )
    tar.wait()


class DockerDaemon:
    """An isolated ``dockerd`` touching neither the host network nor the host daemon."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.socket = os.path.join(directory, "docker.sock")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> DockerDaemon:
        """Start the daemon, wait until it answers, and import the busybox image."""
        os.makedirs(self.directory, exist_ok=True)
        log = open(os.path.join(self.directory, "dockerd.log"), "ab")
        self.process = subprocess.Popen(
            [
                "dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
                "--ip-forward=false", "--ip-masq=false", "-H", f"unix://{self.socket}",
                "--data-root", os.path.join(self.directory, "root"),
                "--exec-root", os.path.join(self.directory, "exec"),
                "--pidfile", os.path.join(self.directory, "docker.pid"),
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(self._ready, timeout, "dockerd to answer")
        import_image(["docker", "-H", f"unix://{self.socket}"], self.directory)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"dockerd exited with {self.process.returncode}; see dockerd.log")
        return self.docker("version", check=False).returncode == 0

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> Any:
        """Run the docker CLI against this daemon."""
        done = subprocess.run(
            ["docker", "-H", f"unix://{self.socket}", *args],
            capture_output=True, text=True, timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def stop(self) -> None:
        """Remove every container, stop the daemon, and unmount what it left behind."""
        if self.process is not None and self.process.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        unmount_under(self.directory)


class Podman:
    """Podman with private storage and a private ``containers.conf`` naming the plugin."""

    def __init__(self, directory: str, plugin: str, plugin_socket: str) -> None:
        self.directory = directory
        self.conf = os.path.join(directory, "containers.conf")
        os.makedirs(directory, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(
                "[containers]\n"
                'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                "[engine]\n"
                "volume_plugin_timeout = 120\n"
                "[engine.volume_plugins]\n"
                f'{plugin} = "{plugin_socket}"\n'
            )
        self.env = {**os.environ, "CONTAINERS_CONF": self.conf}
        self.base = [
            "podman", "--root", os.path.join(directory, "root"),
            "--runroot", os.path.join(directory, "run"),
            "--tmpdir", os.path.join(directory, "tmp"),
            "--cgroup-manager", "cgroupfs", "--events-backend", "file",
        ]

    def start(self) -> Podman:
        """Import the busybox image into this Podman's storage."""
        import_image(self.base, self.directory, self.env)
        return self

    def podman(self, *args: str, check: bool = True, timeout: float = 120) -> Any:
        """Run podman with this configuration."""
        done = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=timeout, env=self.env
        )
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def stop(self) -> None:
        """Remove every container and unmount what Podman left behind."""
        self.podman("rm", "-af", "-t", "0", check=False)
        unmount_under(self.directory)


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket, as container engines talk to plugins."""

    def __init__(self, path: str, timeout: float = 130) -> None:
        super().__init__("plugin", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        """Connect to the socket instead of a TCP port."""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def plugin_call(path: str, method: str, body: Any = None) -> tuple[int, Any]:
    """POST ``body`` to ``/<method>`` on the plugin socket; ``(status, decoded answer)``."""
    connection = UnixHTTPConnection(path)
    try:
        data = b"" if body is None else json.dumps(body).encode()
        connection.request("POST", f"/{method}", body=data)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


class PluginProcess:
    """A ``shoal plugin serve`` child process."""

    def __init__(
        self, socket_path: str, control_url: str, agent_state_dir: str, state_dir: str,
        log_path: str, extra: Sequence[str] = (),
    ) -> None:
        self.socket = socket_path
        self.command = [
            sys.executable, "-m", "control.cli", "plugin", "serve", "--socket", socket_path,
            "--control", control_url, "--agent-state-dir", agent_state_dir,
            "--state-dir", state_dir, *extra,
        ]
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> PluginProcess:
        """Start the plugin and wait until it answers ``Plugin.Activate``."""
        out = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
        out.close()
        wait_until(self._ready, timeout, f"the plugin on {self.socket}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"plugin exited with {self.process.returncode}; see {self.log_path}")
        try:
            return plugin_call(self.socket, "Plugin.Activate")[0] == 200
        except OSError:
            return False

    def call(self, method: str, body: Any = None) -> tuple[int, Any]:
        """One protocol call to this plugin."""
        return plugin_call(self.socket, method, body)

    def stop(self) -> None:
        """Stop the plugin (SIGTERM, then SIGKILL) and make sure its socket is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if os.path.lexists(self.socket):
            os.unlink(self.socket)


def unique_plugin_name() -> str:
    """A plugin name no other test uses, so sockets in /run/docker/plugins never clash."""
    return f"shoaltest{uuid.uuid4().hex[:10]}"
