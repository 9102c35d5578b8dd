"""
Bound what one request may make the service hold in memory.

Twisted buffers a whole request body before any resource sees it. The
:class:`BoundedRequest` keeps at most ``MAX_BODY + 1`` bytes of it, so that an
oversized body costs no more than that and :func:`control.api.body.read_body`
still sees that it was too large and answers 413.
"""

from __future__ import annotations

import io

from twisted.web.server import Request

from control.api.body import MAX_BODY


class BoundedRequest(Request):
    """A request that stops buffering its body past ``MAX_BODY + 1`` bytes."""

    limit = MAX_BODY + 1

    def gotLength(self, length: int | None) -> None:
        """Buffer in memory, never in a temporary file, since the body is small."""
        self.content = io.BytesIO()
        self._buffered = 0

    def handleContentChunk(self, data: bytes) -> None:
        """Keep the first ``limit`` bytes of the body and drop the rest."""
        room = self.limit - self._buffered
        if room > 0:
            chunk = data[:room]
            self._buffered += len(chunk)
            super().handleContentChunk(chunk)
