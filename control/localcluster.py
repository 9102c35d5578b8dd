"""
Start a whole local cluster for a newcomer: ``make run``.

One control service on SQLite bound to loopback and, when running as root
(loop devices and mounts need it), two agents ``node1`` and ``node2`` sharing
one loopback storage pool. Everything lives under ``--dir``, which one
``make run`` at a time holds a lock on; each process logs to its own file
there. The cluster is announced as ready once both agents have registered
and are live. An agent that dies is restarted (and said so); Ctrl-C or
SIGTERM stops everything quietly.

To try a node failure, freeze one agent with ``kill -STOP PID`` (the pids are
printed when the cluster is ready): after the node timeout ``shoal node
list`` shows it not live; ``kill -CONT PID`` brings it back.

``--backend rbd`` (``make run BACKEND=rbd``) puts the volumes in Ceph instead: a
one-node Ceph cluster (bluestore on a sparse file in ``--dir``/ceph, so data
survives a restart) is started first, each agent gets a cephx client of its
own, and the agents attach with rbd-fuse. On stop, datasets are unmounted and
their rbd-fuse attachments removed before Ceph stops (a FUSE mount whose
cluster is gone would hang); the next ``make run`` attaches and mounts them
again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from attrs import define, field

from control.pidlock import LockHeld, hold_lock

if TYPE_CHECKING:
    from agent.backends.rbd.devcluster import DevCluster

AGENT_NAMES = ("node1", "node2")
LOCK_FILE = "localcluster.lock"
TICK = 0.5
"""Seconds between two looks at the children (a wait on the control service, not a sleep)."""
RESTART_DELAY = 2.0
"""Seconds between an agent's death and its restart (no tight loop if it cannot start)."""
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
CEPH_POOL_QUOTA = 16 * 2**30
"""The quota of the local Ceph cluster's pool (``make run BACKEND=rbd``): its capacity."""


def shoal_command() -> list[str]:
    """How to run the ``shoal`` CLI with this interpreter."""
    return [sys.executable, "-m", "control.cli"]


def control_command(directory: str, port: int) -> list[str]:
    """The command line of the local control service."""
    return [
        *shoal_command(),
        "control",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database",
        f"sqlite:///{os.path.join(directory, 'control.db')}",
    ]


BACKENDS = ("loopback", "rbd")


def agent_command(directory: str, port: int, name: str, backend: str = "loopback") -> list[str]:
    """The command line of one local agent on the shared loopback pool, or on local Ceph."""
    if backend == "rbd":
        storage = [
            "--backend", "rbd",
            "--ceph-conf", os.path.join(directory, "ceph", "ceph.conf"),
            "--ceph-client", name,
            "--ceph-keyring", os.path.join(directory, "ceph", f"client.{name}.keyring"),
            "--ceph-pool", "rbd",
            "--rbd-attach", "fuse",
            "--rbd-run-dir", os.path.join(directory, "rbd"),
        ]
    else:
        storage = ["--backend", "loopback", "--pool", os.path.join(directory, "pool")]
    return [
        *shoal_command(),
        "agent",
        "run",
        "--control",
        f"http://127.0.0.1:{port}",
        "--node-name",
        name,
        "--host",
        "127.0.0.1",
        "--state-dir",
        os.path.join(directory, name),
        *storage,
        "--mount-root",
        os.path.join(directory, name, "mounts"),
    ]


def agents_available(backend: str = "loopback") -> tuple[bool, str]:
    """Whether agents can run here, and why not if they cannot."""
    if os.geteuid() != 0:
        return False, "not root: agents need losetup and mount"
    if backend == "rbd":
        from agent.backends.rbd.devcluster import PACKAGES, missing_tools

        missing = missing_tools()
        if missing:
            return False, (
                f"{', '.join(missing)} missing: install the Ceph packages "
                f"(apt-get install {' '.join(PACKAGES)} fuse3)"
            )
    try:
        import agent.cli  # noqa: F401
    except ImportError:
        return False, "the agent package has no CLI yet"
    return True, ""


def release_mounts(directory: str) -> None:
    """Unmount every dataset under ``directory`` and remove its rbd-fuse attachments (whose
    records stay in Ceph: the agents attach them again at the next start)."""
    from agent.backends.rbd.fuse import RbdFuse
    from agent.backends.rbd.session import CephSettings
    from agent.fs.real import RealFilesystems

    filesystems = RealFilesystems(under=directory)
    for mount in sorted(filesystems.mounts(), key=lambda m: m.path, reverse=True):
        filesystems.unmount(mount.path)
    rbd_dir = os.path.join(directory, "rbd")
    if os.path.isdir(rbd_dir):
        for node in sorted(os.listdir(rbd_dir)):
            attachments = RbdFuse(CephSettings(), os.path.realpath(os.path.join(rbd_dir, node)))
            for attachment in attachments.local():
                attachments.detach(attachment.image)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_ceph(directory: str) -> DevCluster:
    """The local Ceph cluster of ``--backend rbd``: made at the first start, resumed after."""
    from agent.backends.rbd.devcluster import DevCluster

    ceph = DevCluster(
        os.path.join(directory, "ceph"),
        v2_port=_free_port(),
        v1_port=_free_port(),
        objectstore="bluestore",
    )
    if ceph.exists():
        ceph.resume()
    else:
        os.makedirs(ceph.directory, exist_ok=True)
        ceph.start()
        ceph.create_pool("rbd", CEPH_POOL_QUOTA)
        for name in AGENT_NAMES:
            ceph.add_client(name, "rbd")
    return ceph


def clean(directory: str) -> None:
    """Unmount and detach everything the local cluster left under ``directory``, then remove it.

    Removing the directory while datasets are mounted would delete their data
    through the mounts, so ``make clean`` comes here instead of ``rm -rf``.
    """
    from agent.backends.loopdev import detach, devices_backed_by

    if not os.path.isdir(directory):
        return
    release_mounts(directory)
    for folder, _dirs, files in os.walk(os.path.join(directory, "pool")):
        for name in files:
            path = os.path.join(folder, name)
            for device in devices_backed_by(path):
                detach(device, path)
    shutil.rmtree(directory)


# -- the run directory's lock ---------------------------------------------------------


class AlreadyRunning(Exception):
    """Another ``make run`` holds the run directory."""


def lock_run_dir(directory: str) -> int:
    """Hold ``<directory>/localcluster.lock`` for the life of this process; its descriptor.

    Raises :class:`AlreadyRunning`, naming the holder's pid, if another process has it.
    """
    try:
        return hold_lock(os.path.join(directory, LOCK_FILE))
    except LockHeld as held:
        raise AlreadyRunning(
            f"another `make run` (pid {held.holder}) is already running a cluster in "
            f"{directory}: use that one, or stop it first (Ctrl-C in its terminal, or kill "
            f"{held.holder})."
        ) from None


# -- supervising the children ---------------------------------------------------------


class Child(Protocol):
    """What the supervisor needs of a child process (``subprocess.Popen``)."""

    pid: int

    def poll(self) -> int | None:
        """The exit status, or ``None`` while it runs."""
        ...


Spawn = Callable[[str], Child]
"""Start the agent of that name; returns its process."""


@define
class Supervisor:
    """Keeps every agent running: one that dies is reported and restarted after a delay."""

    spawn: Spawn
    names: Sequence[str]
    say: Callable[[str], None]
    last_words: Callable[[str], str] = lambda _name: ""
    """The end of an agent's log, to say why it died."""
    children: dict[str, Child] = field(factory=dict)
    restart_at: dict[str, float] = field(factory=dict)

    def start(self) -> None:
        """Start every agent."""
        for name in self.names:
            self.children[name] = self.spawn(name)

    def check(self, now: float) -> None:
        """Report agents that died since the last check; restart those whose delay is over."""
        for name in self.names:
            if name in self.restart_at:
                if now >= self.restart_at[name]:
                    del self.restart_at[name]
                    self.children[name] = self.spawn(name)
                    self.say(f"agent {name} restarted (pid {self.children[name].pid})")
                continue
            status = self.children[name].poll()
            if status is not None:
                self.restart_at[name] = now + RESTART_DELAY
                words = self.last_words(name).strip()
                self.say(
                    f"agent {name} (pid {self.children[name].pid}) {exit_text(status)}; "
                    f"restarting it in {RESTART_DELAY:g} s"
                    + (f". Its log ends: {words}" if words else "")
                )

    def pids(self) -> dict[str, int]:
        """The pid of each running agent."""
        return {n: c.pid for n, c in self.children.items() if n not in self.restart_at}


def exit_text(status: int) -> str:
    """How a child ended, in words."""
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


# -- readiness ------------------------------------------------------------------------


def registered_live(url: str) -> set[str] | None:
    """The names of the live registered nodes, or ``None`` if the service does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/v1/shoal/nodes", timeout=2) as answer:
            nodes = json.load(answer)
    except (OSError, ValueError):
        return None
    return {str(n.get("labels", {}).get("name")) for n in nodes if n.get("live")}


def ready_message(url: str, pids: dict[str, int], directory: str) -> str:
    """What to tell the newcomer once the cluster is ready."""
    bin_dir = os.path.dirname(sys.executable)
    lines = [
        f"shoal: cluster ready: control service at {url} (log {directory}/control.log)",
        f"shoal: dashboard at {url}/ui/ (open it in a browser)",
    ]
    for name, pid in sorted(pids.items()):
        lines.append(f"shoal: agent {name} pid {pid} (log {directory}/{name}/agent.log)")
    lines.append("shoal: in another terminal:")
    lines.append(f"  export PATH={bin_dir}:$PATH SHOAL_URL={url}")
    if pids:
        name, pid = sorted(pids.items())[-1]
        lines.append(
            f"shoal: to try a node failure, freeze {name}: kill -STOP {pid} (resume: "
            f"kill -CONT {pid}); an agent that dies is restarted. Ctrl-C stops the cluster."
        )
    return "\n".join(lines)


# -- the command ----------------------------------------------------------------------


def _interrupt(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both stop the cluster, even when started in the background."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def _say(text: str) -> None:
    print(f"shoal: {text}", flush=True)


def _start(command: list[str], log_path: str) -> subprocess.Popen[bytes]:
    """Start a child in its own session (Ctrl-C reaches only us), logging to ``log_path``."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _ignore_signals() -> None:
    """A second Ctrl-C while stopping must not interrupt the stopping (nor print a traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every child still running, wait for each (SIGKILL after STOP_TIMEOUT)."""
    _ignore_signals()
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@define
class LocalCluster:
    """The children of one ``make run`` and how to watch them."""

    directory: str
    port: int
    backend: str = "loopback"
    clock: Callable[[], float] = time.monotonic
    ceph: DevCluster | None = None
    control: subprocess.Popen[bytes] | None = None
    supervisor: Supervisor | None = None
    spawned: list[subprocess.Popen[bytes]] = field(factory=list)

    @property
    def url(self) -> str:
        """The control service's URL."""
        return f"http://127.0.0.1:{self.port}"

    def _spawn_agent(self, name: str) -> subprocess.Popen[bytes]:
        log = os.path.join(self.directory, name, "agent.log")
        process = _start(agent_command(self.directory, self.port, name, self.backend), log)
        self.spawned.append(process)
        return process

    def start(self, with_agents: bool) -> None:
        """Start the control service and, if ``with_agents``, the agents (and Ceph first for
        ``--backend rbd``)."""
        if with_agents and self.backend == "rbd":
            _say(f"starting a one-node Ceph cluster in {self.directory}/ceph")
            self.ceph = start_ceph(self.directory)
        self.control = _start(
            control_command(self.directory, self.port), os.path.join(self.directory, "control.log")
        )
        self.spawned.append(self.control)
        if with_agents:
            self.supervisor = Supervisor(
                self._spawn_agent,
                AGENT_NAMES,
                _say,
                lambda name: _tail(os.path.join(self.directory, name, "agent.log"), 1),
            )
            self.supervisor.start()

    def _tick(self) -> int | None:
        """Wait a moment on the control service; its exit status if it ended."""
        assert self.control is not None
        try:
            status = self.control.wait(TICK)
        except subprocess.TimeoutExpired:
            status = None
        if self.supervisor is not None:
            self.supervisor.check(self.clock())
        return status

    def wait_ready(self) -> int | None:
        """Wait until the service answers and every agent is registered and live.

        Returns the control service's exit status if it ended meanwhile.
        """
        wanted = set(AGENT_NAMES) if self.supervisor is not None else set()
        deadline = self.clock() + READY_TIMEOUT
        warned = False
        while True:
            live = registered_live(self.url)
            if live is not None and wanted <= live:
                pids = self.supervisor.pids() if self.supervisor is not None else {}
                print(ready_message(self.url, pids, self.directory), flush=True)
                return None
            if not warned and self.clock() > deadline:
                warned = True
                missing = ", ".join(sorted(wanted - (live or set()))) or "the control service"
                _say(f"still waiting for {missing} after {READY_TIMEOUT:g} s; see the logs "
                     f"in {self.directory}")
            status = self._tick()
            if status is not None:
                return status

    def run(self) -> int:
        """Supervise until the control service ends (its status) or we are interrupted."""
        status = self.wait_ready()
        while status is None:
            status = self._tick()
        _say(f"the control service {exit_text(status)}; stopping the cluster. Its log ends:")
        print(_tail(os.path.join(self.directory, "control.log")), end="", flush=True)
        return status or 1

    def stop(self) -> None:
        """Stop every child; with Ceph, unmount and remove rbd-fuse attachments before it."""
        _stop(list(reversed(self.spawned)))
        if self.ceph is not None:
            try:
                release_mounts(self.directory)
            finally:
                self.ceph.stop(grace=10)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the local cluster in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default="run", help="where databases, pools and mounts go")
    parser.add_argument("--port", type=int, default=4523)
    parser.add_argument("--clean", action="store_true", help="unmount, detach and remove --dir")
    parser.add_argument("--backend", choices=BACKENDS, default="loopback",
                        help="loopback (a shared pool directory) or rbd (a local Ceph cluster)")
    args = parser.parse_args(argv)
    directory = os.path.abspath(args.dir)
    if args.clean and not os.path.isdir(directory):
        return 0
    _stop_on_signals()
    try:
        lock = lock_run_dir(directory)
    except AlreadyRunning as e:
        print(f"shoal: {e}", file=sys.stderr)
        return 1
    if args.clean:
        clean(directory)
        os.close(lock)
        return 0
    cluster = LocalCluster(directory, args.port, args.backend)
    try:
        ok, why = agents_available(args.backend)
        if not ok:
            _say(f"starting the control service only ({why})")
        cluster.start(with_agents=ok)
        return cluster.run()
    except KeyboardInterrupt:
        _ignore_signals()
        if args.backend == "rbd":
            _say("stopping the cluster (datasets are unmounted before Ceph stops; the next "
                 "`make run BACKEND=rbd` mounts them again)")
        else:
            _say("stopping the cluster (datasets stay mounted; `make run` picks up from here)")
        return 0
    finally:
        cluster.stop()
        os.close(lock)


if __name__ == "__main__":
    sys.exit(main())
