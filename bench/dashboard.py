"""
The dashboard in headless Chromium with 10,000 datasets: first meaningful paint, and the time
from a move to the page showing it.

Starts a real control service (SQLite), registers two nodes that report every dataset mounted
(half on each, so the page joins a full state), seeds the datasets through the API, then:

- loads ``/ui/`` again and again and reads the page's ``shoal:first-paint`` mark (the dataset
  list drawn with data) from the Performance API, relative to the navigation's start;
- with the page open, moves one dataset (the request ``shoal dataset move`` sends) and times
  until the page's row shows the new node (a MutationObserver in the page stamps the wall
  clock); then the same with the real ``shoal dataset move`` process, from its start;
- times ``GET /v1/shoal/datasets``, the listing the page reads.

Targets (issue 13): first paint < 1 s, move shown < 500 ms.

    python bench/dashboard.py [--datasets 10000] [--loads 10] [--moves 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import ROOT, KeepAlive, Table, timed

from tests.control.ui.browser import missing, start_browser
from tests.processes import ControlProcess, wait_until

SIZE = 64 * 1024 * 1024
MOUNT_ROOT = "/m"
NODES = ("node1", "node2")

WATCH_ROW = """
const [id, want] = arguments;
window.benchSeen = null;
const list = document.getElementById('dataset-list');
const check = () => {
  const row = list.querySelector(`.row[data-id="${id}"]`);
  if (row && !row.hidden && row.children[2].textContent === want && window.benchSeen === null) {
    window.benchSeen = performance.timeOrigin + performance.now();
    observer.disconnect();
  }
};
const observer = new MutationObserver(check);
observer.observe(list, {subtree: true, childList: true, characterData: true});
check();
"""


def register(client: KeepAlive) -> list[str]:
    """Register node1 and node2 (named, with a mount root); returns their uuids."""
    uuids = []
    for index, name in enumerate(NODES):
        node = str(uuid.uuid4())
        body = {"host": f"10.0.0.{index + 1}", "era": f"era-{name}",
                "labels": {"name": name, "topology.kubernetes.io/zone": "a"},
                "mount_root": MOUNT_ROOT}
        client.check("PUT", f"/v1/shoal/nodes/{node}", body)
        uuids.append(node)
    return uuids


def seed(port: int, nodes: list[str], count: int, workers: int = 4) -> dict[str, list[str]]:
    """Create ``count`` datasets, alternately on each node, over ``workers`` connections;
    returns their ids by node."""

    def create(indices: range) -> list[tuple[str, str]]:
        client = KeepAlive(port)
        made = []
        for index in indices:
            node = nodes[index % len(nodes)]
            body = {"primary": node, "maximum_size": SIZE,
                    "metadata": {"name": f"db-{index:05d}"}}
            answer = client.check("POST", "/v1/configuration/datasets", body, 201)
            made.append((node, answer["dataset_id"]))
        return made

    placed: dict[str, list[str]] = {node: [] for node in nodes}
    with ThreadPoolExecutor(workers) as pool:
        for made in pool.map(create, [range(w, count, workers) for w in range(workers)]):
            for node, dataset_id in made:
                placed[node].append(dataset_id)
    return placed


def report_mounted(client: KeepAlive, node: str, index: int, ids: list[str]) -> None:
    """Report, as the node's agent would, every dataset of ``ids`` mounted on ``node``."""
    generation = int(client.check("GET", "/v1/shoal/watch?timeout=0")["configuration"])
    datasets = [
        {"dataset_id": d, "status": "mounted", "maximum_size": SIZE,
         "device": f"/dev/loop{n}", "path": f"{MOUNT_ROOT}/{d}"}
        for n, d in enumerate(ids)
    ]
    capacity = {"backend": "loopback", "total": 2**40, "free": 2**39,
                "maximum_volume_size": 2**39, "shared": True, "snapshot_method": "copy"}
    body = {"era": f"era-{NODES[index]}", "generation": generation, "datasets": datasets,
            "conditions": [], "capacity": capacity}
    client.check("PUT", f"/v1/shoal/state/{node}", body)


FIRST_LOAD = """
const entry = (name) => performance.getEntriesByName(name)[0];
const modules = performance.getEntriesByType('resource')
  .filter((r) => r.name.endsWith('.js')).map((r) => r.responseEnd);
return [entry('shoal:first-paint').startTime, Math.max(...modules),
        entry('shoal:read').duration, entry('shoal:draw').duration];
"""


def first_paints(driver: Any, url: str, loads: int) -> tuple[list[list[float]], float, int]:
    """Per load, seconds from navigation to: the first paint with data, the page's modules
    loaded; and the first reads' and first drawing's durations. Also the wall time and the
    JS heap (bytes)."""
    samples, heap = [], 0
    start = time.perf_counter()
    for _ in range(loads):
        driver.get(url)
        wait_until(lambda: driver.execute_script(
            "return performance.getEntriesByName('shoal:first-paint').length"), 60,
            "the first paint", interval=0.01)
        samples.append([ms / 1000 for ms in driver.execute_script(FIRST_LOAD)])
        heap = int(driver.execute_script("return performance.memory.usedJSHeapSize"))
    return samples, time.perf_counter() - start, heap


def show_row(driver: Any, dataset_id: str) -> None:
    """Make the page draw the dataset's row (search for its id)."""
    box = driver.find_element("id", "search")
    box.clear()
    box.send_keys(dataset_id)
    wait_until(lambda: driver.execute_script(
        "return !!document.querySelector(`#dataset-list .row[data-id='${arguments[0]}']`)",
        dataset_id), 30, "the row drawn", interval=0.01)


def time_to_show(
    driver: Any, dataset_id: str, target_name: str, move: Any
) -> tuple[float, float]:
    """Seconds from calling ``move()``, and from its return (the move stored), to the page's
    row showing ``target_name`` as desired."""
    driver.execute_script(WATCH_ROW, dataset_id, target_name)
    before = time.time()
    move()
    stored = time.time()
    seen = wait_until(lambda: driver.execute_script("return window.benchSeen"), 30,
                      "the page to show the move", interval=0.005)
    return float(seen) / 1000 - before, float(seen) / 1000 - stored


def moves_shown(driver: Any, client: KeepAlive, dataset_id: str, nodes: list[str],
                moves: int) -> tuple[list[tuple[float, float]], float]:
    """Move one dataset back and forth with the API; seconds until the page shows each."""
    show_row(driver, dataset_id)
    samples = []
    path = f"/v1/configuration/datasets/{dataset_id}"
    start = time.perf_counter()
    for index in range(moves):
        target = (index + 1) % 2

        def move(target: int = target) -> None:
            client.check("POST", path, {"primary": nodes[target]})

        samples.append(time_to_show(driver, dataset_id, NODES[target], move))
    return samples, time.perf_counter() - start


def page_measures(driver: Any, name: str, last: int) -> list[float]:
    """The durations (seconds) of the page's last ``last`` measures named ``name``."""
    found = driver.execute_script(
        "return performance.getEntriesByName(arguments[0]).map((e) => e.duration)", name)
    return [d / 1000 for d in found[-last:]]


def cli_moves_shown(
    driver: Any, url: str, dataset_id: str, moves: int, done: int
) -> list[tuple[float, float]]:
    """As :func:`moves_shown` (after its ``done`` moves), with the real ``shoal dataset move``
    process, from its start."""
    show_row(driver, dataset_id)
    samples = []
    for index in range(moves):
        target = NODES[(done + index + 1) % 2]

        def move(target: str = target) -> None:
            subprocess.run(
                [sys.executable, "-m", "control.cli", "dataset", "move", dataset_id,
                 "--to", target, "--url", url], check=True, capture_output=True, cwd=ROOT)

        samples.append(time_to_show(driver, dataset_id, target, move))
    return samples


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--moves", type=int, default=30)
    parser.add_argument("--cli-moves", type=int, default=5)
    args = parser.parse_args()
    reason = missing()
    if reason is not None:
        print(f"(dashboard benchmark skipped: {reason})")
        return
    table = Table(f"Dashboard with {args.datasets} datasets, headless Chromium")
    with tempfile.TemporaryDirectory() as directory:
        # The nodes are stand-ins that report once: no failover, no liveness timeout.
        service = ControlProcess(
            f"sqlite:///{os.path.join(directory, 'bench.db')}",
            extra=["--failover-grace", "86400", "--node-timeout", "86400"],
        ).start()
        driver = start_browser()
        try:
            client = KeepAlive(service.port)
            nodes = register(client)
            placed = seed(service.port, nodes, args.datasets)
            client = KeepAlive(service.port)  # the first one sat idle past the idle timeout
            for index, node in enumerate(nodes):
                report_mounted(client, node, index, placed[node])
            listed, wall = timed(lambda: client.check("GET", "/v1/shoal/datasets"), 20)
            table.add(f"GET /v1/shoal/datasets ({args.datasets})", listed, wall,
                      service.rss_kib())
            paints, wall, heap = first_paints(driver, service.url + "/ui/", args.loads)
            table.add("first meaningful paint (target < 1 s)", [p[0] for p in paints], wall,
                      None)
            for index, what in ((1, "page and modules loaded"),
                                (2, "first reads (every listing, in parallel)"),
                                (3, "joining and drawing")):
                table.add(f"  of which {what}", [p[index] for p in paints], None, None)
            moved = placed[nodes[0]][0]
            shown, wall = moves_shown(driver, client, moved, nodes, args.moves)
            table.add("API move sent -> page shows it (target < 500 ms)",
                      [x[0] for x in shown], wall, service.rss_kib())
            table.add("  from the move's answer (stored)", [x[1] for x in shown], None, None)
            for part, what in (("read", "reads (events, then the listings)"),
                               ("draw", "joining and drawing")):
                spent = page_measures(driver, f"shoal:{part}", args.moves)
                table.add(f"  the page's whole refresh: {what}", spent, None, None)
            cli = cli_moves_shown(driver, service.url, moved, args.cli_moves, args.moves)
            table.add("`shoal dataset move` started -> page shows it", [x[0] for x in cli],
                      None, None)
            table.add("  from the command's exit (< 0: shown before it exited)",
                      [x[1] for x in cli], None, None)
        finally:
            driver.quit()
            service.stop()
    print(table.render())
    print(f"\npage JS heap after loading {args.datasets} datasets: {heap / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
