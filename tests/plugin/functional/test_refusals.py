"""A real ``shoal plugin serve`` answers unknown endpoints and wrong methods as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.plugin.runtimes import PluginProcess, UnixHTTPConnection

pytestmark = pytest.mark.functional

CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"


def exchange(socket_path: str, method: str, path: str) -> tuple[int, str | None, str | None, dict]:
    """One request over the plugin's socket: status, Content-Type, Allow and the JSON answer."""
    connection = UnixHTTPConnection(socket_path, timeout=10)
    try:
        connection.request(method, path, body=b"{}")
        response = connection.getresponse()
        body = json.loads(response.read())
        headers = response.getheader("Content-Type"), response.getheader("Allow")
        return response.status, *headers, body
    finally:
        connection.close()


def test_unknown_endpoint_is_json_404(plugins: Callable[..., PluginProcess]) -> None:
    """An endpoint the plugin lacks is a JSON 404 with an Err, not an HTML page."""
    plugin = plugins("node1")
    status, content_type, _, body = exchange(plugin.socket, "POST", "/VolumeDriver.Frobnicate")
    assert (status, content_type) == (404, CONTENT_TYPE)
    assert "no endpoint /VolumeDriver.Frobnicate" in body["Err"]


def test_wrong_method_is_json_405_with_allow(plugins: Callable[..., PluginProcess]) -> None:
    """A GET of an endpoint is a JSON 405 that says POST is allowed."""
    plugin = plugins("node1")
    status, content_type, allow, body = exchange(plugin.socket, "GET", "/VolumeDriver.List")
    assert (status, content_type, allow) == (405, CONTENT_TYPE, "POST")
    assert "use POST" in body["Err"]
