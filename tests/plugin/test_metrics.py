"""The plugin's metrics: requests by endpoint and result, and the Mount's wait."""

from __future__ import annotations

import json

from treq.testing import StubTreq

from control.metrics_http import TimedResource, exposition
from plugin.api import PluginAPI
from plugin.metrics import PluginMetrics, endpoint_of
from tests.scrape import Scrape, parse

from .harness import NODE1, make_cluster, result, start

URL = "http://plugin"


def scrape(metrics: PluginMetrics) -> Scrape:
    """The plugin's exposition, parsed."""
    return parse(exposition(metrics.registry).decode())


def test_requests_are_counted_by_endpoint_and_result() -> None:
    """Each answer counts under its endpoint: 200 is ok, an ``Err`` answer an error."""
    cluster = make_cluster()
    service = cluster.services[NODE1]
    metrics = service.metrics
    stub = StubTreq(
        TimedResource(PluginAPI(service).resource(), cluster.clock, endpoint_of, metrics.answered)
    )
    for path, body in [
        ("Plugin.Activate", {}),
        ("VolumeDriver.Get", {"Name": "nothing"}),
        ("VolumeDriver.Get", {"Name": "nothing"}),
        ("Docker.Whatever", {}),
    ]:
        result(stub.post(f"{URL}/{path}", data=json.dumps(body).encode()))
    found = scrape(metrics)
    assert found.types["shoal_plugin_requests"] == "counter"
    assert found.value("shoal_plugin_requests_total", endpoint="/Plugin.Activate", result="ok") == 1
    assert found.value(
        "shoal_plugin_requests_total", endpoint="/VolumeDriver.Get", result="error"
    ) == 2
    assert found.value("shoal_plugin_requests_total", endpoint="unknown", result="error") == 1
    assert found.value(
        "shoal_plugin_request_duration_seconds_count", endpoint="/VolumeDriver.Get"
    ) == 2


def test_mount_wait_is_observed_once_mounted() -> None:
    """A Mount's wait for the agent is timed on the plugin's clock, as ``mounted``."""
    cluster = make_cluster()
    service = cluster.services[NODE1]
    result(service.create("vol", {}))
    d = start(service.mount("vol", "c1"))
    cluster.clock.advance(3.0)
    cluster.converge(NODE1)
    result(d)
    found = scrape(service.metrics)
    assert found.types["shoal_plugin_mount_wait_seconds"] == "histogram"
    assert found.value("shoal_plugin_mount_wait_seconds_count", result="mounted") == 1
    assert found.value("shoal_plugin_mount_wait_seconds_sum", result="mounted") == 3.0
    assert found.value("shoal_plugin_mount_wait_seconds_count", result="failed") == 0
