"""
Parse and format sizes given by people, such as ``10G`` or ``512MiB``.

The convention is the Docker CLI's (and Flocker's): every unit is *binary*.
``K``, ``M``, ``G`` and ``T`` mean 1024, 1024², 1024³ and 1024⁴ bytes, and so
do their IEC spellings ``Ki``/``Mi``/``Gi``/``Ti``, with or without a trailing
``B`` (``KB``, ``MiB``), in any letter case. A plain number, or one ending in
``B``, is a count of bytes. Note that this differs from Kubernetes, where ``M``
and ``G`` are decimal: ``10G`` here is 10 GiB, never 10⁹ bytes.

A decimal fraction is accepted when the result is a whole number of bytes
(``1.5G``); anything else is refused with :class:`~control.errors.InvalidRequest`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext

from control.errors import InvalidRequest

UNITS: dict[str, int] = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
"""Bytes per unit prefix (binary, see the module docstring)."""

MAX_SIZE = 2**63 - 1
"""The largest size the API stores (a signed 64-bit integer)."""

_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]?)(?P<i>I?)(?P<b>B?)\s*$")


def parse_size(text: str) -> int:
    """Return the number of bytes ``text`` names, or raise :class:`InvalidRequest`."""
    if text.strip().startswith("-"):
        raise InvalidRequest(f"Invalid size {text!r}: a size cannot be negative.")
    match = _SIZE.match(text.upper())
    if match is None or (match["i"] and not match["unit"]):
        raise InvalidRequest(
            f"Invalid size {text!r}: give a number of bytes, optionally followed by a binary "
            "unit K, M, G or T (also written Ki/KiB, Mi/MiB, ...), e.g. 64M, 10G, 512MiB."
        )
    with localcontext(prec=len(match["number"]) + 20):  # exact: never rounds
        try:
            number = Decimal(match["number"])
        except InvalidOperation as e:  # pragma: no cover - the pattern admits only digits
            raise InvalidRequest(f"Invalid size {text!r}.") from e
        size = number * UNITS[match["unit"]]
    if size != size.to_integral_value():
        raise InvalidRequest(f"Invalid size {text!r}: it is not a whole number of bytes.")
    if size > MAX_SIZE:
        raise InvalidRequest(f"Invalid size {text!r}: the largest size is {MAX_SIZE} bytes.")
    return int(size)


def format_size(size: int | None) -> str:
    """The shortest exact spelling of ``size`` that :func:`parse_size` reads back.

    ``None`` (no limit) is written ``-``.
    """
    if size is None:
        return "-"
    for unit in ("T", "G", "M", "K"):
        if size and size % UNITS[unit] == 0:
            return f"{size // UNITS[unit]}{unit}"
    return str(size)


def describe_size(size: int) -> str:
    """``size`` for a person: bytes in the largest binary unit, e.g. ``1.9 GiB``, ``100 TiB``.

    Not exact (one decimal, rounded down so a limit is never overstated); use
    :func:`format_size` where the text must be read back.
    """
    for unit, name in (("E", "EiB"), ("P", "PiB"), ("T", "TiB"), ("G", "GiB"), ("M", "MiB")):
        factor = _NAMED[unit]
        if size >= factor:
            tenths = size * 10 // factor
            whole, tenth = divmod(tenths, 10)
            return f"{whole} {name}" if tenth == 0 else f"{whole}.{tenth} {name}"
    return f"{size} bytes"


_NAMED: dict[str, int] = {**UNITS, "P": 1024**5, "E": 1024**6}
