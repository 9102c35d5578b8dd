"""
Scale: 100,000 datasets and 1,000 nodes on one 2-core control service (issue 16).

Each part lives in its own module and adds rows to one table per database:

- ``reads`` (``_scale_reads.py``): listings warm and cold, the state listing, one
  node's configuration, a state report and the service's RSS, at each dataset count;
- ``writes`` (``_scale_writes.py``): creates per second and their latency from 1 to
  1,000 concurrent clients;
- ``nodes`` (``_scale_nodes.py``): simulated nodes heartbeating and watching; CPU,
  heartbeat latency and how fast a write wakes only the watchers it concerns;
- ``moves`` (``_scale_moves.py``): concurrent moves across the nodes, with
  simulated agents (the real loop and client on the fake backend) converging them.

    python bench/scale.py [--store sqlite postgresql] [--parts reads writes nodes moves]
                          [--datasets 1000 10000 100000] [--nodes 10 100 1000] [--quick]

``--quick`` runs the smallest sizes only (a smoke run of every part).
"""

from __future__ import annotations

import argparse
import importlib
import time

from _common import Table
from _scale_db import KINDS

PARTS = ("reads", "writes", "nodes", "moves")


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--datasets", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 100, 1_000])
    parser.add_argument("--quick", action="store_true", help="smallest sizes only")
    args = parser.parse_args()
    if args.quick:
        args.datasets, args.nodes = [min(args.datasets)], [min(args.nodes)]
    return args


def main() -> None:
    """Run every asked-for part on every asked-for database and print the tables."""
    args = arguments()
    for kind in args.store:
        table = Table(f"Scale on {kind}")
        for part in args.parts:
            started = time.monotonic()
            module = importlib.import_module(f"_scale_{part}")
            module.measure(table, kind, datasets=args.datasets, nodes=args.nodes)
            print(f"({part} on {kind}: {time.monotonic() - started:.0f} s)", flush=True)
        print(table.render(), flush=True)


if __name__ == "__main__":
    main()
