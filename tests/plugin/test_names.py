"""Volume names: Docker's rule, a length limit, and no way out of the mount root."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.errors import InvalidRequest
from plugin.names import MAX_NAME_LENGTH, check_name, is_valid_name


@pytest.mark.parametrize("name", ["db", "my-data", "a.b_c-1", "0x", "A" * MAX_NAME_LENGTH])
def test_accepts_docker_names(name: str) -> None:
    """Names following Docker's rule are accepted as they are."""
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "x", "-data", ".hidden", "..", "../etc", "a/b", "/abs", "a b", "naïve", "a\x00b",
     "A" * (MAX_NAME_LENGTH + 1), None, 42],
)
def test_refuses_other_names(name: object) -> None:
    """Short, oddly-started, path-like, non-ASCII, too long or non-string names are refused."""
    with pytest.raises(InvalidRequest, match="Invalid volume name"):
        check_name(name)


@given(st.text(max_size=300))
def test_valid_names_cannot_leave_a_directory(name: str) -> None:
    """Any accepted name is one path component that is neither '.' nor '..'."""
    if is_valid_name(name):
        assert "/" not in name and "\x00" not in name and name not in (".", "..")
