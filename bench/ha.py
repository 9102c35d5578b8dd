"""
High availability: control replicas on one PostgreSQL database (docs/operations.md).

    python bench/ha.py [--watches 100] [--kills 3] [--creates 300]

Runs on a PostgreSQL server of its own (initdb in a temporary directory) and
prints one table:

- watch latency: a write on replica A wakes a watch waiting on replica B
  (LISTEN/NOTIFY); the same replica for comparison (target: A -> B p50 < 20 ms);
- leader handover: kill -9 the acting leader, time until another replica
  acts (target < 5 s; the takeover delay alone is 3 s);
- client-visible gap: a client creating datasets as fast as it can through
  every replica's URL, while the replica it talks to is killed: the longest
  wait between two acknowledgements around each kill (target < 2 s);
- create throughput: 6 concurrent clients on 1 replica, then spread over 3.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid

from _common import KeepAlive, Table

from control.client.messages import register_node_body
from tests.pgserver import ThrowawayPostgres, postgres_bin
from tests.processes import ControlProcess, http_json, wait_until
from tests.replicaload import LoadProcess, acknowledged

SIZE = 64 * 1024 * 1024


def start_all(services: list[ControlProcess]) -> None:
    """Start the replicas at the same moment; wait for each to listen."""
    threads = [threading.Thread(target=s.start, kwargs={"timeout": 120}) for s in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def restart(service: ControlProcess) -> None:
    """Start a killed replica again."""
    service.start(timeout=120)


def leads(service: ControlProcess) -> bool:
    """Whether the replica is alive and says (``GET /v1/version``) that it leads."""
    if service.process is None or service.process.poll() is not None:
        return False
    try:
        status, _, body = http_json("GET", service.url + "/v1/version")
    except OSError:
        return False
    return status == 200 and body.get("leader") is True


def acting(services: list[ControlProcess]) -> list[ControlProcess]:
    """The live replicas that lead."""
    return [s for s in services if leads(s)]


def watch_once(writer: KeepAlive, watcher: KeepAlive) -> float:
    """Seconds from a write on ``writer`` until a watch waiting on ``watcher`` answers."""
    versions = watcher.check("GET", "/v1/shoal/watch?timeout=0")
    woke: list[float] = []
    waiting = threading.Event()

    def watch() -> None:
        query = (f"/v1/shoal/watch?configuration={versions['configuration']}"
                 f"&state={versions['state']}&timeout=20")
        waiting.set()
        watcher.check("GET", query)
        woke.append(time.perf_counter())

    thread = threading.Thread(target=watch)
    thread.start()
    waiting.wait()
    time.sleep(0.05)  # the request reaches the replica and waits there
    wrote = time.perf_counter()
    writer.check("PUT", f"/v1/shoal/nodes/{uuid.uuid4()}",
                 register_node_body("bench", "era", {}, None))
    thread.join()
    return woke[0] - wrote


def watch_latency(services: list[ControlProcess], n: int, table: Table) -> None:
    """Write on A, watch on B; and write and watch on A."""
    a, b = services[0], services[1]
    for label, writer_port, watcher_port in (("A -> B", a.port, b.port),
                                              ("A -> A", a.port, a.port)):
        writer, watcher = KeepAlive(writer_port), KeepAlive(watcher_port)
        samples = [watch_once(writer, watcher) for _ in range(n)]
        table.add(f"watch wake-up, write {label}", samples, None, b.rss_kib())


def handover(services: list[ControlProcess], kills: int, table: Table) -> None:
    """Kill -9 the acting leader; time until another replica acts."""
    samples = []
    for _ in range(kills):
        leader = wait_until(lambda: acting(services), 60, "a leader")[0]
        killed = time.perf_counter()
        leader.kill()
        wait_until(lambda: acting(services), 60, "a new leader")
        samples.append(time.perf_counter() - killed)
        restart(leader)
    table.add("new leader after kill -9 of the leader", samples, None, None)


def client_gap(services: list[ControlProcess], nodes: list[uuid.UUID], kills: int,
               directory: str, table: Table) -> None:
    """The longest wait between acknowledgements around each kill of the client's replica."""
    samples = []
    for round_ in range(kills):
        # the client starts with the first URL: put the victim first
        victim = services[round_ % len(services)]
        urls = [victim.url] + [s.url for s in services if s is not victim]
        load = LoadProcess(urls, nodes, os.path.join(directory, f"gap{round_}.log"))
        try:
            wait_until(lambda lp=load: len(acknowledged(lp.log_path)) >= 20, 60, "writes")
            killed = time.monotonic()
            victim.kill()
            wait_until(lambda lp=load, k=killed: any(e > k + 0.5 for _, _, e in
                                                     acknowledged(lp.log_path)), 60, "recovery")
        finally:
            load.stop()
        ends = sorted(e for _, _, e in acknowledged(load.log_path))
        around = [b - a for a, b in zip(ends, ends[1:], strict=False)
                  if a <= killed + 5 and b >= killed - 1]
        samples.append(max(around))
        restart(victim)
    table.add("client-visible gap, its replica killed", samples, None, None)


def throughput(services: list[ControlProcess], node: uuid.UUID, per_client: int,
               label: str, table: Table) -> None:
    """6 concurrent clients creating datasets, spread over ``services``."""
    samples: list[float] = []
    lock = threading.Lock()

    def client(port: int) -> None:
        connection = KeepAlive(port)
        mine = []
        for _ in range(per_client):
            before = time.perf_counter()
            connection.check("POST", "/v1/configuration/datasets",
                             {"primary": str(node), "maximum_size": SIZE}, 201)
            mine.append(time.perf_counter() - before)
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client, args=(services[i % len(services)].port,))
               for i in range(6)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    table.add(f"create, 6 clients on {label}", samples, wall,
              sum(s.rss_kib() for s in services))


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--watches", type=int, default=100)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--creates", type=int, default=300, help="per scenario, in all")
    args = parser.parse_args()
    if postgres_bin() is None:
        print("(skipped: PostgreSQL server binaries are not installed)")
        return
    server = ThrowawayPostgres().start()
    directory = tempfile.mkdtemp(prefix="shoal-bench-ha-")
    services: list[ControlProcess] = []
    table = Table("Control replicas on one PostgreSQL database")
    try:
        database = server.create_database("bench")
        # the benchmark's node never reports: a long failover grace keeps it unfenced
        services = [ControlProcess(database, ["--failover-grace", "86400"],
                                   log_path=os.path.join(directory, f"c{i}.log"))
                    for i in range(3)]
        start_all(services)
        node = uuid.uuid4()
        KeepAlive(services[0].port).check(
            "PUT", f"/v1/shoal/nodes/{node}", register_node_body("bench", "era", {}, None)
        )
        watch_latency(services, args.watches, table)
        throughput(services[:1], node, args.creates // 6, "1 replica", table)
        throughput(services, node, args.creates // 6, "3 replicas", table)
        handover(services, args.kills, table)
        client_gap(services, [node], args.kills, directory, table)
    finally:
        for service in services:
            service.stop()
        server.remove()
    print(table.render())


if __name__ == "__main__":
    main()
