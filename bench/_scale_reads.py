"""
The ``reads`` part of ``bench/scale.py`` (issue 16): listings of every dataset, the state
listing, a paginated listing and the service's RSS, at each dataset count.

For each size (datasets paired with nodes in order: 1,000 / 10, 10,000 / 100, 100,000 /
1,000) it seeds the database (datasets dealt round-robin onto registered nodes, and each
node's report holding its datasets mounted), starts a real ``shoal control serve`` and
times, with a keep-alive HTTP client reading the whole body (not decoding it):

- a restart: from starting the process to its port accepting connections;
- the warm-up: from the port open to the service having loaded and encoded its listings
  (it does that in its pool once it listens; the cold listing does not wait for it);
- ``GET /v1/configuration/datasets`` *cold* (the first request after a restart), and once
  warmed up, *warm* (again, nothing changed) and *after a write* (a move, create, delete or
  lease just before);
- ``GET /v1/state/datasets`` warm and after a state report that changed one dataset;
- ``GET /v1/shoal/datasets?limit=500`` (one page) and every page with its continue token;
- the service's RSS after all of these.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator

from _common import KeepAlive, Table, timed
from _scale_db import MOUNT_ROOT, SIZE, database, node_ids, seed

from control.model import DatasetState, NodeState, VolumeStatus
from control.store import queries as q
from control.store.sql import SQLStore
from tests.processes import ControlProcess, wait_until

EXTRA = ["--failover-grace", "86400", "--node-timeout", "86400"]
PAGE = 1000


def measure(table: Table, kind: str, *, datasets: list[int], nodes: list[int]) -> None:
    """Add the rows of every size (``datasets[i]`` with ``nodes[i]``, or the last) to ``table``."""
    for index, count in enumerate(datasets):
        node_count = nodes[min(index, len(nodes) - 1)]
        with database(kind) as url:
            placed = seed(url, node_ids(node_count), count)
            seed_reports(url, placed)
            _measure_size(table, url, count, node_count, placed)


def seed_reports(url: str, placed: dict[uuid.UUID, list[uuid.UUID]]) -> None:
    """Store each node's report: every dataset it is primary for, mounted."""
    store = SQLStore(url)
    try:
        with store._write() as (connection, generation, state_version):
            for index, (node, ids) in enumerate(placed.items()):
                states = {
                    d: DatasetState(d, VolumeStatus.MOUNTED, SIZE, f"/dev/loop{n}",
                                    f"{MOUNT_ROOT}/{d}")
                    for n, d in enumerate(ids)
                }
                report = NodeState(node_uuid=node, era=f"era-{index}", generation=generation,
                                   datasets=states, reported_at=time.time())
                q.put_report(connection, report, exists=False)
            q.write_counters(connection, generation, state_version + 1)
    finally:
        store.close()


def get(client: KeepAlive, path: str) -> bytes:
    """GET ``path`` and read the whole body (undecoded); fail unless it answers 200."""
    client.connection.request("GET", path)
    response = client.connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
    return body


def _measure_size(
    table: Table, url: str, count: int, node_count: int,
    placed: dict[uuid.UUID, list[uuid.UUID]],
) -> None:
    size = f"{count} datasets / {node_count} nodes"
    listing = "/v1/configuration/datasets"
    cold, starts = [], []
    for _ in range(2 if count >= 100_000 else 3):
        started = time.perf_counter()
        with _service(url) as (service, client):
            starts.append(time.perf_counter() - started)
            cold += timed(lambda: get(client, listing), 1)[0]
    table.add(f"{size}: restart (process start to port open)", starts, None, None)
    table.add(f"{size}: GET {listing} cold (first after a restart)", cold, None, None)
    with _service(url) as (service, client):
        started = time.perf_counter()
        _warmed(service)
        table.add(f"{size}: warm-up (port open to listings encoded)",
                  [time.perf_counter() - started], None, service.rss_kib())
        rounds = 10 if count >= 100_000 else 20
        get(client, listing)
        samples, wall = timed(lambda: get(client, listing), rounds)
        table.add(f"{size}: GET {listing} warm", samples, wall, service.rss_kib())
        writes = _writes(client, placed)
        after = []
        for _ in range(rounds):
            next(writes)
            after += timed(lambda: get(client, listing), 1)[0]
        table.add(f"{size}: GET {listing} after a write", after, None, service.rss_kib())
        _state_rows(table, size, client, placed, rounds)
        _page_rows(table, size, client, count)
        table.add(f"{size}: RSS after the reads", [0.0], None, service.rss_kib())


def _state_rows(table: Table, size: str, client: KeepAlive,
                placed: dict[uuid.UUID, list[uuid.UUID]], rounds: int) -> None:
    path = "/v1/state/datasets"
    get(client, path)
    samples, wall = timed(lambda: get(client, path), rounds)
    table.add(f"{size}: GET {path} warm", samples, wall, None)
    node = next(iter(placed))
    ids = placed[node]
    after = []
    for turn in range(rounds):
        _report(client, node, ids, attached=turn % len(ids))
        after += timed(lambda: get(client, path), 1)[0]
    table.add(f"{size}: GET {path} after a state report", after, None, None)


def _page_rows(table: Table, size: str, client: KeepAlive, count: int) -> None:
    first = f"/v1/shoal/datasets?limit={PAGE}"
    if not get(client, first).startswith(b"{"):
        return  # no paginated listing on this version (the "before" figures)
    samples, wall = timed(lambda: get(client, first), 20)
    table.add(f"{size}: GET /v1/shoal/datasets?limit={PAGE} (one page)", samples, wall, None)

    def every_page() -> None:
        token, seen = "", 0
        while True:
            page = json.loads(get(client, first + (f"&continue={token}" if token else "")))
            seen += len(page["items"])
            token = page["continue"]
            if not token:
                break
        if seen < count:
            raise RuntimeError(f"paging saw {seen} datasets of {count}")

    samples, _ = timed(every_page, 1 if count >= 100_000 else 3)
    table.add(f"{size}: every page of /v1/shoal/datasets?limit={PAGE}", samples, None, None)


def _report(client: KeepAlive, node: uuid.UUID, ids: list[uuid.UUID], attached: int) -> None:
    """Report ``node``'s datasets mounted, but number ``attached`` only attached."""
    versions = client.check("GET", "/v1/shoal/watch?timeout=0")
    index = int(node.int - node_ids(1)[0].int)
    states = [
        {"dataset_id": str(d), "status": "attached" if n == attached else "mounted",
         "maximum_size": SIZE, "device": f"/dev/loop{n}"}
        | ({} if n == attached else {"path": f"{MOUNT_ROOT}/{d}"})
        for n, d in enumerate(ids)
    ]
    body = {"era": f"era-{index}", "generation": int(versions["configuration"]),
            "datasets": states, "conditions": []}
    client.check("PUT", f"/v1/shoal/state/{node}", body)


def _writes(client: KeepAlive, placed: dict[uuid.UUID, list[uuid.UUID]]) -> Iterator[None]:
    """Endless writes of every kind a listing shows: moves, creates, deletes and leases."""
    nodes = list(placed)
    victims = [d for ids in placed.values() for d in ids[:5]]
    holder = max(nodes, key=lambda node: len(placed[node]))
    leased = placed[holder][-7:]
    made: list[str] = []
    turn = 0
    while True:
        dataset = victims[turn % len(victims)]
        kind = turn % 4
        if kind == 0:
            target = nodes[(turn + 1) % len(nodes)]
            client.check("POST", f"/v1/configuration/datasets/{dataset}",
                         {"primary": str(target)})
        elif kind == 1:
            body = {"primary": str(nodes[turn % len(nodes)]), "maximum_size": SIZE,
                    "metadata": {"name": f"new-{turn}"}}
            made.append(client.check("POST", "/v1/configuration/datasets", body, 201)["dataset_id"])
        elif kind == 2:
            client.check("DELETE", f"/v1/configuration/datasets/{made.pop()}")
        else:
            body = {"dataset_id": str(leased[turn % len(leased)]), "node_uuid": str(holder),
                    "expires": 3600}
            status, answer, _ = client.request("POST", "/v1/configuration/leases", body)
            if status not in (200, 201):
                raise RuntimeError(f"a lease answered {status}: {answer}")
        turn += 1
        yield None


def _warmed(service: ControlProcess, timeout: float = 600) -> None:
    """Wait until ``service`` has loaded and encoded its listings (it logs ``control.warmed``)
    after it listens: the warm and after-a-write rows measure the steady state."""
    assert service.log_path is not None

    def logged() -> bool:
        with open(service.log_path, "rb") as log:
            text = log.read()
        if b"control.warm_failed" in text:
            raise RuntimeError("the service failed to warm its listings")
        return b"control.warmed" in text

    wait_until(logged, timeout, "the service to warm its listings", interval=0.1)


class _service:
    """A started control service on ``url`` and a keep-alive client of it (a context)."""

    def __init__(self, url: str) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="shoal-reads-", suffix=".log")
        self.service = ControlProcess(url, extra=EXTRA, log_path=self._log.name)

    def __enter__(self) -> tuple[ControlProcess, KeepAlive]:
        self.service.start(timeout=600)
        return self.service, KeepAlive(self.service.port)

    def __exit__(self, *exc: object) -> None:
        self.service.stop()
        self._log.close()

