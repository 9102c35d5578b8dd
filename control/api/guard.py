"""
Authorisation in front of every route: who the client certificate is, and may it.

:class:`Guard` wraps the Klein resource. For each request it finds the
principal (:func:`peer_principal`: ``None`` over plain HTTP), refuses a
revoked certificate, finds the route the request is for in Klein's URL map
and asks :func:`control.api.permissions.decide`; a refusal is a JSON 403. A
request no route matches goes on to Klein, which answers 404 or 405.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import ISSLTransport
from twisted.web.resource import Resource
from twisted.web.server import Request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, RequestRedirect

from control.api.denylist import Denylist
from control.api.errors import error_body, json_response
from control.api.permissions import READ, decide
from control.roles import Principal, principal_of

Authenticate = Callable[[Request], Principal | None]


def peer_principal(request: Request) -> Principal | None:
    """The principal of ``request``'s TLS client certificate; ``None`` over plain HTTP.

    Parsed once per connection (a connection's certificate never changes)."""
    transport: Any = ISSLTransport(request.transport, None)
    if transport is None:
        return None
    known: Principal | None = getattr(transport, "shoal_principal", None)
    if known is not None:
        return known
    certificate: Any = transport.getPeerCertificate()
    if certificate is None:
        return None
    found = principal_of(certificate.to_cryptography())
    transport.shoal_principal = found
    return found


def openapi_path(rule: str) -> str:
    """A Klein rule (``/v1/x/<node_uuid>``) as its OpenAPI path (``/v1/x/{node_uuid}``)."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def route_of(url_map: Map, method: str, path: str) -> tuple[str, str, dict[str, str]] | None:
    """The (method, OpenAPI path, path parameters) a request is for, or ``None`` if unrouted."""
    asked = "GET" if method.upper() == "HEAD" else method.upper()
    adapter = url_map.bind("shoal", path_info=path, default_method=asked)
    try:
        rule, params = adapter.match(return_rule=True)
    except (HTTPException, RequestRedirect):
        return None
    return asked.lower(), openapi_path(rule.rule), {k: str(v) for k, v in params.items()}


def routed_path(request: Request) -> str:
    """The path Klein routes ``request`` by: its percent-decoded segments, joined.

    Computed exactly as Klein computes ``path_info`` (from ``prepath`` and
    ``postpath``, which Twisted has unquoted), never from the raw path: a path
    with an encoded character (``dataset%73``) must be authorised as the route
    it will reach. Klein refuses one that is not UTF-8 before any handler runs.
    """
    segments = list(request.prepath or []) + list(request.postpath or [])
    return "/" + b"/".join(segments).decode("utf-8", "replace").lstrip("/")


def principal_on(request: Request) -> Principal | None:
    """The principal :class:`Guard` found for ``request`` (``None`` over plain HTTP)."""
    found: Principal | None = getattr(request, "shoal_principal", None)
    return found


def revoked_refusal(principal: Principal) -> str:
    """The description of the 403 answering a revoked certificate."""
    return (
        f"The certificate {principal.subject!r} (serial {principal.serial:x}) was "
        "revoked: ask an admin for a new one (`shoal ca issue`)."
    )


class Guard(Resource):
    """Refuses (403) what the request's certificate may not do, else renders ``inner``."""

    isLeaf = True

    def __init__(
        self, inner: Resource, url_map: Map, authenticate: Authenticate, denylist: Denylist
    ) -> None:
        super().__init__()
        self._inner = inner
        self._map = url_map
        self._authenticate = authenticate
        self._denylist = denylist

    def render(self, request: Request) -> bytes | int:
        """Render ``inner`` for an allowed request; answer a refused one 403."""
        principal = self._authenticate(request)
        request.shoal_principal = principal  # type: ignore[attr-defined]
        refusal = self._refusal(request, principal)
        if refusal is not None:
            return json_response(request, error_body(refusal), 403)
        result: bytes | int = self._inner.render(request)
        return result

    def _refusal(self, request: Request, principal: Principal | None) -> str | None:
        if principal is None:
            return None
        if self._denylist.revoked(principal.serial):
            return revoked_refusal(principal)
        method = request.method.decode("ascii", "replace")
        route = route_of(self._map, method, routed_path(request))
        if route is None:
            return None
        return decide(principal, *route)


class ReadGuard(Guard):
    """A :class:`Guard` for a resource outside the API's routes (``/metrics``): any role that
    may read the API may read it; a revoked certificate, or a node's, is refused (403)."""

    def __init__(self, inner: Resource, authenticate: Authenticate, denylist: Denylist) -> None:
        super().__init__(inner, Map(), authenticate, denylist)

    def _refusal(self, request: Request, principal: Principal | None) -> str | None:
        if principal is None:
            return None
        if self._denylist.revoked(principal.serial):
            return revoked_refusal(principal)
        if READ.allows(principal, {}):
            return None
        role = principal.role.value if principal.role is not None else "no role"
        return (
            f"Reading {routed_path(request)} needs the role viewer, operator or admin; the "
            f"certificate {principal.subject!r} has the role {role}."
        )
