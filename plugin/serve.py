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
from control.runners import thread_pool_runner
from plugin.api import PluginAPI
from plugin.defaults import DEFAULT_MOUNT_TIMEOUT, DEFAULT_SIZE, DEFAULT_SOCKET, DEFAULT_STATE_DIR
from plugin.hostmounts import MountGuard
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
    socket_group: str | None = None
    """The group (name or number) that may use the socket too; ``None``: root (its owner) only."""


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


def socket_access(group: str | None) -> tuple[int, int | None]:
    """The socket's mode and group id: 0600 (its owner, root, only), or 0660 for ``group``.

    Whoever can write to the socket can have any volume of the cluster mounted
    on this node, so nobody else may; refuses a group that does not exist.
    """
    if group is None:
        return 0o600, None
    import grp

    try:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise InvalidRequest(
            f"No group {group[:64]!r} on this host for --socket-group: create it, or leave "
            "the option out so that only root can use the socket."
        ) from None
    return 0o660, gid


def build_service(reactor: Any, client: ShoalClient, options: PluginOptions) -> VolumeService:
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
    )


def start_plugin(reactor: Any, client: ShoalClient, options: PluginOptions) -> Deferred[Any]:
    """Listen on the socket; fires with the listening port."""
    mode, gid = socket_access(options.socket_group)
    prepare_socket(options.socket)
    service = build_service(reactor, client, options)
    site = LoggedSite(PluginAPI(service).resource())
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

    return endpoint.listen(site).addCallback(listening)


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
