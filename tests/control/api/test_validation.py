"""The compiled accepting check of request bodies never accepts what the full validator refuses."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.api import schemas
from control.api.body import _accepted, _acceptor, _validator, validate
from control.errors import InvalidRequest

OBJECT_SCHEMAS = {
    name: value
    for name, value in vars(schemas).items()
    if isinstance(value, dict) and value.get("type") == "object" and name.isupper()
}

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        ["9a4d2f4e-43a4-4bd9-9d5b-4a1f1d1d7e01", "not-a-uuid", "", "a\x00b", "x" * 300]
    ),
    st.text(max_size=20),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8,
)
_keys = st.sampled_from(
    ["primary", "dataset_id", "maximum_size", "metadata", "name", "host", "era", "expires",
     "node_uuid", "labels", "other"]
)


@pytest.mark.parametrize("name", sorted(OBJECT_SCHEMAS))
def test_every_body_schema_compiles(name: str) -> None:
    """Each object schema of the API has a compiled check (else bodies take the slow path)."""
    assert _acceptor(OBJECT_SCHEMAS[name]) is not None


@given(name=st.sampled_from(sorted(OBJECT_SCHEMAS)),
       body=st.dictionaries(_keys, _values, max_size=5))
def test_compiled_check_never_accepts_a_refused_body(name: str, body: dict[str, Any]) -> None:
    """Whatever the compiled check accepts, the full (strict) validator accepts too."""
    schema = OBJECT_SCHEMAS[name]
    if _accepted(body, schema):
        assert _validator(schema).is_valid(body)


def test_integer_with_a_fraction_is_still_refused() -> None:
    """A size written as 67108864.0 is refused as not an integer, as before the compiled check."""
    body = {"primary": "9a4d2f4e-43a4-4bd9-9d5b-4a1f1d1d7e01", "maximum_size": 67108864.0}
    with pytest.raises(InvalidRequest, match="integer"):
        validate(body, schemas.CREATE_DATASET)


def test_valid_create_is_accepted_by_the_compiled_check() -> None:
    """A plain create body takes the fast path."""
    body = {"primary": "9a4d2f4e-43a4-4bd9-9d5b-4a1f1d1d7e01", "maximum_size": 67108864,
            "metadata": {"name": "pg"}}
    assert _accepted(body, schemas.CREATE_DATASET)
    assert validate(body, schemas.CREATE_DATASET) == body
