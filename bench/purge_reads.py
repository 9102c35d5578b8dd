"""
What the purge of deleted datasets reads at each report written while a deletion waits (issue 16).

``python bench/purge_reads.py [--store sqlite] [--datasets 100000] [--nodes 50]`` seeds a
cluster as ``bench/scale.py --parts moves`` does (every node reporting its datasets), then
times, five times each in a read transaction, every report read whole
(``queries.all_reports``, what the purge read before) and every report with only ten datasets'
states (``queries.reports_holding``, what it reads now).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _scale_moves import cluster_arguments, reported_cluster  # noqa: E402

from control.store import queries as q  # noqa: E402
from control.store.sql import SQLStore  # noqa: E402


def main() -> None:
    """Seed, then time both reads."""
    args = cluster_arguments(__doc__).parse_args()
    with reported_cluster(args.store, args.datasets, args.nodes) as (url, ids, placed):
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
