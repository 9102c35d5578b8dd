"""
The CSI driver's pure rules: what each request asks of Shoal, checked and decided.

No I/O here: functions take request messages and Shoal values (datasets,
nodes, snapshots) and return decisions or raise :class:`CsiError` with the
status code the CSI spec's error tables name and a sentence for people.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

import grpc

from control.client.interface import NodeCondition, NodeInfo, StateDataset
from control.client.waiting import Reached
from control.model import (
    FILESYSTEMS,
    MINIMUM_DATASET_SIZE,
    RAW,
    SIZE_MULTIPLE,
    AccessMode,
    ConditionKind,
    Dataset,
    DatasetSnapshot,
    Lease,
)
from control.topology import node_labels
from plugin.csi.errors import CsiError
from plugin.csi.proto import csi_pb2 as csi

Code = grpc.StatusCode

DRIVER_NAME = "csi.shoal.io"
"""The driver's name (GetPluginInfo; a Kubernetes CSIDriver object names it)."""

PARAMETERS = {
    "class": "the Shoal storage class that places the volume (docs/placement.md)",
    "fs": f"the filesystem of a mount volume: {', '.join(FILESYSTEMS)} (a block volume is "
    "raw: never formatted, whatever fs says)",
}
"""CreateVolume parameters Shoal reads (a StorageClass's ``parameters``)."""

IGNORED_PREFIXES = ("csi.storage.k8s.io/",)
"""Parameters the Kubernetes sidecars add (``--extra-create-metadata``): accepted, unused."""

NAME_KEY = "name"
"""The dataset metadata key holding the CSI volume name (the Docker plugin's too)."""

MODES = csi.VolumeCapability.AccessMode.Mode
SINGLE_NODE_MODES = frozenset({
    MODES.SINGLE_NODE_WRITER,
    MODES.SINGLE_NODE_READER_ONLY,
    MODES.SINGLE_NODE_SINGLE_WRITER,
    MODES.SINGLE_NODE_MULTI_WRITER,
})
"""The access modes Shoal serves for any volume: one node at a time (a block device has one
kernel)."""
WRITER_MODES = frozenset({
    MODES.SINGLE_NODE_WRITER, MODES.SINGLE_NODE_SINGLE_WRITER, MODES.SINGLE_NODE_MULTI_WRITER,
})
"""The served modes that write."""
SERVED_MODES = SINGLE_NODE_MODES | {MODES.MULTI_NODE_READER_ONLY}
"""Those and ``MULTI_NODE_READER_ONLY``: a ReadOnlyMany volume, read-only on any number of
nodes (its primary and its readers, docs/placement.md), a mount volume only."""


def read_only_many(capabilities: Iterable[Any]) -> bool:
    """Whether the capabilities ask for a ReadOnlyMany volume (``MULTI_NODE_READER_ONLY``)."""
    return any(c.access_mode.mode == MODES.MULTI_NODE_READER_ONLY for c in capabilities)


def access_mode_for(capabilities: Iterable[Any]) -> str | None:
    """The Shoal access mode a CreateVolume asks for: ``ReadOnlyMany`` for
    ``MULTI_NODE_READER_ONLY``, else none (the class's, or ReadWriteOnce)."""
    return AccessMode.ROX.value if read_only_many(capabilities) else None


def require(value: object, what: str) -> None:
    """Refuse (INVALID_ARGUMENT) a request missing a required field."""
    if not value:
        raise CsiError(Code.INVALID_ARGUMENT, f"The request has no {what}; it is required.")


def parse_volume_id(text: str) -> UUID | None:
    """The dataset id a volume id names, or ``None`` if it cannot name one."""
    try:
        return UUID(text)
    except ValueError:
        return None


def volume_uuid(text: str) -> UUID:
    """The dataset id a volume id names; NOT_FOUND when it cannot name one."""
    found = parse_volume_id(text)
    if found is None:
        raise CsiError(Code.NOT_FOUND, f"No volume {text[:80]!r}: no live dataset.")
    return found


def unsupported_capability(capability: Any) -> str | None:
    """Why Shoal cannot serve ``capability`` (a VolumeCapability), or ``None``."""
    kind = capability.WhichOneof("access_type")
    if kind is None:
        return "a volume capability names neither mount nor block access"
    if not capability.HasField("access_mode"):
        return "a volume capability has no access mode"
    mode = capability.access_mode.mode
    if mode not in SERVED_MODES:
        return (
            f"access mode {MODES.Name(mode)} is not served: a Shoal volume is written on one "
            "node at a time (SINGLE_NODE_*), or read-only on several (MULTI_NODE_READER_ONLY)"
        )
    if kind == "block" and mode == MODES.MULTI_NODE_READER_ONLY:
        return (
            "access mode MULTI_NODE_READER_ONLY is served for mount access only: its readers "
            "mount a filesystem, which a raw block volume has none of"
        )
    if kind == "mount" and capability.mount.fs_type not in ("", *FILESYSTEMS):
        return (
            f"filesystem {capability.mount.fs_type[:40]!r} is not one of {', '.join(FILESYSTEMS)}"
        )
    return None


def check_capabilities(capabilities: Sequence[Any]) -> None:
    """Refuse (INVALID_ARGUMENT) missing or unsupported volume capabilities."""
    require(len(capabilities), "volume capabilities")
    for capability in capabilities:
        reason = unsupported_capability(capability)
        if reason is not None:
            raise CsiError(Code.INVALID_ARGUMENT, f"Unsupported capability: {reason}.")


def filesystem_of(capabilities: Iterable[Any], parameters: Mapping[str, str]) -> str | None:
    """The filesystem a CreateVolume asks for: :data:`~control.model.RAW` for block access (a
    raw dataset, never formatted or mounted), else a mount capability's fs_type, else ``fs``."""
    capabilities = list(capabilities)
    kinds = {c.WhichOneof("access_type") for c in capabilities}
    if "block" in kinds:  # the class's ``fs`` is for its mount volumes: not used here
        if "mount" in kinds:
            raise CsiError(Code.INVALID_ARGUMENT,
                           "The request asks for block and mount access: a Shoal volume is "
                           "either raw (block access) or has a filesystem (mount access). "
                           "Ask for one of the two.")
        return RAW
    asked = {c.mount.fs_type for c in capabilities if c.WhichOneof("access_type") == "mount"}
    asked.discard("")
    if parameters.get("fs"):
        asked.add(parameters["fs"])
    if len(asked) > 1:
        raise CsiError(Code.INVALID_ARGUMENT,
                       f"The request asks for several filesystems ({', '.join(sorted(asked))}).")
    fs = next(iter(asked), None)
    if fs is not None and fs not in FILESYSTEMS:
        raise CsiError(Code.INVALID_ARGUMENT,
                       f"Filesystem {fs[:40]!r} is not one of {', '.join(FILESYSTEMS)}.")
    return fs


def check_parameters(parameters: Mapping[str, str]) -> None:
    """Refuse (INVALID_ARGUMENT) parameters Shoal does not know, listing the known ones."""
    unknown = sorted(
        k for k in parameters
        if k not in PARAMETERS and not k.startswith(IGNORED_PREFIXES)
    )
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in PARAMETERS.items())
        raise CsiError(Code.INVALID_ARGUMENT,
                       f"Unknown parameter(s) {', '.join(map(repr, unknown))}. Known: {known}.")


def _round_up(size: int) -> int:
    return -(-size // SIZE_MULTIPLE) * SIZE_MULTIPLE


def size_for(capacity: Any, default: int | None) -> int | None:
    """The dataset size a CapacityRange asks for (``default`` when it asks nothing).

    The smallest size Shoal makes that is at least ``required_bytes`` and at
    most ``limit_bytes``; OUT_OF_RANGE when there is none.
    """
    required, limit = capacity.required_bytes, capacity.limit_bytes
    if required < 0 or limit < 0:
        raise CsiError(Code.INVALID_ARGUMENT, "Capacity bytes cannot be negative.")
    if limit and required > limit:
        raise CsiError(Code.INVALID_ARGUMENT,
                       f"required_bytes {required} is more than limit_bytes {limit}.")
    if not required and not limit:
        return default
    size = max(_round_up(required), MINIMUM_DATASET_SIZE)
    if limit and size > limit:
        raise CsiError(
            Code.OUT_OF_RANGE,
            f"limit_bytes {limit} is below the smallest volume Shoal makes that holds "
            f"{required} bytes ({size} bytes: at least 64 MiB, whole KiB).",
        )
    return size


def fits(size: int | None, capacity: Any) -> bool:
    """Whether an existing volume of ``size`` bytes satisfies a CapacityRange."""
    if size is None:
        return not capacity.required_bytes and not capacity.limit_bytes
    if capacity.required_bytes and size < capacity.required_bytes:
        return False
    return not (capacity.limit_bytes and size > capacity.limit_bytes)


def by_name(datasets: Iterable[Dataset], name: str) -> Dataset | None:
    """The live dataset carrying CSI volume ``name``."""
    return next((d for d in datasets if not d.deleted and d.metadata.get(NAME_KEY) == name), None)


def live(datasets: Iterable[Dataset], dataset_id: UUID | None) -> Dataset | None:
    """The live (not deleted, not released) dataset ``dataset_id``."""
    return next(
        (d for d in datasets
         if d.dataset_id == dataset_id and not d.deleted and not d.released),
        None,
    )


def holder(leases: Iterable[Lease], dataset_id: UUID) -> UUID | None:
    """The node holding ``dataset_id``'s lease (the node it is published to), if any."""
    return next((lease.node_uuid for lease in leases if lease.dataset_id == dataset_id), None)


def source_of(request: Any) -> tuple[str, str] | None:
    """A CreateVolume's content source as ``("snapshot", id)`` or ``("volume", id)``."""
    if not request.HasField("volume_content_source"):
        return None
    source = request.volume_content_source
    kind = source.WhichOneof("type")
    if kind == "snapshot":
        return ("snapshot", source.snapshot.snapshot_id)
    if kind == "volume":
        return ("volume", source.volume.volume_id)
    raise CsiError(Code.INVALID_ARGUMENT, "The volume content source names no snapshot or volume.")


def check_existing(
    existing: Dataset, request: Any, source: tuple[str, str] | None, storage_class: str | None
) -> None:
    """Refuse (ALREADY_EXISTS) a CreateVolume repeated with settings the volume does not have."""
    problems = []
    if not fits(existing.maximum_size, request.capacity_range):
        problems.append(f"its size is {existing.maximum_size} bytes")
    if source is not None:
        had = existing.source
        if had is None or str(had.source_id) != source[1]:
            problems.append("it has another content source")
    if storage_class is not None and existing.storage_class != storage_class:
        problems.append(f"its storage class is {existing.storage_class!r}")
    wrong = access_mismatch(existing, request.volume_capabilities)
    if wrong is not None:
        problems.append(wrong)
    if problems:
        raise CsiError(
            Code.ALREADY_EXISTS,
            f"Volume {request.name!r} already exists as dataset {existing.dataset_id}, but "
            f"{'; '.join(problems)}: use another name, or delete it first.",
        )


def published_nodes(dataset: Dataset, holder: UUID | None) -> list[str]:
    """The nodes a volume is published to: its lease's holder, then its ReadOnlyMany readers."""
    found = [] if holder is None else [str(holder)]
    return found + sorted(str(r) for r in dataset.readers if r != holder)


def completed(dataset: Dataset, records: Iterable[Dataset]) -> Dataset:
    """``dataset`` as its full record among ``records`` (the agents' configuration route, which
    carries the filesystem, source, class and access mode the v1 listing leaves out); itself
    when it is not there."""
    return next((d for d in records if d.dataset_id == dataset.dataset_id), dataset)


def access_mismatch(dataset: Dataset, capabilities: Iterable[Any]) -> str | None:
    """Why ``dataset`` cannot serve one of ``capabilities``: block access needs a raw dataset
    (its device is never mounted by the agent), mount access one with a filesystem."""
    capabilities = list(capabilities)
    if read_only_many(capabilities) and dataset.access_mode is not AccessMode.ROX:
        return (f"it is {dataset.access_mode.value}, used on one node at a time, so it cannot "
                "be read on several (MULTI_NODE_READER_ONLY); create a volume with that mode")
    writers = [c for c in capabilities if c.access_mode.mode in WRITER_MODES]
    if writers and dataset.access_mode is AccessMode.ROX:
        return (f"it is ReadOnlyMany, read-only on every node, so it cannot be written "
                f"({MODES.Name(writers[0].access_mode.mode)}); use MULTI_NODE_READER_ONLY or "
                "SINGLE_NODE_READER_ONLY")
    for capability in capabilities:
        block = capability.WhichOneof("access_type") == "block"
        if block and not dataset.raw:
            return (f"it has a filesystem ({dataset.filesystem}) the agent mounts, so it cannot "
                    "be used as a raw block device; create a volume with block access")
        if not block and dataset.raw:
            return ("it is a raw block volume (no filesystem), so it cannot be mounted; "
                    "use block access (volumeMode: Block)")
    return None


def check_access(dataset: Dataset, capabilities: Iterable[Any]) -> None:
    """Refuse (INVALID_ARGUMENT) a capability the dataset's kind (raw or not) cannot serve."""
    wrong = access_mismatch(dataset, capabilities)
    if wrong is not None:
        raise CsiError(Code.INVALID_ARGUMENT, f"Volume {dataset.dataset_id}: {wrong}.")


def attached_check(dataset_id: UUID, node: UUID) -> Any:
    """A wait's pure check: the device path once ``dataset_id`` is reported attached (with a
    device) on ``node``, else what is awaited."""

    def check(states: Sequence[StateDataset]) -> Reached[str] | str:
        state = next((s for s in states if s.dataset_id == dataset_id), None)
        if state is not None and state.primary == node and state.device:
            return Reached(state.device)
        return f"the agent to report raw volume {dataset_id} attached on node {node}"

    return check


# -- Topology -------------------------------------------------------------------------


def segments(info: NodeInfo) -> dict[str, str]:
    """A node's topology segments: its labels (with the default ``kubernetes.io/hostname``)."""
    return dict(node_labels(info.node))


def matches(topology: Any, labels: Mapping[str, str]) -> bool:
    """Whether a node with ``labels`` lies in ``topology`` (every segment equal)."""
    return all(labels.get(k) == v for k, v in topology.segments.items())


def usable(info: NodeInfo) -> bool:
    """Whether a node can take a new volume: live, not fenced, not draining."""
    return info.live and info.node.fence is None and not info.node.draining


def free_of(info: NodeInfo) -> int:
    """Free bytes a node reports (``-1`` when it reports none)."""
    capacity = info.capacity
    return -1 if capacity is None or capacity.free is None else capacity.free


def room_for(info: NodeInfo, size: int | None) -> bool:
    """Whether a node's reported capacity takes a volume of ``size`` (unknown: yes)."""
    capacity = info.capacity
    if size is None or capacity is None:
        return True
    largest = capacity.maximum_volume_size
    if largest is None:
        largest = capacity.free
    return largest is None or size <= largest


def choose_node(
    nodes: Sequence[NodeInfo], requirement: Any | None, size: int | None
) -> UUID | None:
    """The node a new volume goes to, or ``None`` for the control service to decide.

    With accessibility requirements: the first preferred topology with a
    usable node with room, else any requisite one (most free space first);
    RESOURCE_EXHAUSTED when none. Without: ``None``.
    """
    if requirement is None or not (requirement.requisite or requirement.preferred):
        return None
    ready = sorted(
        (n for n in nodes if usable(n) and room_for(n, size)),
        key=lambda n: (-free_of(n), str(n.node.uuid)),
    )
    for topology in [*requirement.preferred, *requirement.requisite]:
        for info in ready:
            if matches(topology, segments(info)):
                return info.node.uuid
    raise CsiError(
        Code.RESOURCE_EXHAUSTED,
        "No live node in the requested topology has room for the volume "
        f"({size or 'default size'} bytes); add capacity there or widen the topology.",
    )


def most_free(nodes: Sequence[NodeInfo], size: int | None) -> UUID | None:
    """The usable node with the most free space that has room (``None``: no node at all)."""
    ready = sorted(
        (n for n in nodes if usable(n)), key=lambda n: (-free_of(n), str(n.node.uuid))
    )
    if not ready:
        return None
    fitting = [n for n in ready if room_for(n, size)]
    if not fitting:
        raise CsiError(
            Code.OUT_OF_RANGE,
            f"No live node can make a volume of {size} bytes; ask for less, or add capacity.",
        )
    return fitting[0].node.uuid


def accessible(
    dataset: Dataset, nodes: Sequence[NodeInfo]
) -> list[dict[str, str]]:
    """The topologies a volume is reachable from: its node's for a node-local backend,
    every node's reporting the same shared backend otherwise (empty: anywhere)."""
    where = {n.node.uuid: n for n in nodes}
    primary = where.get(dataset.primary)
    if primary is None or primary.capacity is None:
        return []
    if not primary.capacity.shared:
        return [segments(primary)]
    backend = primary.capacity.backend
    return [
        segments(n) for n in sorted(nodes, key=lambda n: str(n.node.uuid))
        if n.capacity is not None and n.capacity.backend == backend
    ]


def capacity_in(
    nodes: Sequence[NodeInfo], topology: Any | None, backend: str | None = None
) -> tuple[int, int | None]:
    """``(available, maximum volume size)`` in ``topology``: shared backends counted once."""
    found = [
        n for n in nodes
        if usable(n) and n.capacity is not None
        and (backend is None or n.capacity.backend == backend)
        and (topology is None or matches(topology, segments(n)))
    ]
    shared: dict[str, int] = {}
    local = 0
    largest: int | None = None
    for info in found:
        capacity = info.capacity
        assert capacity is not None
        free = capacity.free or 0
        if capacity.shared:
            shared[capacity.backend] = max(shared.get(capacity.backend, 0), free)
        else:
            local += free
        size = capacity.maximum_volume_size if capacity.maximum_volume_size is not None else free
        largest = size if largest is None else max(largest, size)
    return local + sum(shared.values()), largest


def expand_topologies(terms: Iterable[Mapping[str, Sequence[str]]]) -> list[dict[str, str]]:
    """Class topology terms (label to values) as CSI topologies (one per combination)."""
    found = []
    for term in terms:
        keys = sorted(term)
        for values in itertools.product(*(term[k] for k in keys)):
            found.append(dict(zip(keys, values, strict=True)))
    return found


# -- Paging ---------------------------------------------------------------------------


def page(items: Sequence[Any], max_entries: int, token: str) -> tuple[Sequence[Any], str]:
    """One page of ``items`` from ``token`` (an offset) and the next token (``""``: the end).

    INVALID_ARGUMENT for a negative ``max_entries``, ABORTED for a token this
    driver did not give (as the spec's tables say).
    """
    if max_entries < 0:
        raise CsiError(Code.INVALID_ARGUMENT, "max_entries cannot be negative.")
    start = 0
    if token:
        if not token.isdigit() or int(token) > len(items):
            raise CsiError(Code.ABORTED,
                           f"Starting token {token[:40]!r} is not one this driver gave; "
                           "list again from the start.")
        start = int(token)
    end = len(items) if not max_entries else min(len(items), start + max_entries)
    return items[start:end], ("" if end >= len(items) else str(end))


# -- Snapshots and conditions ---------------------------------------------------------


def snapshot_message(snapshot: DatasetSnapshot) -> Any:
    """A Shoal snapshot as a CSI Snapshot."""
    message = csi.Snapshot(
        size_bytes=snapshot.size or 0,
        snapshot_id=str(snapshot.snapshot_id),
        source_volume_id=str(snapshot.dataset_id),
        ready_to_use=snapshot.ready,
    )
    message.creation_time.FromNanoseconds(int(snapshot.created * 1e9))
    return message


def volume_condition(conditions: Iterable[NodeCondition], dataset_id: UUID) -> Any:
    """A VolumeCondition: abnormal while an agent reports an error for the dataset."""
    errors = [
        c for c in conditions
        if c.condition.dataset_id == dataset_id and c.condition.kind is ConditionKind.ERROR
    ]
    if not errors:
        return csi.VolumeCondition(abnormal=False, message="healthy")
    first = errors[0]
    return csi.VolumeCondition(
        abnormal=True,
        message=f"node {first.node_uuid} reports {first.condition.reason}: "
        f"{first.condition.message}"[:1024],
    )
