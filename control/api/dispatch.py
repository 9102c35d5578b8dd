"""
Klein's dispatch without Klein's per-request machinery (issue 16).

For each request Klein binds a URL adapter, adapts the request to keep it, matches,
wraps the handler in Deferreds and callbacks, checks what the handler answered
against three interfaces, and walks its error handlers through more Deferreds:
about a third of what a heartbeat or a watch cost the service beyond the handler's
own work. :class:`Dispatch` does what Klein does for a request a route matches,
and no more: it calls the route's handler with the same arguments, writes its
answer (bytes) and finishes the request, answers a failure through the same error
handlers in the same order, and cancels the handler when the client goes away, as
Klein does. A request no route matches (404, 405, a redirect) goes to the Klein
resource itself, so that every refusal keeps Klein's exact answer.

The routes' handlers must answer bytes (or ``None``), as the API's all do: a
Resource or an element answered would be written by Klein, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from klein import Klein
from twisted.internet.defer import CancelledError, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

ErrorHandler = Callable[[Request, Failure], Any]
Handlers = Sequence[tuple[tuple[type[BaseException], ...], ErrorHandler]]
"""The error handlers, in Klein's order: the exceptions each answers, and the handler."""

log = Logger()


class Dispatch(Resource):
    """Calls the handler of a matched route directly; an unmatched request renders ``klein``."""

    isLeaf = True

    def __init__(self, app: Klein, klein: Resource, handlers: Handlers) -> None:
        super().__init__()
        self._app = app
        self._adapter = app.url_map.bind("shoal")
        self._klein = klein
        self._handlers = list(handlers)
        self._segments = {
            name: getattr(handler, "segment_count", None)
            for name, handler in app.endpoints.items()
        }

    def render(self, request: Request) -> Any:
        """Answer ``request`` through its route's handler, or let Klein answer it."""
        matched = self._match(request)
        if matched is None:
            return self._klein.render(request)
        endpoint, args = matched
        segments = self._segments.get(endpoint)
        postpath = request.postpath or []
        if segments is None:
            return self._klein.render(request)
        request.prepath = [*(request.prepath or []), *postpath[:segments]]
        request.postpath = postpath[segments:]
        self._answer(request, endpoint, args)
        return NOT_DONE_YET

    def _match(self, request: Request) -> tuple[str, dict[str, Any]] | None:
        """The endpoint and arguments of ``request`` as Klein finds them, or ``None`` (let
        Klein answer: no route, or a request Klein would refuse before matching)."""
        if request.prepath or not request.postpath:
            return None
        path = b"/".join(request.postpath)
        if not path.startswith(b"/"):
            path = b"/" + path
        try:
            endpoint, args = self._adapter.match(
                path.decode("utf-8"), request.method.decode("utf-8")
            )
        except (UnicodeDecodeError, HTTPException, RequestRedirect):
            return None
        return endpoint, dict(args)

    def _answer(self, request: Request, endpoint: str, args: dict[str, Any]) -> None:
        """Run the handler and write its answer, as Klein's resource does.

        Nothing here refers to itself (no closure calling itself), so that a request and
        what it holds are freed as soon as it is answered, not left to the garbage
        collector: at 1,000 nodes, collecting the requests a self-referring error handler
        kept was about a sixth of the service's CPU (issue 16)."""
        finished = [False]
        answering: list[Any] = []

        def ended(result: object) -> None:
            finished[0] = True
            if isinstance(result, Failure) and answering:  # the client went away
                answering[0].cancel()

        request.notifyFinish().addBoth(ended)
        execute: Callable[..., Any] = self._app.execute_endpoint
        answer = maybeDeferred(execute, endpoint, request, **args)
        answering.append(answer)

        def write(body: bytes | str | None) -> None:
            if isinstance(body, str):
                body = body.encode("utf-8")
            if isinstance(body, bytes):
                request.write(body)
            if not finished[0]:
                request.finish()

        answer.addErrback(_failed, request, finished, self._handlers)
        answer.addCallback(write)
        answer.addErrback(lambda f: log.failure("Unhandled Error writing response", f))


def _failed(failure: Failure, request: Request, finished: list[bool], handlers: Handlers) -> Any:
    """Answer ``failure`` through the first of ``handlers`` that takes it (and, should that
    handler fail in turn, through the handlers after it), as Klein does."""
    if finished[0]:
        if not failure.check(CancelledError):
            log.failure("Unhandled Error Processing Request.", failure)
        return None
    for index, (exceptions, handler) in enumerate(handlers):
        if failure.check(*exceptions):
            handled = maybeDeferred(handler, request, failure)
            return handled.addErrback(_failed, request, finished, handlers[index + 1 :])
    request.processingFailed(failure)  # type: ignore[attr-defined]
    return None
