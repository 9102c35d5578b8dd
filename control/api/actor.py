"""Who made a request, as the event history records it (``actor``)."""

from __future__ import annotations

from twisted.web.server import Request

from control.api.guard import principal_on


def actor_of(request: Request) -> str:
    """Over TLS, the client certificate's common name and role (``user-alice (operator)``);
    else the peer's address, else ``api``."""
    principal = principal_on(request)
    if principal is not None:
        return principal.actor
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    return str(host) if host else "api"
