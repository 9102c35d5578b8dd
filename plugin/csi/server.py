"""
The gRPC side of the driver: the Identity service, and servicers that hand each RPC to the reactor.

grpcio runs handlers on its own thread pool. :func:`servicer` makes a
generated servicer class whose every method sends the request to the
matching ``async`` method of a service object *on the reactor thread* (where
the control client lives) and waits for the answer on its gRPC thread, so
the reactor never blocks and a slow RPC only holds its own gRPC thread. A
refusal becomes the status the CSI spec names (:func:`plugin.csi.errors.status_of`);
an RPC a service does not define keeps grpcio's UNIMPLEMENTED.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import structlog
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

import control
from control.client.interface import ShoalClient
from control.errors import ShoalError
from plugin.common.sockets import prepare_socket, socket_access
from plugin.csi.errors import Code, CsiError, status_of
from plugin.csi.proto import csi_pb2 as csi
from plugin.csi.proto import csi_pb2_grpc as csi_grpc
from plugin.csi.rules import DRIVER_NAME

log = structlog.get_logger("shoal.csi")

POLL = 1.0
"""Seconds a gRPC thread waits on the reactor before checking whether the driver stops."""


class IdentityService:
    """GetPluginInfo, GetPluginCapabilities and Probe.

    ``controller``: whether this process serves the Controller service;
    ``ready`` raises a :class:`ShoalError` while the process cannot serve
    (the node mode's identity unknown, say).
    """

    def __init__(
        self, client: ShoalClient, controller: bool, ready: Callable[[], object] = lambda: None
    ) -> None:
        self._client = client
        self._controller = controller
        self._ready = ready

    async def GetPluginInfo(self, request: Any) -> Any:
        """The driver's name and Shoal's version."""
        return csi.GetPluginInfoResponse(name=DRIVER_NAME, vendor_version=control.__version__)

    async def GetPluginCapabilities(self, request: Any) -> Any:
        """Controller service (when served), topology constraints, online expansion."""
        response = csi.GetPluginCapabilitiesResponse()
        kinds = csi.PluginCapability.Service.Type
        if self._controller:
            response.capabilities.add().service.type = kinds.CONTROLLER_SERVICE
        response.capabilities.add().service.type = kinds.VOLUME_ACCESSIBILITY_CONSTRAINTS
        expansion = csi.PluginCapability.VolumeExpansion.Type.ONLINE
        response.capabilities.add().volume_expansion.type = expansion
        return response

    async def Probe(self, request: Any) -> Any:
        """Ready when the control service answers (and, on a node, the node is known)."""
        try:
            self._ready()
            await self._client.version()
        except ShoalError as e:
            log.info("probe_not_ready", reason=e.description)
            return csi.ProbeResponse(ready={"value": False})
        return csi.ProbeResponse(ready={"value": True})


class Bridge:
    """Runs service coroutines on the reactor for gRPC threads; :meth:`stop` frees waiters."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Answer every waiting and later RPC UNAVAILABLE (the driver is stopping)."""
        self._stopping.set()

    def call(self, method: Callable[[Any], Any], request: Any) -> Any:
        """``await method(request)`` on the reactor; its result, or its exception raised."""
        answers: queue.Queue[Any] = queue.Queue(1)

        def start() -> None:
            Deferred.fromCoroutine(method(request)).addBoth(answers.put)

        if self._stopping.is_set():
            raise CsiError(Code.UNAVAILABLE, "The driver is stopping; retry shortly.")
        self._reactor.callFromThread(start)
        while True:
            try:
                answer = answers.get(timeout=POLL)
            except queue.Empty:
                if self._stopping.is_set():
                    raise CsiError(Code.UNAVAILABLE, "The driver stopped; retry.") from None
                continue
            if isinstance(answer, Failure):
                answer.raiseException()
            return answer


def servicer(base: type, service: object, bridge: Bridge) -> Any:
    """An instance of generated servicer class ``base`` whose RPCs run ``service``'s methods."""
    methods = {
        name: getattr(service, name)
        for name in vars(base)
        if not name.startswith("_") and callable(getattr(service, name, None))
    }

    def handler(name: str, method: Callable[[Any], Any]) -> Callable[..., Any]:
        def handle(self: Any, request: Any, context: Any) -> Any:
            try:
                return bridge.call(method, request)
            except Exception as e:
                code, message = status_of(e)
                level = log.error if code is Code.INTERNAL else log.info
                level("rpc_refused", rpc=name, code=code.name, reason=message)
                context.abort(code, message)

        handle.__name__ = name
        return handle

    cls = type(f"Shoal{base.__name__}", (base,), {n: handler(n, m) for n, m in methods.items()})
    return cls()


def socket_path(endpoint: str) -> str:
    """The Unix socket path of a CSI endpoint (``unix:///path``, ``unix:/path`` or a path)."""
    if endpoint.startswith("unix://"):
        path = endpoint[len("unix://"):]
    elif endpoint.startswith("unix:"):
        path = endpoint[len("unix:"):]
    else:
        path = endpoint
    if not path.startswith("/"):
        raise ValueError(f"The endpoint {endpoint!r} names no absolute Unix socket path.")
    return path


ADDERS = {
    "identity": (csi_grpc.IdentityServicer, csi_grpc.add_IdentityServicer_to_server),
    "controller": (csi_grpc.ControllerServicer, csi_grpc.add_ControllerServicer_to_server),
    "node": (csi_grpc.NodeServicer, csi_grpc.add_NodeServicer_to_server),
}


def start_server(
    endpoint: str, services: dict[str, object], bridge: Bridge, workers: int = 16,
    socket_group: str | None = None,
) -> grpc.Server:
    """Serve ``services`` (keys of :data:`ADDERS`) on the endpoint's Unix socket; started.

    The socket is root's alone (0600), or also ``socket_group``'s (0660): whoever
    may write to it can have any volume of the cluster mounted on this node.
    """
    mode, gid = socket_access(socket_group)
    path = socket_path(endpoint)
    prepare_socket(path)
    server = grpc.server(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="csi"))
    for kind, service in services.items():
        base, add = ADDERS[kind]
        add(servicer(base, service, bridge), server)
    server.add_insecure_port("unix:" + path)
    previous = os.umask(0o177)  # the socket is made by start(): never open to others meanwhile
    try:
        server.start()
    finally:
        os.umask(previous)
    os.chmod(path, mode)
    if gid is not None:
        os.chown(path, -1, gid)
    return server
