"""
The plugin process: ``shoal plugin serve``.

Reads which node it serves from the local agent's identity file, serves
:class:`~plugin.api.PluginAPI` on a Unix socket (where Docker discovers
plugins, ``/run/docker/plugins/shoal.sock`` by default), and on start
releases leases it holds for volumes nobody on this node uses any more.
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Any
from uuid import UUID

import structlog
from attrs import frozen
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import UNIXServerEndpoint

from agent.identity import DEFAULT_STATE_DIR as AGENT_STATE_DIR
from agent.identity import IdentityError, read_identity, read_mount_root
from control.client.interface import ShoalClient
from control.errors import InvalidRequest, Unavailable
from control.logs import LoggedSite
from control.metrics_http import TimedResource, listen_metrics, parse_address
from control.runners import thread_pool_runner
from plugin.api import PluginAPI
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


class AgentNode:
    """This node's uuid and mount root, read from the local agent's state directory.

    The agent may start after the plugin, so the files are read on first need
    and remembered once found; until then every request explains what is
    missing. The mount root comes from this node only, never from the
    control service.
    """

    def __init__(self, state_dir: str, mount_root: str | None = None) -> None:
        self.state_dir = state_dir
        self._uuid: UUID | None = None
        self._mount_root = mount_root

    def mount_root(self) -> str:
        """Where the local agent mounts datasets, or :class:`Unavailable` saying why not known."""
        if self._mount_root is None:
            try:
                self._mount_root = read_mount_root(self.state_dir)
            except IdentityError as e:
                raise Unavailable(f"This node's mount root is not known yet: {e}") from None
        return self._mount_root

    def __call__(self) -> UUID:
        """The node's uuid, or :class:`Unavailable` saying how to give the node one."""
        if self._uuid is None:
            try:
                self._uuid = read_identity(self.state_dir).uuid
            except IdentityError as e:
                raise Unavailable(f"This node is not known yet: {e}") from None
        return self._uuid


def prepare_socket(path: str) -> None:
    """Make the socket's directory; remove a stale socket, refuse a live one."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise InvalidRequest(f"{path} exists and is not a socket; choose another --socket.")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise InvalidRequest(f"Another process is already serving {path}; stop it first.")


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
    prepare_socket(options.socket)
    metrics = PluginMetrics()
    service = build_service(reactor, client, options, metrics)
    timed = TimedResource(PluginAPI(service).resource(), reactor, endpoint_of, metrics.answered)
    site = LoggedSite(timed)
    site.displayTracebacks = False
    endpoint = UNIXServerEndpoint(reactor, options.socket, mode=0o660)

    def listening(port: Any) -> Any:
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
        host = bound.getHost()
        log.info("metrics_listening", url=f"http://{host.host}:{host.port}/metrics")
        reactor.addSystemEventTrigger("before", "shutdown", bound.stopListening)
        return port

    return listen_metrics(reactor, address, metrics.registry, runner).addCallback(listening)


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
