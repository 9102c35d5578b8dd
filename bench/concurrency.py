"""
Dataset creates under 1 to 1,000 concurrent clients, on SQLite and on PostgreSQL.

Starts a real control service per database, registers one node, then for each
level of concurrency opens that many keep-alive connections at once (asyncio,
so that the client is not the bottleneck) and has each send creates one after
another. Prints the latency of each create (p50, p99), the throughput and the
service's resident memory per level.

    python bench/concurrency.py [--levels 1,10,100,1000] [--creates 1000]
                                [--database-threads 8] [--skip-postgres]

What bounds it: every create is one transaction committed to disk (SQLite
WAL with ``synchronous=FULL``; PostgreSQL), and writers are serialised (one
SQLite writer; ``SELECT ... FOR UPDATE`` of the cluster row on PostgreSQL).
Throughput is therefore flat from 10 to 1,000 clients (about 200 creates/s
on SQLite and 130/s on PostgreSQL on a 2-core test machine) and latency is
queueing: with 1,000 clients sending one create each, the median waits for
about 500 commits. The request's own work (about 2 ms on the reactor) and
the size of the database thread pool (2, 8 or 32 threads measure the same)
are not the bottleneck. Group commit (several queued writes in one
transaction) is what would raise the ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid

from _common import KeepAlive, Table

from tests.processes import ControlProcess, fresh_postgres_database, postgres_available

SIZE = 64 * 1024 * 1024


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one HTTP/1.1 answer (Content-Length or chunked); its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if line)}
    if "content-length" in headers:
        return int(lines[0].split()[1]), await reader.readexactly(int(headers["content-length"]))
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return int(lines[0].split()[1]), body
        body += chunk[:-2]


async def creator(port: int, request: bytes, count: int, samples: list[float]) -> None:
    """One client: ``count`` creates on one keep-alive connection, each timed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            start = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status, body = await read_answer(reader)
            if status != 201:
                raise RuntimeError(f"create answered {status}: {body[:200]!r}")
            samples.append(time.perf_counter() - start)
    finally:
        writer.close()


async def level(port: int, primary: str, clients: int, creates: int) -> tuple[list[float], float]:
    """``creates`` creates (at least one per client) spread over ``clients`` connections."""
    body = json.dumps({"primary": primary, "maximum_size": SIZE}).encode()
    request = (
        b"POST /v1/configuration/datasets HTTP/1.1\r\nHost: bench\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    each = max(1, creates // clients)
    samples: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(creator(port, request, each, samples) for _ in range(clients)))
    return samples, time.perf_counter() - start


def run(
    database: str, label: str, levels: list[int], creates: int, table: Table, threads: int
) -> None:
    """Benchmark creates at each level of concurrency against one service on ``database``."""
    extra = [
        "--max-connections-per-address", str(max(levels) + 100),
        "--database-threads", str(threads),
    ]
    service = ControlProcess(database, extra).start()
    try:
        node = str(uuid.uuid4())
        KeepAlive(service.port).check(
            "PUT", f"/v1/shoal/nodes/{node}", {"host": "10.0.0.1", "era": None, "labels": {}}
        )
        for clients in levels:
            samples, wall = asyncio.run(level(service.port, node, clients, creates))
            table.add(f"{label}: {clients} clients", samples, wall, service.rss_kib())
    finally:
        service.stop()


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default="1,10,100,1000")
    parser.add_argument("--creates", type=int, default=1000, help="creates per level")
    parser.add_argument("--database-threads", type=int, default=8)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    table = Table(f"Concurrent creates ({args.creates} per level)")
    with tempfile.TemporaryDirectory() as directory:
        sqlite = f"sqlite:///{os.path.join(directory, 'bench.db')}"
        run(sqlite, "SQLite", levels, args.creates, table, args.database_threads)
    if args.skip_postgres:
        print("(PostgreSQL skipped: --skip-postgres)")
    elif not postgres_available():
        print("(PostgreSQL skipped: not reachable on 127.0.0.1:5432)")
    else:
        url = fresh_postgres_database("shoal_bench_concurrency")
        run(url, "PostgreSQL", levels, args.creates, table, args.database_threads)
    print(table.render())


if __name__ == "__main__":
    main()
