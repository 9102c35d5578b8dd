"""
Serve the dashboard's static files, with strict content types and security headers.

The files are few and small: they are read once, when the resource is made, and answered
from memory, so serving them never touches the disk from the reactor thread.
"""

from __future__ import annotations

import hashlib
import os

from attrs import frozen
from twisted.web.resource import Resource
from twisted.web.server import Request

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
"""The dashboard's files, shipped as package data (one flat directory)."""

INDEX = "index.html"

CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
}
"""Browsers load ES modules only with a JavaScript type, whatever the host's mime.types says."""

HEADERS = {
    b"content-security-policy": (
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; "
        b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-cache",
}
"""Only this origin's scripts run, nothing frames the page, and every load revalidates."""


@frozen
class StaticFile:
    """One file's bytes, content type and entity tag."""

    body: bytes
    content_type: bytes
    etag: bytes


def load(directory: str = STATIC_DIR) -> dict[str, StaticFile]:
    """Every servable file of ``directory`` by name (files of unknown types are left out)."""
    found = {}
    for name in sorted(os.listdir(directory)):
        content_type = CONTENT_TYPES.get(os.path.splitext(name)[1])
        path = os.path.join(directory, name)
        if content_type is None or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            body = f.read()
        etag = b'"' + hashlib.sha256(body).hexdigest()[:16].encode() + b'"'
        found[name] = StaticFile(body, content_type, etag)
    return found


class StaticFiles(Resource):
    """Answers ``/ui/NAME`` from :func:`load`'s files; ``/ui/`` is the index."""

    isLeaf = True

    def __init__(self, files: dict[str, StaticFile]) -> None:
        super().__init__()
        self._files = files

    def render_GET(self, request: Request) -> bytes:
        """The file, 304 when the browser has it already, or a plain 404."""
        postpath = request.postpath or []
        if not postpath:
            request.setResponseCode(301)
            request.setHeader(b"location", b"/ui/")
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"The dashboard is at /ui/.\n"
        name = b"/".join(postpath).decode("utf-8", "replace") or INDEX
        found = self._files.get(name)
        for header, value in HEADERS.items():
            request.setHeader(header, value)
        if found is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"The dashboard has no such file; open /ui/.\n"
        request.setHeader(b"content-type", found.content_type)
        request.setHeader(b"etag", found.etag)
        if request.getHeader(b"if-none-match") == found.etag:
            request.setResponseCode(304)
            return b""
        return found.body

    def render_HEAD(self, request: Request) -> bytes:
        """As GET; Twisted drops the body."""
        return self.render_GET(request)


def ui_resource() -> Resource:
    """The resource serving the dashboard's files (mount it at ``/ui``)."""
    return StaticFiles(load())
