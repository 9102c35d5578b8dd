"""Tests for control.wire: JSON <-> model conversion."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.errors import InvalidRequest
from control.model import (
    MINIMUM_DATASET_SIZE,
    ClusterState,
    Dataset,
    DatasetState,
    Lease,
    Node,
    NodeState,
    Versions,
    VolumeStatus,
)
from control.wire import (
    dataset_from_json,
    dataset_to_json,
    lease_from_json,
    lease_to_json,
    node_from_json,
    node_state_from_json,
    node_state_to_json,
    node_to_json,
    parse_uuid,
    state_datasets_to_json,
    versions_from_json,
    versions_to_json,
)

A = UUID("aaaaaaaa-0000-4000-8000-000000000001")
B = UUID("bbbbbbbb-0000-4000-8000-000000000002")
D1 = UUID("11111111-0000-4000-8000-000000000001")
D2 = UUID("22222222-0000-4000-8000-000000000002")
D3 = UUID("33333333-0000-4000-8000-000000000003")

sizes = st.one_of(
    st.none(), st.integers(MINIMUM_DATASET_SIZE // 1024, 2**40).map(lambda k: k * 1024)
)
metadata = st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=20), max_size=5)
datasets = st.builds(
    Dataset,
    dataset_id=st.uuids(),
    primary=st.uuids(),
    maximum_size=sizes,
    metadata=metadata,
    deleted=st.booleans(),
)


@given(datasets)
def test_dataset_round_trip(dataset: Dataset) -> None:
    """A dataset survives to JSON and back."""
    assert dataset_from_json(dataset_to_json(dataset)) == dataset


def test_dataset_json_shape() -> None:
    """Dataset JSON has Flocker's fields and lower-case ids, and no size when it has none."""
    upper = UUID(str(D1).upper())
    assert dataset_to_json(Dataset(upper, A)) == {
        "dataset_id": str(D1),
        "primary": str(A),
        "metadata": {},
        "deleted": False,
    }


def test_dataset_from_json_refuses_bad_uuid() -> None:
    """A malformed id is refused with a message naming the field and the value."""
    with pytest.raises(InvalidRequest, match="primary 'nope' is not a valid UUID"):
        dataset_from_json({"dataset_id": str(D1), "primary": "nope"})


def test_dataset_from_json_refuses_missing_field() -> None:
    """A missing required field is refused, not a KeyError."""
    with pytest.raises(InvalidRequest, match="'primary' is a required property"):
        dataset_from_json({"dataset_id": str(D1)})


@given(
    st.uuids(),
    st.uuids(),
    st.one_of(st.none(), st.floats(0.5, 10**6)),
    st.floats(0, 10**9),
)
def test_lease_round_trip(dataset_id: UUID, node: UUID, seconds: float | None, now: float) -> None:
    """A lease's relative expiry becomes absolute and back again."""
    lease = lease_from_json(
        {"dataset_id": str(dataset_id), "node_uuid": str(node), "expires": seconds}, now
    )
    assert lease.expires == (None if seconds is None else now + seconds)
    again = lease_to_json(lease, now)
    assert again["dataset_id"] == str(dataset_id)
    assert again["expires"] == (None if seconds is None else pytest.approx(seconds))


def test_lease_to_json_counts_down() -> None:
    """``expires`` is the seconds left at ``now``, never negative."""
    lease = Lease(D1, A, expires=150.0)
    assert lease_to_json(lease, 100.0)["expires"] == 50.0
    assert lease_to_json(lease, 200.0)["expires"] == 0.0


def test_lease_from_json_refuses_non_number() -> None:
    """A non-numeric expiry is refused."""
    with pytest.raises(InvalidRequest):
        lease_from_json({"dataset_id": str(D1), "node_uuid": str(A), "expires": "10"}, 0.0)


def test_node_round_trip_and_liveness() -> None:
    """A node survives the round trip; ``live`` compares last_seen with the timeout."""
    node = Node(A, "h1", "era", {"zone": "z"}, last_seen=100.0)
    assert node_from_json(node_to_json(node, 120.0, 30.0)) == node
    assert node_to_json(node, 130.0, 30.0)["live"] is True
    assert node_to_json(node, 130.5, 30.0)["live"] is False


def _report() -> NodeState:
    return NodeState(
        node_uuid=A,
        era="e",
        generation=7,
        datasets={
            D2: DatasetState(D2, VolumeStatus.MOUNTED, 2**30, "/dev/vdb", "/mnt/d2"),
            D1: DatasetState(D1, VolumeStatus.PRESENT),
        },
        reported_at=5.0,
    )


def test_node_state_round_trip() -> None:
    """A node's report survives the round trip; datasets are listed by id."""
    report = _report()
    obj = node_state_to_json(report)
    assert [d["dataset_id"] for d in obj["datasets"]] == [str(D1), str(D2)]
    assert obj["datasets"][1] == {
        "dataset_id": str(D2),
        "status": "mounted",
        "maximum_size": 2**30,
        "device": "/dev/vdb",
        "path": "/mnt/d2",
    }
    assert node_state_from_json(A, obj, 5.0) == report


def test_node_state_refuses_duplicate_and_bad_status() -> None:
    """A dataset reported twice, or an unknown status, is refused."""
    item = {"dataset_id": str(D1), "status": "present"}
    with pytest.raises(InvalidRequest, match="more than once"):
        node_state_from_json(A, {"generation": 0, "datasets": [item, item]}, 0.0)
    with pytest.raises(InvalidRequest, match="not a volume status"):
        node_state_from_json(A, {"generation": 0, "datasets": [{**item, "status": "x"}]}, 0.0)


def test_state_datasets_most_advanced_status_wins() -> None:
    """One entry per dataset: mounted beats attached beats present."""
    on_a = NodeState(
        A,
        datasets={
            D1: DatasetState(D1, VolumeStatus.PRESENT, 2**30),
            D2: DatasetState(D2, VolumeStatus.ATTACHED, None, "/dev/vdc"),
            D3: DatasetState(D3, VolumeStatus.PRESENT),
        },
    )
    on_b = NodeState(
        B,
        datasets={
            D1: DatasetState(D1, VolumeStatus.MOUNTED, 2**30, "/dev/vdb", "/mnt/d1"),
            D2: DatasetState(D2, VolumeStatus.PRESENT),
        },
    )
    state = ClusterState(reports={A: on_a, B: on_b})
    assert state_datasets_to_json(state) == [
        {"dataset_id": str(D1), "primary": str(B), "path": "/mnt/d1", "maximum_size": 2**30},
        {"dataset_id": str(D2), "primary": str(A)},
        {"dataset_id": str(D3)},
    ]


def test_state_datasets_of_a_dataset_mounted_on_several_nodes() -> None:
    """A ReadOnlyMany dataset mounted on A and B: the primary's report is shown; ``node``
    shows one node's own view."""
    mounted = {n: NodeState(n, datasets={
        D1: DatasetState(D1, VolumeStatus.MOUNTED, None, "/dev/loop1", f"/mnt/{n}/d1")
    }) for n in (A, B)}
    state = ClusterState(reports=mounted)
    assert state_datasets_to_json(state, primaries={D1: B})[0]["primary"] == str(B)
    assert state_datasets_to_json(state, primaries={D1: A})[0]["primary"] == str(A)
    assert state_datasets_to_json(state, node=B)[0]["path"] == f"/mnt/{B}/d1"
    assert state_datasets_to_json(state, node=uuid4()) == []


def test_state_datasets_empty() -> None:
    """No reports, no datasets."""
    assert state_datasets_to_json(ClusterState()) == []


def test_versions_round_trip() -> None:
    """Versions survive the round trip."""
    versions = Versions(configuration=3, state=9)
    assert versions_to_json(versions) == {"configuration": 3, "state": 9}
    assert versions_from_json(versions_to_json(versions)) == versions


@pytest.mark.parametrize("value", ["", "xyz", 5, None, "1111-2222"])
def test_parse_uuid_refuses(value: object) -> None:
    """Anything but a UUID string is refused, naming what it was."""
    with pytest.raises(InvalidRequest, match="dataset_id .* is not a valid UUID"):
        parse_uuid(value, "dataset_id")
