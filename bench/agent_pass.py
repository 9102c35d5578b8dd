"""
An idle agent's pass: CPU per pass at ``--datasets`` datasets per node (issue 16).

In process: ``--nodes`` real :class:`~agent.loop.ConvergenceLoop` agents on the fake
backend (one fake SAN: 2 nodes, as the pairs of ``bench/_scale_agents.py``), each with
``--datasets`` datasets made and mounted, over the real HTTP client of an in-memory
control service (:class:`~agent.testing.SimulatedCluster`).
Once converged, each agent passes as an idle agent does, woken by its watch's timeout
every heartbeat (5 s of simulated time): fetch (or reuse) its configuration, observe,
report the heartbeat, calculate. The CPU of each pass (``time.process_time``) includes
the in-memory service's share of the fetch and the report; the next rows are discovery
alone (the fake backend and ``classify``; afresh, and reusing the last sorting of equal
observations as the loop does, :class:`~agent.observe.Classified`), then the report alone
(``_report_of``: ``local_state_to_report`` and ``observed_health``).

    .venv/bin/python bench/agent_pass.py [--nodes 2] [--datasets 100] [--passes 200]
    .venv/bin/python bench/agent_pass.py --profile      # cProfile, top functions by tottime
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import resource
import time
from collections.abc import Callable
from typing import Any

import structlog
from _common import Table
from attrs import evolve

from agent.observe import discover
from agent.testing import SimulatedCluster

HEARTBEAT = 5.0


def idle_cluster(nodes: int, datasets: int) -> SimulatedCluster:
    """``nodes`` agents holding ``datasets`` mounted datasets each, converged."""
    cluster = SimulatedCluster(nodes)
    for index in range(nodes):
        for _ in range(datasets):
            cluster.create(index)
    cluster.converge(20)
    for node in cluster.nodes:  # the bench's clock jumps a heartbeat at a time: no lease
        node.loop.settings = evolve(node.loop.settings, self_fence=False)
        node.loop._disarm_lease()
    for _ in range(3):
        cluster.round(check=False)
    return cluster


def idle_pass(cluster: SimulatedCluster, index: int) -> None:
    """One pass of agent ``index`` as woken by its watch's timeout: a heartbeat is due."""
    cluster.now += HEARTBEAT / cluster.node_count
    cluster.clock.advance(cluster.now - cluster.clock.seconds())
    done: list[Any] = []
    cluster.nodes[index].loop.one_pass().addBoth(done.append)
    assert done, "the pass did not finish synchronously"


def cpu_each(action: Callable[[int], Any], n: int, count: int) -> tuple[list[float], float]:
    """CPU seconds of each of ``n`` calls of ``action`` (round robin over ``count``), and
    the wall time of all."""
    samples = []
    start = time.perf_counter()
    for i in range(n):
        before = time.process_time()
        action(i % count)
        samples.append(time.process_time() - before)
    return samples, time.perf_counter() - start


def main() -> None:
    """Build the idle cluster, then measure passes, discovery and the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--passes", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    cluster = idle_cluster(args.nodes, args.datasets)
    for index in range(args.nodes):  # warm: every agent's last report is in memory
        idle_pass(cluster, index)

    def step(index: int) -> None:
        idle_pass(cluster, index)

    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [step(i % args.nodes) for i in range(args.passes)])
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        pstats.Stats(profile).sort_stats("cumtime").print_stats(40)
        return

    def observing(reuse: bool) -> Callable[[int], Any]:
        def observe(index: int) -> None:
            node = cluster.nodes[index]
            loop = node.loop
            discover(node.executor.backend, node.executor.filesystems, cluster.mount_root,
                     loop.instance_id, node.executor.recently_created, None, loop._together,
                     getattr(loop, "_classified", None) if reuse else None)
        return observe

    def report(index: int) -> None:
        loop = cluster.nodes[index].loop
        m = loop.memory
        assert m.last_seen is not None and m.fetched is not None
        loop._report_of(m.last_seen, m.fetched[1], m.troubles, m.also,
                        cluster.clock.seconds())

    table = Table(f"An idle agent's pass, CPU ({args.nodes} nodes, "
                  f"{args.datasets} datasets per node, in process)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, action in [("idle pass (agent + in-memory service)", step),
                         ("discover, sorted afresh", observing(False)),
                         ("discover, as the loop does", observing(True)),
                         ("report (_report_of)", report)]:
        samples, wall = cpu_each(action, args.passes, args.nodes)
        table.add(f"{args.datasets} datasets / node: {name}", samples, wall, rss)
    print(table.render())


if __name__ == "__main__":
    main()
