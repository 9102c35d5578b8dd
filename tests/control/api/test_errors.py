"""Tests that every kind of bad input gets a clear JSON refusal and changes nothing."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from control.api.body import MAX_BODY, read_body
from control.api.openapi import OPERATIONS
from control.errors import PayloadTooLarge, Unavailable
from control.store.memory import MemoryStore
from tests.control.api.harness import DATASET_1, NODE_A, Harness

DATASETS = "/v1/configuration/datasets"


def _ready() -> Harness:
    h = Harness()
    h.register()
    h.create(dataset_id=str(DATASET_1))
    return h


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{", "not valid JSON"),
        (b"", "empty"),
        (b"\xff\xfe", "not valid UTF-8"),
        (b"[]", "is not of type 'object'"),
        (b"42", "is not of type 'object'"),
        (b'{"primary": NaN}', "not valid JSON"),
        (b"[" * 100_000, "JSON"),
        (b'{"primary": 5}', "is not of type 'string'"),
        (b'{"primary": "nope"}', "'nope' is not a valid UUID"),
    ],
)
def test_bad_bodies_are_400(raw: bytes, words: str) -> None:
    """Malformed, non-object and mistyped bodies are 400s that say what is wrong."""
    h = _ready()
    answer = h.call("POST", DATASETS, raw=raw)
    assert answer.code == 400
    assert words in answer.body["description"]
    assert h.generation() == 1


def test_unknown_field_lists_errors() -> None:
    """Unknown fields are refused; every schema problem is listed with its path."""
    h = _ready()
    answer = h.call("POST", DATASETS, {"primary": 7, "colour": "red"})
    assert answer.code == 400
    errors = answer.body["errors"]
    assert any("'colour' was unexpected" in e for e in errors)
    assert any(e.startswith("$.primary:") for e in errors)


def test_wrong_content_type_is_415() -> None:
    """A body declared as something other than JSON is a 415."""
    h = _ready()
    answer = h.call(
        "POST", DATASETS, {"primary": str(NODE_A)}, headers={"Content-Type": "text/plain"}
    )
    assert answer.code == 415 and "application/json" in answer.body["description"]
    assert h.generation() == 1


def test_body_over_limit_is_413() -> None:
    """A body over 1 MiB is a 413 and creates nothing."""
    h = _ready()
    big = json.dumps({"primary": str(NODE_A), "metadata": {"k": "x" * MAX_BODY}}).encode()
    answer = h.call("POST", DATASETS, raw=big)
    assert answer.code == 413
    assert h.generation() == 1


def test_actual_size_checked_without_content_length() -> None:
    """A body longer than 1 MiB is refused even when Content-Length does not say so."""
    request = Request(DummyChannel())
    request.content = BytesIO(b" " * (MAX_BODY + 1))
    with pytest.raises(PayloadTooLarge):
        read_body(request)
    request.content = BytesIO(b" " * MAX_BODY)
    assert len(read_body(request)) == MAX_BODY


def test_bad_content_length_is_400() -> None:
    """A Content-Length that is not a number is refused."""
    request = Request(DummyChannel())
    request.requestHeaders.setRawHeaders(b"content-length", [b"lots"])
    with pytest.raises(Exception, match="Content-Length"):
        read_body(request)


def test_unknown_route_is_json_404() -> None:
    """An unknown path gets a JSON 404, not Klein's HTML."""
    answer = Harness().call("GET", "/v1/nothing/here")
    assert answer.code == 404 and "/v1/nothing/here" in answer.body["description"]


def test_trailing_slash_is_json_404() -> None:
    """A trailing slash is not a route, and says so in JSON."""
    assert Harness().call("GET", DATASETS + "/").code == 404


def test_wrong_method_is_json_405() -> None:
    """A known path with the wrong method is a JSON 405 with an Allow header."""
    answer = Harness().call("PATCH", DATASETS)
    assert answer.code == 405
    assert answer.header("Allow") == "GET, POST"
    assert "PATCH" in answer.body["description"]


def test_non_utf8_path_is_json_400() -> None:
    """A path that is not UTF-8 is refused as JSON too."""
    answer = Harness().call("GET", "/v1/%FF%FE")
    assert answer.code == 400 and "UTF-8" in answer.body["description"]


@pytest.mark.parametrize(
    "spelling",
    [
        "{" + str(DATASET_1) + "}",
        "urn:uuid:" + str(DATASET_1),
        DATASET_1.hex,
    ],
)
def test_path_ids_must_be_canonical(spelling: str) -> None:
    """A path id in a form other than 8-4-4-4-12 is 400 and changes nothing, as in bodies."""
    harness = Harness()
    harness.register()
    harness.create(dataset_id=str(DATASET_1))
    before = harness.generation()
    answer = harness.call("DELETE", f"{DATASETS}/{spelling}")
    assert answer.code == 400 and "not a valid UUID" in answer.body["description"]
    assert harness.generation() == before


class BrokenStore(MemoryStore):
    """A store whose node listing fails unexpectedly."""

    def nodes(self) -> list[Any]:
        """Fail like a bug would."""
        raise RuntimeError("secret internal detail")


def test_unexpected_error_is_logged_json_500() -> None:
    """A bug is logged with its traceback and answered as a JSON 500 without it."""
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        answer = Harness(memory=BrokenStore()).call("GET", "/v1/state/nodes")
    finally:
        globalLogPublisher.removeObserver(observer)
    assert answer.code == 500
    assert "secret" not in json.dumps(answer.body)
    failures = [e["log_failure"] for e in events if "log_failure" in e]
    assert any(f.check(RuntimeError) for f in failures)


# -- property: nothing bad gets through ---------------------------------------

_BODY_ROUTES = [op for op in OPERATIONS if op.body is not None]


def _path(template: str) -> str:
    return template.replace("{dataset_id}", str(DATASET_1)).replace("{node_uuid}", str(NODE_A))


_KEYS = sorted({key for op in _BODY_ROUTES for key in (op.body or {}).get("properties", {})})
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(_KEYS), st.text(max_size=10)), inner, max_size=4),
    ),
    max_leaves=12,
)
_bodies = st.one_of(
    _json.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
)


def _valid(raw: bytes, schema: dict[str, Any]) -> bool:
    try:
        value = json.loads(raw)
    except ValueError:
        return False
    return Draft202012Validator(schema).is_valid(value)


def _refused_unchanged(h: Harness, op: Any, raw: bytes) -> None:
    before = (h.memory.versions(), h.memory.configuration(0.0), h.memory.nodes())
    answer = h.call(op.method.upper(), _path(op.path), raw=raw)
    assert 400 <= answer.code < 500
    assert (h.memory.versions(), h.memory.configuration(0.0), h.memory.nodes()) == before


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_BODY_ROUTES), _bodies)
def test_arbitrary_bodies_are_refused(op: Any, raw: bytes) -> None:
    """Arbitrary JSON or bytes at any POST/PUT route is a JSON 4xx and changes nothing."""
    assume(not _valid(raw, op.body))
    _refused_unchanged(_ready(), op, raw)


@pytest.fixture(scope="module")
def sql_harness(tmp_path_factory: pytest.TempPathFactory) -> Harness:
    """The API over a SQLite SQLStore, shared by the examples (refusals change nothing)."""
    from control.store.factory import open_store

    path = tmp_path_factory.mktemp("sql") / "control.db"
    h = Harness(memory=open_store(f"sqlite:///{path}", upgrade=True))
    h.register()
    h.create(dataset_id=str(DATASET_1))
    return h


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op=st.sampled_from(_BODY_ROUTES), raw=_bodies)
def test_arbitrary_bodies_are_refused_by_sql_store_too(
    sql_harness: Harness, op: Any, raw: bytes
) -> None:
    """The schemas keep what a database cannot hold (NUL, huge numbers) from the SQL store."""
    assume(not _valid(raw, op.body))
    _refused_unchanged(sql_harness, op, raw)


@pytest.mark.parametrize(
    "body",
    [
        {"host": "h\u0000"},
        {"host": "h", "labels": {"k\u0000": "v"}},
        {"host": "\ud800"},
        {"host": "h", "era": "x" * 256},
    ],
)
def test_text_a_database_cannot_hold_is_400(body: dict[str, Any]) -> None:
    """NUL characters, lone surrogates and overlong strings are refused up front."""
    h = Harness()
    answer = h.call("PUT", f"/v1/shoal/nodes/{NODE_A}", raw=json.dumps(body).encode())
    assert answer.code == 400
    assert h.memory.nodes() == []


def test_huge_numbers_are_400() -> None:
    """Integers beyond 64 bits are refused before they reach a database column."""
    h = _ready()
    report = {"generation": 2**64, "datasets": []}
    assert h.call("PUT", f"/v1/shoal/state/{NODE_A}", report).code == 400
    assert h.create(maximum_size=2**70).code == 400
    assert h.generation() == 1


class DownStore(MemoryStore):
    """A store whose database cannot be reached."""

    def configuration(self, now: float) -> Any:
        """Fail as an unreachable database does."""
        raise Unavailable("The database at db.example is not answering; retry shortly.")


def test_unavailable_store_is_503() -> None:
    """A store that cannot reach its database is answered 503 with its description."""
    answer = Harness(memory=DownStore()).call("GET", DATASETS)
    assert answer.code == 503 and "db.example" in answer.body["description"]
