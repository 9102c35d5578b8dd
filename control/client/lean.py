"""
:class:`Requests`: the part of treq's ``request`` that :class:`~control.client.http.HTTPClient`
uses, straight over one Twisted ``IAgent`` (issue 16).

treq wraps every request in four agents (gzip decoding, redirects, cookies) and
parses and re-serialises its URL with hyperlink: about a quarter of an idle
agent's CPU per heartbeat. The control service neither redirects, compresses
nor sets cookies, so :class:`Requests` sends the request as given: the URL with
its query (``params``, percent-encoded by :func:`urllib.parse.urlencode`), the
headers, and a body of bytes written at once. The answer is read whole before
it is returned, as treq's buffered responses are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from zope.interface import implementer

_PRINTABLE = "".join(chr(c) for c in range(33, 127))


@implementer(IBodyProducer)
class BytesBody:
    """A request body of bytes in hand, written in one piece (treq's file producer writes
    it from a cooperator, a reactor turn later)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        """Write the whole body."""
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        """Nothing to pause: the body is written at once."""

    def resumeProducing(self) -> None:
        """Nothing to resume: the body is written at once."""

    def stopProducing(self) -> None:
        """Nothing to stop: the body is written at once."""


class Answer:
    """A response read whole: its ``code``, ``headers`` and ``content()`` (treq's shape)."""

    def __init__(self, response: IResponse, body: bytes) -> None:
        self.code = response.code
        self.headers = response.headers
        self.body = body

    def content(self) -> Deferred[bytes]:
        """The body (already read)."""
        return succeed(self.body)


def request_uri(url: str, params: Mapping[str, str] | None) -> bytes:
    """``url`` with ``params`` as its query, as the bytes an agent takes (any character
    outside printable ASCII percent-encoded as UTF-8)."""
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params, safe=",:")
    if not url.isascii() or " " in url:
        url = quote(url, safe=_PRINTABLE)
    return url.encode("ascii")


class Requests:
    """Requests sent straight through ``agent`` (an ``IAgent``: the pooled
    :class:`twisted.web.client.Agent`, or ``treq.testing.RequestTraversalAgent`` in tests)."""

    def __init__(self, agent: IAgent | Any) -> None:
        self.agent: Any = agent

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> Deferred[Answer]:
        """Send one request; fires with its :class:`Answer` once the body is read.
        Cancelling it cancels the request (or the reading of its body)."""
        raw = Headers()
        for name, value in (headers or {}).items():
            raw.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
        body = None if data is None else BytesBody(data)
        d = self.agent.request(method.encode("ascii"), request_uri(url, params), raw, body)
        return d.addCallback(_read)


class _Collector(Protocol):
    """Gathers a response's body; fires ``done`` with it when the body ends (or with the
    failure that cut it short)."""

    def __init__(self, done: Deferred[bytes]) -> None:
        self.done = done
        self.parts: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        """Keep a part of the body."""
        self.parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The body ended: whole when done, or (no length given) when the connection
        closed, as treq takes it; any other end is the failure."""
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


def _read(response: Any) -> Deferred[Answer]:
    """The response with its body read whole. Cancelling stops the body's transport."""
    collector: _Collector

    def cancel(_: Deferred[bytes]) -> None:
        transport = getattr(collector, "transport", None)
        if transport is not None:
            transport.stopProducing()

    reading: Deferred[bytes] = Deferred(cancel)
    collector = _Collector(reading)
    response.deliverBody(collector)
    return reading.addCallback(lambda body: Answer(response, body))
