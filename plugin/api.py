"""
The Docker Volume Plugin protocol over HTTP: thin handlers over :class:`VolumeService`.

Every endpoint is ``POST /<Method>`` with a JSON body (possibly empty, with
any or no ``Content-Type``) and answers JSON. Success is HTTP 200. A failure
is HTTP 500 with ``{"Err": "<message>"}``: Docker reads ``Err`` on any
status, while Podman only looks for an error when the status is not 200, so
500 (what Docker's own plugin helpers send) is the one both understand.
See ``docs/plugin.md`` for what each endpoint does.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from klein import Klein
from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from control.errors import InvalidRequest, PayloadTooLarge, ShoalError
from plugin.volumes import VolumeService

CONTENT_TYPE = b"application/vnd.docker.plugins.v1+json"
MAX_BODY = 64 * 1024
"""The largest request body accepted: Docker's bodies are a few hundred bytes."""

log = structlog.get_logger("shoal.plugin.api")


def read_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; an empty body is ``{}``."""
    raw = request.content.read(MAX_BODY + 1) if request.content is not None else b""
    if len(raw) > MAX_BODY:
        raise PayloadTooLarge(f"The request body is larger than {MAX_BODY} bytes.")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("The request body is not JSON (or is nested too deeply).") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def name_of(body: dict[str, Any]) -> str:
    """The ``Name`` of a request, which every volume call must give."""
    name = body.get("Name")
    if name is None or name == "":
        raise InvalidRequest("The request has no volume Name.")
    if not isinstance(name, str):
        raise InvalidRequest(f"The volume Name must be a string, not {type(name).__name__}.")
    return name


def mount_id_of(body: dict[str, Any]) -> str:
    """The ``ID`` of a Mount or Unmount: a string, or ``""`` when the caller sends none."""
    mount_id = body.get("ID")
    if mount_id is None:
        return ""
    if not isinstance(mount_id, str):
        raise InvalidRequest(f"The mount ID must be a string, not {type(mount_id).__name__}.")
    return mount_id


def respond(request: Request, body: dict[str, Any], code: int = 200) -> bytes:
    """Set the status and content type, and encode ``body``."""
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", CONTENT_TYPE)
    return json.dumps(body).encode()


def error_message(error: BaseException) -> str:
    """The ``Err`` text for a failure: a refusal's own description, or what broke."""
    if isinstance(error, ShoalError):
        return error.description
    return f"Internal error in the Shoal plugin: {type(error).__name__}: {error}"


def routing_refusal(request: Request, error: HTTPException) -> bytes:
    """Answer a routing error as the protocol's JSON ``{"Err": ...}`` with its own status."""
    path = request.path.decode("utf-8", "replace")[:200]
    method = request.method.decode("ascii", "replace")
    if isinstance(error, MethodNotAllowed):
        allowed = sorted(set(error.valid_methods or []) - {"HEAD", "OPTIONS"})
        request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
        message = f"{method} is not allowed on {path}; use {', '.join(allowed)}."
    elif error.code == 404:
        message = f"The Shoal plugin has no endpoint {path}; see docs/plugin.md."
    else:
        message = f"{method} {path} was refused: {error.description or error.name}"
    return respond(request, {"Err": message}, error.code or 500)


class PluginAPI:
    """The plugin's HTTP endpoints, bound to one :class:`VolumeService`."""

    app = Klein()

    def __init__(self, volumes: VolumeService) -> None:
        self._volumes = volumes

    def resource(self) -> Resource:
        """The Twisted resource serving every endpoint."""
        return self.app.resource()  # type: ignore[no-any-return]

    @app.handle_errors(HTTPException)
    def _unrouted(self, request: Request, failure: Failure) -> bytes:
        """An unknown endpoint (404) or a method other than POST (405, with ``Allow``), as JSON."""
        error = failure.value
        assert isinstance(error, HTTPException)
        return routing_refusal(request, error)

    async def _answer(
        self, request: Request, work: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
    ) -> bytes:
        try:
            body = read_body(request)
            answer = await work(body)
        except CancelledError:
            raise
        except Exception as e:
            if not isinstance(e, ShoalError):
                log.error("request_failed", path=request.path, exc_info=e)
            return respond(request, {"Err": error_message(e)}, 500)
        return respond(request, answer)

    @app.route("/Plugin.Activate", methods=["POST"])
    async def activate(self, request: Request) -> bytes:
        """Announce a volume driver."""
        return respond(request, {"Implements": ["VolumeDriver"]})

    @app.route("/VolumeDriver.Capabilities", methods=["POST"])
    async def capabilities(self, request: Request) -> bytes:
        """Volumes are cluster-wide: the same name means the same data on every node."""
        return respond(request, {"Capabilities": {"Scope": "global"}})

    @app.route("/VolumeDriver.Create", methods=["POST"])
    async def create(self, request: Request) -> bytes:
        """Create the named volume on this node (or accept an existing one)."""

        async def work(body: dict[str, Any]) -> dict[str, Any]:
            await self._volumes.create(name_of(body), body.get("Opts"))
            return {"Err": ""}

        return await self._answer(request, work)

    @app.route("/VolumeDriver.Remove", methods=["POST"])
    async def remove(self, request: Request) -> bytes:
        """Delete the named volume unless something uses it."""

        async def work(body: dict[str, Any]) -> dict[str, Any]:
            await self._volumes.remove(name_of(body))
            return {"Err": ""}

        return await self._answer(request, work)

    @app.route("/VolumeDriver.Mount", methods=["POST"])
    async def mount(self, request: Request) -> bytes:
        """Bring the volume to this node and answer its mount path.

        If the caller goes away first (Podman gives up after its own timeout),
        Klein cancels this handler: the Mount is then not counted as a user of
        the volume and the lease it took is given back.
        """

        async def work(body: dict[str, Any]) -> dict[str, Any]:
            name, mount_id = name_of(body), mount_id_of(body)
            path = await self._volumes.mount(name, mount_id)
            return {"Mountpoint": path, "Err": ""}

        return await self._answer(request, work)

    @app.route("/VolumeDriver.Unmount", methods=["POST"])
    async def unmount(self, request: Request) -> bytes:
        """Forget one user of the volume; release its lease after the last."""

        async def work(body: dict[str, Any]) -> dict[str, Any]:
            await self._volumes.unmount(name_of(body), mount_id_of(body))
            return {"Err": ""}

        return await self._answer(request, work)

    @app.route("/VolumeDriver.Path", methods=["POST"])
    async def path(self, request: Request) -> bytes:
        """Where the volume is mounted on this node ("" when it is not)."""

        async def work(body: dict[str, Any]) -> dict[str, Any]:
            return {"Mountpoint": await self._volumes.path(name_of(body)), "Err": ""}

        return await self._answer(request, work)

    @app.route("/VolumeDriver.Get", methods=["POST"])
    async def get(self, request: Request) -> bytes:
        """One volume, or an error for an unknown name (Docker expects it before Create)."""

        async def work(body: dict[str, Any]) -> dict[str, Any]:
            return {"Volume": await self._volumes.get(name_of(body)), "Err": ""}

        return await self._answer(request, work)

    @app.route("/VolumeDriver.List", methods=["POST"])
    async def list(self, request: Request) -> bytes:
        """Every Shoal volume in the cluster."""

        async def work(body: dict[str, Any]) -> dict[str, Any]:
            return {"Volumes": await self._volumes.list(), "Err": ""}

        return await self._answer(request, work)
