"""The HTTP connection layer: JSON refusals of malformed HTTP, request deadlines, connection limits.

Each test drives a real :class:`LimitedSite` serving the real API over a
memory store through in-memory transports and a :class:`Clock`: no ports.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.test.requesthelper import DummyRequest

from control.api.app import ControlAPI
from control.api.channel import ConnectionLimits, LimitedSite
from control.api.limits import BoundedRequest
from control.store.memory import MemoryStore
from control.store.threaded import ThreadedStore, synchronous_runner

from .harness import NODE_A

LIMITS = ConnectionLimits(
    header_timeout=10, body_timeout=30, idle_timeout=60, max_connections=4, max_per_address=3
)
VERSION = b"GET /v1/version HTTP/1.1\r\nHost: shoal.test\r\n\r\n"


class Connection:
    """One client connection to the site, over an in-memory transport."""

    def __init__(self, site: LimitedSite, host: str = "10.0.0.1") -> None:
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
        self.protocol = site.buildProtocol(IPv4Address("TCP", host, 40000))
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        """Deliver ``data`` from the client."""
        self.protocol.dataReceived(data)

    def answer(self) -> tuple[int, dict[str, str], Any]:
        """The status, headers and decoded JSON body of the first answer written."""
        head, _, body = self.transport.value().partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        if headers.get("Transfer-Encoding") == "chunked":
            size, _, rest = body.partition(b"\r\n")
            body = rest[: int(size, 16)]
        return int(lines[0].split()[1]), headers, json.loads(body)

    @property
    def closed(self) -> bool:
        """Whether the service closed (or is closing) the connection."""
        return bool(self.transport.disconnecting or self.transport.disconnected)


def make_site(limits: ConnectionLimits = LIMITS) -> tuple[LimitedSite, Clock]:
    """The API over an empty memory store, as the service builds it."""
    clock = Clock()
    api = ControlAPI(ThreadedStore(MemoryStore(), synchronous_runner), clock)
    site = LimitedSite(
        api.resource(),
        limits,
        requestFactory=BoundedRequest,
        reactor=clock,
        parsePOSTFormSubmission=False,
    )
    return site, clock


def refusal(raw: bytes) -> tuple[int, dict[str, str], Any]:
    """The answer to ``raw`` on a fresh connection, which must then be closing or kept."""
    site, _ = make_site()
    connection = Connection(site)
    connection.send(raw)
    return connection.answer()


def assert_json_refusal(answer: tuple[int, dict[str, str], Any], code: int, words: str) -> None:
    """``answer`` is a JSON refusal with ``code`` whose description mentions ``words``."""
    status, headers, body = answer
    assert status == code
    assert headers["Content-Type"] == "application/json"
    assert words in body["description"]


def test_negative_content_length_is_a_json_400() -> None:
    """Content-Length: -5 is refused as JSON 400 naming the header, not a bare 400."""
    raw = b"POST /v1/configuration/datasets HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"
    assert_json_refusal(refusal(raw), 400, "Content-Length '-5'")


def test_multipart_body_is_a_json_415() -> None:
    """A multipart/form-data body reaches the API and is refused as JSON 415."""
    raw = (
        b"POST /v1/configuration/datasets HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 5\r\n\r\nhello"
    )
    assert_json_refusal(refusal(raw), 415, "multipart/form-data")


def test_long_url_is_a_json_414() -> None:
    """A request line over 16 KiB is answered 414 as JSON, not dropped."""
    raw = b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert_json_refusal(refusal(raw), 414, "request line")


def test_long_header_is_a_json_431() -> None:
    """One header over 16 KiB is answered 431 as JSON, not dropped."""
    raw = b"GET /v1/version HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n"
    assert_json_refusal(refusal(raw), 431, "headers")


def test_many_headers_are_a_json_431() -> None:
    """Headers summing to over 16 KiB, or over 500 of them, are answered 431 as JSON."""
    many = b"GET /v1/version HTTP/1.1\r\nHost: x\r\n" + b"X-A: a\r\n" * 600 + b"\r\n"
    assert_json_refusal(refusal(many), 431, "over 500 headers")
    big = b"GET /v1/version HTTP/1.1\r\nHost: x\r\n" + (b"X-A: " + b"a" * 1000 + b"\r\n") * 17
    assert_json_refusal(refusal(big + b"\r\n"), 431, "headers are over")


def test_malformed_header_is_a_json_400() -> None:
    """A header line without a colon gets Twisted's 400, but as JSON."""
    raw = b"GET /v1/version HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n"
    assert_json_refusal(refusal(raw), 400, "not well-formed HTTP/1.1")


def test_empty_if_header_is_a_json_400() -> None:
    """An empty X-If-Configuration-Matches is a malformed request (400), not a mismatch (412)."""
    raw = (
        b"DELETE /v1/configuration/datasets/" + str(NODE_A).encode() + b" HTTP/1.1\r\n"
        b"Host: x\r\nX-If-Configuration-Matches: \r\n\r\n"
    )
    assert_json_refusal(refusal(raw), 400, "X-If-Configuration-Matches")


def test_wrong_method_is_a_json_405_with_allow() -> None:
    """A 405 says which methods the route takes, in Allow and in the description."""
    status, headers, body = refusal(b"PUT /v1/version HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, headers["Allow"]) == (405, "GET")
    assert "allowed: GET" in body["description"]


def test_good_request_is_answered_and_kept_alive() -> None:
    """A well-formed request is answered normally and the connection stays open."""
    site, _ = make_site()
    connection = Connection(site)
    connection.send(VERSION)
    status, _, body = connection.answer()
    assert status == 200 and "shoal" in body and not connection.closed


def test_trickled_headers_meet_their_deadline() -> None:
    """Headers trickled a line at a time are cut off at the header deadline with a JSON 408."""
    site, clock = make_site()
    connection = Connection(site)
    connection.send(b"GET /v1/version HTTP/1.1\r\n")
    for _ in range(9):
        clock.advance(1)
        connection.send(b"X-Slow: 1\r\n")
    assert not connection.closed
    clock.advance(1)
    assert_json_refusal(connection.answer(), 408, "headers did not arrive within 10 s")
    assert connection.closed


def test_silent_connection_meets_the_header_deadline() -> None:
    """A connection that never sends a byte is closed at the header deadline."""
    site, clock = make_site()
    connection = Connection(site)
    clock.advance(10)
    assert_json_refusal(connection.answer(), 408, "headers")


def test_slow_body_meets_its_deadline() -> None:
    """A body that does not arrive within the body deadline is refused with a JSON 408."""
    site, clock = make_site()
    connection = Connection(site)
    connection.send(
        b"POST /v1/configuration/datasets HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    )
    clock.advance(29)
    assert not connection.closed
    clock.advance(1)
    assert_json_refusal(connection.answer(), 408, "body did not arrive within 30 s")


def test_header_deadline_restarts_for_each_request() -> None:
    """A kept-alive connection gets a fresh header deadline with each request."""
    site, clock = make_site()
    connection = Connection(site)
    for _ in range(3):
        clock.advance(9)
        connection.send(VERSION)
    assert not connection.closed and connection.transport.value().count(b"200 OK") == 3


def test_connections_per_address_are_limited() -> None:
    """Past the per-address limit a new connection from that address is answered 429."""
    site, _ = make_site()
    held = [Connection(site, "10.0.0.9") for _ in range(3)]
    extra = Connection(site, "10.0.0.9")
    assert_json_refusal(extra.answer(), 429, "Too many connections from 10.0.0.9")
    assert extra.closed
    other = Connection(site, "10.0.0.1")
    other.send(VERSION)
    assert other.answer()[0] == 200
    held[0].protocol.connectionLost(None)
    again = Connection(site, "10.0.0.9")
    assert not again.closed and site.by_address["10.0.0.9"] == 3


def test_full_site_evicts_the_longest_waiting_connection() -> None:
    """At the total cap a newcomer takes the place of the connection idle the longest."""
    site, clock = make_site()
    slow = [Connection(site, f"10.0.1.{i}") for i in range(4)]
    clock.advance(1)
    newcomer = Connection(site, "10.0.0.1")
    newcomer.send(VERSION)
    assert newcomer.answer()[0] == 200
    assert slow[0].transport.disconnecting or slow[0].protocol._refused
    assert site.open == 4


def test_full_site_of_busy_connections_answers_503() -> None:
    """When every connection is being answered, a newcomer is refused with a JSON 503."""
    site, _ = make_site()
    for i in range(4):
        busy = Connection(site, f"10.0.1.{i}")
        busy.send(b"GET /v1/shoal/watch?timeout=300 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_json_refusal(Connection(site, "10.0.0.1").answer(), 503, "limit")


def test_pipelined_request_keeps_its_connection_busy() -> None:
    """A connection serving a pipelined request is not taken for an idle one and evicted."""
    site, clock = make_site()
    connection = Connection(site)
    short = b"GET /v1/shoal/watch?timeout=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    long = b"GET /v1/shoal/watch?timeout=300 HTTP/1.1\r\nHost: x\r\n\r\n"
    connection.send(short + long)
    clock.advance(1)
    assert connection.transport.value().count(b"200 OK") == 1
    assert connection.protocol not in site._waiting


class _Certificate:
    """What a TLS transport's ``getPeerCertificate`` answers (pyOpenSSL's X509), in part."""

    def __init__(self, serial: int) -> None:
        self.serial = serial

    def get_serial_number(self) -> int:
        """The serial number."""
        return self.serial


def test_revoked_certificates_lose_their_connections() -> None:
    """Growing the denylist drops exactly the connections of the revoked serial, and frees
    their places; plain connections and other certificates stay."""
    from control.api.denylist import Denylist

    site, _ = make_site()
    gone, kept, plain = Connection(site), Connection(site, "10.0.0.2"), Connection(site, "10.0.0.3")
    for connection, serial in ((gone, 11), (kept, 12)):
        connection.transport.getPeerCertificate = (  # type: ignore[attr-defined]
            lambda s=serial: _Certificate(s)
        )
    denylist = Denylist()
    denylist.subscribe(lambda: site.drop_revoked(denylist.revoked))
    denylist.update([11])
    assert gone.closed and not kept.closed and not plain.closed
    assert site.open == 2
    denylist.update([11])  # nothing new: nothing more dropped
    assert not kept.closed


def answered(method: bytes, uri: bytes, code: int) -> Any:
    """A request as the site logs it once answered: its method, path and status."""
    request = DummyRequest([])
    request.method, request.uri, request.path, request.code = method, uri, uri.split(b"?")[0], code
    return request


def test_heartbeats_and_watches_answered_are_routine() -> None:
    """A report or a watch answered 2xx is logged at debug level; other answers are not routine."""
    site, _ = make_site()
    state = f"/v1/shoal/state/{NODE_A}".encode()
    assert site.routine(answered(b"PUT", state, 200))
    assert site.routine(answered(b"GET", b"/v1/shoal/watch?timeout=5&node=x", 200))
    assert not site.routine(answered(b"PUT", state, 400))
    assert not site.routine(answered(b"PUT", state, 404))
    assert not site.routine(answered(b"GET", b"/v1/shoal/watch", 503))
    assert not site.routine(answered(b"GET", state, 405))
    assert not site.routine(answered(b"POST", b"/v1/configuration/datasets", 201))
    assert not site.routine(answered(b"GET", b"/v1/shoal/watching", 404))
