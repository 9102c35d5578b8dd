"""
Simulated agents for ``bench/_scale_moves.py``: one process running many real agents.

    python bench/_scale_agents.py SPEC.json

The spec names the control service's URL, the mount root and the agents:
each agent's node uuid, era, host, the datasets it holds now and the one it
will be given by a move. Agents come in pairs that trade one dataset, and
each pair shares one fake SAN (:class:`~agent.backends.fake.FakeStorage`):
a move only ever involves the two nodes of a pair, and a SAN per pair keeps
each agent's discovery to its own volumes, as a real SAN's would be.

Every agent is the real :class:`~agent.loop.ConvergenceLoop` with the real
:class:`~control.client.http.HTTPClient` over the real reactor, on the fake
backend and filesystems (their calls run on the reactor thread: they are
in-memory). The datasets an agent holds are made, attached and mounted in its
SAN before it starts, as on a node that restarted.

Prints ``ready`` once every agent's first report was accepted, then
``converged <dataset id> <unix time>`` when an agent's accepted report first
shows the dataset it is given mounted, and ``done`` when all have; the agents
run on until the driver ends the process.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from typing import Any
from uuid import UUID

import structlog
from _common import ROOT  # noqa: F401  (puts the checkout on sys.path)
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred

from agent.backends.fake import FakeBlockDeviceAPI, FakeStorage
from agent.discovery import mount_point
from agent.executor import Executor
from agent.fs.fake import FakeFilesystems
from agent.loop import ConvergenceLoop, LoopSettings, NodeFacts
from control.client.http import HTTPClient
from control.model import NodeState, VolumeStatus
from control.runners import synchronous_runner

CLUSTER = UUID(int=16)
SIZE = 64 * 1024 * 1024


class Watching:
    """A client that notes when an accepted report first shows each of ``awaited`` mounted."""

    def __init__(self, inner: HTTPClient, awaited: frozenset[UUID],
                 seen: dict[UUID, float]) -> None:
        self.inner = inner
        self.awaited = awaited
        self.seen = seen
        self.reports = 0

    def report_state(self, state: NodeState) -> Deferred[Any]:
        """Report, and note the time of each awaited dataset first mounted in it."""
        mounted = [d for d in self.awaited if d not in self.seen and self._mounted(state, d)]

        def accepted(answer: Any) -> Any:
            self.reports += 1
            for dataset_id in mounted:
                if dataset_id not in self.seen:
                    self.seen[dataset_id] = time.time()
                    print(f"converged {dataset_id} {self.seen[dataset_id]:.6f}", flush=True)
            return answer

        return self.inner.report_state(state).addCallback(accepted)

    @staticmethod
    def _mounted(state: NodeState, dataset_id: UUID) -> bool:
        entry = state.datasets.get(dataset_id)
        return entry is not None and entry.status is VolumeStatus.MOUNTED

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def prepared(storage: FakeStorage, node: str, root: str, datasets: list[UUID]) -> FakeFilesystems:
    """Make, attach and mount ``datasets`` on ``node`` in ``storage``; returns the node's
    filesystems (they hold its mounts)."""
    backend = FakeBlockDeviceAPI(storage, CLUSTER, node)
    filesystems = FakeFilesystems(storage, node)
    for dataset_id in datasets:
        volume = backend.create_volume(dataset_id, SIZE)
        attached = backend.attach_volume(volume.blockdevice_id, node)
        device = backend.get_device_path(attached.blockdevice_id)
        filesystems.make_filesystem(device)
        filesystems.mount(device, mount_point(root, dataset_id))
    return filesystems


def observed(agents: list[dict[str, Any]], root: str) -> dict[UUID, tuple[dict[UUID, str], Any]]:
    """What each of ``agents`` will report once prepared as :func:`start_agents` prepares
    them: its datasets' devices, and its backend's capacity (by node).

    The driver seeds these reports before the service starts, so that the agents' first
    reports tell it nothing new, as after a restart of agents that ran a while: 1,000
    first reports with news would be 1,000 write transactions the bench made up.
    """
    found: dict[UUID, tuple[dict[UUID, str], Any]] = {}
    storage = FakeStorage()
    for index, agent in enumerate(agents):
        if index % 2 == 0:
            storage = FakeStorage()
        node = agent["node"]
        prepared(storage, node, root, [UUID(d) for d in agent["datasets"]])
        backend = FakeBlockDeviceAPI(storage, CLUSTER, node)
        devices = {v.dataset_id: backend.get_device_path(v.blockdevice_id)
                   for v in backend.list_volumes() if v.attached_to == node}
        found[UUID(node)] = (devices, backend.capacity())
    return found


def start_agents(spec: dict[str, Any]) -> tuple[list[ConvergenceLoop], list[Watching]]:
    """Start every agent of ``spec``; returns the loops and their clients."""
    level = getattr(logging, os.environ.get("SCALE_AGENTS_LOG", "ERROR"))
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    root = spec["mount_root"]
    seen: dict[UUID, float] = {}
    loops, clients = [], []
    storage = FakeStorage()
    for index, agent in enumerate(spec["agents"]):
        if index % 2 == 0:
            storage = FakeStorage()  # one SAN per pair of agents
        node = agent["node"]
        filesystems = prepared(storage, node, root, [UUID(d) for d in agent["datasets"]])
        backend = FakeBlockDeviceAPI(storage, CLUSTER, node)
        executor = Executor(backend, filesystems, synchronous_runner)
        given = frozenset(UUID(d) for d in agent.get("given") or ())
        client = Watching(HTTPClient(spec["url"]), given, seen)
        facts = NodeFacts(UUID(node), agent["host"], agent["era"], agent.get("labels", {}))
        loop = ConvergenceLoop(client, reactor, facts, executor,  # type: ignore[arg-type]
                               LoopSettings(mount_root=root), random=lambda: 0.5,
                               run_blocking=synchronous_runner,
                               heartbeat_jitter=random.random)
        loops.append(loop)
        clients.append(client)
    return loops, clients


async def run(spec: dict[str, Any]) -> None:
    """Start the agents, say when all reported once, and when all were given their dataset."""
    loops, clients = start_agents(spec)
    for index, loop in enumerate(loops):  # spread the first passes over a second
        reactor.callLater(index / max(1, len(loops)), loop.start)
    while any(c.reports == 0 for c in clients):
        await task.deferLater(reactor, 0.05)
    print("ready", flush=True)
    awaited = set().union(*(c.awaited for c in clients))
    while not awaited <= set(clients[0].seen):
        await task.deferLater(reactor, 0.05)
    print("done", flush=True)
    await Deferred()  # keep the agents running until the driver ends the process


def main() -> None:
    """Run the agents of the spec file named on the command line."""
    with open(sys.argv[1]) as f:
        spec = json.load(f)

    def finished(result: Any) -> Any:
        if reactor.running:
            reactor.stop()
        return result

    def begin() -> None:
        d = Deferred.fromCoroutine(run(spec))
        d.addErrback(lambda failure: print(f"failed {failure.getErrorMessage()}", flush=True))
        d.addBoth(finished)

    reactor.callWhenRunning(begin)
    profile_to = os.environ.get("SCALE_AGENTS_PROFILE")
    if not profile_to:
        reactor.run()
        return
    # A profile of the process (cProfile), written when the reactor stops
    # (SIGTERM from the driver): SCALE_AGENTS_PROFILE=/tmp/agents.prof, then pstats.
    import cProfile

    profile = cProfile.Profile()
    profile.runcall(reactor.run)
    profile.dump_stats(f"{profile_to}.{os.getpid()}")


if __name__ == "__main__":
    main()
