"""Unit tests of the model's validation and time-dependent methods."""

from __future__ import annotations

from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrsistent import PMap

from control.errors import InvalidRequest
from control.model import (
    MINIMUM_DATASET_SIZE,
    Configuration,
    Dataset,
    Lease,
    Node,
    NodeState,
    Versions,
    tag_for,
)


@given(st.integers(min_value=MINIMUM_DATASET_SIZE // 1024, max_value=2**40).map(lambda k: k * 1024))
def test_valid_sizes(size: int) -> None:
    """Whole KiB sizes of at least 64 MiB are accepted."""
    assert Dataset(dataset_id=uuid4(), primary=uuid4(), maximum_size=size).maximum_size == size


@pytest.mark.parametrize("size", [MINIMUM_DATASET_SIZE - 1024, MINIMUM_DATASET_SIZE + 1, 1.5e9,
                                  True, "67108864", 0, -MINIMUM_DATASET_SIZE])
def test_invalid_sizes(size: object) -> None:
    """Small, unaligned and non-integer sizes are refused."""
    with pytest.raises(InvalidRequest):
        Dataset(dataset_id=uuid4(), primary=uuid4(), maximum_size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "metadata",
    [{str(i): "v" for i in range(17)}, {"": "v"}, {"k" * 257: "v"}, {"k": "v" * 257},
     {"k": 1}, {1: "v"}],
)
def test_invalid_metadata(metadata: dict) -> None:
    """Metadata beyond Flocker's limits, or not strings, is refused."""
    with pytest.raises(InvalidRequest):
        Dataset(dataset_id=uuid4(), primary=uuid4(), metadata=metadata)


def test_metadata_frozen_and_name() -> None:
    """Metadata is stored frozen, equal to the dict given; ``name`` reads it."""
    dataset = Dataset(dataset_id=uuid4(), primary=uuid4(), metadata={"name": "db"})
    assert isinstance(dataset.metadata, PMap) and dataset.metadata == {"name": "db"}
    assert dataset.name == "db"
    assert Dataset(dataset_id=uuid4(), primary=uuid4()).name is None


@given(st.floats(0, 1e6), st.floats(0, 1e6))
def test_lease_expiry(expires: float, now: float) -> None:
    """A lease expires when ``now`` reaches ``expires``, and never counts below zero."""
    lease = Lease(uuid4(), uuid4(), expires)
    assert lease.expired(now) is (expires <= now)
    left = lease.seconds_left(now)
    assert left is not None and left >= 0 and (left == 0) is (expires <= now)
    forever = Lease(uuid4(), uuid4(), None)
    assert not forever.expired(now) and forever.seconds_left(now) is None


def test_node_liveness() -> None:
    """A node is live within ``timeout`` of last being seen; never seen is not live."""
    node = Node(uuid=uuid4(), host="h", last_seen=100.0)
    assert node.is_live(110.0, 10.0) and not node.is_live(110.5, 10.0)
    assert not Node(uuid=uuid4(), host="h").is_live(0.0, 10.0)


def test_same_observation_ignores_time() -> None:
    """Reports differing only in when they were sent are the same observation."""
    n = uuid4()
    first = NodeState(node_uuid=n, era="e", generation=1, reported_at=1.0)
    assert first.same_observation(NodeState(node_uuid=n, era="e", generation=1, reported_at=2.0))
    assert not first.same_observation(NodeState(node_uuid=n, era="e", generation=2))
    assert not first.same_observation(NodeState(node_uuid=n, era="f", generation=1))


def test_configuration_tag_and_live_leases() -> None:
    """The tag is the generation's string; live_leases drops expired ones."""
    live, dead = Lease(uuid4(), uuid4(), 20.0), Lease(uuid4(), uuid4(), 5.0)
    configuration = Configuration(
        generation=7, leases={live.dataset_id: live, dead.dataset_id: dead}
    )
    assert configuration.tag == tag_for(7) == "7"
    assert configuration.live_leases(10.0) == {live.dataset_id: live}


def test_versions_passed() -> None:
    """Either counter beyond the given values counts as passed."""
    versions = Versions(configuration=3, state=5)
    assert not versions.passed(3, 5)
    assert versions.passed(2, 5) and versions.passed(3, 4)
