"""
The agent's path at scale (issue 16, ``bench/scale.py --parts moves``).

For each size (datasets over registered nodes), against a real ``shoal control
serve`` with real HTTP clients:

- one node's configuration, ``GET /v1/shoal/nodes/{node}/configuration`` (what
  each agent fetches every time the watch wakes it);
- a state report, ``PUT /v1/shoal/state/{node}`` (the agent's full report of its
  node), unchanged and with one dataset changed;
- at the largest size, concurrent moves: every node hands one of its datasets
  to another, watched by simulated agents (:mod:`_scale_agents`: the real loop
  and the real HTTP client on the fake backend, many agents per process), until
  the new primary of each reports it mounted.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import KeepAlive, Table, percentile, timed
from _scale_db import MOUNT_ROOT, SIZE, database, node_ids, seed
from _scale_nodes import cpu_seconds

from control.model import DatasetState, NodeState, VolumeStatus
from control.store import queries as q
from control.store.sql import SQLStore
from tests.processes import ControlProcess

SAMPLES = 60
"""Requests per latency row."""

AGENTS_PER_PROCESS = 50
"""Simulated agents per process: 1,000 agents in 20 processes (2 cores cannot run 100)."""

IDLE = 10.0
"""Seconds of idle agents measured before the moves (the steady CPU the moves add to)."""

MOVERS = int(os.environ.get("SCALE_MOVERS", "64"))
"""Concurrent clients sending the moves (64, as the README's figures; with 8, each POST waits
behind the agents' reports and sending 1,000 moves alone takes about 3 minutes)."""

SERVE = ["--failover-grace", "86400", "--node-timeout", "86400",
         "--max-connections-per-address", "6000", "--max-connections", "7000"]
"""The service's options: no failover while 2 cores run 1,000 agents (a starved agent
must not be fenced), and room for every agent's connections from one address."""

MOST_PER_NODE = 4_000
"""Datasets per node measured at most: a node's report is about 216 bytes a dataset, and the
service accepts bodies of 1 MiB (about 4,800 datasets per report)."""

AGENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_scale_agents.py")


def report_body(datasets: list[uuid.UUID], generation: int, era: str,
                mounted: bool = True) -> dict[str, Any]:
    """A node's full report: every one of ``datasets`` mounted (or the first only attached)."""
    entries = []
    for index, dataset_id in enumerate(sorted(datasets, key=str)):
        device = f"/dev/fake/b-{dataset_id}"
        if index == 0 and not mounted:
            entries.append({"dataset_id": str(dataset_id), "status": "attached",
                            "maximum_size": 64 * 1024 * 1024, "device": device})
            continue
        entries.append({"dataset_id": str(dataset_id), "status": "mounted",
                        "maximum_size": 64 * 1024 * 1024, "device": device,
                        "path": f"{MOUNT_ROOT}/{dataset_id}"})
    return {"era": era, "generation": generation, "datasets": entries, "conditions": [],
            "capacity": None, "capacities": [], "orphans": [], "snapshots": []}


def seed_reports(url: str, nodes: list[uuid.UUID],
                 placed: dict[uuid.UUID, list[uuid.UUID]]) -> None:
    """Store every node's report of its datasets mounted, in one transaction (as after the
    cluster ran a while: the agents' own first reports then tell no news, and make no events)."""
    store = SQLStore(url)
    try:
        with store._write() as (connection, generation, state_version):
            for index, node in enumerate(nodes):
                states = {d: DatasetState(d, VolumeStatus.MOUNTED, SIZE, f"/dev/fake/b-{d}",
                                          f"{MOUNT_ROOT}/{d}") for d in placed[node]}
                q.put_report(connection, NodeState(node, f"era-{index}", generation, states,
                                                   reported_at=time.time()), exists=False)
            q.write_counters(connection, generation, state_version + 1)
    finally:
        store.close()


def cluster_arguments(description: str | None) -> argparse.ArgumentParser:
    """The arguments of a bench that seeds one reported cluster: --store, --datasets, --nodes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=50)
    return parser


@contextlib.contextmanager
def reported_cluster(
    store: str, datasets: int, nodes: int
) -> Iterator[tuple[str, list[uuid.UUID], dict[uuid.UUID, list[uuid.UUID]]]]:
    """A throwaway database of ``datasets`` over ``nodes``, every node's report stored
    (:func:`seed_reports`): its URL, the node ids and each node's datasets."""
    with database(store) as url:
        ids = node_ids(nodes)
        placed = seed(url, ids, datasets)
        seed_reports(url, ids, placed)
        yield url, ids, placed


def seed_agent_reports(url: str, agents: list[dict[str, Any]]) -> None:
    """Store every node's report as its simulated agent will first make it
    (:func:`_scale_agents.observed`: the fake backend's devices and capacity)."""
    from _scale_agents import observed

    store = SQLStore(url)
    try:
        with store._write() as (connection, generation, state_version):
            for agent, (devices, capacity) in zip(agents, observed(agents, MOUNT_ROOT).values(),
                                                  strict=True):
                states = {d: DatasetState(d, VolumeStatus.MOUNTED, SIZE, device,
                                          f"{MOUNT_ROOT}/{d}") for d, device in devices.items()}
                q.put_report(connection, NodeState(uuid.UUID(agent["node"]), agent["era"],
                                                   generation, states, reported_at=time.time(),
                                                   capacity=capacity), exists=True)
            q.write_counters(connection, generation, state_version + 1)
    finally:
        store.close()


def node_rows(table: Table, url: str, count: int, nodes: list[uuid.UUID],
              placed: dict[uuid.UUID, list[uuid.UUID]]) -> None:
    """The node configuration and state report rows of one seeded cluster."""
    size = f"{count} datasets / {len(nodes)} nodes"
    log = tempfile.NamedTemporaryFile(prefix="shoal-scale-moves-", suffix=".log", delete=False)
    control = ControlProcess(url, extra=SERVE, log_path=log.name).start(timeout=600)
    try:
        _warmed(log.name, timeout=600)
        client = KeepAlive(control.port)
        generation = client.check("GET", "/v1/shoal/watch?timeout=0")["configuration"]
        reporter = nodes[0]
        era = "era-0"
        client.check("GET", "/v1/shoal/nodes")  # the actual state is read (and cached) once
        path = f"/v1/shoal/nodes/{reporter}/configuration"
        client.check("GET", path)
        samples, wall = timed(lambda: client.check("GET", path), SAMPLES)
        _row(table, f"{size}: GET node configuration ({count // len(nodes)} datasets)",
                  samples, wall, control.rss_kib())
        # Encoded before the clock starts, as an agent has its body ready before it sends
        # it: the rows time the service's answer, not the client's json.dumps (4 ms at
        # 2,000 datasets).
        full = json.dumps(report_body(placed[reporter], generation, era)).encode()
        changed = json.dumps(
            report_body(placed[reporter], generation, era, mounted=False)
        ).encode()
        state = f"/v1/shoal/state/{reporter}"
        samples, wall = timed(lambda: client.check("PUT", state, full), SAMPLES)
        _row(table, f"{size}: PUT state report, unchanged", samples, wall, control.rss_kib())
        bodies = [changed, full]
        flip = iter(range(10**9))
        samples, wall = timed(
            lambda: client.check("PUT", state, bodies[next(flip) % 2]), SAMPLES
        )
        _row(table, f"{size}: PUT state report, one dataset changed", samples, wall,
                  control.rss_kib())
    finally:
        control.stop()
        os.unlink(log.name)


def _warmed(log_path: str, timeout: float) -> None:
    """Wait until the service logged that it loaded and encoded the listings (it does so in
    its pool once it listens, competing for the GIL for seconds at 100,000 datasets): the
    rows measure an agent's requests to a running service, not to one starting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            text = f.read()
        if b"control.warmed" in text or b"control.warm_failed" in text:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the service did not warm up within {timeout} s")


def _row(table: Table, scenario: str, samples: list[float], wall: float | None,
         rss_kib: int | None) -> None:
    """Add a row to ``table`` and print it at once (a full run takes minutes)."""
    table.add(scenario, samples, wall, rss_kib)
    print("  " + " | ".join(table.rows[-1]), flush=True)


def _host(index: int) -> str:
    return f"10.{index // 250}.{index % 250}.1"  # as _scale_db.seed registers them


def move_plan(nodes: list[uuid.UUID], placed: dict[uuid.UUID, list[uuid.UUID]],
              per_node: int = 1) -> tuple[list[dict[str, Any]], dict[uuid.UUID, uuid.UUID]]:
    """The agents (in pairs that trade their first ``per_node`` datasets) and each move's
    new primary."""
    agents, moves = [], {}
    for index, node in enumerate(nodes):
        partner = nodes[index ^ 1] if (index ^ 1) < len(nodes) else None
        given = [] if partner is None else placed[partner][:per_node]
        for dataset_id in given:
            moves[dataset_id] = node
        agents.append({"node": str(node), "host": _host(index), "era": f"era-{index}",
                       "labels": {"name": f"node{index}"},
                       "datasets": [str(d) for d in placed[node]],
                       "given": [str(d) for d in given]})
    return agents, moves


class Fleet:
    """The simulated agents' processes and what they print."""

    def __init__(self, url: str, agents: list[dict[str, Any]], directory: str) -> None:
        self.lines: queue.Queue[tuple[str, float]] = queue.Queue()
        self.processes: list[subprocess.Popen[str]] = []
        for start in range(0, len(agents), AGENTS_PER_PROCESS):
            path = os.path.join(directory, f"agents-{start}.json")
            with open(path, "w") as f:
                json.dump({"url": url, "mount_root": MOUNT_ROOT,
                           "agents": agents[start:start + AGENTS_PER_PROCESS]}, f)
            process = subprocess.Popen([sys.executable, AGENTS, path], stdout=subprocess.PIPE,
                                       text=True, cwd=os.path.dirname(AGENTS))
            self.processes.append(process)
            threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.put((line.strip(), time.time()))

    def wait(self, word: str, count: int, timeout: float) -> list[tuple[str, float]]:
        """The next ``count`` lines starting with ``word`` (others are dropped)."""
        found: list[tuple[str, float]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"only {len(found)} of {count} {word!r} within {timeout} s")
            try:
                line, at = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if line.startswith("failed"):
                raise RuntimeError(f"an agents' process {line}")
            if line.split(" ", 1)[0] == word:
                found.append((line, at))
        return found

    def cpu_seconds(self) -> float:
        """The CPU seconds the agents' processes used so far."""
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def stop(self) -> None:
        """End every agents' process."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a loaded machine: its reactor did not stop
                process.kill()
                process.wait(timeout=30)


def _requests(port: int) -> dict[tuple[str, str], tuple[float, float]]:
    """``(count, seconds)`` of the service's answered requests so far, by route and method
    (from its ``/metrics``)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    found: dict[tuple[str, str], list[float]] = {}
    for line in text.splitlines():
        for suffix, at in (("_count{", 0), ("_sum{", 1)):
            name = "shoal_http_request_duration_seconds" + suffix
            if line.startswith(name):
                labels, value = line[len(name):].rsplit("} ", 1)
                fields = dict(f.split("=", 1) for f in labels.split(","))
                key = (fields["route"].strip('"'), fields["method"].strip('"'))
                found.setdefault(key, [0.0, 0.0])[at] += float(value)
    return {k: (v[0], v[1]) for k, v in found.items()}


def _print_requests(before: dict[tuple[str, str], tuple[float, float]],
                    after: dict[tuple[str, str], tuple[float, float]], moves: int) -> None:
    """The requests the moves took (with the idle agents' own meanwhile), per move."""
    for key, (count, seconds) in sorted(after.items()):
        old_count, old_seconds = before.get(key, (0.0, 0.0))
        if count > old_count:
            mean = (seconds - old_seconds) / (count - old_count) * 1000
            made = count - old_count
            print(f"    {key[1]} {key[0]}: {made:.0f} ({made / moves:.2f} per move), "
                  f"mean {mean:.1f} ms in the service", flush=True)


def _idle_cpu(pid: int, fleet: Fleet, seconds: float) -> tuple[float, float]:
    """The control service's and the agents' CPU (share of one core) over ``seconds`` of
    the agents idling (heartbeats and watches), before the moves."""
    control, agents = cpu_seconds(pid), fleet.cpu_seconds()
    time.sleep(seconds)
    return ((cpu_seconds(pid) - control) / seconds, (fleet.cpu_seconds() - agents) / seconds)


def move_rows(table: Table, url: str, count: int, nodes: list[uuid.UUID],
              placed: dict[uuid.UUID, list[uuid.UUID]]) -> None:
    """Every node hands one dataset to its pair, all at once; time until all are mounted."""
    size = f"{count} datasets / {len(nodes)} nodes"
    agents, moves = move_plan(nodes, placed, int(os.environ.get("SCALE_MOVES_PER_NODE", "1")))
    seed_agent_reports(url, agents)
    control = ControlProcess(url, extra=SERVE).start(timeout=600)
    with tempfile.TemporaryDirectory(prefix="shoal-scale-agents-") as directory:
        fleet = Fleet(control.url, agents, directory)
        try:
            started = time.monotonic()
            fleet.wait("ready", len(fleet.processes), timeout=900)
            _row(table, f"{size}: {len(nodes)} agents started, all reported (wall)",
                      [time.monotonic() - started], None, control.rss_kib())
            sent: dict[uuid.UUID, float] = {}
            clients = threading.local()

            def move(item: tuple[uuid.UUID, uuid.UUID]) -> None:
                if not hasattr(clients, "client"):
                    clients.client = KeepAlive(control.port)
                dataset_id, primary = item
                sent[dataset_id] = time.time()
                clients.client.check("POST", f"/v1/configuration/datasets/{dataset_id}",
                                     {"primary": str(primary)})

            assert control.process is not None
            idle = _idle_cpu(control.process.pid, fleet, IDLE)
            cpu_before = cpu_seconds(control.process.pid)
            agents_before = fleet.cpu_seconds()
            requests_before = _requests(control.port)
            first = time.time()
            with ThreadPoolExecutor(MOVERS) as pool:
                list(pool.map(move, moves.items()))
            posted = time.time() - first
            lines = fleet.wait("converged", len(moves), timeout=900)
            cpu = cpu_seconds(control.process.pid) - cpu_before
            agents_cpu = fleet.cpu_seconds() - agents_before
            _print_requests(requests_before, _requests(control.port), len(moves))
            done = {uuid.UUID(line.split()[1]): float(line.split()[2]) for line, _ in lines}
            per_move = [done[d] - sent[d] for d in moves]
            wall = max(done.values()) - first
            _row(table, f"{size}: {len(moves)} moves sent by {MOVERS} clients (POST)",
                      [posted / len(moves)] * len(moves), posted, None)
            _row(table, f"{size}: {len(moves)} concurrent moves, each move -> mounted",
                      per_move, wall, control.rss_kib())
            _row(table, f"{size}: {len(moves)} concurrent moves, all converged in (wall)",
                      [wall], None, None)
            cpus = (f"control CPU {cpu:.1f} s ({100 * cpu / wall:.0f}% of one core; idle "
                    f"{100 * idle[0]:.0f}%), agents' CPU {agents_cpu:.1f} s (idle "
                    f"{100 * idle[1]:.0f}%)")
            table.note(f"{size}: {len(moves)} moves by {MOVERS} clients, all converged in "
                       f"{wall:.1f} s: {cpus}")
            print(f"  {len(moves)} moves: all converged in {wall:.2f} s, per move p50 "
                  f"{percentile(per_move, 0.5):.2f} s p99 {percentile(per_move, 0.99):.2f} s, "
                  f"{cpus}", flush=True)
        finally:
            fleet.stop()
            control.stop()


def measure(table: Table, kind: str, *, datasets: list[int], nodes: list[int]) -> None:
    """Add this part's rows for the database ``kind`` to ``table``."""
    most, widest = max(datasets), max(nodes)
    sizes = [(d, widest) for d in datasets] + [(most, n) for n in nodes if n != widest]
    if (most, widest) == (100_000, 1_000):
        sizes.append((100_000, 50))
    sizes = [(d, n) for d, n in sizes if d >= n]
    too_many = [(d, n) for d, n in sizes if d / n > MOST_PER_NODE]
    for count, node_count in too_many:
        print(f"({count} datasets / {node_count} nodes left out: {count // node_count} datasets "
              f"per node; a report of more than about {MOST_PER_NODE:,} is over the service's "
              "1 MiB body limit)", flush=True)
    for count, node_count in [size for size in sizes if size not in too_many]:
        with database(kind) as url:
            ids = node_ids(node_count)
            placed = seed(url, ids, count)
            seed_reports(url, ids, placed)
            node_rows(table, url, count, ids, placed)
            if node_count == widest and count == most and not os.environ.get("SCALE_NO_AGENTS"):
                move_rows(table, url, count, ids, placed)
