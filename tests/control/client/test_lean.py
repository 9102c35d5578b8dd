"""The HTTP client over :class:`~control.client.lean.Requests` (one agent, no treq layers)
passes the client contract against the real API in memory."""

from __future__ import annotations

from typing import Any

import pytest
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers

from control.api.app import ControlAPI
from control.client.http import HTTPClient
from control.client.lean import BytesBody, Requests, request_uri
from control.runners import synchronous_runner
from control.store.memory import MemoryStore
from control.store.threaded import ThreadedStore

from .suite import START, ClientContract, ClientHarness, result_of

URL = "http://shoal.test:4523"


class TestLeanHTTPClient(ClientContract):
    """The HTTP client with the lean requester, over the API's resource in memory."""

    @pytest.fixture
    def harness(self) -> ClientHarness:
        """An HTTP client sending through ``Requests`` to a fresh API in memory."""
        clock = Clock()
        clock.advance(START)
        api = ControlAPI(ThreadedStore(MemoryStore(), synchronous_runner), clock)
        agent = RequestTraversalAgent(api.resource())
        return ClientHarness(HTTPClient(URL + "/", Requests(agent), clock=clock), clock,
                             agent.flush)


def test_request_uri_adds_the_query() -> None:
    """Parameters become the query, percent-encoded; commas and colons stay readable."""
    assert request_uri("http://h:1/v1/shoal/watch", {"timeout": "4.5", "datasets": "a,b"}) == (
        b"http://h:1/v1/shoal/watch?timeout=4.5&datasets=a,b"
    )
    assert request_uri("http://h:1/p?x=1", {"y": "a b&c"}) == b"http://h:1/p?x=1&y=a+b%26c"
    assert request_uri("http://h:1/p", None) == b"http://h:1/p"


def test_request_uri_encodes_what_is_not_ascii() -> None:
    """A path with characters outside ASCII is sent percent-encoded as UTF-8."""
    assert request_uri("http://h:1/v1/é", None) == b"http://h:1/v1/%C3%A9"


class Consumer:
    """Collects what a producer writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Keep ``data``."""
        self.written.append(data)


def test_body_is_written_at_once_with_its_length() -> None:
    """The body producer knows its length and writes the whole body when started."""
    body = BytesBody(b'{"a":1}')
    consumer = Consumer()
    done = body.startProducing(consumer)
    assert (body.length, consumer.written, done.called) == (7, [b'{"a":1}'], True)


class Recording:
    """An agent that records the request and answers it with ``answer``."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.seen: list[tuple[Any, ...]] = []

    def request(self, method: bytes, uri: bytes, headers: Headers, body: Any) -> Deferred[Any]:
        """Record the request; answer."""
        self.seen.append((method, uri, headers, body))
        return succeed(self.answer)


class Response:
    """A response whose body is ``parts`` then ``reason`` (the end of the connection)."""

    code = 200
    headers = Headers({b"X-Configuration-Tag": [b"7"]})
    length = None

    def __init__(self, parts: list[bytes], reason: Exception) -> None:
        self.parts = parts
        self.reason = reason

    def deliverBody(self, protocol: Any) -> None:
        """Hand the body to ``protocol``."""
        from twisted.python.failure import Failure

        protocol.makeConnection(None)
        for part in self.parts:
            protocol.dataReceived(part)
        protocol.connectionLost(Failure(self.reason))


def test_sends_method_uri_headers_and_body() -> None:
    """The agent gets the method and URI as bytes, the headers, and the body's producer."""
    agent = Recording(Response([b"{}"], ResponseDone()))
    answer = result_of(Requests(agent).request(
        "PUT", "http://h:1/v1/x", headers={"Content-Type": "application/json"},
        params={"a": "1"}, data=b"[]",
    ))
    method, uri, headers, body = agent.seen[0]
    assert (method, uri) == (b"PUT", b"http://h:1/v1/x?a=1")
    assert headers.getRawHeaders(b"Content-Type") == [b"application/json"]
    assert body.body == b"[]"
    assert (answer.code, answer.headers.getRawHeaders(b"X-Configuration-Tag")) == (200, [b"7"])
    assert result_of(answer.content()) == b"{}"


def test_a_body_ended_by_closing_is_whole() -> None:
    """A body without a length, ended by the connection closing, is read whole (as treq)."""
    from twisted.web.http import PotentialDataLoss

    agent = Recording(Response([b'{"a":', b"1}"], PotentialDataLoss()))
    answer = result_of(Requests(agent).request("GET", "http://h:1/v1/x"))
    assert result_of(answer.content()) == b'{"a":1}'


def test_a_body_cut_short_fails() -> None:
    """A body whose connection broke mid-way is a failure, not a short answer."""
    from twisted.web._newclient import ResponseFailed

    agent = Recording(Response([b'{"a":'], ResponseFailed([])))
    outcome: list[Any] = []
    Requests(agent).request("GET", "http://h:1/v1/x").addBoth(outcome.append)
    assert outcome[0].check(ResponseFailed)
