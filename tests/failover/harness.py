"""
A real cluster for the failover tests and ``bench/failover.py``.

:class:`FailoverCluster` is a :class:`~tests.agent.functional.cluster.LocalCluster`
whose control service (SQLite) runs with a short ``--failover-grace``, with
agents that may reach it through a :class:`~tests.failover.proxy.TcpProxy`
(to cut them off), a :class:`~tests.failover.watch.WritableChecker` watching
every mount namespace from start to end, writers on datasets' mounts, and
small blocking helpers: events, node records, the CLI, signals.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

from agent.backends import loopdev
from tests.agent.functional.cluster import AgentProcess, LocalCluster, release
from tests.failover.proxy import TcpProxy
from tests.failover.watch import WritableChecker
from tests.failover.writer import WriterProcess
from tests.processes import ControlProcess, http_json, shoal, wait_until


class FailoverCluster(LocalCluster):
    """A control service with a short grace, agents ``names`` on one pool, and a checker.

    Agents named in ``proxied`` reach the control service through their own
    :class:`TcpProxy` (``cluster.proxies[name]``).
    """

    def __init__(self, base: str, names: Sequence[str] = ("node1", "node2"),
                 grace: float = 3.0, proxied: Sequence[str] = ()) -> None:
        super().__init__(base, names)
        self.grace = grace
        self.control = ControlProcess(
            f"sqlite:///{os.path.join(base, 'control.db')}",
            extra=["--failover-grace", str(grace)],
            log_path=os.path.join(base, "control.log"),
        )
        self.proxied = set(proxied)
        self.proxies: dict[str, TcpProxy] = {}
        self.checker = WritableChecker(self.pool)
        self.writers: list[WriterProcess] = []
        self.first_event = 0

    def start(self) -> FailoverCluster:
        """Start the checker, the control service, the proxies and every agent."""
        os.makedirs(self.pool, exist_ok=True)
        self.checker.start()
        self.control.start()
        for name in self.names:
            url = self.url
            if name in self.proxied:
                self.proxies[name] = TcpProxy(self.control.port).start()
                url = self.proxies[name].url
            self.agents[name] = AgentProcess(name, url, self.base, self.pool)
        with ThreadPoolExecutor(len(self.names)) as pool:  # start them side by side
            list(pool.map(AgentProcess.start, self.agents.values()))
        return self

    def close(self) -> None:
        """Stop writers, proxies and processes (woken first), and release every device."""
        try:
            for writer in self.writers:
                writer.kill()
            for agent in self.agents.values():
                if agent.process is not None and agent.process.poll() is None:
                    os.kill(agent.process.pid, signal.SIGCONT)
            for proxy in self.proxies.values():
                proxy.heal()
            for agent in self.agents.values():
                agent.stop()
            self.control.stop()
            for proxy in self.proxies.values():
                proxy.close()
        finally:
            self.checker.stop()
            release_devices(self.base)

    def recover(self, timeout: float = 60) -> None:
        """Bring every node back to health after a test: running, reachable, unfenced, not
        draining and live, so that the next test starts from a clean cluster."""
        for writer in self.writers:
            writer.kill()
        for proxy in self.proxies.values():
            if proxy.cut_off:
                proxy.heal()
        for agent in self.agents.values():
            if agent.process is None or agent.process.poll() is not None:
                agent.start()
            else:
                os.kill(agent.process.pid, signal.SIGCONT)
        for agent in self.agents.values():
            if self.node(agent)["draining"]:
                self.api("DELETE", f"/v1/shoal/nodes/{agent.uuid}/drain")
            wait_until(lambda a=agent: self._unfenced(a), timeout, f"{agent.name} unfenced")
            wait_until(lambda a=agent: self.node(a)["liveness"] == "live", timeout,
                       f"{agent.name} live")
        self.first_event = 0
        self.first_event = max((e["id"] for e in self.events()), default=0) + 1

    def _unfenced(self, agent: AgentProcess) -> bool:
        """Whether the node is unfenced; lifts an operator's fence once the node allows it."""
        fence = self.node(agent)["fence"]
        if fence is not None and not fence["automatic"]:
            status, _, _ = http_json("DELETE", f"{self.url}/v1/shoal/nodes/{agent.uuid}/fence")
            return status == 200
        return fence is None

    # -- processes ---------------------------------------------------------------

    def restart_control(self) -> None:
        """SIGKILL the control service and start it again on the same port and database."""
        self.control.kill()
        self.control.start()

    def writer(self, dataset_id: UUID, agent: AgentProcess, name: str = "records") -> WriterProcess:
        """Start a writer appending records to ``name`` on the dataset's mount on ``agent``."""
        writer = WriterProcess(
            os.path.join(agent.mount_path(dataset_id), name),
            os.path.join(self.base, f"writer-{dataset_id}-{len(self.writers)}.log"),
        )
        self.writers.append(writer)
        return writer.start()

    @staticmethod
    def pause(agent: AgentProcess, *writers: WriterProcess) -> None:
        """SIGSTOP the agent (and writers): a node frozen, alive but silent."""
        assert agent.process is not None
        os.kill(agent.process.pid, signal.SIGSTOP)
        for writer in writers:
            writer.signal(signal.SIGSTOP)

    @staticmethod
    def resume(agent: AgentProcess, *writers: WriterProcess) -> None:
        """SIGCONT the agent (and writers)."""
        assert agent.process is not None
        os.kill(agent.process.pid, signal.SIGCONT)
        for writer in writers:
            writer.signal(signal.SIGCONT)

    # -- the control service's view ------------------------------------------------

    def node(self, agent: AgentProcess) -> dict[str, Any]:
        """The node's record in ``GET /v1/shoal/nodes`` (liveness, fence, draining)."""
        nodes = self.api("GET", "/v1/shoal/nodes")
        return next(n for n in nodes if n["uuid"] == str(agent.uuid))

    def fenced(self, agent: AgentProcess) -> bool:
        """Whether the control service has the node fenced."""
        return self.node(agent)["fence"] is not None

    def events(self, kind: str | None = None, **query: object) -> list[dict[str, Any]]:
        """Events (``dataset=``, ``node=``) since the last :meth:`recover`, oldest first, only
        of ``kind`` if given."""
        pairs = [f"{k}={v}" for k, v in query.items()] + ["limit=1000"]
        if self.first_event > 0:
            pairs.append(f"since={self.first_event - 1}")
        found = self.api("GET", "/v1/shoal/events?" + "&".join(pairs))
        return [e for e in found
                if (kind is None or e["kind"] == kind) and e["id"] >= self.first_event]

    def failover(self, dataset_id: UUID) -> dict[str, Any]:
        """The dataset's failover options and epoch."""
        return self.api("GET", f"/v1/shoal/datasets/{dataset_id}/failover")

    def primary(self, dataset_id: UUID) -> str:
        """The dataset's configured primary (a node uuid)."""
        return str(self.configuration()[dataset_id]["primary"])

    def leases(self) -> dict[UUID, dict[str, Any]]:
        """``/v1/configuration/leases`` by dataset id."""
        return {UUID(lease["dataset_id"]): lease
                for lease in self.api("GET", "/v1/configuration/leases")}

    def wait_failed_over(self, dataset_id: UUID, agent: AgentProcess, timeout: float = 60) -> None:
        """Wait until the dataset is mounted on ``agent``, its data usable there."""
        self.wait_mounted(dataset_id, agent, timeout)

    def cli(self, *args: str, expect: int = 0) -> Any:
        """Run ``shoal ARGS`` against this cluster; the process, checked for ``expect``."""
        done = shoal("--url", self.url, *args)
        if done.returncode != expect:
            raise AssertionError(
                f"shoal {' '.join(args)} exited {done.returncode}, not {expect}: "
                f"{done.stdout}{done.stderr}"
            )
        return done

    def cli_json(self, *args: str) -> Any:
        """Run ``shoal --json ARGS``; its decoded output."""
        return json.loads(self.cli("--json", *args).stdout)


def release_devices(base: str) -> None:
    """Unmount and detach everything below ``base``, making fenced (read-only) loop devices
    writable first: the flag outlives ``losetup -d`` and would trouble the device's next user."""
    prefix = os.path.realpath(base).rstrip("/") + "/"
    for name in os.listdir(loopdev.SYS_BLOCK):
        backing = loopdev.backing_file(name)
        if backing and backing.startswith(prefix) and loopdev.read_only("/dev/" + name):
            loopdev.set_read_only("/dev/" + name, False)
    release(base)


def wait_for(check: Any, timeout: float, what: str) -> Any:
    """:func:`tests.processes.wait_until`, re-exported for the scenarios."""
    return wait_until(check, timeout, what)
