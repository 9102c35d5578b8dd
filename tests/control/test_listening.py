"""Where the control service listens: a deep queue, accepted a few at a time."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol

from control.listening import ACCEPT_BATCH, BatchedPort, ServiceEndpoint


def test_a_port_accepts_at_most_a_batch_per_iteration():
    """However far Twisted would grow its accept batch, the port keeps it within 1 to 16."""
    port = BatchedPort(0, Factory.forProtocol(Protocol), reactor=reactor)
    assert port.numberAccepts == ACCEPT_BATCH
    port.numberAccepts = 500
    assert port.numberAccepts == ACCEPT_BATCH
    port.numberAccepts = 0
    assert port.numberAccepts == 1


def test_listening_on_a_taken_port_fails_with_the_reason():
    """A port another process holds gives a failed Deferred naming it, not an exception."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        number = taken.getsockname()[1]
        failures: list[Any] = []
        endpoint = ServiceEndpoint(reactor, number, "127.0.0.1")
        endpoint.listen(Factory.forProtocol(Protocol)).addErrback(failures.append)
    assert len(failures) == 1 and failures[0].check(CannotListenError)
    assert str(number) in failures[0].getErrorMessage()
