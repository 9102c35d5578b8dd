"""
Idle agents' CPU per heartbeat, end to end in their processes (issue 16).

    .venv/bin/python bench/agent_idle.py [--agents 100] [--datasets 100] [--seconds 40]

Against a real ``shoal control serve`` on SQLite: ``--agents`` simulated agents
(:mod:`_scale_agents`: the real loop and HTTP client on the fake backend, 50 per
process, as ``bench/scale.py --parts moves`` runs them) holding ``--datasets``
mounted datasets each, idling (heartbeats every 5 s, each with its watch). After
they all reported and a settling heartbeat, the agents' processes' CPU (``/proc``)
and the service's over ``--seconds``, with the heartbeats the service answered
meanwhile (its ``/metrics``): CPU per heartbeat in the agents' processes, end to
end (the reactor, the HTTP client, the pass). The pids are printed, for py-spy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from _scale_db import database, node_ids, seed
from _scale_moves import SERVE, Fleet, _requests, move_plan, seed_agent_reports, seed_reports
from _scale_nodes import cpu_seconds

from tests.processes import ControlProcess

SETTLE = 8.0
"""Seconds after every agent reported before measuring (the first passes' churn)."""


def user_system(pids: list[int]) -> tuple[float, float]:
    """User and system CPU seconds of ``pids`` so far."""
    user = system = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        user += int(fields[11]) / os.sysconf("SC_CLK_TCK")
        system += int(fields[12]) / os.sysconf("SC_CLK_TCK")
    return user, system


def heartbeats(port: int) -> float:
    """The state reports the service answered so far."""
    return sum(count for (route, method), (count, _) in _requests(port).items()
               if method == "PUT" and "state" in route)


def main() -> None:
    """Seed, start the service and the agents, and measure them idling."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    nodes = node_ids(args.agents)
    with database("sqlite") as url:
        placed = seed(url, nodes, args.agents * args.datasets)
        seed_reports(url, nodes, placed)
        agents, _ = move_plan(nodes, placed, 0)
        seed_agent_reports(url, agents)
        control = ControlProcess(url, extra=SERVE).start(timeout=600)
        assert control.process is not None
        with tempfile.TemporaryDirectory(prefix="shoal-agent-idle-") as directory:
            fleet = Fleet(control.url, agents, directory)
            try:
                fleet.wait("ready", len(fleet.processes), timeout=600)
                print(f"agents' pids {' '.join(str(p.pid) for p in fleet.processes)}; "
                      f"service {control.process.pid}", flush=True)
                time.sleep(SETTLE)
                pids = [p.pid for p in fleet.processes]
                beats, agents_cpu = heartbeats(control.port), fleet.cpu_seconds()
                user, system = user_system(pids)
                service_cpu = cpu_seconds(control.process.pid)
                start = time.monotonic()
                time.sleep(args.seconds)
                wall = time.monotonic() - start
                beats = heartbeats(control.port) - beats
                agents_cpu = fleet.cpu_seconds() - agents_cpu
                user, system = (a - b for a, b in zip(user_system(pids), (user, system),
                                                     strict=True))
                service_cpu = cpu_seconds(control.process.pid) - service_cpu
            finally:
                fleet.stop()
                control.stop()
    load = os.getloadavg()[0]
    print("| agents x datasets | seconds | heartbeats/s | agents' CPU (% of a core) | "
          "agents' CPU per heartbeat (user + system) | service CPU | load |")
    print(f"| {args.agents} x {args.datasets} | {wall:.0f} | {beats / wall:.1f} | "
          f"{100 * agents_cpu / wall:.1f}% | {1000 * agents_cpu / max(beats, 1):.2f} ms "
          f"({1000 * user / max(beats, 1):.2f} + {1000 * system / max(beats, 1):.2f}) | "
          f"{100 * service_cpu / wall:.1f}% | {load:.2f} |")


if __name__ == "__main__":
    main()
