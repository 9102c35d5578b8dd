"""The report encoder sends exactly the bytes ``node_state_to_json`` encodes, whatever it reused."""

from __future__ import annotations

import json
from uuid import UUID

from attrs import evolve
from hypothesis import given, settings
from hypothesis import strategies as st

from control.client.reports import ReportEncoder
from control.model import (
    Capacity,
    Condition,
    ConditionKind,
    DatasetState,
    NodeState,
    OrphanVolume,
    ReportedSnapshot,
    VolumeStatus,
)
from control.wire import node_state_to_json

NODE = UUID(int=1)
IDS = [UUID(int=100 + i) for i in range(6)]


def plain(state: NodeState) -> bytes:
    """The body as the client encoded it before the encoder (treq's ``json=``)."""
    return json.dumps(node_state_to_json(state), separators=(",", ":")).encode("utf-8")


entries = st.builds(
    DatasetState,
    dataset_id=st.sampled_from(IDS),
    status=st.sampled_from(list(VolumeStatus)),
    maximum_size=st.none() | st.integers(0, 2**40) | st.sampled_from([1.0, 2.5, True]),
    device=st.none() | st.sampled_from(["/dev/a", "/dev/b", 'we"ird\\dev', "é"]),
    path=st.none() | st.sampled_from(["/m/a", "/m/b", '"datasets":[]']),
)
reports = st.builds(
    NodeState,
    node_uuid=st.just(NODE),
    era=st.none() | st.sampled_from(["e1", "e2", '"datasets":[]', "ü"]),
    generation=st.integers(0, 10**6),
    datasets=st.lists(entries, max_size=6).map(lambda xs: {x.dataset_id: x for x in xs}),
    conditions=st.lists(
        st.builds(Condition, dataset_id=st.none() | st.sampled_from(IDS),
                  kind=st.sampled_from(list(ConditionKind)),
                  reason=st.sampled_from(["busy", "io_error"]),
                  message=st.sampled_from(["m", '"datasets":[]']),
                  since=st.floats(0, 1e9)),
        max_size=2,
    ).map(tuple),
    capacity=st.none() | st.builds(Capacity, backend=st.just("fake"),
                                      free=st.none() | st.integers(0, 10**12)),
    orphans=st.lists(st.builds(OrphanVolume, blockdevice_id=st.sampled_from(["v1", "v2"])),
                     max_size=2).map(tuple),
    snapshots=st.lists(st.builds(ReportedSnapshot, snapshot_id=st.sampled_from(IDS),
                                 size=st.integers(0, 10**9)), max_size=2).map(tuple),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(reports, min_size=1, max_size=8))
def test_any_sequence_of_reports_encodes_exactly(sequence: list[NodeState]) -> None:
    """Over any sequence of reports (entries recurring, changing in any field, maps
    reused or rebuilt), each body equals the plain encoding of that report."""
    encoder = ReportEncoder()
    for report in sequence:
        assert encoder.encode(report) == plain(report)
        assert encoder.encode(report) == plain(report)  # the same map again: reused


def _report(**changes: object) -> NodeState:
    datasets = {i: DatasetState(i, VolumeStatus.MOUNTED, 2**26, f"/dev/{n}", f"/m/{i}")
                for n, i in enumerate(IDS)}
    return evolve(NodeState(NODE, "e1", 3, datasets), **changes)


def test_unchanged_report_reuses_the_list_and_its_entries() -> None:
    """A heartbeat of the same map sends the very list encoded last time; an equal map
    rebuilt reuses each entry's text (none is encoded again)."""
    encoder = ReportEncoder()
    first = _report()
    body = encoder.encode(first)
    listed = encoder._last[NODE].listed
    assert encoder.encode(evolve(first, generation=4)) == plain(evolve(first, generation=4))
    assert encoder._last[NODE].listed is listed
    rebuilt = evolve(first, datasets=dict(first.datasets))
    texts = {id(t) for t in encoder._last[NODE].entries.values()}
    assert encoder.encode(rebuilt) == body
    assert {id(t) for t in encoder._last[NODE].entries.values()} == texts


def test_any_changed_field_of_an_entry_is_encoded_afresh() -> None:
    """Each field of one entry changed (the others equal) shows in the body."""
    encoder = ReportEncoder()
    first = _report()
    encoder.encode(first)
    entry = first.datasets[IDS[2]]
    for change in ({"status": VolumeStatus.ATTACHED}, {"maximum_size": 2**27},
                   {"maximum_size": None}, {"device": "/dev/other"}, {"path": None},
                   {"path": "/m/elsewhere"}):
        changed = evolve(first, datasets=first.datasets.set(IDS[2], evolve(entry, **change)))
        assert encoder.encode(changed) == plain(changed)
        assert encoder.encode(first) == plain(first)


def test_equal_numbers_of_other_types_are_not_confused() -> None:
    """A size of 1.0 (equal to 1, and hashing alike) is not sent as the cached 1."""
    encoder = ReportEncoder()
    whole = _report(datasets={IDS[0]: DatasetState(IDS[0], VolumeStatus.PRESENT, 1)})
    floating = _report(datasets={IDS[0]: DatasetState(IDS[0], VolumeStatus.PRESENT, 1.0)})  # type: ignore[arg-type]
    assert encoder.encode(whole) == plain(whole)
    assert encoder.encode(floating) == plain(floating)
    assert b'"maximum_size":1.0' in encoder.encode(floating)


def test_dropped_and_added_entries() -> None:
    """Entries removed or added since the last report are gone from, or in, the body."""
    encoder = ReportEncoder()
    first = _report()
    encoder.encode(first)
    fewer = evolve(first, datasets=first.datasets.remove(IDS[0]))
    assert encoder.encode(fewer) == plain(fewer)
    assert str(IDS[0]).encode() not in encoder.encode(fewer)
    assert encoder.encode(first) == plain(first)
    empty = evolve(first, datasets={})
    assert encoder.encode(empty) == plain(empty)


def test_reports_of_two_nodes_keep_their_own_lists() -> None:
    """One client reporting for two nodes in turn reuses each node's own list, and each
    body is that node's."""
    encoder = ReportEncoder()
    other = UUID(int=2)
    mine = _report()
    theirs = evolve(_report(), node_uuid=other,
                    datasets={IDS[0]: DatasetState(IDS[0], VolumeStatus.PRESENT)})
    for _ in range(2):
        assert encoder.encode(mine) == plain(mine)
        assert encoder.encode(theirs) == plain(theirs)
    assert encoder._last[NODE].datasets is mine.datasets
    assert encoder._last[other].datasets is theirs.datasets
