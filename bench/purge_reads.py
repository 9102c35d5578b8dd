"""
What the purge of deleted datasets reads at each report written while a deletion waits (issue 16).

``python bench/purge_reads.py [--store sqlite] [--datasets 100000] [--nodes 50]`` seeds a
cluster as ``bench/scale.py --parts moves`` does (every node reporting its datasets), then
times, five times each in a read transaction, every report read whole
(``queries.all_reports``, what the purge read before) and every report with only ten datasets'
states (``queries.reports_holding``, what it reads now).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _scale_db import database, node_ids, seed  # noqa: E402
from _scale_moves import seed_reports  # noqa: E402

from control.store import queries as q  # noqa: E402
from control.store.sql import SQLStore  # noqa: E402


def main() -> None:
    """Seed, then time both reads."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=50)
    args = parser.parse_args()
    with database(args.store) as url:
        ids = node_ids(args.nodes)
        placed = seed(url, ids, args.datasets)
        seed_reports(url, ids, placed)
        store = SQLStore(url)
        asked = [placed[node][0] for node in ids[:10]]
        try:
            for name, read in (
                ("all_reports", q.all_reports),
                ("reports_holding (10 ids)", lambda c: q.reports_holding(c, asked, ids[:10])),
            ):
                times = []
                for _ in range(5):
                    with store._read() as connection:
                        start = time.perf_counter()
                        read(connection)
                        times.append(time.perf_counter() - start)
                times.sort()
                print(f"{args.store} {name}: min {times[0] * 1000:.1f} ms, "
                      f"median {times[2] * 1000:.1f} ms")
        finally:
            store.close()


if __name__ == "__main__":
    main()
