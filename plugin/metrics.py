"""
The Docker plugin's Prometheus metrics (the list and their meaning: docs/operations.md).

:class:`PluginMetrics` keeps them in the plugin's own registry: requests by
endpoint and result (counted as each answer is written, from its status: the
protocol answers 200 for success and 500 with ``Err`` for a failure), their
duration, and how long Mounts wait for the volume to be mounted here.
``shoal plugin serve --metrics-address`` serves them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from twisted.web.server import Request

ENDPOINTS = frozenset({
    "/Plugin.Activate",
    "/VolumeDriver.Capabilities",
    "/VolumeDriver.Create",
    "/VolumeDriver.Remove",
    "/VolumeDriver.Mount",
    "/VolumeDriver.Unmount",
    "/VolumeDriver.Path",
    "/VolumeDriver.Get",
    "/VolumeDriver.List",
})
"""The protocol's endpoints: the values of the ``endpoint`` label (any other: ``unknown``)."""

REQUEST_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                   60.0, 120.0)
MOUNT_WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


def endpoint_of(request: Request) -> str:
    """The request's endpoint as a bounded label value."""
    path = request.path.decode("ascii", "replace")
    return path if path in ENDPOINTS else "unknown"


def result_of(code: int) -> str:
    """``ok`` for a 200 answer, ``error`` for anything else."""
    return "ok" if code == 200 else "error"


class PluginMetrics:
    """One plugin's metrics, in its own registry (injected, or a new one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        self.requests = Counter(
            "shoal_plugin_requests",
            "Plugin protocol requests answered, by endpoint and result (ok, error).",
            ["endpoint", "result"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "shoal_plugin_request_duration_seconds",
            "Time to answer a plugin protocol request, by endpoint.",
            ["endpoint"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.mount_wait = Histogram(
            "shoal_plugin_mount_wait_seconds",
            "Time a Mount waited for its volume to be reported mounted on this node, by "
            "result (mounted, failed: timed out or blocked).",
            ["result"],
            buckets=MOUNT_WAIT_BUCKETS,
            registry=self.registry,
        )
        for endpoint in sorted(ENDPOINTS):
            self.requests.labels(endpoint, "ok")

    def answered(self, endpoint: str, _method: str, code: int, seconds: float) -> None:
        """Record one answered request (a :data:`control.metrics_http.Observe`)."""
        self.requests.labels(endpoint, result_of(code)).inc()
        self.request_duration.labels(endpoint).observe(seconds)

    def waited(self, seconds: float, mounted: bool) -> None:
        """Record how long a Mount waited for its volume."""
        self.mount_wait.labels("mounted" if mounted else "failed").observe(seconds)
