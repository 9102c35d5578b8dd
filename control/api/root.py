"""
The root resource: answers what Klein cannot route as JSON too.

Klein answers a URL or Host header that is not UTF-8 with a plain-text 400
before any error handler runs; this wrapper refuses those as JSON first and
hands everything else to the Klein resource, but for ``/ui`` and below: the
dashboard's static files (:mod:`control.ui`), when given.
"""

from __future__ import annotations

from twisted.web.resource import Resource
from twisted.web.server import Request

from control.api.errors import CONTENT_TYPE, error_body, json_response

SAFE_METHODS = (b"GET", b"HEAD", b"OPTIONS")


def cross_site(request: Request) -> bool:
    """Whether a browser says this request comes from a page of another origin.

    Browsers send ``Sec-Fetch-Site`` and ``Origin`` with the requests a page makes; the CLI,
    the agents and the plugin send neither. A page of another site could otherwise make the
    browser of an operator holding a client certificate (the dashboard's users) send a write
    with no content type, which needs no CORS preflight.
    """
    site = request.getHeader(b"sec-fetch-site")
    if site is not None and site.lower() not in (b"same-origin", b"none"):
        return True
    origin = request.getHeader(b"origin")
    if origin is None:
        return False
    host = request.getHeader(b"host") or b""
    return bool(origin.split(b"://", 1)[-1].rstrip(b"/").lower() != host.lower())


def _utf8(*parts: bytes) -> bool:
    try:
        for part in parts:
            part.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class JSONRoot(Resource):
    """A leaf resource that checks the request's encoding, then delegates to ``inner``."""

    isLeaf = True

    def __init__(self, inner: Resource, ui: Resource | None = None) -> None:
        super().__init__()
        self._inner = inner
        self._ui = ui

    def render(self, request: Request) -> bytes | int:
        """Refuse a non-UTF-8 path or host, and a browser's cross-site write, as JSON; else let
        ``inner`` (or the dashboard's ``ui``) render."""
        request.setHeader(b"content-type", CONTENT_TYPE)
        segments = list(request.prepath or []) + list(request.postpath or [])
        if not _utf8(*segments, request.getRequestHostname()):
            return json_response(
                request, error_body("The request's path or Host header is not UTF-8."), 400
            )
        if request.method not in SAFE_METHODS and cross_site(request):
            return json_response(
                request,
                error_body(
                    "Refused: a page of another site asked the browser to send this write. "
                    "Use the dashboard at /ui/ on this service, the shoal CLI or the API."
                ),
                403,
            )
        if self._ui is not None and request.postpath and request.postpath[0] == b"ui":
            request.prepath = [*(request.prepath or []), request.postpath.pop(0)]
            served: bytes | int = self._ui.render(request)
            return served
        result: bytes | int = self._inner.render(request)
        return result
