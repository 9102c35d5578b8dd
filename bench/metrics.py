"""
``GET /metrics`` on the control service with 10,000 datasets (target: a scrape < 50 ms).

Starts a real control service on SQLite, registers 4 nodes, creates 10,000
datasets through the API and has each node report its share (90% mounted, 5%
attached with an error condition, 5% not reported yet). Then times, over one
keep-alive connection:

- a scrape with nothing changed since the last one (the dataset counts are reused);
- a scrape right after a node's report changed (the state version moved: the
  counts are patched for the datasets whose entry in that report changed);
- a scrape right after a create (the configuration generation moved: patched
  for the dataset the store's change log names);
- in process, :func:`control.cluster_metrics.dataset_states` alone over the same
  10,000 datasets (a count from scratch), and the :class:`control.dataset_tally.Tally`
  updates a scrape makes after one report or one create.

``--seed store`` writes the datasets straight into the database before the
service starts (seconds, instead of minutes of HTTP creates).

    python bench/metrics.py [--datasets 10000] [--samples 200] [--seed api|store]
"""

from __future__ import annotations

import argparse
import http.client
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from _common import KeepAlive, Table, timed

from control.cluster_metrics import count_datasets, dataset_states, index_datasets, summarise
from control.dataset_tally import Tally
from control.model import (
    ClusterState,
    Condition,
    ConditionKind,
    Configuration,
    Dataset,
    DatasetState,
    Node,
    NodeState,
    VolumeStatus,
)
from control.wire import node_state_to_json
from tests.processes import ControlProcess

SIZE = 64 * 1024 * 1024
NODES = 4
MOUNT_ROOT = "/srv/shoal"


def register(client: KeepAlive, nodes: list[str] | None = None) -> list[str]:
    """Register the nodes (new ones unless given); returns their uuids."""
    nodes = [str(uuid.uuid4()) for _ in range(NODES)] if nodes is None else nodes
    for i, node in enumerate(nodes):
        body = {"host": f"10.0.0.{i + 1}", "era": "bench", "labels": {}, "mount_root": MOUNT_ROOT}
        client.check("PUT", f"/v1/shoal/nodes/{node}", body)
    return nodes


def seed(port: int, nodes: list[str], count: int) -> dict[str, list[str]]:
    """Create ``count`` datasets, spread over ``nodes``; returns each node's dataset ids."""

    def create_on(share: tuple[str, int]) -> tuple[str, list[str]]:
        node, n = share
        client = KeepAlive(port)
        body = {"primary": node, "maximum_size": SIZE}
        made = [client.check("POST", "/v1/configuration/datasets", body, 201)["dataset_id"]
                for _ in range(n)]
        return node, made

    shares = [(node, count // len(nodes) + (i < count % len(nodes))) for i, node in
              enumerate(nodes)]
    with ThreadPoolExecutor(len(nodes)) as pool:
        return dict(pool.map(create_on, shares))


def seed_store(database: str, count: int) -> dict[str, list[str]]:
    """Store ``count`` datasets straight into a new database (bench/_scale_db.py)."""
    from _scale_db import node_ids
    from _scale_db import seed as seed_rows

    from control.store.migrate import upgrade

    upgrade(database)
    placed = seed_rows(database, node_ids(NODES), count)
    return {str(node): [str(d) for d in ids] for node, ids in placed.items()}


def node_report(node: str, ids: list[str], flip: int = -1) -> NodeState:
    """``node``'s report: 90% mounted, 5% attached and failing, 5% left out; the
    ``flip``-th dataset attached instead of mounted (to make a new observation)."""
    datasets, conditions = {}, []
    for i, raw in enumerate(ids):
        dataset_id = uuid.UUID(raw)
        share = i % 20
        if share == 19:
            continue
        if share == 18 or i == flip:
            datasets[dataset_id] = DatasetState(dataset_id, VolumeStatus.ATTACHED, SIZE, "/dev/x")
            conditions.append(Condition(dataset_id, ConditionKind.ERROR, "busy",
                                        "mount failed: busy", 0.0, "mount"))
            continue
        datasets[dataset_id] = DatasetState(
            dataset_id, VolumeStatus.MOUNTED, SIZE, f"/dev/loop{i}", f"{MOUNT_ROOT}/{dataset_id}"
        )
    return NodeState(uuid.UUID(node), "bench", 0, datasets, conditions=tuple(conditions))


def report(client: KeepAlive, node: str, ids: list[str], flip: int = -1) -> None:
    """Send ``node``'s report."""
    body = node_state_to_json(node_report(node, ids, flip))
    body.pop("node_uuid", None)
    body.pop("reported_at", None)
    client.check("PUT", f"/v1/shoal/state/{node}", body)


def scrape(connection: http.client.HTTPConnection) -> int:
    """One ``GET /metrics``; returns the body's size."""
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    body = response.read()
    if response.status != 200 or b"shoal_datasets{" not in body:
        raise RuntimeError(f"/metrics answered {response.status}: {body[:200]!r}")
    return len(body)


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) process ``pid`` has used, from /proc (10 ms ticks)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Scraper:
    """Scrapes over one keep-alive connection, noting the service's CPU time per scrape."""

    def __init__(self, service: ControlProcess) -> None:
        assert service.process is not None
        self.pid = service.process.pid
        self.connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=120)
        self.cpu: list[float] = []

    def __call__(self) -> int:
        before = cpu_seconds(self.pid)
        size = scrape(self.connection)
        self.cpu.append(cpu_seconds(self.pid) - before)
        return size

    def cpu_ms(self) -> str:
        """The service's mean CPU time per scrape so far, in ms, and forget it."""
        mean = sum(self.cpu) / max(1, len(self.cpu)) * 1000
        self.cpu = []
        return f"{mean:.1f}"


def in_process(owned: dict[str, list[str]], samples: int, table: Table) -> None:
    """Time the pure recomputation over the same datasets and reports."""
    datasets = {
        uuid.UUID(raw): Dataset(uuid.UUID(raw), uuid.UUID(node), SIZE)
        for node, ids in owned.items() for raw in ids
    }
    nodes = {uuid.UUID(node): Node(uuid.UUID(node), "h") for node in owned}
    reports = {uuid.UUID(node): node_report(node, ids) for node, ids in owned.items()}
    configuration = Configuration(1, datasets)
    state = ClusterState(1, nodes, reports)
    pure = []
    for _ in range(samples):
        before = time.process_time()
        dataset_states(configuration, state)
        pure.append(time.process_time() - before)
    table.add(f"dataset_states() over {len(datasets)} datasets, 4 reports (pure, CPU time)",
              pure, sum(pure), None)
    index = index_datasets(configuration.datasets)
    summaries = {node: summarise(report) for node, report in reports.items()}
    changed = next(iter(reports))
    again = []
    for _ in range(samples):
        before = time.process_time()
        summaries[changed] = summarise(reports[changed])
        count_datasets(configuration.datasets, summaries, frozenset(), index)
        again.append(time.process_time() - before)
    table.add("  the same after one report changed (index kept; pure, CPU time)", again,
              sum(again), None)
    tally = Tally.of(1, configuration.datasets, summaries, frozenset())
    node, ids = next(iter(owned.items()))
    patched = []
    for i in range(samples):
        summary = summarise(node_report(node, ids, flip=i))
        before = time.process_time()
        tally.with_summaries({**summaries, changed: summary})
        patched.append(time.process_time() - before)
    table.add("Tally.with_summaries() after one report changed (pure, CPU time)", patched,
              sum(patched), None)
    created = []
    for _ in range(samples):
        made = Dataset(uuid.uuid4(), changed, SIZE)
        grown = configuration.datasets.set(made.dataset_id, made)
        before = time.process_time()
        tally.with_datasets(2, grown, [made.dataset_id])
        created.append(time.process_time() - before)
    table.add("Tally.with_datasets() after one create (pure, CPU time)", created,
              sum(created), None)


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", choices=("api", "store"), default="api",
                        help="create the datasets through the API, or straight in the database")
    args = parser.parse_args()
    table = Table(f"GET /metrics on the control service with {args.datasets} datasets")
    with tempfile.TemporaryDirectory() as directory:
        database = f"sqlite:///{os.path.join(directory, 'bench.db')}"
        started = time.perf_counter()
        stored = seed_store(database, args.datasets) if args.seed == "store" else None
        # A long grace: the benchmark's nodes report once, and must not be fenced meanwhile.
        service = ControlProcess(database, extra=["--failover-grace", "86400"]).start()
        try:
            client = KeepAlive(service.port)
            nodes = register(client, None if stored is None else list(stored))
            owned = seed(service.port, nodes, args.datasets) if stored is None else stored
            client = KeepAlive(service.port)  # the first one idled out while seeding
            for node, ids in owned.items():
                report(client, node, ids)
            print(f"(seeded {args.datasets} datasets and {NODES} reports in "
                  f"{time.perf_counter() - started:.0f} s)")
            scraper = Scraper(service)
            size = scraper()
            scraper.cpu_ms()
            same, wall = timed(scraper, args.samples)
            table.add(f"scrape, nothing changed ({size} bytes)", same, wall, service.rss_kib())
            cpu = {"nothing changed": scraper.cpu_ms()}
            first, first_ids = nodes[0], owned[nodes[0]]
            after_report = []
            for i in range(args.samples // 4):
                report(client, first, first_ids, flip=i)
                after_report.extend(timed(scraper, 1)[0])
            table.add("scrape after a changed report", after_report, None, None)
            cpu["after a changed report"] = scraper.cpu_ms()
            body = {"primary": first, "maximum_size": SIZE}
            after_create = []
            for _ in range(args.samples // 4):
                client.check("POST", "/v1/configuration/datasets", body, 201)
                after_create.extend(timed(scraper, 1)[0])
            table.add("scrape after a create", after_create, None,
                      service.rss_kib())
            cpu["after a create"] = scraper.cpu_ms()
        finally:
            service.stop()
    in_process(owned, max(10, args.samples // 4), table)
    print(table.render())
    print()
    print("The control service's own CPU time per scrape (mean, from /proc; the wall times above")
    print("include waiting for a core on a loaded machine):")
    for scenario, ms in cpu.items():
        print(f"- {scenario}: {ms} ms")


if __name__ == "__main__":
    main()
