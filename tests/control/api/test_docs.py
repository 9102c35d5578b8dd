"""docs/api.md stays true to the routes the API serves."""

from __future__ import annotations

import os
import re

from control.api.openapi import OPERATIONS

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "api.md")


def documented_routes() -> set[tuple[str, str]]:
    """The ``METHOD /path`` pairs in the route table of docs/api.md."""
    with open(DOC) as f:
        text = f.read()
    return {
        (method.lower(), path)
        for method, path in re.findall(r"^\| `([A-Z]+) ([^ `?]+)[^`]*` \|", text, re.M)
    }


def test_every_route_is_documented() -> None:
    """The route table lists exactly the routes of the OpenAPI document."""
    served = {(operation.method, operation.path) for operation in OPERATIONS}
    assert documented_routes() == served
