"""
Immutable values of Shoal's cluster model.

The desired *configuration* (datasets, leases, generation) is what operators
declare; the *cluster state* (nodes and what each reports) is what agents
observe. Every value is frozen; methods that depend on time take ``now``
(seconds since the epoch) as an argument so that callers inject the clock.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from attrs import field, frozen
from pyrsistent import PMap, pmap

from control.errors import InvalidRequest

MiB = 1024 * 1024
MINIMUM_DATASET_SIZE = 64 * MiB
"""The smallest ``maximum_size`` a dataset may ask for (Flocker's limit)."""

SIZE_MULTIPLE = 1024
"""``maximum_size`` must be a multiple of this many bytes."""

MINIMUM_LEASE_SECONDS = 0.001
"""The shortest lease a node may ask for: anything shorter would expire as it is granted."""

MAX_METADATA_ITEMS = 16
MAX_METADATA_KEY = 256
MAX_METADATA_VALUE = 256


def _freeze_map(value: Mapping[Any, Any] | None) -> PMap:
    if isinstance(value, PMap):
        return value
    return pmap(value or {})


def check_maximum_size(size: int | None) -> None:
    """Raise :class:`InvalidRequest` unless ``size`` is a valid dataset size."""
    if size is None:
        return
    if isinstance(size, bool) or not isinstance(size, int):
        raise InvalidRequest("maximum_size must be an integer number of bytes or null.")
    if size < MINIMUM_DATASET_SIZE:
        raise InvalidRequest(
            f"maximum_size {size} is too small: a dataset needs at least "
            f"{MINIMUM_DATASET_SIZE} bytes (64 MiB)."
        )
    if size % SIZE_MULTIPLE:
        raise InvalidRequest(
            f"maximum_size {size} is not a multiple of {SIZE_MULTIPLE}; round it to a whole KiB."
        )


def check_metadata(metadata: Mapping[str, str]) -> None:
    """Raise :class:`InvalidRequest` unless ``metadata`` fits Flocker's limits."""
    if len(metadata) > MAX_METADATA_ITEMS:
        raise InvalidRequest(
            f"metadata has {len(metadata)} keys; at most {MAX_METADATA_ITEMS} are allowed."
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidRequest("metadata keys and values must be strings.")
        if not 1 <= len(key) <= MAX_METADATA_KEY:
            raise InvalidRequest(
                f"metadata key {key[:40]!r} must be 1 to {MAX_METADATA_KEY} characters long."
            )
        if len(value) > MAX_METADATA_VALUE:
            raise InvalidRequest(
                f"metadata value of {key[:40]!r} is longer than {MAX_METADATA_VALUE} characters."
            )


def _valid_size(_instance: object, _attribute: object, value: int | None) -> None:
    check_maximum_size(value)


def _valid_metadata(_instance: object, _attribute: object, value: PMap) -> None:
    check_metadata(value)


@frozen
class Dataset:
    """
    The desired state of one dataset.

    ``deleted_generation`` is the configuration generation at which the
    dataset was deleted (``None`` while it is live); the record is purged once
    no node reports the dataset and its primary has acted on that generation.
    """

    dataset_id: UUID
    primary: UUID
    maximum_size: int | None = field(default=None, validator=_valid_size)
    metadata: PMap = field(factory=pmap, converter=_freeze_map, validator=_valid_metadata)
    deleted: bool = False
    deleted_generation: int | None = None

    @property
    def name(self) -> str | None:
        """The volume name a container runtime knows this dataset by, if any."""
        return self.metadata.get("name")


@frozen
class Lease:
    """
    A node's claim on a dataset: while it holds, nobody else may move or
    delete the dataset. ``expires`` is an absolute time, or ``None`` for a
    lease that lasts until released.
    """

    dataset_id: UUID
    node_uuid: UUID
    expires: float | None = None

    def expired(self, now: float) -> bool:
        """Whether the lease has run out at ``now``."""
        return self.expires is not None and self.expires <= now

    def seconds_left(self, now: float) -> float | None:
        """Seconds until expiry (never negative), or ``None`` if it never expires."""
        if self.expires is None:
            return None
        return max(0.0, self.expires - now)


@frozen
class Node:
    """
    A node known to the cluster: registered by its agent.

    ``era`` is the node's kernel boot id: it changes when the node reboots.
    ``last_seen`` is when the control service last heard from the agent.
    """

    uuid: UUID
    host: str
    era: str | None = None
    labels: PMap = field(factory=pmap, converter=_freeze_map)
    last_seen: float | None = None

    @property
    def display_name(self) -> str:
        """What people call the node: its ``name`` label, else its host."""
        return str(self.labels.get("name") or self.host)

    def is_live(self, now: float, timeout: float) -> bool:
        """Whether the node was heard from within ``timeout`` seconds of ``now``."""
        return self.last_seen is not None and now - self.last_seen <= timeout


class VolumeStatus(enum.Enum):
    """How far a dataset's volume is realised on one node."""

    PRESENT = "present"
    """The volume exists in the backend and this node can see it, unattached."""
    ATTACHED = "attached"
    """The volume is attached to this node as a block device, not mounted."""
    MOUNTED = "mounted"
    """The volume's filesystem is mounted on this node at ``path``."""


@frozen
class DatasetState:
    """What one node reports about one dataset's volume."""

    dataset_id: UUID
    status: VolumeStatus
    maximum_size: int | None = None
    device: str | None = None
    path: str | None = None


@frozen
class NodeState:
    """
    The actual state one node reports.

    ``generation`` is the configuration generation the agent had seen when it
    made the observation: it tells the control service which deletions the
    node has already acted on.
    """

    node_uuid: UUID
    era: str | None = None
    generation: int = 0
    datasets: PMap = field(factory=pmap, converter=_freeze_map)
    reported_at: float | None = None

    def same_observation(self, other: NodeState) -> bool:
        """Whether ``other`` reports the same facts (ignoring when it was sent)."""
        return (self.era, self.generation, self.datasets) == (
            other.era,
            other.generation,
            other.datasets,
        )


@frozen
class Configuration:
    """
    The desired configuration of the whole cluster at one generation.

    The generation increases with every configuration write; its string form
    is the configuration tag that conditional writes compare against.
    """

    generation: int = 0
    datasets: PMap = field(factory=pmap, converter=_freeze_map)
    leases: PMap = field(factory=pmap, converter=_freeze_map)

    @property
    def tag(self) -> str:
        """The opaque configuration tag (``X-Configuration-Tag``)."""
        return tag_for(self.generation)

    def live_leases(self, now: float) -> PMap:
        """The leases that have not expired at ``now``."""
        return pmap({k: v for k, v in self.leases.items() if not v.expired(now)})


@frozen
class ClusterState:
    """The actual state: registered nodes and their latest reports."""

    version: int = 0
    nodes: PMap = field(factory=pmap, converter=_freeze_map)
    reports: PMap = field(factory=pmap, converter=_freeze_map)


@frozen
class Versions:
    """The two counters a watcher waits on."""

    configuration: int
    state: int

    def passed(self, configuration: int, state: int) -> bool:
        """Whether either counter has moved beyond the given values."""
        return self.configuration > configuration or self.state > state


def tag_for(generation: int) -> str:
    """The configuration tag of ``generation``."""
    return str(generation)
