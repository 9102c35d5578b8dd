"""
What a placement decision costs, by cluster size.

:func:`control.placement.place` runs on the control service's reactor thread
for every Immediate create and every first-use bind, so it must stay cheap.
Measured here, in process, over ``nodes`` candidates spread over three zones
(each with a shared and a node-local backend, random free space, one in ten
unusable), for:

- ``anywhere``: no allowed topology, any backend;
- ``one zone, local``: one term (``topology.kubernetes.io/zone=z1``) and the
  ``local`` backend;
- ``no fit (refusal)``: a size no node has room for, so every node is examined
  and the refusal message built;
- ``candidates from state``: building the candidates from a cluster state
  (done once per decision by the API).

Then the end-to-end target: 1,000 WaitForFirstConsumer datasets, created
unbound, are each bound on first use (a lease and a move to the consumer's
node, what the Docker plugin's Mount does) across 10 fake agents (real
convergence loops, the real API and client in memory, the fake backend), timed
from the first bind until every one is reported mounted on its node.

    .venv/bin/python bench/placement.py [--nodes 10,100,1000] [-n 200] [--datasets 1000]
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from uuid import UUID

from _common import Table, timed
from _fleet import _converged, start_fleet

from control.classes import StorageClass
from control.client.testing import result_of
from control.model import MINIMUM_DATASET_SIZE, Capacity, ClusterState, Node, NodeState
from control.placement import Candidate, Need, candidates, place
from control.topology import ZONE, BindingMode, Requirement, TopologyTerm

GiB = 1024**3
T = 1_000_000.0


def fleet(n: int, seed: int = 1) -> ClusterState:
    """``n`` live nodes over three zones, each reporting random free space."""
    rnd = random.Random(seed)
    nodes, reports = {}, {}
    for i in range(n):
        uuid = UUID(int=i + 1)
        labels = {"name": f"n{i}", ZONE: f"z{i % 3}"}
        seen = T if i % 10 else T - 3600  # one in ten is silent
        nodes[uuid] = Node(uuid, f"h{i}", "era", labels=labels, last_seen=seen)
        free = rnd.randrange(1, 1000) * GiB
        reports[uuid] = NodeState(
            uuid, capacity=Capacity("loopback", 2000 * GiB, free, free, shared=True)
        )
    return ClusterState(nodes=nodes, reports=reports)


def with_local(found: list[Candidate], seed: int = 2) -> list[Candidate]:
    """Each candidate given a node-local backend too."""
    rnd = random.Random(seed)
    out = []
    for c in found:
        free = rnd.randrange(1, 100) * GiB
        local = Capacity("local", 200 * GiB, free, free, shared=False)
        out.append(Candidate(c.uuid, c.name, c.labels, (*c.capacities, local), c.unusable))
    return out


def bind_on_first_use(datasets: int, nodes: int, lease: bool = False) -> tuple[float, int]:
    """Seconds from the first bind until ``datasets`` unbound datasets are mounted where
    they were first used, across ``nodes`` fake agents; and the agents' passes.

    Each bind is a move to the consumer's node (``shoal dataset attach``); with ``lease``
    a lease is taken first, as the Docker plugin's Mount does (one more request each)."""
    clock, control, loops = start_fleet(nodes, lambda index: {ZONE: f"z{index % 3}"})
    zones = TopologyTerm((Requirement(ZONE, ("z0", "z1", "z2")),))
    wait = StorageClass("wffc", binding_mode=BindingMode.WAIT, allowed_topologies=(zones,),
                        default_size=MINIMUM_DATASET_SIZE)
    result_of(control.client.create_class(wait))
    made = [
        result_of(control.client.create_shoal_dataset(storage_class="wffc")).dataset_id
        for _ in range(datasets)
    ]
    placement = {dataset_id: UUID(int=i % nodes + 1) for i, dataset_id in enumerate(made)}
    start = time.perf_counter()
    for dataset_id, node in placement.items():
        if lease:
            result_of(control.client.acquire_lease(dataset_id, node, None))
        result_of(control.client.move_dataset(dataset_id, node))
    clock.advance(0)
    seconds = time.perf_counter() - start
    if not _converged(control, placement):
        raise RuntimeError("the fleet went idle without mounting every dataset")
    return seconds, sum(loop.passes for loop in loops)


def main() -> None:
    """Run the scenarios and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--nodes", default="10,100,1000")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--datasets", type=int, default=1000)
    args = parser.parse_args()
    table = Table("placement decision (pure, in process)")
    zone = (TopologyTerm((Requirement(ZONE, ("z1",)),)),)
    for n in (int(x) for x in args.nodes.split(",")):
        state = fleet(n)
        found = with_local(candidates(state, T, 30.0))
        scenarios = {
            "anywhere": Need(),
            "one zone, local": Need(backend="local", topology=zone),
            "no fit (refusal)": Need(size=10_000 * GiB),
        }
        for label, need in scenarios.items():
            samples, wall = timed(lambda need=need, found=found: place(need, found), args.n)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            table.add(f"{n} nodes, {label}", samples, wall, rss)
        samples, wall = timed(lambda state=state: candidates(state, T, 30.0), args.n)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        table.add(f"{n} nodes, candidates from state", samples, wall, rss)
    print(table.render())
    binds = Table("WaitForFirstConsumer: bound and mounted on first use (10 fake agents)")
    notes = []
    for how, lease in (("attach (a move)", False), ("plugin Mount (lease + move)", True)):
        seconds, passes = bind_on_first_use(args.datasets, 10, lease)
        binds.add(f"{args.datasets} datasets, {how}", [seconds], seconds,
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        notes.append(f"- {args.datasets} datasets by {how} in {seconds:.2f} s, {passes} agent "
                     f"passes (target < 10 s: {'met' if seconds < 10 else 'MISSED'})")
    print()
    print(binds.render())
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
