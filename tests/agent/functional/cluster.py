"""
A real local cluster for functional tests and ``bench/move.py``.

One control service (SQLite) and agents started as ``shoal agent run``
processes on one loopback pool, all under one directory. The helpers block
and poll tightly (no reactor here); :class:`MountChecker` watches
``/proc/self/mountinfo`` from a thread and records any dataset mounted under
two agents' mount roots at once. :func:`release` unmounts and detaches
whatever was left under the directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from agent.backends import loopdev
from agent.fs.interface import Mount
from agent.fs.real import parse_mountinfo, unescape
from agent.service import DEFAULT_CLUSTER_ID, KILL_AFTER_CHANGES
from tests.processes import NO_FAILOVER_GRACE, ROOT, ControlProcess, http_json, wait_until

MiB = 1024 * 1024


class AgentProcess:
    """One ``shoal agent run`` child process, restartable, with its own state and mounts."""

    def __init__(
        self, name: str, control_url: str, base: str, pool: str, extra: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.extra = list(extra)
        self.control_url = control_url
        self.state_dir = os.path.join(base, name)
        self.mount_root = os.path.join(base, name, "mounts")
        self.pool = pool
        self.log_path = os.path.join(base, f"{name}.log")
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    def command(self) -> list[str]:
        """The agent's command line."""
        return [
            sys.executable, "-m", "control.cli", "agent", "run",
            "--control", self.control_url, "--node-name", self.name,
            "--state-dir", self.state_dir, "--pool", self.pool, "--mount-root", self.mount_root,
            "--label", f"name={self.name}", "--heartbeat", "1", *self.extra,
        ]

    def start(self, kill_after_changes: int | None = None) -> AgentProcess:
        """Start the agent (with the SIGKILL test hook if asked) and wait until this
        process has registered (a restarted agent's node is already listed before)."""
        env = {k: v for k, v in os.environ.items() if k != KILL_AFTER_CHANGES}
        if kill_after_changes is not None:
            env[KILL_AFTER_CHANGES] = str(kill_after_changes)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start (kill after {kill_after_changes})\n".encode())
            log.flush()
            self._log_start = log.tell()
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env
            )
        wait_until(lambda: self._registered(), 30, f"{self.name} to register")
        return self

    def _registered(self) -> bool:
        """Whether the process last started has registered (its log says so: the identity
        file and the node record of an earlier run prove nothing about this one)."""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_start)
            logged = b'"agent.registered"' in f.read()
        if logged and os.path.exists(os.path.join(self.state_dir, "identity.json")):
            return True
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see "
                               f"{self.log_path}")
        return False

    @property
    def uuid(self) -> UUID:
        """The node uuid the agent persisted."""
        with open(os.path.join(self.state_dir, "identity.json")) as f:
            return UUID(json.load(f)["uuid"])

    def mount_path(self, dataset_id: UUID) -> str:
        """Where this agent mounts ``dataset_id``."""
        return os.path.join(self.mount_root, str(dataset_id))

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end by itself; returns its exit status."""
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the agent, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM the agent and wait for it; returns its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def changes_done(self, kind: str, dataset_id: UUID) -> int:
        """How many times the agent's logs say it completed ``kind`` on ``dataset_id``."""
        count = 0
        with open(self.log_path, errors="replace") as f:
            for line in f:
                if '"agent.change.done"' not in line or str(dataset_id) not in line:
                    continue
                with contextlib.suppress(ValueError):
                    count += json.loads(line).get("change") == kind
        return count


def mounts_under(root: str) -> list[tuple[str, str]]:
    """``(device, path)`` of every block-device mount at or below ``root``."""
    with open("/proc/self/mountinfo") as f:
        found = parse_mountinfo(f.read())
    prefix = os.path.realpath(root).rstrip("/") + "/"
    return [(m.device, m.path) for m in found if m.path.startswith(prefix)]


def double_mounts(mounts: Sequence[Mount], roots: Sequence[str]) -> list[str]:
    """Each dataset (``<root>/<dataset>``) mounted under more than one of ``roots`` (pure)."""
    where: dict[str, set[str]] = {}
    for mount in mounts:
        for root in roots:
            if mount.path.startswith(root.rstrip("/") + "/"):
                dataset = mount.path[len(root.rstrip("/")) + 1 :].split("/")[0]
                where.setdefault(dataset, set()).add(root)
    return [f"{d} mounted under {sorted(r)}" for d, r in sorted(where.items()) if len(r) > 1]


class MountChecker(threading.Thread):
    """Continuously check that no dataset is mounted under two agents' mount roots at once."""

    def __init__(self, agents: Sequence[AgentProcess], interval: float = 0.001) -> None:
        super().__init__(daemon=True, name="mount-checker")
        self.roots = [os.path.realpath(a.mount_root) for a in agents]
        self.interval = interval
        self.violations: list[str] = []
        self.checks = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Read mountinfo every ``interval`` until stopped."""
        while not self._stop_event.is_set():
            self.check_once()
            time.sleep(self.interval)

    def check_once(self) -> None:
        """One look at mountinfo; records a violation if a dataset is mounted twice."""
        with open("/proc/self/mountinfo") as f:
            mounts = parse_mountinfo(f.read())
        self.checks += 1
        self.violations.extend(double_mounts(mounts, self.roots))

    def stop(self) -> None:
        """Stop checking."""
        self._stop_event.set()
        self.join(5)


class LocalCluster:
    """A control service and named agents in ``base``, on the pool ``base/pool``."""

    def __init__(self, base: str, names: Sequence[str] = ("node1", "node2"),
                 node_timeout: float = 3.0, agent_args: Sequence[str] = (),
                 failover_grace: float | None = NO_FAILOVER_GRACE) -> None:
        """``failover_grace``: the service's ``--failover-grace``; ``None`` leaves the
        service's default (benchmarks measure what an operator runs)."""
        self.base = base
        self.agent_args = list(agent_args)
        self.pool = os.path.join(base, "pool")
        grace = [] if failover_grace is None else ["--failover-grace", str(failover_grace)]
        self.control = ControlProcess(
            f"sqlite:///{os.path.join(base, 'control.db')}",
            extra=["--node-timeout", str(node_timeout), *grace],
            log_path=os.path.join(base, "control.log"),
        )
        self.names = list(names)
        self.agents: dict[str, AgentProcess] = {}

    @property
    def url(self) -> str:
        """The control service's URL."""
        return self.control.url

    def start(self) -> LocalCluster:
        """Start the control service and every agent."""
        self.control.start()
        for name in self.names:
            self.agents[name] = AgentProcess(
                name, self.url, self.base, self.pool, self.agent_args
            ).start()
        return self

    def close(self) -> None:
        """Stop everything and release every mount and loop device left in ``base``."""
        try:
            for agent in self.agents.values():
                agent.stop()
            self.control.stop()
        finally:
            release(self.base)

    # -- the API ---------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        """One request to the control service; fails unless it answers ``expect``."""
        status, _, answer = http_json(method, self.url + path, body)
        if status != expect:
            raise AssertionError(f"{method} {path} answered {status}: {answer}")
        return answer

    def create(self, primary: AgentProcess, size: int = 64 * MiB) -> UUID:
        """Create a dataset on ``primary``; returns its id."""
        body = {"primary": str(primary.uuid), "maximum_size": size}
        return UUID(self.api("POST", "/v1/configuration/datasets", body, 201)["dataset_id"])

    def move(self, dataset_id: UUID, primary: AgentProcess) -> None:
        """Make ``primary`` the dataset's primary."""
        self.api("POST", f"/v1/configuration/datasets/{dataset_id}", {"primary": str(primary.uuid)})

    def delete(self, dataset_id: UUID) -> None:
        """Delete the dataset."""
        self.api("DELETE", f"/v1/configuration/datasets/{dataset_id}")

    def state(self) -> dict[UUID, dict[str, Any]]:
        """``/v1/state/datasets`` by dataset id."""
        return {UUID(d["dataset_id"]): d for d in self.api("GET", "/v1/state/datasets")}

    def configuration(self) -> dict[UUID, dict[str, Any]]:
        """``/v1/configuration/datasets`` by dataset id."""
        found = self.api("GET", "/v1/configuration/datasets")
        return {UUID(d["dataset_id"]): d for d in found}

    def mounted_on(self, dataset_id: UUID, agent: AgentProcess) -> bool:
        """Whether the dataset is mounted on ``agent`` and the control service knows it."""
        entry = self.state().get(dataset_id)
        return (
            entry is not None
            and entry.get("primary") == str(agent.uuid)
            and entry.get("path") == agent.mount_path(dataset_id)
            and os.path.ismount(agent.mount_path(dataset_id))
        )

    def wait_mounted(self, dataset_id: UUID, agent: AgentProcess, timeout: float = 30) -> None:
        """Wait until the dataset is mounted on ``agent`` (and reported so)."""
        wait_until(lambda: self.mounted_on(dataset_id, agent), timeout,
                   f"{dataset_id} mounted on {agent.name}")

    def volume_path(self, dataset_id: UUID) -> str:
        """The loopback volume file of a dataset."""
        return os.path.join(self.pool, str(DEFAULT_CLUSTER_ID), "volumes", f"{dataset_id}.img")

    def gone(self, dataset_id: UUID) -> bool:
        """Whether the dataset is purged: no record, no state, no volume file."""
        return (
            dataset_id not in self.configuration()
            and dataset_id not in self.state()
            and not os.path.exists(self.volume_path(dataset_id))
        )


def write_marker(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` durably."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_marker(path: str) -> bytes:
    """The marker file's contents."""
    with open(path, "rb") as f:
        return f.read()


def release(base: str) -> None:
    """Unmount everything mounted below ``base`` and detach loop devices on files below it.

    The loop devices are found before anything is unmounted: once a pool that is itself
    a mounted filesystem (an XFS or btrfs loop file) is lazily unmounted, the backing
    files of its volumes no longer have paths below ``base``.
    """
    devices = loops_under(base)
    for path in sorted(every_mount_under(base), key=len, reverse=True):
        subprocess.run(["umount", "-l", path], check=False, capture_output=True)
    for device in devices:
        subprocess.run(["losetup", "-d", device], check=False, capture_output=True)


def every_mount_under(root: str) -> list[str]:
    """The mount point of every mount below ``root``, whatever its source (a raw block
    volume's device node bind-mounted onto a file has ``devtmpfs``, not a ``/dev/`` path)."""
    prefix = os.path.realpath(root).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [unescape(line.split(" ")[4]) for line in f if line.count(" ") > 4]
    return [point for point in points if point.startswith(prefix)]


def loops_under(base: str) -> list[str]:
    """The loop devices whose backing file is below ``base``, deepest file first."""
    prefix = os.path.realpath(base).rstrip("/") + "/"
    try:
        names = os.listdir(loopdev.SYS_BLOCK)
    except OSError:
        return []
    found = [(loopdev.backing_file(name), "/dev/" + name) for name in names]
    return [device for backing, device in sorted(
        ((b, d) for b, d in found if b and b.startswith(prefix)), key=lambda f: -len(f[0])
    )]
