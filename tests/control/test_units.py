"""Sizes written by people: binary units, Docker style."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.errors import InvalidRequest
from control.units import UNITS, format_size, parse_size

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1073741824", GiB),
        ("512", 512),
        ("512B", 512),
        ("64M", 64 * MiB),
        ("64m", 64 * MiB),
        ("10G", 10 * GiB),
        ("10GB", 10 * GiB),
        ("1Gi", GiB),
        ("512MiB", 512 * MiB),
        ("2kib", 2 * KiB),
        ("1T", TiB),
        (" 1.5G ", 3 * GiB // 2),
    ],
)
def test_parse(text: str, size: int) -> None:
    """Every spelling of a binary unit gives the same number of bytes."""
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "ten", "10X", "-1G", "1.2.3M", "10 G B", "1iB", "0.5B"])
def test_parse_junk(text: str) -> None:
    """Anything else is refused with a message that shows an example."""
    with pytest.raises(InvalidRequest, match="size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [(None, "-"), (0, "0"), (1000, "1000"), (64 * MiB, "64M"), (1536 * MiB, "1536M")],
)
def test_format(size: int | None, text: str) -> None:
    """A size is written in the largest unit that divides it exactly."""
    assert format_size(size) == text


@given(st.integers(min_value=0, max_value=2**62))
def test_round_trip(size: int) -> None:
    """Formatting then parsing gives back the same number of bytes."""
    assert parse_size(format_size(size)) == size


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(UNITS)), st.booleans())
def test_unit_multiplies(number: int, unit: str, iec: bool) -> None:
    """N followed by a unit is N times that unit's bytes, in both spellings."""
    suffix = unit + ("iB" if iec and unit else "")
    assert parse_size(f"{number}{suffix}") == number * UNITS[unit]


def test_huge_sizes_are_refused_exactly() -> None:
    """A size past 2**63-1 bytes is refused as too large, not rounded into another error."""
    with pytest.raises(InvalidRequest, match="largest size"):
        parse_size("99999999999999999999999T")
    assert parse_size("8388607T") == 8388607 * 1024**4
