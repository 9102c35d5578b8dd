"""
The HTTP connection layer: deadlines, connection limits, and JSON refusals.

Twisted's :class:`~twisted.web.http.HTTPChannel` refuses what it cannot parse
(a bad ``Content-Length``, a malformed header, too many headers) with a bare
``400`` and silently drops a request line or header over 16 KiB; it lets a
client trickle headers for ever, since every byte resets its idle timeout.
:class:`JSONChannel` answers each of these as JSON (400, 414, 431) and gives
every request a deadline for its headers and one for its body (408).
:class:`LimitedSite` counts connections per client address and in all, and
refuses or evicts beyond its :class:`ConnectionLimits`, so that slow clients
cannot hold every file descriptor of the service.
"""

from __future__ import annotations

import resource
from collections import Counter
from collections.abc import Callable
from typing import Any

import structlog
from attrs import frozen
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES, HTTPChannel

from control.api.errors import encode, error_body
from control.logs import LoggedSite

FD_HEADROOM = 128
"""File descriptors kept free of client connections by default: the database,
its journal and pool connections, logs, and a margin for the agents."""


REASONS = {429: b"Too Many Requests", 431: b"Request Header Fields Too Large"}
"""Reason phrases Twisted's table lacks."""


def default_max_connections(headroom: int = FD_HEADROOM) -> int:
    """Open connections allowed by default: this process's fd limit less ``headroom``."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(16, soft - headroom)


@frozen
class ConnectionLimits:
    """How long a request may take to arrive, and how many connections may be open."""

    header_timeout: float = 10.0
    """Seconds from a connection's first byte (or its opening) to the end of a request's headers."""
    body_timeout: float = 30.0
    """Seconds from the end of a request's headers to the end of its body."""
    idle_timeout: float = 60.0
    """Seconds a kept-alive connection may wait, doing nothing, for its next request."""
    max_connections: int = 1024
    """Connections open at once, in all."""
    max_per_address: int = 128
    """Connections open at once from one client address."""


def raw_answer(code: int, description: str) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response with a JSON refusal body."""
    body = encode(error_body(description))
    reason = REASONS.get(code) or RESPONSES.get(code, b"Error")
    head = (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (code, reason, len(body))
    )
    return head + body


class Refusal(Protocol):
    """A connection that is answered with one JSON refusal and closed at once."""

    def __init__(self, code: int, description: str) -> None:
        self.answer = raw_answer(code, description)

    def connectionMade(self) -> None:
        """Answer and close; nothing the client sends is read."""
        transport: Any = self.transport
        transport.write(self.answer)
        transport.loseConnection()


class JSONChannel(HTTPChannel):
    """An HTTP/1.1 channel that refuses as JSON and puts deadlines on each request."""

    limits = ConnectionLimits()
    site: Any = None

    _deadline: Any = None
    _awaiting_request_line = True
    _refused = False
    _gone = False

    # -- deadlines -----------------------------------------------------------

    def connectionMade(self) -> None:
        """Start the headers' deadline as soon as the connection opens."""
        super().connectionMade()
        self._start_deadline(self.limits.header_timeout, "headers")
        self._waiting(True)

    def dataReceived(self, data: bytes) -> None:
        """Start the headers' deadline at the first byte of a request."""
        if self._deadline is None and not self._handlingRequest and not self._refused:
            self._start_deadline(self.limits.header_timeout, "headers")
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        """Swap the headers' deadline for the body's, when there is a body."""
        self._stop_deadline()
        super().allHeadersReceived()
        if self.length != 0 and not self._refused:
            self._start_deadline(self.limits.body_timeout, "body")

    def allContentReceived(self) -> None:
        """The request is all here: no deadline while it is answered."""
        self._stop_deadline()
        self._awaiting_request_line = True
        self._waiting(False)
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        """Once answered, the connection waits for its next request (or closes).

        It is marked waiting first: a pipelined request that Twisted then
        parses from its buffer marks it busy again.
        """
        if not self._gone and self.persistent:
            self._waiting(True)
        super().requestDone(request)

    def _waiting(self, idle: bool) -> None:
        if isinstance(self.site, LimitedSite):
            self.site.waiting(self, idle)

    def _start_deadline(self, seconds: float, part: str) -> None:
        self._stop_deadline()
        self._deadline = self.callLater(seconds, lambda: self._expired(seconds, part))

    def _stop_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _expired(self, seconds: float, part: str) -> None:
        self._deadline = None
        self._refuse(
            408,
            f"The request's {part} did not arrive within {seconds:g} s; "
            "send the whole request promptly.",
        )

    # -- refusals ------------------------------------------------------------

    def _refuse(self, code: int, description: str) -> None:
        """Answer ``code`` with a JSON description and close the connection."""
        if self._refused or self._gone:
            return
        self._refused = True
        self._stop_deadline()
        self.persistent = False
        self.setTimeout(None)
        self._transport().write(raw_answer(code, description))
        # Close, and abort a client that does not read its answer, as
        # HTTPChannel.timeoutConnection does (without logging each one).
        if self.abortTimeout is not None:
            self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        self.loseConnection()

    def _respondToBadRequestAndDisconnect(self) -> None:
        self._refuse(
            400,
            "The request is not well-formed HTTP/1.1 (its request line, a header, its "
            "Content-Length or Transfer-Encoding, or its chunked body); it was not processed.",
        )

    def lineReceived(self, line: bytes) -> None:
        """Refuse request lines and headers over the size limit as JSON 414/431."""
        if self._refused:
            return
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._too_long()
            return
        if self._awaiting_request_line and line:
            self._awaiting_request_line = False
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        """A line over ``MAX_LENGTH`` bytes is refused as JSON, not dropped."""
        self._too_long()

    def _too_long(self) -> None:
        if self._awaiting_request_line:
            self._refuse(
                414, f"The request line is over {self.MAX_LENGTH} bytes; send a shorter URL."
            )
        else:
            self._refuse(
                431,
                f"The request's headers are over {self.totalHeadersSize} bytes; send fewer "
                "or shorter headers.",
            )

    def headerReceived(self, line: bytes) -> bool:
        """Refuse a Content-Length that is not a whole number with a precise message."""
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and not value.strip(b" \t").isdigit():
            self._refuse(
                400,
                f"Content-Length {value.strip()[:40].decode('latin-1')!r} is not a "
                "non-negative whole number of bytes.",
            )
            return False
        if self._receivedHeaderCount >= self.maxHeaders:
            self._refuse(431, f"The request has over {self.maxHeaders} headers; send fewer.")
            return False
        ok: bool = super().headerReceived(line)
        return ok

    def abort(self) -> None:
        """Drop the connection at once, without an answer (to make room for another)."""
        self._refused = True
        self._stop_deadline()
        self._transport().abortConnection()

    def _transport(self) -> Any:
        return self.transport

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Cancel the deadline and give the connection's place back."""
        self._stop_deadline()
        if not self._gone:
            self._gone = True
            if isinstance(self.site, LimitedSite):
                self.site.release(self)
        super().connectionLost(reason)


def peer_serial(transport: Any) -> int | None:
    """The serial of a TLS connection's client certificate; ``None`` without one."""
    get = getattr(transport, "getPeerCertificate", None)
    if get is None:
        return None
    try:
        certificate = get()
    except Exception:  # the handshake is not done yet: no certificate
        return None
    return None if certificate is None else int(certificate.get_serial_number())


class LimitedSite(LoggedSite):
    """A site that limits connections per client address and in all (and logs each request).

    Beyond ``max_per_address`` a new connection from that address is answered
    429 and closed. Beyond ``max_connections`` the connection that has waited
    longest for its request (or its headers) is closed to make room, so that
    slow or idle clients are what gives way, never a request being answered;
    when every connection is busy answering, the newcomer is answered 503.
    """

    protocol = JSONChannel  # type: ignore[assignment]

    def routine(self, request: Any) -> bool:
        """A node's heartbeat (``PUT /v1/shoal/state/<node>``) or watch (``GET
        /v1/shoal/watch``) answered 2xx: 1,000 nodes send 400 a second, so their access log
        lines are at debug level (docs/operations.md); any other answer is logged at info."""
        if not 200 <= request.code < 300:
            return False
        path, method = request.path, request.method
        if method == b"PUT":
            return bool(path.startswith(b"/v1/shoal/state/"))
        return bool(method == b"GET" and path == b"/v1/shoal/watch")

    def __init__(self, root: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(root, timeout=limits.idle_timeout, **kwargs)
        self.limits = limits
        self.open = 0
        self.by_address: Counter[str] = Counter()
        self._waiting: dict[JSONChannel, str] = {}
        self._address: dict[JSONChannel, str] = {}

    def buildProtocol(self, addr: Any) -> Any:
        """A channel for this connection, or a :class:`Refusal` when over a limit."""
        address = str(getattr(addr, "host", ""))
        if self.by_address[address] >= self.limits.max_per_address:
            return Refusal(
                429,
                f"Too many connections from {address} (at most {self.limits.max_per_address}); "
                "close some or reuse them.",
            )
        if self.open >= self.limits.max_connections and not self._evict_one():
            return Refusal(
                503,
                f"The service has {self.open} connections open, its limit; retry shortly.",
            )
        channel = super().buildProtocol(addr)
        channel.limits = self.limits
        self.open += 1
        self.by_address[address] += 1
        self._address[channel] = address
        return channel

    def waiting(self, channel: JSONChannel, idle: bool) -> None:
        """Note whether ``channel`` awaits a request (so may be evicted) or serves one."""
        self._waiting.pop(channel, None)
        if idle and channel in self._address:
            self._waiting[channel] = self._address[channel]

    def _evict_one(self) -> bool:
        """Close the connection that has waited longest for a request; False if none."""
        if not self._waiting:
            return False
        oldest = next(iter(self._waiting))
        self.release(oldest)
        oldest.abort()
        return True

    def drop_revoked(self, revoked: Callable[[int], bool]) -> int:
        """Close every connection whose client certificate's serial is ``revoked``;
        returns how many (a revoked certificate keeps no live connection)."""
        dropped = 0
        for channel in list(self._address):
            serial = peer_serial(channel.transport)
            if serial is not None and revoked(serial):
                self.release(channel)
                channel.abort()
                dropped += 1
        if dropped:
            structlog.get_logger("shoal.control").info("tls.revoked_dropped", connections=dropped)
        return dropped

    def release(self, channel: JSONChannel) -> None:
        """Forget ``channel`` (once) so that its place can be taken."""
        self._waiting.pop(channel, None)
        address = self._address.pop(channel, None)
        if address is None:
            return
        self.open -= 1
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]
