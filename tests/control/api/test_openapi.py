"""Tests that the OpenAPI document and the routes served agree exactly."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from control import __version__
from control.api import schemas
from control.api.app import ControlAPI
from control.api.body import StrictValidator
from control.api.openapi import document
from control.errors import InvalidRequest
from control.model import (
    MINIMUM_DATASET_SIZE,
    MINIMUM_LEASE_SECONDS,
    SIZE_MULTIPLE,
    check_maximum_size,
)
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
    assert len(served) == 48
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


def _operation(method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = document(__version__)["paths"][path][method]
    return operation


def _body(method: str, path: str) -> dict[str, Any]:
    schema: dict[str, Any] = _operation(method, path)["requestBody"]["content"][
        "application/json"
    ]["schema"]
    return schema


def test_document_states_the_rules_the_server_enforces() -> None:
    """Size minimum and multiple, unique report ids, UUIDs in ``also`` and the shortest
    lease are all in the published document."""
    size = _body("post", "/v1/configuration/datasets")["properties"]["maximum_size"]
    assert (size["minimum"], size["multipleOf"]) == (MINIMUM_DATASET_SIZE, SIZE_MULTIPLE)
    report = _body("put", "/v1/shoal/state/{node_uuid}")["properties"]["datasets"]
    assert report[schemas.UNIQUE_BY] == "dataset_id"
    also = _operation("get", "/v1/shoal/nodes/{node_uuid}/configuration")["parameters"][1]
    assert also["schema"]["pattern"] == schemas.UUID_LIST_PATTERN
    expires = _body("post", "/v1/configuration/leases")["properties"]["expires"]
    assert expires["minimum"] == MINIMUM_LEASE_SECONDS


@given(st.one_of(st.integers(min_value=-(2**64), max_value=2**64), st.floats()))
@example(MINIMUM_DATASET_SIZE)
@example(MINIMUM_DATASET_SIZE - SIZE_MULTIPLE)
@example(MINIMUM_DATASET_SIZE + 1)
@example(float(MINIMUM_DATASET_SIZE))
@example(2**63 - SIZE_MULTIPLE)
@example(2**63)
@example(True)
def test_size_schema_and_model_agree(size: int | float) -> None:
    """The documented size schema accepts exactly the sizes the model accepts."""
    by_schema = StrictValidator(schemas.SIZE).is_valid(size)
    try:
        check_maximum_size(size)  # type: ignore[arg-type]
        by_model = size <= schemas.LARGEST
    except InvalidRequest:
        by_model = False
    assert by_schema == by_model


def test_also_pattern_matches_what_the_server_parses() -> None:
    """The ``also`` pattern accepts nothing, one id, or many ids, and no spaces or blanks."""
    pattern = re.compile(schemas.UUID_LIST_PATTERN)
    one = "11111111-0000-4000-8000-000000000001"
    assert all(pattern.match(v) for v in ("", one, f"{one},{one.upper()}"))
    assert not any(pattern.match(v) for v in (",", f"{one},", f"{one}, {one}", "xyz"))
