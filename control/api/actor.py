"""Who made a request, as the event history records it (``actor``)."""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request


def _certificate_name(transport: Any) -> str | None:
    get = getattr(transport, "getPeerCertificate", None)
    if get is None:
        return None
    try:
        certificate = get()
    except Exception:
        return None
    if certificate is None:
        return None
    name = certificate.get_subject().commonName
    return str(name) if name else None


def actor_of(request: Request) -> str:
    """The client certificate's common name over TLS, else the peer's address, else ``api``."""
    name = _certificate_name(request.transport)
    if name is not None:
        return name
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    return str(host) if host else "api"
