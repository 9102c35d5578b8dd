"""
Schemathesis against a real ``shoal control serve``: the API keeps its OpenAPI document.

Every check schemathesis enables by default runs on every generated case: no 5xx, only
documented statuses and headers, answers matching their schemas, invalid
requests refused and valid ones accepted. A valid request may still be refused
for the state of the cluster, with a status the document lists for that route:
those are accepted (:data:`STATE_REFUSALS`).

Two rules the document states in words, since JSON Schema cannot, are kept by
the generated valid requests as well: integers are written without a fraction,
and no two items of an ``x-unique-by`` array share that property.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import schemathesis
from schemathesis import GenerationMode

from control import __version__
from control.api.openapi import document
from control.api.schemas import UNIQUE_BY
from tests.processes import ControlProcess, http_json

pytestmark = pytest.mark.functional

MAX_EXAMPLES = 25
"""Examples per operation and phase: enough to find drift, few enough for about half a minute."""

STATE_REFUSALS = ["2xx", "404", "405", "409", "412"]
"""What a valid request may be answered with, given the cluster's state: unknown (404),
deleted (405), in conflict (409), or changed since the tag was read (412). The document
lists each of these on the routes that answer it, and the status check holds them to that."""

INVALID_REFUSALS = [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"
]
"""How an invalid request may be refused: schemathesis's defaults, plus 413 for a generated
body over the API's 1 MiB limit (refused before it is parsed, as the document says)."""
NODE = uuid.UUID("5c0a1000-0000-4000-8000-000000000001")
"""The node the service knows: valid creates and moves name it as their primary."""

LINE_LIMIT = 16 * 1024 - 512
"""Twisted refuses a request line or header block over 16 KiB before any route sees it:
that refusal belongs to the HTTP layer (tested there), not to this document."""

WATCH_PATH = "/v1/shoal/watch"
SHORT_WAIT = 0.05


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlProcess]:
    """A real control service on a fresh SQLite file."""
    directory = tmp_path_factory.mktemp("schemathesis")
    process = ControlProcess(
        f"sqlite:///{directory / 'control.db'}", log_path=str(directory / "control.log")
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api(service: ControlProcess) -> str:
    """The service's URL, with :data:`NODE` registered so that generated creates can succeed."""
    registration = {"host": "127.0.0.1"}
    status, _, body = http_json("PUT", f"{service.url}/v1/shoal/nodes/{NODE}", registration)
    assert status == 200, body
    return service.url


def _unique_ids(body: Any, schema: dict[str, Any]) -> bool:
    """Whether ``body`` keeps every ``x-unique-by`` rule of ``schema`` (the one rule the
    document states in an extension, since JSON Schema cannot)."""
    if not isinstance(body, dict):
        return True
    for name, prop in schema.get("properties", {}).items():
        key = prop.get(UNIQUE_BY)
        items = body.get(name)
        if key and isinstance(items, list):
            keys = [item.get(key) for item in items if isinstance(item, dict)]
            if len(keys) != len(set(map(str, keys))):
                return False
    return True


def _body_schema(case: Any) -> dict[str, Any]:
    body = case.operation.definition.raw.get("requestBody", {})
    schema: dict[str, Any] = body.get("content", {}).get("application/json", {}).get("schema", {})
    return schema


def _positive(case: Any) -> bool:
    return case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE


def _short_wait(query: dict[str, Any]) -> dict[str, Any]:
    """A watch query that waits at most :data:`SHORT_WAIT` seconds, where it was valid."""
    timeout = query.get("timeout", 0)
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout >= 0:
        return {**query, "timeout": min(timeout, SHORT_WAIT)}
    return query


schema = schemathesis.openapi.from_dict(
    document(__version__),
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": STATE_REFUSALS},
                "negative_data_rejection": {"expected-statuses": INVALID_REFUSALS},
            },
        }
    ),
)


def _fits_http(case: Any) -> bool:
    """Whether the request line and headers stay within :data:`LINE_LIMIT` bytes."""
    path = case.operation.path
    for name, value in (case.path_parameters or {}).items():
        path = path.replace(f"{{{name}}}", quote(str(value), safe=""))
    line = len(path) + len(urlencode(case.query or {}, doseq=True))
    headers = sum(len(str(k)) + len(str(v).encode()) for k, v in (case.headers or {}).items())
    return line < LINE_LIMIT and headers < LINE_LIMIT


def _plain_integers(value: Any) -> Any:
    """``value`` with whole floats written as integers, as the document's description asks."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain_integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_integers(v) for v in value]
    return value


@schema.hook
def filter_case(ctx: Any, case: Any) -> bool:
    """Valid cases keep the document's ``x-unique-by`` rules too; all fit the HTTP limits."""
    unique = not _positive(case) or _unique_ids(case.body, _body_schema(case))
    return unique and _fits_http(case)


@schema.hook
def map_case(ctx: Any, case: Any) -> Any:
    """Valid cases write integers plainly and create datasets on the registered node;
    watches wait briefly."""
    if _positive(case) and case.body is not None:
        case.body = _plain_integers(case.body)
    if _positive(case) and isinstance(case.body, dict) and "primary" in case.body:
        case.body = {**case.body, "primary": str(NODE)}
    if case.operation.path == WATCH_PATH and isinstance(case.query or {}, dict):
        case.query = _short_wait(case.query or {})
    return case


def test_served_document_is_the_one_tested(api: str) -> None:
    """The service serves exactly the document the cases below are generated from."""
    status, _, body = http_json("GET", f"{api}/v1/openapi.json")
    assert (status, body) == (200, document(__version__))


@schema.parametrize()
def test_api_keeps_its_document(case: Any, api: str) -> None:
    """Generated valid and invalid requests get exactly the answers the document promises."""
    case.call_and_validate(base_url=api)

