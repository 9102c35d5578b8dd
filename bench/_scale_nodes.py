"""
The ``nodes`` part of ``bench/scale.py`` (issue 16): simulated nodes heartbeating and watching.

For each node count, a database is seeded with that many registered nodes and the
largest dataset count (:mod:`_scale_db`), and a real ``shoal control serve`` is
started on it. Simulated nodes are real HTTP clients: ``WORKERS`` processes, each an
asyncio loop holding one keep-alive connection per node, on which the node does what
an idle agent does (:mod:`agent.loop`): it holds a watch (``GET /v1/shoal/watch``,
with ``node=<uuid>`` so the service may wake it only for its own changes) until its
next heartbeat is due, then reports (``PUT /v1/shoal/state/<uuid>``, the node's
report of every dataset it holds), and watches again. A node whose watch answers
early fetches its configuration, as an agent does.

The nodes start at once, as agents do when the service comes back, and each one's first
report is new to the service (every dataset it holds). Measured first: how long the
nodes took to connect and be configured, and their first reports. Then, once every
node has joined and one more heartbeat has passed, the steady state: the heartbeats'
latency on the client side; the control service's CPU
(``/proc/PID/stat``) over a steady window; then a few writes (each a move of one
dataset from one node to another), how many watchers each woke, and how long after
the write was sent its concerned watchers (the two nodes) heard of it.

``HEARTBEAT`` is 5 s, issue 16's: the heartbeat the service tells agents
(``min(G/5, 5 s)``, docs/failover.md) with the grace used here (``--failover-grace
300``, so that a machine too loaded to keep up fences no node); a node is suspect
after two heartbeats missed (10 s). Each simulated node takes its heartbeat from the
service's answer to its first configuration fetch, and shortens each wait for the next
by up to 10% at random, as the agent does (:func:`agent.pacing.heartbeat_pace`).

Each node reports at most ``REPORTED`` of its datasets mounted: a real node holds
tens of volumes, not the 10,000 that 100,000 datasets on 10 nodes would give it
(the cost of such a report is the ``moves`` and ``reads`` parts' business).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import tempfile
import time
import uuid
from typing import Any

from _common import Table
from _scale_db import MOUNT_ROOT, database, node_ids, seed
from _scale_reads import _warmed

from agent.pacing import heartbeat_pace
from tests.processes import ControlProcess

HEARTBEAT = 5.0
WORKERS = 3
JOIN_LIMIT = 300.0
WARMUP = HEARTBEAT + 2.0
STEADY = 30.0
WRITES = 5
WRITE_GAP = 1.5
NO_STATE_WAKE = 10**18 - 1
REPORTED = 100


# -- one worker process: many nodes on one asyncio loop --------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection speaking JSON (enough for the control service)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request and read its answer; status 0 when the connection failed."""
        try:
            return await self._request(method, path, body)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as e:
            if self.writer is not None:
                self.writer.close()
            self.reader = self.writer = None
            return 0, f"{type(e).__name__}: {e}"

    async def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        data = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")
        self.writer.write(head.encode() + data)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            payload = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                payload += chunk[:-2]
        else:
            payload = await self.reader.readexactly(length)
        return status, json.loads(payload) if payload else None


def report_body(index: int, datasets: list[str], generation: int) -> dict[str, Any]:
    """A node's report: every dataset it holds, mounted."""
    return {
        "era": f"era-{index}",
        "generation": generation,
        "datasets": [
            {"dataset_id": d, "status": "mounted", "maximum_size": 64 * 1024 * 1024,
             "device": f"/dev/sd{n}", "path": f"{MOUNT_ROOT}/{d}"}
            for n, d in enumerate(datasets)
        ],
    }


async def run_node(port: int, index: int, node: str, datasets: list[str], until: Any,
                   out: Any, targeted: bool) -> None:
    """Watch, and report when a heartbeat is due, as one idle agent, until ``until.value``."""
    begun = time.time()
    http = Connection(port)
    for attempt in range(51):  # 1,000 nodes connecting at once: a connection may be dropped
        if attempt:
            await asyncio.sleep(0.1 + random.random() * 0.2)
        status, versions = await http.request("GET", f"/v1/shoal/watch?timeout=0&node={node}")
        if status != 0:
            break
    if status == 400:  # a service without targeted watches: watch everything
        targeted = False
        _, versions = await http.request("GET", "/v1/shoal/watch?timeout=0")
    _, configuration = await http.request("GET", f"/v1/shoal/nodes/{node}/configuration")
    heartbeat = configuration.get("heartbeat", HEARTBEAT)
    out.put(("told", time.time(), heartbeat, time.time() - begun))
    seen = versions["configuration"]
    body = report_body(index, datasets[:REPORTED], seen)
    suffix = f"&node={node}" if targeted else ""
    due = time.time() + random.random() * heartbeat
    joined = False
    while time.time() < until.value:
        if time.time() >= due:
            started = time.perf_counter()
            due = time.time() + heartbeat * heartbeat_pace(random.random())  # as the agent
            status, answer = await http.request("PUT", f"/v1/shoal/state/{node}", body)
            out.put(("beat", time.time(), time.perf_counter() - started, status))
            if not joined:
                joined = True
                out.put(("joined", time.time(), time.perf_counter() - started, time.time() - begun))
            if status != 200:
                out.put(("error", time.time(), status, str(answer)[:200]))
        timeout = min(due, until.value) - time.time()
        if timeout < 0.05:
            await asyncio.sleep(max(0.0, timeout))
            continue
        asked = time.time()
        status, answer = await http.request(
            "GET",
            f"/v1/shoal/watch?configuration={seen}&state={NO_STATE_WAKE}"
            f"&timeout={timeout:.3f}{suffix}",
        )
        answered = time.time()
        if status != 200:
            out.put(("error", answered, status, str(answer)[:200]))
            await asyncio.sleep(1)
            continue
        early = answered - asked < timeout - 0.05
        if answer["configuration"] > seen and early:
            out.put(("wake", answered, index, answer["configuration"]))
            got, configuration = await http.request(
                "GET", f"/v1/shoal/nodes/{node}/configuration")
            if got != 200:
                out.put(("error", time.time(), got, str(configuration)[:200]))
        seen = max(seen, answer["configuration"])


def worker(port: int, nodes: list[tuple[int, str, list[str]]], until: Any, out: Any,
           targeted: bool) -> None:
    """One process: run its share of nodes until ``until.value`` (shared, moved by the parent)."""

    async def main() -> None:
        await asyncio.gather(*(run_node(port, i, n, d, until, out, targeted) for i, n, d in nodes))

    asyncio.run(main())


# -- the measurement ---------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain(queue: Any, into: list[tuple[Any, ...]]) -> None:
    """Move everything waiting in ``queue`` into ``into``."""
    while True:
        try:
            into.append(queue.get_nowait())
        except Exception:  # noqa: BLE001 - queue.Empty: nothing more for now
            return


def run(table: Table, kind: str, datasets: int, count: int, targeted: bool = True) -> None:
    """One node count on one database: seed, serve, simulate, measure, add rows."""
    from _common import KeepAlive

    with database(kind) as url, tempfile.NamedTemporaryFile(suffix=".log") as log:
        ids = node_ids(count)
        placed = seed(url, ids, datasets)
        extra = ["--failover-grace", "300", "--max-connections-per-address", "10000"]
        control = ControlProcess(url, extra=extra, nofile=20000, log_path=log.name)
        control.start(timeout=300)
        try:
            # the nodes measure a running service, not one still encoding its listings (for
            # seconds at 100,000 datasets, competing for the GIL with the heartbeats)
            _warmed(control)
            assert control.process is not None
            pid = control.process.pid
            label = f"{datasets} datasets / {count} nodes"
            nodes = [(i, str(n), [str(d) for d in placed[n]]) for i, n in enumerate(ids)]
            context = multiprocessing.get_context("fork")
            until = context.Value("d", time.time() + JOIN_LIMIT, lock=False)
            queue: Any = context.Queue()
            procs = [
                context.Process(
                    target=worker, args=(control.port, nodes[w::WORKERS], until, queue, targeted)
                )
                for w in range(WORKERS)
            ]
            for p in procs:
                p.start()
            events = joined(queue, count, label, table)
            until.value = time.time() + WARMUP + STEADY + WRITES * WRITE_GAP + 3.0
            time.sleep(WARMUP)
            drain(queue, events)
            cpu_before, wall_before = cpu_seconds(pid), time.time()
            time.sleep(STEADY)
            cpu_after, wall_after = cpu_seconds(pid), time.time()
            drain(queue, events)
            beats = [e[2] for e in events if e[0] == "beat" and wall_before <= e[1] <= wall_after]
            refused = [e for e in events if e[0] == "beat" and e[3] != 200]
            cpu = (cpu_after - cpu_before) / (wall_after - wall_before) * 100
            per_beat = (cpu_after - cpu_before) / max(1, len(beats)) * 1000
            table.add(f"{label}: heartbeat (PUT state) under load", beats,
                      wall_after - wall_before, control.rss_kib())
            told = sorted({e[2] for e in events if e[0] == "told"})
            table.note(f"{label}: control CPU {cpu:.1f}% of one core over "
                       f"{wall_after - wall_before:.0f} s ({len(beats) / STEADY:.0f} heartbeats/s"
                       f" and as many watches, heartbeat told {told} s"
                       f"{f', {len(refused)} refused' if refused else ''}; "
                       f"{per_beat:.2f} ms of CPU per heartbeat and its watch, so "
                       f"{per_beat * count / HEARTBEAT / 10:.0f}% at {count} nodes' full rate)")
            writes = move_some(KeepAlive(control.port), placed, ids)
            time.sleep(2.0)
            drain(queue, events)
            woken, last = [], []
            for sent, generation, concerned in writes:
                wakes = [e for e in events if e[0] == "wake" and e[3] >= generation
                         and sent <= e[1] <= sent + WRITE_GAP]
                woken.append(len(wakes))
                mine = [e[1] - sent for e in wakes if e[2] in concerned]
                last.append(max(mine) if mine else float("nan"))
            table.add(f"{label}: a move's concerned watchers, last woken after", last, None, None)
            table.note(f"{label}: watchers woken per move (2 concerned): {woken}")
            print("\n".join([*(" | ".join(row) for row in table.rows[-4:]), *table.notes[-3:]]),
                  flush=True)
            errors = [e for e in events if e[0] == "error"]
            if errors:
                table.note(f"{label}: {len(errors)} failed requests, e.g. {errors[0]}")
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
        finally:
            control.stop()


def joined(queue: Any, count: int, label: str, table: Table) -> list[tuple[Any, ...]]:
    """Wait until every node has made its first report, and add the join's rows.

    The nodes start at once, as agents do when the service comes back: each connects,
    fetches its configuration and sends its first report, in which every dataset it
    holds is new to the service. The steady window is measured only after that burst.
    """
    events: list[tuple[Any, ...]] = []
    deadline = time.time() + JOIN_LIMIT
    while sum(e[0] == "joined" for e in events) < count and time.time() < deadline:
        time.sleep(0.2)
        drain(queue, events)
    told = [e[3] for e in events if e[0] == "told"]
    first = [e for e in events if e[0] == "joined"]
    table.add(f"{label}: joining at once, connected and configured after", told, None, None)
    table.add(f"{label}: joining at once, first report (every dataset new)",
              [e[2] for e in first], None, None)
    table.note(f"{label}: {len(first)} of {count} nodes joined (first report answered) within "
               f"{max((e[3] for e in first), default=float('nan')):.1f} s of starting")
    return events


def move_some(client: Any, placed: dict[uuid.UUID, list[uuid.UUID]],
              ids: list[uuid.UUID]) -> list[tuple[float, int, set[int]]]:
    """Move ``WRITES`` datasets each from one node to the next; (sent, generation, nodes)."""
    done = []
    for n in range(WRITES):
        source, target = n % len(ids), (n + 1) % len(ids)
        dataset = placed[ids[source]][0]  # each source moves its first
        sent = time.time()
        answer = client.check("POST", f"/v1/configuration/datasets/{dataset}",
                              {"primary": str(ids[target])})
        _, versions, _ = client.request("GET", "/v1/shoal/watch?timeout=0")
        generation = versions["configuration"]
        assert answer["primary"] == str(ids[target])
        done.append((sent, generation, {source, target}))
        time.sleep(WRITE_GAP)
    return done


def measure(table: Table, kind: str, *, datasets: list[int], nodes: list[int]) -> None:
    """Add the nodes rows for ``kind``: every node count, at the largest dataset count."""
    for count in nodes:
        run(table, kind, max(datasets), count)
