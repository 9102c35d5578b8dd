"""
Where the control service listens: a deep listen queue, accepted a few at a time.

A cluster's agents reconnect at once when the service comes back. Twisted's
default listen backlog of 50 lets the kernel drop the SYNs beyond it, and each
such client waits for its retransmission, 1, 3, 7, 15, then 31 seconds later;
so the service listens with :data:`LISTEN_BACKLOG` (the kernel caps it at
``net.core.somaxconn``).

A deep queue must not be accepted in one gulp, though: Twisted's port accepts
up to a hundred or more connections per reactor iteration before the
connections evicted to make room for them (:mod:`control.api.channel`) have
released their descriptors, which happens on the next iteration. Near the
file-descriptor limit that runs into ``EMFILE``, and Twisted then accepts and
closes connections unanswered, a client's request among them. :class:`BatchedPort`
accepts at most :data:`ACCEPT_BATCH` per iteration, well within the headroom the
connection cap leaves below the limit (:data:`control.api.channel.FD_HEADROOM`).
"""

from __future__ import annotations

from typing import Any

from attrs import frozen
from twisted.internet import defer, tcp
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

LISTEN_BACKLOG = 1024
"""Connections the kernel holds for the service before it accepts them."""

ACCEPT_BATCH = 16
"""Connections accepted at most per reactor iteration."""


class BatchedPort(tcp.Port):
    """A TCP port that accepts at most :data:`ACCEPT_BATCH` connections per reactor
    iteration (Twisted's grows its batch by 20 while connections keep coming)."""

    _accepts = ACCEPT_BATCH

    @property  # type: ignore[override]
    def numberAccepts(self) -> int:
        """How many connections the next read of the listening socket may accept."""
        return self._accepts

    @numberAccepts.setter
    def numberAccepts(self, value: int) -> None:
        self._accepts = max(1, min(value, ACCEPT_BATCH))


@implementer(IStreamServerEndpoint)
@frozen
class ServiceEndpoint:
    """Listen on ``port`` at ``interface`` with a :class:`BatchedPort` and
    :data:`LISTEN_BACKLOG`; TLS when given ``tls`` (server TLS options)."""

    reactor: Any
    port: int
    interface: str
    tls: Any = None

    def listen(self, factory: Any) -> defer.Deferred[Any]:
        """Start listening; a Deferred of the listening port (failed if it cannot)."""
        return defer.execute(self._listen, factory)

    def _listen(self, factory: Any) -> BatchedPort:
        if self.tls is not None:
            factory = TLSMemoryBIOFactory(self.tls, False, factory)
        port = BatchedPort(self.port, factory, LISTEN_BACKLOG, self.interface, self.reactor)
        if self.tls is not None:
            port._type = "TLS"
        port.startListening()
        return port
