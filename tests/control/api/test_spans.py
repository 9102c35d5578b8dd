"""A report body read by pieces against the node's last one decodes, or is refused, exactly as
the same body read whole (:mod:`control.api.spans`, :class:`control.api.reports.ReportReader`)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control.api import spans
from control.api.reports import ReportReader, digest
from control.derived import DERIVED
from control.errors import InvalidRequest
from control.model import NodeState
from control.reach import dataset_changes

NODE = UUID("aaaaaaaa-0000-4000-8000-000000000001")
IDS = [UUID(f"{n:08x}-0000-4000-8000-{n:012x}") for n in range(1, 9)]
COMPACT = (",", ":")
SPACED = (", ", ": ")


def _entry(dataset: UUID, status: str = "mounted", **more: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"dataset_id": str(dataset), "status": status,
                             "maximum_size": 67108864, "device": f"/dev/fake/{dataset}"}
    if status == "mounted":
        entry["path"] = f"/mnt/{dataset}"
    return {**entry, **more}


def _body(entries: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {"era": "e1", "generation": 3, "datasets": entries, "conditions": [],
            "capacity": None, "capacities": [], "orphans": [], "snapshots": [], **more}


def _encode(body: Any, separators: tuple[str, str] = COMPACT, **options: Any) -> bytes:
    return json.dumps(body, separators=separators, **options).encode()


def _outcome(reader: ReportReader, raw: bytes, now: float) -> Any:
    """The report ``reader`` decodes from ``raw``, or its refusal's words."""
    try:
        return reader.decode(raw, digest(raw), NODE, now)
    except InvalidRequest as e:
        reader.forget(NODE)
        return ("refused", e.description, e.errors)


def _check(bodies: list[bytes]) -> list[Any]:
    """Each body read after the ones before it, checked against the same body read whole
    (by a reader that has seen nothing); the outcomes."""
    reader = ReportReader()
    outcomes: list[Any] = []
    for now, raw in enumerate(bodies):
        read = _outcome(reader, raw, float(now))
        assert read == _outcome(ReportReader(), raw, float(now)), raw
        before = next((o for o in reversed(outcomes) if isinstance(o, NodeState)), None)
        if before is not None and isinstance(read, NodeState):
            differ = DERIVED.differ(NODE, before.datasets, read.datasets)
            assert differ is None or differ == dataset_changes(before, read)
        outcomes.append(read)
    return outcomes


def _pieces_of(raw: bytes, states: int) -> dict[bytes, int] | None:
    return spans.index_of(raw, list(range(states)))


def test_a_changed_body_decodes_only_its_changed_entries() -> None:
    """After a body of eight entries, a body changing one decodes that one and the last entry
    only; the other states are the last report's objects, and the report is the whole one."""
    for separators in (COMPACT, SPACED):
        first = _encode(_body([_entry(d) for d in IDS]), separators)
        second = _encode(_body([_entry(IDS[0], "attached"), *map(_entry, IDS[1:])]), separators)
        index = _pieces_of(first, len(IDS))
        assert index is not None and len(index) == len(IDS) - 1
        read = spans.read(second, index)
        assert read is not None
        assert [value["dataset_id"] for _, value in read.fresh] == [str(IDS[0]), str(IDS[-1])]
        assert read.fresh[-1][0] is None  # the last entry: its piece runs past the array
        reader = ReportReader()
        before = reader.decode(first, digest(first), NODE, 1.0)
        after = reader.decode(second, digest(second), NODE, 2.0)
        assert after == ReportReader().decode(second, digest(second), NODE, 2.0)
        assert all(after.datasets[d] is before.datasets[d] for d in IDS[1:])
        assert after.datasets[IDS[0]].status.value == "attached"
        assert DERIVED.differ(NODE, before.datasets, after.datasets) == {IDS[0]}


def test_bodies_that_drop_add_and_reorder_entries_read_as_whole_ones() -> None:
    """Dropping, adding back, reordering entries, and changing the last one, each read against
    the body before: the same reports as read whole."""
    entries = [_entry(d) for d in IDS]
    bodies = [
        _body(entries),
        _body(entries[:3] + entries[4:]),
        _body(entries),
        _body(list(reversed(entries))),
        _body(entries[:-1] + [_entry(IDS[-1], "attached")]),
        _body(entries[1:]),
        _body([]),
        _body(entries[:1]),
        _body(entries),
    ]
    outcomes = _check([_encode(body) for body in bodies])
    assert all(type(outcome) is not tuple for outcome in outcomes)


def test_whitespace_and_layout_changes_read_as_whole_ones() -> None:
    """The same report written compact, spaced, indented, with odd whitespace between
    entries, or with its members in another order: read as whole."""
    body = _body([_entry(d) for d in IDS])
    compact = _encode(body)
    bodies = [
        compact,
        _encode(body, SPACED),
        compact,
        json.dumps(body, indent=2).encode(),
        compact.replace(b"},{", b"} ,\n\t{", 3),
        compact,
        _encode({"datasets": body["datasets"], "generation": 3, "era": "e1"}),
        compact,
        b"  \n" + compact + b"\n",
    ]
    _check(bodies)


def test_escapes_and_braces_in_strings_read_as_whole_ones() -> None:
    """Paths and devices holding braces, quotes, backslashes, the entry separator, non-ASCII
    text written raw or escaped, and an era with an escape: read as whole."""
    odd = ['/mnt/a},{"dataset_id":"x"', '/mnt/b\\"{', "/mnt/caf\u00e9", '/mnt/{}', "/mnt/,{"]
    base = [_entry(d) for d in IDS]
    bodies = [_encode(_body(base))]
    for n, path in enumerate(odd):
        changed = list(base)
        changed[n + 1] = _entry(IDS[n + 1], path=path)
        bodies.append(_encode(_body(changed)))
        bodies.append(_encode(_body([*changed[:-2], _entry(IDS[-2], "attached"), base[-1]])))
        bodies.append(_encode(_body(changed), ensure_ascii=False))
        bodies.append(_encode(_body(base)))
    bodies.append(_encode(_body(base, era="e\u00e91")))
    bodies.append(_encode(_body(base, era='e"1')))
    bodies.append(_encode(_body(base)))
    _check(bodies)


def test_a_repeated_datasets_key_reads_as_a_whole_body() -> None:
    """A body giving ``datasets`` again after the first (plainly, or with an escape in its
    key), or before it: the last one counts, as when read whole."""
    base = _encode(_body([_entry(d) for d in IDS]))
    again = base[:-1] + b',"datasets":[]}'
    escaped = base[:-1] + b',"data\\u0073ets":[]}'
    other = base[:-1] + b',"datasets":[' + _encode(_entry(IDS[0], "attached")) + b"]}"
    before = b'{"datasets":[],' + base[1:]
    outcomes = _check([base, again, base, escaped, base, other, base, before])
    assert outcomes[1].datasets == {}
    assert outcomes[3].datasets == {}
    assert set(outcomes[5].datasets) == {IDS[0]}


def test_duplicate_entries_are_refused_as_in_a_whole_body() -> None:
    """An entry listed twice (the same bytes, or a changed entry of a dataset whose old entry
    is repeated) is refused with the words a whole body gets."""
    entries = [_entry(d) for d in IDS]
    bodies = [
        _body(entries),
        _body([*entries[:-1], entries[0], entries[-1]]),
        _body(entries),
        _body([*entries, _entry(IDS[2], "attached")]),
        _body(entries),
        _body([_entry(IDS[2], "attached"), *entries]),
    ]
    outcomes = _check([_encode(body) for body in bodies])
    assert [type(outcome) is tuple for outcome in outcomes] == [False, True] * 3


def test_malformed_bodies_are_refused_as_whole_ones() -> None:
    """After a good body, a body cut short, with a bad byte (in an entry or the header), NaN, a
    lone surrogate, a bad entry among repeated ones, or too deep: refused with the same words,
    and the next good body is read as whole."""
    good = _encode(_body([_entry(d) for d in IDS]))
    cut = good.index(b'"status"', len(good) // 2)
    bads = [
        good[:-1],
        good[:cut] + b"\xff" + good[cut:],
        good.replace(b'"e1"', b'"\xff"', 1),
        good.replace(b'"e1"', b'"\xed\xa0\x80"', 1),
        good.replace(b"67108864", b"NaN", 1),
        good.replace(b"/mnt/", b"/mnt/\\ud800", 1),
        good.replace(b'"mounted"', b'"melted"', 2),
        good.replace(b'"mounted"', b'"attached"', 1),
        good[:cut] + b"[" * 5000 + good[cut:],
        good.replace(b"67108864", b"67108864.0", 1),
        good.replace(b'"status"', b'"colour":"red","status"', 1),
    ]
    for bad in bads:
        outcomes = _check([good, bad, good])
        assert type(outcomes[0]) is not tuple and type(outcomes[2]) is not tuple


# -- the property: any sequence of bodies, read one after another -----------------------

_TEXT = st.text(alphabet='ab/{}[],:"\\ \u00e9\n', max_size=8)
_STATUS = st.sampled_from(["mounted", "attached", "detached", "unattached", "melted"])


@st.composite
def _entries(draw: st.DrawFn) -> dict[str, Any]:
    dataset = draw(st.sampled_from(IDS))
    entry: dict[str, Any] = {
        "dataset_id": draw(st.sampled_from([str(dataset), str(dataset).upper()])),
        "status": draw(_STATUS),
    }
    if draw(st.booleans()):
        entry["maximum_size"] = draw(st.sampled_from([None, 67108864, 0, 1.0, True, -1]))
    if draw(st.booleans()):
        entry["device"] = draw(st.one_of(st.none(), st.just("/dev/x"), _TEXT))
    if draw(st.booleans()):
        entry["path"] = draw(st.one_of(st.none(), st.just(f"/mnt/{dataset}"),
                                       _TEXT.map(lambda t: "/mnt/" + t)))
    keys = draw(st.permutations(list(entry)))
    return {key: entry[key] for key in keys}


def _mutate(raw: bytes, how: tuple[str, int, int]) -> bytes:
    kind, at, byte = how
    at %= len(raw) + 1
    if kind == "delete":
        return raw[:at] + raw[at + 1 :]
    if kind == "insert":
        return raw[:at] + bytes([byte]) + raw[at:]
    if kind == "duplicate":
        return raw[:-1] + b',"datasets":[]}'
    return raw


@st.composite
def _bodies(draw: st.DrawFn) -> list[bytes]:
    entries = draw(st.lists(_entries(), min_size=1, max_size=6))
    bodies = []
    for _ in range(draw(st.integers(1, 5))):
        step = draw(st.sampled_from(["same", "change", "drop", "add", "swap"]))
        if step == "change" and entries:
            entries[draw(st.integers(0, len(entries) - 1))] = draw(_entries())
        elif step == "drop" and entries:
            del entries[draw(st.integers(0, len(entries) - 1))]
        elif step == "add":
            entries.insert(draw(st.integers(0, len(entries))), draw(_entries()))
        elif step == "swap" and len(entries) > 1:
            entries[0], entries[-1] = entries[-1], entries[0]
        more = draw(st.sampled_from([{}, {"era": None}, {"era": "e\u00e9"},
                                     {"conditions": [{"kind": "x"}]}]))
        raw = _encode(_body(list(entries), **more),
                      draw(st.sampled_from([COMPACT, SPACED, (",", ": ")])),
                      ensure_ascii=draw(st.booleans()))
        how = draw(st.tuples(st.sampled_from(["none"] * 6 + ["delete", "insert", "duplicate"]),
                             st.integers(0, 10**6), st.sampled_from(b'{}[],:" \\x0')))
        bodies.append(_mutate(raw, how))
    return bodies


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies())
def test_any_sequence_of_bodies_reads_as_whole_ones(bodies: list[bytes]) -> None:
    """Any sequence of bodies (entries changed, dropped, added, reordered; another layout,
    escapes, bytes deleted or inserted, ``datasets`` given twice), each read after the
    others: the report, or the refusal, that the body read whole gives."""
    _check(bodies)
