"""
The store's whole reads streamed (``queries.STREAM_ROWS`` rows a fetch) against buffered
(issue 16, pgmem), in process: each round reads the stored listing, every dataset and every
report once each way, interleaved, each in a fresh thread (as the service's pool does), and
prints the median times and the RSS each round left behind.

    .venv/bin/python bench/stream_cost.py --store postgresql --datasets 100000 --nodes 1000
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

import _scale_reads as reads
from _scale_db import database, node_ids, seed

from control.store import queries as q
from control.store.sql import SQLStore

READS = ("_LISTING", "_ALL_DATASETS", "_ALL_DATASET_STATES")


def rss_mib() -> float:
    """This process's resident set size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def _round(store: SQLStore, statements: dict[str, Any]) -> dict[str, float]:
    """One read of each, with ``statements`` as the module's (ms, and the RSS left in MiB)."""
    for name, statement in statements.items():
        setattr(q, name, statement)
    took: dict[str, float] = {}

    def run() -> None:
        with store._read() as connection:
            for label, read in (("listing", q.dataset_listing), ("datasets", q.all_datasets),
                                ("reports", q.all_reports)):
                started = time.perf_counter()
                read(connection)
                took[label] = (time.perf_counter() - started) * 1000

    before = rss_mib()
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    took["RSS left"] = rss_mib() - before
    return took


def main() -> None:
    """Seed, then time the rounds and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", default="postgresql", choices=("sqlite", "postgresql"))
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    streamed = {name: getattr(q, name) for name in READS}
    buffered = {name: s.execution_options(yield_per=None, stream_results=False)
                for name, s in streamed.items()}
    with database(args.store) as url:
        placed = seed(url, node_ids(args.nodes), args.datasets)
        reads.seed_reports(url, placed)
        store = SQLStore(url)
        try:
            found: dict[str, list[dict[str, float]]] = {"buffered": [], "streamed": []}
            for _ in range(args.rounds):
                found["buffered"].append(_round(store, buffered))
                found["streamed"].append(_round(store, streamed))
        finally:
            store.close()
    for way, rounds in found.items():
        medians = {k: round(statistics.median(r[k] for r in rounds), 1) for k in rounds[0]}
        print(way, medians, "RSS left per round (MiB):", [round(r["RSS left"], 1) for r in rounds])


if __name__ == "__main__":
    main()
