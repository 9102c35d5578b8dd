"""The control service serves the dashboard's files at /ui/ (real resource, in memory)."""

from __future__ import annotations

import os
from typing import Any

import treq
from treq.testing import StubTreq

from control.ui import STATIC_DIR
from tests.control.api.harness import Harness, result_of


def get(path: str) -> tuple[Any, bytes]:
    """GET ``path`` from a control service's resource; the response and its body."""
    client = StubTreq(Harness().api.resource())
    d = client.get("http://shoal.test" + path, allow_redirects=False)
    client.flush()
    response = result_of(d)
    content = treq.content(response)
    client.flush()
    return response, result_of(content)


def header(response: Any, name: str) -> str:
    """The one value of a response header."""
    (value,) = response.headers.getRawHeaders(name)
    return str(value)


def test_index_is_html_with_a_strict_policy() -> None:
    """``/ui/`` answers index.html, which only this origin's scripts may run in."""
    response, body = get("/ui/")
    assert response.code == 200
    assert header(response, "content-type").startswith("text/html")
    assert b'<script type="module" src="app.js">' in body
    policy = header(response, "content-security-policy")
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert header(response, "x-content-type-options") == "nosniff"


def test_every_module_is_served_as_javascript() -> None:
    """Each ES module ships in the package and is served with a JavaScript type."""
    modules = sorted(f for f in os.listdir(STATIC_DIR) if f.endswith(".js"))
    assert {"app.js", "api.js", "live.js", "model.js", "render.js", "virtual.js"} <= set(modules)
    for module in modules:
        response, body = get(f"/ui/{module}")
        assert response.code == 200, module
        assert header(response, "content-type") == "text/javascript; charset=utf-8"
        with open(os.path.join(STATIC_DIR, module), "rb") as f:
            assert body == f.read()


def test_without_the_slash_redirects_and_unknown_files_are_404() -> None:
    """``/ui`` redirects to ``/ui/``; a file the dashboard does not have is a 404."""
    response, _ = get("/ui")
    assert response.code in (301, 302)
    assert header(response, "location").endswith("/ui/")
    assert get("/ui/nothing.js")[0].code == 404
    assert get("/ui/../control.db")[0].code == 404


def test_a_browser_with_the_file_gets_304() -> None:
    """A request naming the file's entity tag is answered 304 without a body."""
    response, _ = get("/ui/app.js")
    etag = header(response, "etag")
    client = StubTreq(Harness().api.resource())
    d = client.get("http://shoal.test/ui/app.js", headers={"If-None-Match": etag})
    client.flush()
    assert result_of(d).code == 304


def test_the_api_is_untouched() -> None:
    """Paths outside /ui still reach the API (JSON), including ones that start alike."""
    response, body = get("/uinot")
    assert response.code == 404
    assert header(response, "content-type") == "application/json"
    assert get("/v1/version")[0].code == 200


def _write(headers: dict[str, str]) -> int:
    """The status of a dataset create sent with ``headers`` (and a JSON body)."""
    h = Harness()
    h.register()
    client = StubTreq(h.api.resource())
    body = b'{"primary": "aaaaaaaa-0000-4000-8000-000000000001", "maximum_size": 67108864}'
    d = client.post("http://shoal.test/v1/configuration/datasets", data=body,
                    headers={"Host": "shoal.test", **headers})
    client.flush()
    return int(result_of(d).code)


def test_a_browser_write_from_another_site_is_refused() -> None:
    """A write a page of another origin makes a browser send is a 403; the page's own, the
    CLI's (no browser headers) and a same-origin one are served."""
    assert _write({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}) == 403
    assert _write({"Origin": "https://evil.example"}) == 403
    assert _write({"Sec-Fetch-Site": "same-site"}) == 403
    assert _write({"Origin": "http://shoal.test", "Sec-Fetch-Site": "same-origin"}) == 201
    assert _write({"Content-Type": "application/json"}) == 201
