"""
Writes (issue 16): creates per second and their latency from 1 to 1,000 concurrent clients.

For each dataset count the database is seeded (:mod:`_scale_db`), a real
``shoal control serve`` is started on it, and ``POST /v1/configuration/datasets``
is sent by real HTTP clients: the concurrent clients are spread over
:data:`PROCESSES` client processes, each running its share as asyncio
connections (raw HTTP/1.1 keep-alive, the cheapest client Python has), so the
client side is not the bottleneck. Every client sends creates one after
another for :data:`SECONDS` (at least one each). The full curve (1, 8, 64,
256 and 1,000 clients) is measured on the smallest cluster; with more
datasets, and with more nodes, 8 clients only (the growth shapes). Notes
say how much CPU the service and the clients took, per create.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import resource
import tempfile
import time
import uuid
from typing import Any

from _common import KeepAlive, Table
from _scale_db import SIZE, database, node_ids, seed
from _scale_reads import _warmed

from tests.processes import ControlProcess

LEVELS = (1, 8, 64, 256, 1_000)
GROWTH_LEVEL = 8
PROCESSES = 2
SECONDS = 6.0
QUICK_SECONDS = 3.0
TICKS = os.sysconf("SC_CLK_TCK")


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 answer (Content-Length or chunked): its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if line)}
    status = int(lines[0].split()[1])
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, body
        body += chunk[:-2]


def _request(primary: str, index: int) -> bytes:
    body = json.dumps(
        {"primary": primary, "maximum_size": SIZE, "metadata": {"name": f"w-{index}"}}
    ).encode()
    return (
        b"POST /v1/configuration/datasets HTTP/1.1\r\nHost: bench\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )


async def _client(
    port: int, primaries: list[str], start: float, until: float, samples: list[float]
) -> None:
    """One client: creates on one keep-alive connection until ``until`` (at least one)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(max(0.0, start - time.time()))
    try:
        while True:
            request = _request(primaries[len(samples) % len(primaries)], uuid.uuid4().int)
            before = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status, body = await _answer(reader)
            if status != 201:
                raise RuntimeError(f"create answered {status}: {body[:300]!r}")
            samples.append(time.perf_counter() - before)
            if time.time() >= until:
                return
    finally:
        writer.close()


def _clients(port: int, primaries: list[str], count: int, start: float, until: float,
             out: Any) -> None:
    """A client process: ``count`` clients; sends back (samples, CPU seconds used)."""

    async def run() -> list[float]:
        samples: list[float] = []
        each = [_client(port, primaries, start, until, samples) for _ in range(count)]
        await asyncio.gather(*each)
        return samples

    samples = asyncio.run(run())
    used = resource.getrusage(resource.RUSAGE_SELF)
    out.send((samples, used.ru_utime + used.ru_stime))
    out.close()


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds that process ``pid`` used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def level(port: int, pid: int, primaries: list[str], clients: int, seconds: float
          ) -> tuple[list[float], float, float, float]:
    """``clients`` concurrent creators for ``seconds``: samples, wall, service CPU, client CPU."""
    context = multiprocessing.get_context("fork")
    processes = min(PROCESSES, clients)
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    start = time.time() + 0.5 + clients / 500  # every connection opens before any sends
    until = start + seconds
    pipes, children = [], []
    for share in shares:
        mine, theirs = context.Pipe(duplex=False)
        child = context.Process(target=_clients,
                                args=(port, primaries, share, start, until, theirs))
        child.start()
        pipes.append(mine)
        children.append(child)
    time.sleep(max(0.0, start - time.time()))
    cpu_before, wall_before = _cpu_seconds(pid), time.perf_counter()
    samples: list[float] = []
    client_cpu = 0.0
    for mine in pipes:
        got, used = mine.recv()
        samples.extend(got)
        client_cpu += used
    wall = time.perf_counter() - wall_before
    service_cpu = _cpu_seconds(pid) - cpu_before
    for child in children:
        child.join()
    return samples, wall, service_cpu, client_cpu


def _serve(url: str, clients: int, log_path: str) -> ControlProcess:
    extra = ["--failover-grace", "86400", "--node-timeout", "86400",
             "--max-connections-per-address", str(clients + 100),
             "--max-connections", str(clients + 200)]
    return ControlProcess(url, extra, log_path=log_path).start(timeout=120)


def _measure_size(table: Table, kind: str, count: int, node_count: int,
                  levels: tuple[int, ...], seconds: float) -> None:
    with database(kind) as url:
        nodes = node_ids(node_count)
        seed(url, nodes, count)
        primaries = [str(n) for n in nodes]
        log = tempfile.NamedTemporaryFile(prefix="shoal-writes-", suffix=".log")
        service = _serve(url, max(levels), log.name)
        assert service.process is not None
        try:
            # the service loads and encodes the listings in its pool once it listens (at
            # 100,000 datasets for seconds, most of a core): creates are measured after
            KeepAlive(service.port).check("GET", "/v1/configuration/datasets")
            _warmed(service)
            level(service.port, service.process.pid, primaries, 2, 1.0)  # warm up
            for clients in levels:
                samples, wall, served, used = level(
                    service.port, service.process.pid, primaries, clients, seconds
                )
                scenario = (f"{count} datasets / {node_count} nodes: POST "
                            f"/v1/configuration/datasets, {clients} clients")
                table.add(scenario, samples, wall, service.rss_kib())
                per = 1000 / max(1, len(samples))
                table.note(
                    f"{kind}, {count} datasets / {node_count} nodes, {clients} clients: "
                    f"service CPU {100 * served / wall:.0f}% of one core "
                    f"({served * per:.2f} ms per create), "
                    f"clients {100 * used / wall:.0f}% ({used * per:.2f} ms per create)"
                )
        finally:
            service.stop()
            log.close()


def measure(table: Table, kind: str, *, datasets: list[int], nodes: list[int]) -> None:
    """Add the writes rows for database ``kind`` to ``table`` (see the module docstring)."""
    quick = len(datasets) == 1 and len(nodes) == 1
    seconds = QUICK_SECONDS if quick else SECONDS
    sizes, counts = sorted(datasets), sorted(nodes)
    _measure_size(table, kind, sizes[0], counts[0], LEVELS, seconds)
    for count in sizes[1:]:
        _measure_size(table, kind, count, counts[0], (GROWTH_LEVEL,), seconds)
    for node_count in counts[1:]:
        _measure_size(table, kind, sizes[0], node_count, (GROWTH_LEVEL,), seconds)
