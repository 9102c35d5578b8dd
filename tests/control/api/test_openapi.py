"""Tests that the OpenAPI document and the routes served agree exactly."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator

from control import __version__
from control.api import schemas
from control.api.app import ControlAPI
from control.api.openapi import document
from tests.control.api.harness import Harness

AUTOMATIC = {"HEAD", "OPTIONS"}


def _served() -> set[tuple[str, str]]:
    routes = set()
    for rule in ControlAPI.app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in set(rule.methods or ()) - AUTOMATIC:
            routes.add((method.lower(), path))
    return routes


def _documented() -> set[tuple[str, str]]:
    paths = document(__version__)["paths"]
    return {(method, path) for path, ops in paths.items() for method in ops}


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "schema" in node:
            yield node["schema"]
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def test_every_route_documented_and_vice_versa() -> None:
    """The Klein URL map and the OpenAPI paths name the same routes and methods."""
    served = _served()
    assert len(served) == 19
    assert served == _documented()


def test_path_parameters_declared() -> None:
    """Every ``{name}`` in a documented path is declared as a path parameter."""
    for path, ops in document(__version__)["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for op in ops.values():
            declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert declared == names, path


def test_schemas_are_valid_json_schemas() -> None:
    """Every schema in the document is a valid draft 2020-12 schema."""
    found = list(_schemas(document(__version__)))
    assert len(found) > 50
    for schema in found:
        Draft202012Validator.check_schema(schema)


def test_validation_uses_the_documented_schemas() -> None:
    """The create body documented is the very schema the API enforces."""
    paths = document(__version__)["paths"]
    create = paths["/v1/configuration/datasets"]["post"]["requestBody"]
    assert create["content"]["application/json"]["schema"] is schemas.CREATE_DATASET


def test_document_is_served() -> None:
    """GET /v1/openapi.json answers the document."""
    answer = Harness().call("GET", "/v1/openapi.json")
    assert answer.code == 200
    assert answer.body["openapi"] == "3.1.0"
    assert answer.body["paths"].keys() == document(__version__)["paths"].keys()
