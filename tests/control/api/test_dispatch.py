"""Tests for control.api.dispatch: a matched route is answered exactly as Klein answers it."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyRequest

from control.api.dispatch import Dispatch
from control.api.routes import RoutedKlein

from .harness import result_of


class Tiny:
    """A Klein app with a route for each kind of answer and failure."""

    app = RoutedKlein()

    def __init__(self) -> None:
        self.waiting: Deferred[None] = Deferred()
        self.cancelled = False

    @app.handle_errors(ValueError)
    def _bad(self, request: Request, failure: Failure) -> bytes:
        request.setResponseCode(400)
        return b"bad: " + str(failure.value).encode()

    @app.handle_errors(LookupError)
    def _broken_handler(self, request: Request, failure: Failure) -> bytes:
        raise RuntimeError("the handler failed too")

    @app.handle_errors(Exception)
    def _other(self, request: Request, failure: Failure) -> bytes:
        request.setResponseCode(500)
        return b"other: " + type(failure.value).__name__.encode()

    @app.route("/v1/ok", methods=["GET"])
    def ok(self, request: Request) -> bytes:
        request.setHeader(b"x-seen", b"yes")
        return b"ok"

    @app.route("/v1/items/<item>", methods=["GET", "PUT"])
    async def item(self, request: Request, item: str) -> bytes:
        return f"{request.method.decode()} {item}".encode()

    @app.route("/v1/text", methods=["GET"])
    def text(self, request: Request) -> str:
        return "text"

    @app.route("/v1/refused", methods=["POST"])
    async def refused(self, request: Request) -> bytes:
        raise ValueError("no")

    @app.route("/v1/lookup", methods=["POST"])
    def lookup(self, request: Request) -> bytes:
        raise KeyError("k")

    @app.route("/v1/later", methods=["GET"])
    async def later(self, request: Request) -> bytes:
        try:
            await self.waiting
        except CancelledError:
            self.cancelled = True
            return b""
        return b"late"

    def handlers(self) -> list[Any]:
        """The error handlers, in their order."""
        return [((ValueError,), self._bad), ((LookupError,), self._broken_handler),
                ((Exception,), self._other)]

    def dispatch(self) -> Dispatch:
        """This app behind a Dispatch."""
        return Dispatch(self.app, self.app.resource(), self.handlers())


def answer(resource: Resource, method: str, path: str) -> tuple[int, bytes, str | None]:
    """The status, body and ``x-seen`` header of one request to ``resource``."""
    client = StubTreq(resource)
    response = result_of(client.request(method, f"http://shoal{path}"))
    body = result_of(response.content())
    return response.code, body, response.headers.getRawHeaders("x-seen", [None])[0]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/ok"),
        ("HEAD", "/v1/ok"),
        ("GET", "/v1/items/a"),
        ("PUT", "/v1/items/b%20c"),
        ("GET", "/v1/text"),
        ("POST", "/v1/refused"),
        ("POST", "/v1/lookup"),
        ("GET", "/v1/nothing"),
        ("DELETE", "/v1/ok"),
        ("GET", "/v1/ok/"),
        ("GET", "//v1/ok"),
    ],
)
def test_answers_as_klein_does(method: str, path: str) -> None:
    """Every kind of request gets the status, headers and body Klein would give it."""
    tiny = Tiny()
    expected = answer(tiny.app.resource(), method, path)
    assert answer(tiny.dispatch(), method, path) == expected
    assert answer(tiny.dispatch(), method, path) == expected  # and again, remembered


def test_client_gone_cancels_the_handler() -> None:
    """A client that goes away cancels its handler; its answer is written to nobody and the
    request is not finished again (Klein's order: its end is noted before the handler hears)."""
    tiny = Tiny()
    request = DummyRequest([b"v1", b"later"])
    request.method = b"GET"
    tiny.dispatch().render(request)
    assert not tiny.cancelled
    request.processingFailed(Failure(ConnectionLost()))
    assert tiny.cancelled
    assert request.written == [b""] and request.finished == 0


def test_answer_after_waiting() -> None:
    """A handler that waits is answered once it is done, and the request finished."""
    tiny = Tiny()
    request = DummyRequest([b"v1", b"later"])
    request.method = b"GET"
    tiny.dispatch().render(request)
    assert request.finished == 0
    tiny.waiting.callback(None)
    assert request.written == [b"late"] and request.finished == 1


@pytest.mark.parametrize(("method", "segments"), [
    ("GET", [b"v1", b"ok"]),
    ("POST", [b"v1", b"refused"]),
    ("POST", [b"v1", b"lookup"]),
])
def test_answered_request_is_freed_without_the_collector(
    method: str, segments: list[bytes]
) -> None:
    """Once answered (by its handler or an error handler), a request is freed by reference
    counting alone: nothing the dispatch made keeps it in a reference cycle."""
    tiny = Tiny()
    dispatch = tiny.dispatch()
    request = DummyRequest(list(segments))
    request.method = method.encode()
    gone = weakref.ref(request)
    gc.collect()
    gc.disable()
    try:
        dispatch.render(request)
        assert request.finished == 1
        del request
        assert gone() is None
    finally:
        gc.enable()


def test_abandoned_request_is_freed_without_the_collector() -> None:
    """A request whose client went away while its handler waited is freed by reference
    counting alone once the handler is cancelled."""
    tiny = Tiny()
    dispatch = tiny.dispatch()
    request = DummyRequest([b"v1", b"later"])
    request.method = b"GET"
    gone = weakref.ref(request)
    gc.collect()
    gc.disable()
    try:
        dispatch.render(request)
        request.processingFailed(Failure(ConnectionLost()))
        assert tiny.cancelled
        del request
        assert gone() is None
    finally:
        gc.enable()
