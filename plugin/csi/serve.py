"""
The driver process: ``shoal csi serve``.

Builds the services its mode asks for over one control client, serves them
on the endpoint's Unix socket, and runs the reactor until stopped. The node
mode learns its node from ``--node-id`` or, as the Docker plugin does, from the
local agent's state directory (:class:`~plugin.common.node.AgentNode`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import structlog
from attrs import frozen

from agent.identity import DEFAULT_STATE_DIR as AGENT_STATE_DIR
from control.client.interface import ShoalClient
from control.runners import thread_pool_runner
from plugin.common.node import AgentNode
from plugin.csi.controller import ControllerService
from plugin.csi.node import NodeService
from plugin.csi.server import Bridge, IdentityService, start_server
from plugin.hostmounts import MountGuard

log = structlog.get_logger("shoal.csi")

MODES = ("controller", "node", "all")
DEFAULT_ENDPOINT = "unix:///run/csi/shoal.sock"


@frozen
class CsiOptions:
    """How to run one driver process."""

    endpoint: str = DEFAULT_ENDPOINT
    mode: str = "all"
    node_id: UUID | None = None
    agent_state_dir: str = AGENT_STATE_DIR
    mount_root: str | None = None
    default_size: int | None = 1024**3
    stage_timeout: float = 100.0
    snapshot_wait: float = 30.0
    max_volumes: int = 0
    workers: int = 16
    socket_group: str | None = None
    """The group that may use the socket too; ``None``: root (its owner) only."""


def build_services(reactor: Any, client: ShoalClient, options: CsiOptions) -> dict[str, object]:
    """The services of ``options.mode``, by kind (``identity``, ``controller``, ``node``)."""
    controller = options.mode in ("controller", "all")
    services: dict[str, object] = {}
    ready: Any = lambda: None  # noqa: E731
    if controller:
        services["controller"] = ControllerService(
            client, reactor, options.default_size, options.snapshot_wait, options.max_volumes
        )
    if options.mode in ("node", "all"):
        node = AgentNode(options.agent_state_dir, options.mount_root, options.node_id)
        services["node"] = NodeService(
            client,
            reactor,
            node,
            MountGuard(node.mount_root),
            thread_pool_runner(reactor, reactor.getThreadPool()),
            stage_timeout=options.stage_timeout,
            max_volumes=options.max_volumes,
        )
        ready = node
    services["identity"] = IdentityService(client, controller, ready)
    return services


def run_csi(reactor: Any, client: ShoalClient, options: CsiOptions) -> None:
    """Serve until the reactor stops (blocking: runs the reactor)."""
    bridge = Bridge(reactor)
    servers: list[Any] = []
    failures: list[BaseException] = []

    def start() -> None:
        try:
            servers.append(start_server(options.endpoint, build_services(reactor, client, options),
                                        bridge, options.workers, options.socket_group))
        except Exception as e:
            failures.append(e)
            reactor.stop()
            return
        log.info("listening", endpoint=options.endpoint, mode=options.mode,
                 control=getattr(client, "base_url", None))

    def stopping() -> None:
        bridge.stop()
        for server in servers:
            server.stop(None)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stopping)
    reactor.run()
    if failures:
        raise failures[0]
