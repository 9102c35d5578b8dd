"""The state listing encoder answers like plain encoding and never serves a stale answer."""

from __future__ import annotations

import json
import uuid

from control.api.listing import StateListingEncoder
from control.failover import visible_state
from control.model import (
    ClusterState,
    Configuration,
    Dataset,
    DatasetState,
    Fence,
    Node,
    NodeState,
    VolumeStatus,
)
from control.wire import state_datasets_to_json

NODE, OTHER = uuid.uuid4(), uuid.uuid4()
DATASET = uuid.uuid4()


def state(version: int, status: VolumeStatus, fence: Fence | None = None) -> ClusterState:
    """NODE (fenced, if given) reporting DATASET with ``status``, at ``version``."""
    reported = DatasetState(dataset_id=DATASET, status=status, path="/m/d")
    return ClusterState(
        version=version,
        nodes={NODE: Node(uuid=NODE, host="a", fence=fence)},
        reports={NODE: NodeState(node_uuid=NODE, datasets={DATASET: reported})},
    )


def configuration(generation: int, primary: uuid.UUID) -> Configuration:
    """DATASET on ``primary``, at ``generation``."""
    return Configuration(
        generation=generation, datasets={DATASET: Dataset(dataset_id=DATASET, primary=primary)}
    )


def test_listing_matches_plain_encoding() -> None:
    """The encoded listing is the visible state's JSON."""
    now, config = state(1, VolumeStatus.MOUNTED), configuration(1, NODE)
    body = StateListingEncoder().datasets(now, config)
    assert json.loads(body) == state_datasets_to_json(visible_state(now, config))


def test_unchanged_counters_reuse_the_answer() -> None:
    """Reading again at the same version and generation answers the same bytes, unencoded."""
    encoder = StateListingEncoder()
    now, config = state(1, VolumeStatus.MOUNTED), configuration(1, NODE)
    assert encoder.cached(now, config) is None
    body = encoder.datasets(now, config)
    cached = encoder.cached(now, config)
    assert cached is not None and b"".join(cached) == body
    assert encoder.cached(now, config) is cached


def test_new_state_version_is_encoded_again() -> None:
    """A report that moved the state version is listed as it is now."""
    encoder = StateListingEncoder()
    config = configuration(1, NODE)
    encoder.datasets(state(1, VolumeStatus.MOUNTED), config)
    listed = json.loads(encoder.datasets(state(2, VolumeStatus.PRESENT), config))
    assert "primary" not in listed[0]


def test_new_generation_is_encoded_again() -> None:
    """A move away from a fenced node hides its report, though the state version is the same."""
    encoder = StateListingEncoder()
    fenced = state(1, VolumeStatus.MOUNTED, Fence(at=1.0, reason="test"))
    assert len(json.loads(encoder.datasets(fenced, configuration(1, NODE)))) == 1
    assert json.loads(encoder.datasets(fenced, configuration(2, OTHER))) == []


def test_another_node_is_encoded_again() -> None:
    """One node's view (``?node=``) is not answered with the whole listing, nor the reverse."""
    encoder = StateListingEncoder()
    now, config = state(1, VolumeStatus.MOUNTED), configuration(1, NODE)
    assert len(json.loads(encoder.datasets(now, config))) == 1
    assert json.loads(encoder.datasets(now, config, OTHER)) == []
    assert len(json.loads(encoder.datasets(now, config))) == 1
