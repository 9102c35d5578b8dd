"""docs/api.md stays true to the routes the API serves."""

from __future__ import annotations

import os
import re

from control.api.openapi import OPERATIONS

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "api.md")


def _doc() -> str:
    with open(DOC) as f:
        return f.read()


def _pairs(pattern: str) -> set[tuple[str, str]]:
    return {(method.lower(), path) for method, path in re.findall(pattern, _doc(), re.M)}


def documented_routes() -> set[tuple[str, str]]:
    """The ``METHOD /path`` pairs in the route table of docs/api.md."""
    return _pairs(r"^\| `([A-Z]+) ([^ `?]+)[^`]*` \|")


def example_routes() -> set[tuple[str, str]]:
    """The ``METHOD /path`` pairs of the ``### `METHOD /path` `` example sections of docs/api.md."""
    return _pairs(r"^### `([A-Z]+) ([^ `?]+)`$")


def test_every_route_is_documented() -> None:
    """The route table lists exactly the routes of the OpenAPI document."""
    served = {(operation.method, operation.path) for operation in OPERATIONS}
    assert documented_routes() == served


def test_every_route_has_an_example() -> None:
    """Each route of the OpenAPI document has an example section, and no section names another."""
    served = {(operation.method, operation.path) for operation in OPERATIONS}
    assert example_routes() == served
