"""
Serving Prometheus metrics over HTTP, for every Shoal process (control, agent, plugin).

Each process keeps its metrics in its own :class:`prometheus_client.CollectorRegistry`
(never the global default one, so tests can run several processes' worth in
one interpreter). :class:`MetricsResource` answers ``GET /metrics`` with the
registry's text exposition, rendered by an injected runner (a thread pool):
collecting may read the store, and the reactor thread never blocks on it.
:func:`listen_metrics` serves that one resource on a ``--metrics-address``.
:class:`TimedResource` wraps a resource and reports each request's route,
method, status and duration to a callback once the answer is written.

Neutral: the agent and the plugin use it, so it loads neither Klein nor the
control service's API or store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from control.errors import InvalidRequest
from control.reactor import ReactorTime
from control.runners import Runner

METRICS_PATH = b"/metrics"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
"""Methods kept as they are in labels; any other is ``other`` (labels stay bounded)."""


def method_label(method: bytes) -> str:
    """A request method as a bounded label value."""
    text = method.decode("ascii", "replace").upper()
    return text if text in METHODS else "other"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9100`` for IPv6) as ``(host, port)``; port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InvalidRequest(
            f"A metrics address is HOST:PORT, such as 127.0.0.1:9523 or [::1]:9523; "
            f"not {text!r}."
        )
    return host, int(port)


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in Prometheus's text format (collects: may block)."""
    return generate_latest(registry)


class MetricsResource(Resource):
    """``GET /metrics``: the registry's exposition, collected by ``runner`` off the reactor."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry, runner: Runner) -> None:
        super().__init__()
        self.registry = registry
        self._run = runner

    def render_GET(self, request: Request) -> int:
        """Collect in the runner, then answer the text exposition."""
        finished = [False]
        request.notifyFinish().addBoth(lambda _: finished.__setitem__(0, True))

        def answer(body: bytes) -> None:
            if finished[0]:
                return
            request.setResponseCode(200)
            request.setHeader(b"content-type", CONTENT_TYPE_PLAIN_0_0_4.encode("ascii"))
            request.setHeader(b"content-length", str(len(body)).encode("ascii"))
            request.write(body)
            request.finish()

        def failed(failure: Failure) -> None:
            if finished[0]:
                return
            request.setResponseCode(500)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.write(f"Collecting the metrics failed: {failure.getErrorMessage()}\n".encode())
            request.finish()

        d: Deferred[bytes] = self._run(exposition, self.registry)
        d.addCallbacks(answer, failed)
        return NOT_DONE_YET

    render_HEAD = render_GET


class _MetricsOnly(Resource):
    """A root serving :class:`MetricsResource` at ``/metrics`` and 404 elsewhere."""

    def __init__(self, metrics: MetricsResource) -> None:
        super().__init__()
        self.putChild(b"metrics", metrics)  # type: ignore[arg-type]


class QuietSite(Site):
    """A site that logs nothing per request (a scrape every few seconds is not news)."""

    noisy = False

    def log(self, request: Any) -> None:
        """Log nothing."""


def metrics_site(registry: CollectorRegistry, runner: Runner) -> Site:
    """A site serving only ``/metrics`` for ``registry``."""
    site = QuietSite(_MetricsOnly(MetricsResource(registry, runner)))
    site.displayTracebacks = False
    return site


def listen_metrics(
    reactor: Any, address: str, registry: CollectorRegistry, runner: Runner,
    log: Any = None, event: str = "metrics_listening",
) -> Deferred[Any]:
    """Serve ``registry`` as plain HTTP at ``address`` (HOST:PORT); fires with the port.

    Once listening, logs ``event`` with the URL on ``log`` (a structlog logger), if given.
    """
    host, port = parse_address(address)
    endpoint = endpoints.TCP6ServerEndpoint if ":" in host else endpoints.TCP4ServerEndpoint
    listening: Deferred[Any] = endpoint(reactor, port, interface=host).listen(
        metrics_site(registry, runner)
    )

    def logged(bound: Any) -> Any:
        where = bound.getHost()
        if log is not None:
            log.info(event, url=f"http://{where.host}:{where.port}/metrics")
        return bound

    return listening.addCallback(logged)


Observe = Callable[[str, str, int, float], None]
"""Called with (route, method, status, seconds) once a request is answered."""


class TimedResource(Resource):
    """A leaf resource that times each request of ``inner`` and reports it to ``observe``.

    ``route_of(request)`` names the request's route with a bounded value (a
    route template, never a raw path). ``metrics``, if given, answers
    ``/metrics`` itself (timed too), ahead of ``inner``.
    """

    isLeaf = True

    def __init__(
        self,
        inner: Resource,
        clock: ReactorTime,
        route_of: Callable[[Request], str],
        observe: Observe,
        metrics: Resource | None = None,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._clock = clock
        self._route_of = route_of
        self._observe = observe
        self._metrics = metrics

    def render(self, request: Request) -> Any:
        """Start the clock, then let ``inner`` (or the metrics) answer."""
        started = self._clock.seconds()
        serve_metrics = self._metrics is not None and request.path == METRICS_PATH
        route = "/metrics" if serve_metrics else self._route_of(request)
        method = method_label(request.method)

        def done(_: object) -> None:
            self._observe(route, method, request.code, self._clock.seconds() - started)

        request.notifyFinish().addBoth(done)
        if serve_metrics:
            assert self._metrics is not None
            return self._metrics.render(request)
        return self._inner.render(request)
