"""
Docker volume latency with real container engines on the loopback backend.

Starts, under one private directory, a control service on SQLite, two real
agents ``node1`` and ``node2`` sharing one loopback pool, a plugin per node,
an isolated ``dockerd`` for node1 and Podman for node2 (each engine talks to
its own node's plugin socket), then times whole CLI commands:

- (a) ``docker run`` on node1 of a container with a new Shoal volume;
- (b) ``podman run`` on node2 of a container reading a Shoal volume a container
  on node1 last wrote (so the command includes the move);
- (c) the same ``podman run`` with a plain local volume: the baseline.

Target: (b) p50 no more than 300 ms above (c) p50. The memory column is the
resident size of the plugin serving the row's engine. With ``--timeline``,
the agents' and plugins' logs are lined up per (b) trial to show where the
time goes. Needs root, docker.io, podman and busybox-static; everything it
starts is stopped and removed, even on failure.

    python bench/docker.py [--trials 20] [--timeline] [--keep-logs DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import IO, Any

from _common import ROOT, Table, percentile

from tests.plugin.runtimes import (
    DOCKER_PLUGIN_DIR,
    IMAGE,
    DockerDaemon,
    PluginProcess,
    Podman,
    missing,
    unique_plugin_name,
    unmount_under,
    wait_until,
)
from tests.processes import ControlProcess, http_json

TARGET_MS = 300.0
"""(b) p50 may be at most this many milliseconds above (c) p50."""
SETTLE = 0.5
"""Seconds of quiet before each timed command, so that no agent pass is still running."""
PROGRAMS = ("dockerd", "docker", "podman", "busybox", "tar", "losetup", "mkfs.ext4", "mount")


# -- prerequisites ----------------------------------------------------------------------


def why_not_runnable() -> str | None:
    """Why this benchmark cannot run here, or None."""
    reason = missing(*PROGRAMS)
    if reason is not None:
        return reason
    probe = subprocess.run([sys.executable, "-c", "import agent.cli"], cwd=ROOT,
                           capture_output=True)
    return None if probe.returncode == 0 else "the agent CLI cannot be imported"


# -- processes ----------------------------------------------------------------------------


def stamp_lines(source: IO[bytes], log_path: str) -> None:
    """Copy ``source`` to ``log_path`` line by line, each prefixed with the Unix time."""
    with open(log_path, "ab") as out:
        for line in iter(source.readline, b""):
            out.write(f"{time.time():.6f} ".encode() + line)
            out.flush()


class StampedPlugin(PluginProcess):
    """A plugin whose log lines carry a microsecond wall-clock stamp (its own have seconds)."""

    def start(self, timeout: float = 30.0) -> StampedPlugin:
        """Start the plugin with its output piped through :func:`stamp_lines`."""
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, cwd=ROOT)
        assert self.process.stdout is not None
        threading.Thread(target=stamp_lines, args=(self.process.stdout, self.log_path),
                         daemon=True).start()
        wait_until(self._ready, timeout, f"the plugin on {self.socket}")
        return self

    def rss_kib(self) -> int:
        """The plugin's resident set size in KiB."""
        assert self.process is not None
        return rss_kib(self.process.pid)


def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid`` in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def agent_command(control_url: str, name: str, root: str, pool: str) -> list[str]:
    """A real ``shoal agent run`` for node ``name`` on the shared loopback pool."""
    return [
        sys.executable, "-m", "control.cli", "agent", "run", "--control", control_url,
        "--node-name", name, "--state-dir", os.path.join(root, "agent"),
        "--backend", "loopback", "--pool", pool, "--mount-root", os.path.join(root, "mounts"),
        "--host", name, "--era", f"bench-{name}-{os.getpid()}",
    ]


def start_agent(
    control_url: str, name: str, root: str, pool: str, stack: contextlib.ExitStack
) -> subprocess.Popen[bytes]:
    """Start an agent (JSON log in ``root``/agent.log, stopped by ``stack``); wait for it."""
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "agent.log"), "ab") as log:
        process = subprocess.Popen(agent_command(control_url, name, root, pool), stdout=log,
                                   stderr=subprocess.STDOUT, cwd=ROOT)
    stack.callback(stop_process, process)

    def registered() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"agent {name} exited; see {root}/agent.log")
        _, _, nodes = http_json("GET", control_url + "/v1/shoal/nodes")
        return any(n["host"] == name for n in nodes or [])

    wait_until(registered, 30, f"agent {name} to register", interval=0.1)
    return process


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def detach_loops_under(pool: str) -> None:
    """Detach every loop device whose backing file lies in ``pool``."""
    done = subprocess.run(["losetup", "-n", "-O", "NAME,BACK-FILE", "-l"],
                          capture_output=True, text=True)
    prefix = os.path.realpath(pool) + "/"
    for line in done.stdout.splitlines():
        device, _, backing = line.strip().partition(" ")
        if backing.strip().startswith(prefix):
            subprocess.run(["losetup", "-d", device], capture_output=True)


# -- the cluster -------------------------------------------------------------------------


class Cluster:
    """Everything one benchmark run needs, with the cleanup registered as it starts."""

    def __init__(self, workdir: str, stack: contextlib.ExitStack) -> None:
        self.workdir = workdir
        pool = os.path.join(workdir, "pool")
        stack.callback(detach_loops_under, pool)
        stack.callback(unmount_under, workdir)
        self.control = ControlProcess(f"sqlite:///{workdir}/control.db",
                                      log_path=os.path.join(workdir, "control.log"))
        stack.callback(self.control.stop)
        self.control.start()
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        for name in ("node1", "node2"):
            root = os.path.join(workdir, name)
            self.agents[name] = start_agent(self.control.url, name, root, pool, stack)
        self.driver1 = unique_plugin_name()
        socket1 = os.path.join(DOCKER_PLUGIN_DIR, f"{self.driver1}.sock")
        stack.callback(remove_if_present, socket1)
        self.plugin1 = self._plugin(stack, "node1", socket1)
        self.driver2 = unique_plugin_name()
        self.plugin2 = self._plugin(stack, "node2", os.path.join(workdir, "node2", "plugin.sock"))
        self.docker = DockerDaemon(os.path.join(workdir, "docker"))
        stack.callback(self.docker.stop)
        self.docker.start()
        self.podman = Podman(os.path.join(workdir, "podman"), self.driver2, self.plugin2.socket)
        stack.callback(self.podman.stop)
        self.podman.start()

    def _plugin(self, stack: contextlib.ExitStack, node: str, socket: str) -> StampedPlugin:
        root = os.path.join(self.workdir, node)
        plugin = StampedPlugin(socket, self.control.url, os.path.join(root, "agent"),
                               os.path.join(root, "plugin"), os.path.join(root, "plugin.log"))
        stack.callback(plugin.stop)
        return plugin.start()


def log_paths(workdir: str) -> dict[str, str]:
    """The log files of a run in ``workdir``, by short name."""
    return {
        "control.log": f"{workdir}/control.log",
        "node1-agent.log": f"{workdir}/node1/agent.log",
        "node2-agent.log": f"{workdir}/node2/agent.log",
        "node1-plugin.log": f"{workdir}/node1/plugin.log",
        "node2-plugin.log": f"{workdir}/node2/plugin.log",
        "dockerd.log": f"{workdir}/docker/dockerd.log",
    }


def remove_if_present(path: str) -> None:
    """Remove ``path`` if it exists."""
    if os.path.lexists(path):
        os.unlink(path)


# -- the scenarios -----------------------------------------------------------------------


def settled(action: Callable[[], Any]) -> Callable[[], Any]:
    """``action`` preceded by :data:`SETTLE` seconds of quiet (outside the timing)."""

    def run() -> Any:
        time.sleep(SETTLE)
        before = time.perf_counter()
        action()
        return time.perf_counter() - before

    return run


def samples_of(action: Callable[[], float], n: int) -> tuple[list[float], float]:
    """Run a self-timing ``action`` ``n`` times: its samples and their sum."""
    samples = [action() for _ in range(n)]
    return samples, sum(samples)


def new_volume_runs(cluster: Cluster, trials: int) -> tuple[list[float], float]:
    """(a) ``docker run`` with a new Shoal volume, ``trials`` times; the volumes are removed."""
    names = iter(f"new{i}" for i in range(trials))

    def run() -> None:
        cluster.docker.docker("run", "--rm", "--network", "none", "-v", f"{next(names)}:/data",
                              "--volume-driver", cluster.driver1, IMAGE,
                              "sh", "-c", "echo x > /data/f")

    try:
        return samples_of(settled(run), trials)
    finally:
        for i in range(trials):
            cluster.docker.docker("volume", "rm", f"new{i}", check=False)


def moved_volume_runs(cluster: Cluster, trials: int) -> tuple[list[float], list[float]]:
    """(b) node2 reads what node1 wrote, ``trials`` times: samples and start times (Unix)."""
    cluster.docker.docker("volume", "create", "-d", cluster.driver1, "--opt", "size=64M",
                          "moved")
    cluster.podman.podman("volume", "create", "--driver", cluster.driver2, "moved")
    samples, starts = [], []
    for i in range(trials):
        cluster.docker.docker("run", "--rm", "--network", "none", "-v", "moved:/data", IMAGE,
                              "sh", "-c", f"echo trial-{i} > /data/f")
        time.sleep(SETTLE)
        starts.append(time.time())
        before = time.perf_counter()
        out = cluster.podman.podman("run", "--rm", "--network", "none", "-v", "moved:/data",
                                    IMAGE, "cat", "/data/f").stdout
        samples.append(time.perf_counter() - before)
        if out != f"trial-{i}\n":
            raise RuntimeError(f"node2 read {out!r} instead of what node1 wrote in trial {i}")
    return samples, starts


def local_volume_runs(cluster: Cluster, trials: int) -> tuple[list[float], float]:
    """(c) the same ``podman run`` with a local volume."""
    podman = cluster.podman.podman
    podman("volume", "create", "plain")
    podman("run", "--rm", "--network", "none", "-v", "plain:/data", IMAGE,
           "sh", "-c", "echo baseline > /data/f")
    return samples_of(settled(lambda: podman("run", "--rm", "--network", "none", "-v",
                                             "plain:/data", IMAGE, "cat", "/data/f")), trials)


# -- reporting ---------------------------------------------------------------------------


def measure(cluster: Cluster, trials: int) -> tuple[Table, list[float], list[float], float]:
    """Run (a), (b) and (c): the table, (b)'s samples and start times, (c)'s p50."""
    table = Table(f"Docker volume plugin, loopback backend, {trials} trials")
    a, wall_a = new_volume_runs(cluster, trials)
    table.add("(a) docker run, new Shoal volume (node1)", a, wall_a, cluster.plugin1.rss_kib())
    b, starts = moved_volume_runs(cluster, trials)
    table.add("(b) podman run on node2, volume last used on node1", b, sum(b),
              cluster.plugin2.rss_kib())
    c, wall_c = local_volume_runs(cluster, trials)
    table.add("(c) podman run on node2, local volume (baseline)", c, wall_c, None)
    return table, b, starts, percentile(c, 0.5)


def verdict(b: list[float], c_p50: float) -> str:
    """The line under the table: (b) p50 - (c) p50 against the target."""
    difference = (percentile(b, 0.5) - c_p50) * 1000
    met = "met" if difference <= TARGET_MS else "MISSED"
    return f"(b) p50 - (c) p50 = {difference:.0f} ms (target: at most {TARGET_MS:.0f} ms): {met}"


# -- where the time goes -----------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plugin_events(path: str, source: str) -> list[tuple[float, str, str]]:
    """``(unix time, source, event)`` of each stamped line of a plugin log."""
    events = []
    with open(path, errors="replace") as f:
        for line in f:
            stamp, _, rest = line.partition(" ")
            match = re.search(r"\] (\S+)", ANSI.sub("", rest))
            with contextlib.suppress(ValueError):
                events.append((float(stamp), source, match.group(1) if match else rest.strip()))
    return events


def agent_events(path: str, source: str) -> list[tuple[float, str, str]]:
    """``(unix time, source, event)`` of each JSON line of an agent log."""
    events = []
    with open(path, errors="replace") as f:
        for line in f:
            with contextlib.suppress(ValueError, KeyError):
                record = json.loads(line)
                when = datetime.fromisoformat(record["timestamp"]).timestamp()
                events.append((when, source, agent_event_name(record)))
    return events


def agent_event_name(record: dict[str, Any]) -> str:
    """An agent log record in brief: the event plus what it did or how long it took."""
    event = str(record["event"])
    if "change" in record:
        return f"{event} {record['change']}"
    if event == "agent.pass.done":
        laps = " ".join(f"{k[:-3]}={v}" for k, v in record.items() if k.endswith("_ms"))
        return f"{event} {laps}"
    if event == "agent.decided":
        return f"{event} {record.get('changes', record.get('waits', ''))}"
    return event


def all_events(cluster: Cluster) -> list[tuple[float, str, str]]:
    """Every plugin and agent event of the run, in time order."""
    events = []
    for node in ("node1", "node2"):
        root = os.path.join(cluster.workdir, node)
        events += plugin_events(os.path.join(root, "plugin.log"), f"{node}-plugin")
        events += agent_events(os.path.join(root, "agent.log"), f"{node}-agent")
    return sorted(events)


def timeline(events: list[tuple[float, str, str]], start: float, seconds: float) -> list[str]:
    """The events of one timed command, as ``+ms source event`` lines."""
    lines = [f"{0:+8.1f} ms  bench          podman run starts"]
    for when, source, event in events:
        if start <= when <= start + seconds:
            lines.append(f"{(when - start) * 1000:+8.1f} ms  {source:<14} {event}")
    lines.append(f"{seconds * 1000:+8.1f} ms  bench          podman run has exited")
    return lines


def first_offsets(
    events: list[tuple[float, str, str]], starts: list[float], samples: list[float]
) -> list[tuple[float, str]]:
    """Median offset (ms) of the first occurrence of each kind of event across trials."""
    offsets: dict[str, list[float]] = {}
    for start, seconds in zip(starts, samples, strict=True):
        seen: set[str] = set()
        for when, source, event in events:
            key = f"{source:<14} {event.split(' ')[0]} {kind_of(event)}".rstrip()
            if start <= when <= start + seconds and key not in seen:
                seen.add(key)
                offsets.setdefault(key, []).append((when - start) * 1000)
    return sorted((percentile(v, 0.5), f"{k} (in {len(v)}/{len(starts)})")
                  for k, v in offsets.items())


def kind_of(event: str) -> str:
    """The change kind in an ``agent.change.done <Kind>`` event, else ``""``."""
    parts = event.split(" ")
    return parts[1] if parts[0] in ("agent.change.done", "agent.waiting") else ""


def explain(cluster: Cluster, samples: list[float], starts: list[float]) -> str:
    """Where (b)'s time goes: median first-event offsets, and the median trial in full."""
    events = all_events(cluster)
    median = sorted(range(len(samples)), key=samples.__getitem__)[len(samples) // 2]
    lines = ["Where (b) spends its time (ms after `podman run` starts, median over trials):"]
    lines += [f"{ms:+8.1f} ms  {key}" for ms, key in first_offsets(events, starts, samples)]
    lines += ["", f"The median trial ({median}) in full:"]
    lines += timeline(events, starts[median], samples[median])
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------


def keep_logs(workdir: str, directory: str) -> None:
    """Copy the run's logs to ``directory`` before the work directory is removed."""
    os.makedirs(directory, exist_ok=True)
    for name, path in log_paths(workdir).items():
        if os.path.exists(path):
            shutil.copy(path, os.path.join(directory, name))


def run(trials: int, show_timeline: bool, logs: str | None) -> int:
    """Start the cluster, measure, print; everything is cleaned up. Returns the exit status."""
    workdir = tempfile.mkdtemp(prefix="shoal-bench-")
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        if logs:
            stack.callback(keep_logs, workdir, logs)
        cluster = Cluster(workdir, stack)
        table, b, starts, c_p50 = measure(cluster, trials)
        print(table.render())
        print()
        print(verdict(b, c_p50))
        if show_timeline:
            print()
            print(explain(cluster, b, starts))
    return 0


def main() -> int:
    """Check the prerequisites, then run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--timeline", action="store_true",
                        help="show where (b)'s time goes, from the agents' and plugins' logs")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy every log to DIR at the end")
    args = parser.parse_args()
    reason = why_not_runnable()
    if reason is not None:
        print(f"bench/docker.py cannot run: {reason}. It needs root, docker.io, podman, "
              "busybox-static and the loopback backend (losetup, mkfs.ext4).", file=sys.stderr)
        return 2
    return run(args.trials, args.timeline, args.keep_logs)


if __name__ == "__main__":
    sys.exit(main())
