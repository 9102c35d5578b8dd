"""
The plugin process: ``shoal plugin serve``.

Reads which node it serves from the local agent's identity file, serves
:class:`~plugin.api.PluginAPI` on a Unix socket (where Docker discovers
plugins, ``/run/docker/plugins/shoal.sock`` by default; mode 0600, or 0660
for its ``--socket-group``), and on start
releases leases it holds for volumes nobody on this node uses any more.
"""

from __future__ import annotations

import os
from typing import Any

import structlog
from attrs import frozen
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import UNIXServerEndpoint

from agent.identity import DEFAULT_STATE_DIR as AGENT_STATE_DIR
from control.client.interface import ShoalClient
from control.logs import LoggedSite
from control.metrics_http import TimedResource, listen_metrics, parse_address
from control.runners import thread_pool_runner
from plugin.api import PluginAPI
from plugin.common.node import AgentNode
from plugin.common.sockets import prepare_socket, socket_access
from plugin.defaults import DEFAULT_MOUNT_TIMEOUT, DEFAULT_SIZE, DEFAULT_SOCKET, DEFAULT_STATE_DIR
from plugin.hostmounts import MountGuard
from plugin.metrics import PluginMetrics, endpoint_of
from plugin.mounts import MountFile
from plugin.volumes import VolumeService

log = structlog.get_logger("shoal.plugin")


@frozen
class PluginOptions:
    """How to run one plugin."""

    socket: str = DEFAULT_SOCKET
    agent_state_dir: str = AGENT_STATE_DIR
    state_dir: str = DEFAULT_STATE_DIR
    default_size: int | None = DEFAULT_SIZE
    mount_timeout: float = DEFAULT_MOUNT_TIMEOUT
    check_mount_table: bool = True
    """Check the kernel's mount table too (off only for directory-mounting test agents)."""
    mount_root: str | None = None
    """This node's mount root; ``None``: read what the local agent recorded."""
    metrics_address: str | None = None
    """Serve the plugin's metrics as plain HTTP at this HOST:PORT (``None``: not at all)."""
    socket_group: str | None = None
    """The group (name or number) that may use the socket too; ``None``: root (its owner) only."""


def build_service(
    reactor: Any, client: ShoalClient, options: PluginOptions, metrics: PluginMetrics | None = None
) -> VolumeService:
    """The volume service of this node, its mount table loaded from the state dir."""
    node = AgentNode(options.agent_state_dir, options.mount_root)
    guard = MountGuard(node.mount_root, check_kernel=options.check_mount_table)
    return VolumeService(
        client,
        node,
        reactor,
        MountFile(options.state_dir),
        guard,
        default_size=options.default_size,
        mount_timeout=options.mount_timeout,
        run_blocking=thread_pool_runner(reactor, reactor.getThreadPool()),
        metrics=metrics,
    )


def start_plugin(reactor: Any, client: ShoalClient, options: PluginOptions) -> Deferred[Any]:
    """Listen on the socket; fires with the listening port."""
    if options.metrics_address is not None:
        parse_address(options.metrics_address)  # refused before anything listens
    mode, gid = socket_access(options.socket_group)
    prepare_socket(options.socket)
    metrics = PluginMetrics()
    service = build_service(reactor, client, options, metrics)
    timed = TimedResource(PluginAPI(service).resource(), reactor, endpoint_of, metrics.answered)
    site = LoggedSite(timed)
    site.displayTracebacks = False
    endpoint = UNIXServerEndpoint(reactor, options.socket, mode=mode)

    def listening(port: Any) -> Any:
        if gid is not None:
            os.chown(options.socket, -1, gid)
        log.info("listening", socket=options.socket, control=getattr(client, "base_url", None))
        reactor.addSystemEventTrigger("before", "shutdown", port.stopListening)
        Deferred.fromCoroutine(service.release_unused()).addErrback(
            lambda f: log.warning("release_unused_failed", reason=str(f.value))
        )
        return port

    listened = endpoint.listen(site).addCallback(listening)
    if options.metrics_address is not None:
        listened.addCallback(serve_metrics, reactor, options.metrics_address, metrics)
    return listened


def serve_metrics(port: Any, reactor: Any, address: str, metrics: PluginMetrics) -> Deferred[Any]:
    """Serve ``metrics`` as plain HTTP at ``address``; fires with the plugin's ``port``."""
    runner = thread_pool_runner(reactor, reactor.getThreadPool())

    def listening(bound: Any) -> Any:
        reactor.addSystemEventTrigger("before", "shutdown", bound.stopListening)
        return port

    return listen_metrics(reactor, address, metrics.registry, runner, log).addCallback(listening)


def run_plugin(reactor: Any, client: ShoalClient, options: PluginOptions) -> None:
    """Serve until the reactor stops (blocking: runs the reactor)."""
    failures: list[Any] = []

    def failed(failure: Any) -> None:
        failures.append(failure)
        reactor.stop()

    reactor.callWhenRunning(
        lambda: maybeDeferred(start_plugin, reactor, client, options).addErrback(failed)
    )
    reactor.run()
    if failures:
        failures[0].raiseException()
