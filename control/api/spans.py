"""
A report body's dataset entries as byte spans, so that only the entries whose bytes changed
are decoded (issue 16).

An agent's report lists every dataset of its node, and a changed report usually differs
from the last in one or two entries. A body is cut at each ``{`` (one ``bytes.split``):
after the top-level object's own, each piece is one entry's bytes from just after its
``{``, through its ``}``, the comma and the whitespace before the next entry's ``{``.

A piece is *known* when it is a key of an :data:`Index`: a piece that was proved to be
exactly one entry followed by a comma, mapped to the state it decodes to. The proof does
not depend on where the piece was found: a JSON object is self-delimiting, so wherever a
parser expects an array element and finds ``{`` followed by a known piece, it reads that
entry and that comma, and then expects the next element. :func:`read` walks the pieces
from the array's start: known pieces are taken as they are, and every other piece is
decoded (:func:`json.JSONDecoder.raw_decode`), which proves it or finds the array's end.
The other members of the body (the header before the array and everything after it) are
decoded together, with an empty array in between.

Anything unexpected answers ``None``, and the caller reads the whole body as before:
another layout of the header, a ``{`` inside a string, a key ``datasets`` given twice,
bad UTF-8, a lone surrogate, a malformed entry. So the result is always what decoding the
whole body would give, and a malformed body is refused with the words it always got.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from attrs import frozen

T = TypeVar("T")

Index = Mapping[bytes, T]
"""Known pieces (one entry, its comma and whitespace, without the entry's ``{``) and what
each decodes to."""

_WS = b" \t\n\r"
"""JSON's whitespace."""

_HEADER = re.compile(
    rb'(?:"[^"\\]*": ?(?:null|true|false|-?[0-9]+|"[^"\\]*"), ?)*"datasets": ?\[[ \t\n\r]*'
)
"""What may stand between the body's ``{`` and its first entry's: members whose values are
plain (no escapes, no objects or arrays), then ``"datasets": [``. Each string ends at its
first quote, so the ``[`` matched is the top-level member ``datasets``'s array; a number or
string that is not valid JSON is refused when the members are decoded."""

_COMMA = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constants)


@frozen
class Spans:
    """A body read by pieces: its entries' pieces and the entries decoded afresh."""

    members: dict[str, Any]
    """The body's other members, and ``datasets``: an empty list."""
    pieces: list[bytes]
    """Each entry's piece but the last's, in order (every one proved: known or decoded)."""
    fresh: list[tuple[bytes | None, dict[str, Any]]]
    """The entries that were not known, in order, each with its piece (``None``: the last
    entry, whose piece runs on past the array's end)."""


def _plain(value: Any) -> bool:
    """Whether ``value`` holds no lone surrogate (only an escape can make one)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _header(pieces: list[bytes]) -> bool:
    """Whether the body's start is the expected one: whitespace, ``{``, plain members, then
    its only ``"datasets": [``, and an entry's ``{``."""
    return (
        len(pieces) > 2
        and not pieces[0].strip(_WS)
        and _HEADER.fullmatch(pieces[1]) is not None
        and pieces[1].count(b'"datasets"') == 1
    )


def _members(header: bytes, tail: str) -> dict[str, Any] | None:
    """The body's members but the entries (``datasets``: empty), decoded from its header and
    ``tail`` (from the array's ``]`` on); ``None`` if malformed, or ``datasets`` is given
    again (the last of a key counts, so the entries would not be the body's)."""
    try:
        text = "{" + header.decode("utf-8") + tail  # a bad byte in the header: malformed
        if "\\" not in tail:
            if '"datasets"' in tail:
                return None
            value = _DECODER.decode(text)
        else:  # a key may be written with escapes: count the top-level keys as decoded
            seen: list[list[tuple[str, Any]]] = []

            def pairs(found: list[tuple[str, Any]]) -> dict[str, Any]:
                seen.append(found)  # the top-level object is the last one finished
                return dict(found)

            value = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=pairs).decode(
                text
            )
            if [key for key, _ in seen[-1]].count("datasets") != 1:
                return None
            if "\\u" in tail and not _plain(value):
                return None
    except (ValueError, RecursionError):
        return None
    if type(value) is not dict or value.get("datasets") != []:
        return None
    return value


def _entry(piece: bytes) -> tuple[dict[str, Any], str] | None:
    """The entry starting ``{`` + ``piece``, and what follows it in the piece."""
    try:
        text = "{" + piece.decode("utf-8")
        value, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):
        return None
    if type(value) is not dict or (b"\\u" in piece and not _plain(value)):
        return None
    return value, text[end:]


def read(raw: bytes, index: Index[Any]) -> Spans | None:
    """``raw``'s entries by pieces, those in ``index`` not decoded; ``None``: read it whole."""
    pieces = raw.split(b"{")
    if not _header(pieces):
        return None
    known = list(map(index.__contains__, pieces))
    fresh: list[tuple[bytes | None, dict[str, Any]]] = []
    at = 2
    while True:
        try:
            at = known.index(False, at)
        except ValueError:
            return None  # no end of the array
        found = _entry(pieces[at])
        if found is None:
            return None
        value, rest = found
        if _COMMA.fullmatch(rest):
            fresh.append((pieces[at], value))
            at += 1
            continue
        tail = rest.lstrip(" \t\n\r")
        if not tail.startswith("]"):
            return None
        fresh.append((None, value))
        break
    if at + 1 < len(pieces):
        try:
            tail += "{" + b"{".join(pieces[at + 1 :]).decode("utf-8")
        except ValueError:
            return None
    members = _members(pieces[1], tail)
    if members is None:
        return None
    return Spans(members, pieces[2:at], fresh)


def index_of(raw: bytes, entries: Sequence[T]) -> dict[bytes, T] | None:
    """The :data:`Index` of ``raw``, a body decoded whole whose ``datasets`` was checked to be
    a list of flat objects, ``entries`` being what they decode to, in order; ``None`` when
    its pieces cannot be proved cheaply.

    Without a backslash, a quote always opens or closes a string, so a ``{`` after an even
    number of them is outside every string. The header's are even (:data:`_HEADER`); if each
    entry's piece holds an even number too, each cut is at a ``{`` outside strings: the next
    entry's (the entries hold no objects), so the pieces are the entries. The last entry and
    what follows it are checked as :func:`read` checks them: the array ends after it, and
    ``datasets`` is not given again."""
    pieces = raw.split(b"{")
    count = len(entries)
    if not count or len(pieces) < count + 2 or not _header(pieces):
        return None
    body = pieces[2 : count + 1]
    for piece in body:
        if b"\\" in piece or piece.count(b'"') & 1:
            return None
    found = _entry(pieces[count + 1])
    if found is None:
        return None
    tail = found[1].lstrip(" \t\n\r")
    if not tail.startswith("]"):
        return None
    if count + 2 < len(pieces):
        tail += "{" + b"{".join(pieces[count + 2 :]).decode("utf-8")
    if _members(pieces[1], tail) is None:
        return None
    return dict(zip(body, entries[:-1], strict=True))
