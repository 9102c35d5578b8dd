"""
Conversion between model values and the JSON of the REST API.

Shared by the API (to answer) and the API client (to read answers). Every
function here is pure: times are passed in. The ``*_from_json`` functions
expect input that already passed the API's JSON schema, but still refuse
malformed values with :class:`~control.errors.InvalidRequest` rather than
letting a ``KeyError`` or ``ValueError`` escape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from control.errors import InvalidRequest
from control.model import (
    FILESYSTEMS,
    AccessMode,
    Capacity,
    ClusterState,
    Condition,
    ConditionKind,
    Dataset,
    DatasetSnapshot,
    DatasetState,
    DataSource,
    Event,
    Fence,
    Lease,
    Node,
    NodeState,
    OrphanVolume,
    ReportedSnapshot,
    SourceKind,
    Versions,
    VolumeStatus,
)

JSON = dict[str, Any]

_ADVANCEMENT = {VolumeStatus.PRESENT: 0, VolumeStatus.ATTACHED: 1, VolumeStatus.MOUNTED: 2}


def parse_uuid(value: object, what: str) -> UUID:
    """``value`` as a UUID, or :class:`InvalidRequest` naming ``what`` and the bad value."""
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    shown = repr(value)[:80]
    raise InvalidRequest(f"{what} {shown} is not a valid UUID.")


def _whole(value: Any) -> Any:
    """A JSON number that is a whole float (``1.0``) as an int; anything else unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _optional_text(value: Any) -> str | None:
    """``value`` as text, ``None`` staying ``None``."""
    return None if value is None else str(value)


def _field(obj: Mapping[str, Any], key: str) -> Any:
    if not isinstance(obj, Mapping):
        raise InvalidRequest(f"Expected a JSON object, got {type(obj).__name__}.")
    try:
        return obj[key]
    except KeyError:
        raise InvalidRequest(f"{key!r} is a required property.") from None


def dataset_to_json(dataset: Dataset) -> JSON:
    """A dataset as Flocker's configuration JSON (no ``maximum_size`` when it has none)."""
    result: JSON = {
        "dataset_id": str(dataset.dataset_id),
        "primary": str(dataset.primary),
        "metadata": dict(dataset.metadata),
        "deleted": dataset.deleted or dataset.released,
    }
    if dataset.maximum_size is not None:
        result["maximum_size"] = dataset.maximum_size
    return result


def dataset_from_json(obj: Mapping[str, Any]) -> Dataset:
    """A dataset from its configuration JSON (``deleted_generation`` is not on the wire;
    ``epoch`` only on the agents' configuration route, see :func:`node_dataset_to_json`)."""
    return Dataset(
        dataset_id=parse_uuid(_field(obj, "dataset_id"), "dataset_id"),
        primary=parse_uuid(_field(obj, "primary"), "primary"),
        maximum_size=_whole(obj.get("maximum_size")),
        metadata=obj.get("metadata") or {},
        deleted=bool(obj.get("deleted", False)),
        epoch=_whole(obj.get("epoch", 0)),
        source=None if obj.get("source") is None else source_from_json(obj["source"]),
        filesystem=obj.get("filesystem") or FILESYSTEMS[0],
        storage_class=obj.get("storage_class"),
        released=bool(obj.get("released", False)),
        released_from=_optional_uuid(obj.get("released_from"), "released_from"),
        access_mode=_access_mode(obj.get("access_mode")),
        readers=frozenset(parse_uuid(r, "readers") for r in obj.get("readers") or ()),
        backend=_optional_text(obj.get("backend")),
    )


def _optional_uuid(value: object, what: str) -> UUID | None:
    return None if value is None else parse_uuid(value, what)


def _access_mode(value: object) -> AccessMode:
    for mode in AccessMode:
        if value == mode.value:
            return mode
    if value is None:
        return AccessMode.RWO
    raise InvalidRequest(f"access_mode {value!r} is not one of the access modes.")


def node_dataset_to_json(dataset: Dataset) -> JSON:
    """A dataset as an agent's configuration lists it: Flocker's JSON plus its
    ``epoch``, ``filesystem`` and ``source`` (null for a fresh volume)."""
    return {
        **dataset_to_json(dataset),
        "deleted": dataset.deleted,
        "released": dataset.released,
        "released_from": None if dataset.released_from is None else str(dataset.released_from),
        "epoch": dataset.epoch,
        "filesystem": dataset.filesystem,
        "source": None if dataset.source is None else source_to_json(dataset.source),
        "storage_class": dataset.storage_class,
        "access_mode": dataset.access_mode.value,
        "readers": sorted(str(r) for r in dataset.readers),
        "backend": dataset.backend,
    }


def failover_to_json(dataset: Dataset, cluster_grace: float) -> JSON:
    """A dataset's failover options, as ``PUT /v1/shoal/datasets/<id>/failover`` answers:
    ``enabled`` (null: the default), ``grace`` (null: the cluster's) and the grace
    that applies (never shorter than the cluster's)."""
    own = dataset.failover_grace
    return {
        "dataset_id": str(dataset.dataset_id),
        "primary": str(dataset.primary),
        "epoch": dataset.epoch,
        "enabled": dataset.failover,
        "grace": own,
        "effective_grace": cluster_grace if own is None else max(own, cluster_grace),
    }


def source_to_json(source: DataSource) -> JSON:
    """A dataset's data source: ``{"kind": "snapshot"|"dataset", "id": uuid}``."""
    return {"kind": source.kind.value, "id": str(source.source_id)}


def source_from_json(obj: Mapping[str, Any]) -> DataSource:
    """A data source from its JSON."""
    kind = _field(obj, "kind")
    try:
        parsed = SourceKind(kind)
    except ValueError:
        raise InvalidRequest(
            f"source kind {kind!r} is not one of: {', '.join(k.value for k in SourceKind)}."
        ) from None
    return DataSource(kind=parsed, source_id=parse_uuid(_field(obj, "id"), "source id"))


def snapshot_to_json(snapshot: DatasetSnapshot) -> JSON:
    """A snapshot record, as the snapshot routes and the agents' configuration list it."""
    return {
        "snapshot_id": str(snapshot.snapshot_id),
        "name": snapshot.name,
        "dataset_id": str(snapshot.dataset_id),
        "created": snapshot.created,
        "node": str(snapshot.node),
        "size": snapshot.size,
        "ready": snapshot.ready,
        "deleted": snapshot.deleted,
        "filesystem": snapshot.filesystem,
    }


def snapshot_from_json(obj: Mapping[str, Any]) -> DatasetSnapshot:
    """A snapshot record from its JSON."""
    return DatasetSnapshot(
        snapshot_id=parse_uuid(_field(obj, "snapshot_id"), "snapshot_id"),
        name=_field(obj, "name"),
        dataset_id=parse_uuid(_field(obj, "dataset_id"), "dataset_id"),
        created=_field(obj, "created"),
        node=parse_uuid(_field(obj, "node"), "node"),
        size=_whole(obj.get("size")),
        ready=bool(obj.get("ready", False)),
        deleted=bool(obj.get("deleted", False)),
        filesystem=obj.get("filesystem") or FILESYSTEMS[0],
    )


def reported_snapshot_to_json(snapshot: ReportedSnapshot) -> JSON:
    """A snapshot as a node reports it seen in its backend."""
    return {"snapshot_id": str(snapshot.snapshot_id), "size": snapshot.size}


def reported_snapshot_from_json(obj: Mapping[str, Any]) -> ReportedSnapshot:
    """A reported snapshot from its JSON."""
    return ReportedSnapshot(
        snapshot_id=parse_uuid(_field(obj, "snapshot_id"), "snapshot_id"),
        size=_whole(_field(obj, "size")),
    )


def lease_to_json(lease: Lease, now: float) -> JSON:
    """A lease as Flocker's JSON: ``expires`` is seconds left, or null."""
    return {
        "dataset_id": str(lease.dataset_id),
        "node_uuid": str(lease.node_uuid),
        "expires": lease.seconds_left(now),
    }


def lease_from_json(obj: Mapping[str, Any], now: float) -> Lease:
    """A lease from Flocker's JSON: relative ``expires`` becomes absolute time."""
    seconds = obj.get("expires")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float)):
        raise InvalidRequest("expires must be a number of seconds or null.")
    return Lease(
        dataset_id=parse_uuid(_field(obj, "dataset_id"), "dataset_id"),
        node_uuid=parse_uuid(_field(obj, "node_uuid"), "node_uuid"),
        expires=None if seconds is None else now + seconds,
    )


def node_to_json(
    node: Node,
    now: float,
    timeout: float,
    liveness: str | None = None,
    capacity: Capacity | None = None,
    capacities: Sequence[Capacity] = (),
) -> JSON:
    """A registered node, with ``live`` computed at ``now`` against ``timeout`` seconds,
    its failover ``liveness`` (live, suspect, dead; see :mod:`control.liveness`) and its
    last reported capacity (every backend's in ``capacities``)."""
    return node_with_liveness_to_json(
        node, node.is_live(now, timeout), liveness, capacity, capacities
    )


def node_with_liveness_to_json(
    node: Node,
    live: bool,
    liveness: str | None = None,
    capacity: Capacity | None = None,
    capacities: Sequence[Capacity] = (),
) -> JSON:
    """A registered node, whether it is live, its liveness and its last reported capacity
    (or null; ``capacities``: every backend's, the first one first), as
    ``GET /v1/shoal/nodes`` lists it."""
    return {
        "uuid": str(node.uuid),
        "host": node.host,
        "era": node.era,
        "labels": dict(node.labels),
        "last_seen": node.last_seen,
        "live": live,
        "mount_root": node.mount_root,
        "identity": node.identity,
        "liveness": liveness,
        "fence": None if node.fence is None else fence_to_json(node.fence),
        "draining": node.draining,
        "capacity": None if capacity is None else capacity_to_json(capacity),
        "capacities": [
            capacity_to_json(c) for c in (capacities or ([capacity] if capacity else []))
        ],
    }


def fence_to_json(fence: Fence) -> JSON:
    """Why and since when a node is fenced."""
    return {
        "at": fence.at,
        "reason": fence.reason,
        "actor": fence.actor,
        "automatic": fence.automatic,
        "rejoined_at": fence.rejoined_at,
    }


def fence_from_json(obj: Mapping[str, Any]) -> Fence:
    """A fence from its JSON."""
    return Fence(
        at=float(_field(obj, "at")),
        reason=str(_field(obj, "reason")),
        actor=obj.get("actor"),
        automatic=bool(obj.get("automatic", False)),
        rejoined_at=obj.get("rejoined_at"),
    )


def node_from_json(obj: Mapping[str, Any]) -> Node:
    """A node from its JSON (``live`` is derived, so it is ignored)."""
    return Node(
        uuid=parse_uuid(_field(obj, "uuid"), "uuid"),
        host=_field(obj, "host"),
        era=obj.get("era"),
        labels=obj.get("labels") or {},
        last_seen=obj.get("last_seen"),
        mount_root=obj.get("mount_root"),
        identity=obj.get("identity"),
        fence=None if obj.get("fence") is None else fence_from_json(obj["fence"]),
        draining=bool(obj.get("draining", False)),
    )


def dataset_state_to_json(state: DatasetState) -> JSON:
    """What one node reports about one dataset."""
    return {
        "dataset_id": str(state.dataset_id),
        "status": state.status.value,
        "maximum_size": state.maximum_size,
        "device": state.device,
        "path": state.path,
    }


def dataset_state_from_json(obj: Mapping[str, Any]) -> DatasetState:
    """One dataset's reported state from its JSON."""
    status = _field(obj, "status")
    try:
        parsed = VolumeStatus(status)
    except ValueError:
        raise InvalidRequest(f"status {str(status)[:40]!r} is not a volume status.") from None
    return DatasetState(
        dataset_id=parse_uuid(_field(obj, "dataset_id"), "dataset_id"),
        status=parsed,
        maximum_size=_whole(obj.get("maximum_size")),
        device=obj.get("device"),
        path=obj.get("path"),
    )


def condition_to_json(condition: Condition) -> JSON:
    """One condition as reported by an agent and shown to operators."""
    return {
        "dataset_id": None if condition.dataset_id is None else str(condition.dataset_id),
        "kind": condition.kind.value,
        "reason": condition.reason,
        "step": condition.step,
        "message": condition.message,
        "since": condition.since,
        "attempts": condition.attempts,
        "permanent": condition.permanent,
    }


def condition_from_json(obj: Mapping[str, Any]) -> Condition:
    """One condition from its JSON."""
    kind = _field(obj, "kind")
    try:
        parsed = ConditionKind(kind)
    except ValueError:
        raise InvalidRequest(f"kind {str(kind)[:40]!r} is not a condition kind.") from None
    dataset_id = obj.get("dataset_id")
    return Condition(
        dataset_id=None if dataset_id is None else parse_uuid(dataset_id, "dataset_id"),
        kind=parsed,
        reason=_field(obj, "reason"),
        message=_field(obj, "message"),
        since=_field(obj, "since"),
        step=obj.get("step"),
        attempts=_whole(obj.get("attempts", 1)),
        permanent=bool(obj.get("permanent", False)),
    )


def conditions_to_json(state: ClusterState, dataset_id: UUID | None = None) -> list[JSON]:
    """Every reported condition (of ``dataset_id`` only, if given) with its node, by node."""
    found = []
    for node_uuid in sorted(state.reports, key=str):
        for condition in state.reports[node_uuid].conditions:
            if dataset_id is None or condition.dataset_id == dataset_id:
                found.append({**condition_to_json(condition), "node_uuid": str(node_uuid)})
    return found


def capacity_to_json(capacity: Capacity) -> JSON:
    """What a node's backend can hold."""
    return {
        "backend": capacity.backend,
        "total": capacity.total,
        "free": capacity.free,
        "maximum_volume_size": capacity.maximum_volume_size,
        "shared": capacity.shared,
        "snapshot_method": capacity.snapshot_method,
        "read_only_many": capacity.read_only_many,
    }


def capacity_from_json(obj: Mapping[str, Any]) -> Capacity:
    """A node's backend capacity from its JSON."""
    return Capacity(
        backend=_field(obj, "backend"),
        total=_whole(obj.get("total")),
        free=_whole(obj.get("free")),
        maximum_volume_size=_whole(obj.get("maximum_volume_size")),
        shared=bool(obj.get("shared", True)),
        snapshot_method=_optional_text(obj.get("snapshot_method")),
        read_only_many=bool(obj.get("read_only_many", False)),
    )


def orphan_to_json(orphan: OrphanVolume) -> JSON:
    """A backend volume no dataset owns."""
    return {
        "blockdevice_id": orphan.blockdevice_id,
        "dataset_id": None if orphan.dataset_id is None else str(orphan.dataset_id),
        "size": orphan.size,
    }


def orphan_from_json(obj: Mapping[str, Any]) -> OrphanVolume:
    """An orphaned volume from its JSON."""
    dataset_id = obj.get("dataset_id")
    return OrphanVolume(
        blockdevice_id=_field(obj, "blockdevice_id"),
        dataset_id=None if dataset_id is None else parse_uuid(dataset_id, "dataset_id"),
        size=_whole(obj.get("size")),
    )


def reported_orphan_to_json(node_uuid: UUID, orphan: OrphanVolume) -> JSON:
    """An orphaned volume and the node reporting it (``GET /v1/shoal/orphans``)."""
    return {"node_uuid": str(node_uuid), **orphan_to_json(orphan)}


def reported_orphan_from_json(obj: Mapping[str, Any]) -> tuple[UUID, OrphanVolume]:
    """An orphaned volume and the node reporting it, from its JSON."""
    return parse_uuid(_field(obj, "node_uuid"), "node_uuid"), orphan_from_json(obj)


def node_state_to_json(state: NodeState) -> JSON:
    """A node's report: era, generation seen, its datasets sorted by id, conditions, capacity."""
    return {
        "era": state.era,
        "generation": state.generation,
        "datasets": [
            dataset_state_to_json(state.datasets[key]) for key in sorted(state.datasets, key=str)
        ],
        "conditions": [condition_to_json(c) for c in state.conditions],
        "capacity": None if state.capacity is None else capacity_to_json(state.capacity),
        "capacities": [capacity_to_json(c) for c in state.capacities],
        "orphans": [orphan_to_json(o) for o in state.orphans],
        "snapshots": [reported_snapshot_to_json(x) for x in state.snapshots],
    }


def node_state_from_json(node_uuid: UUID, obj: Mapping[str, Any], now: float) -> NodeState:
    """A node's report, received at ``now``; a dataset listed twice is refused."""
    datasets: dict[UUID, DatasetState] = {}
    for item in _field(obj, "datasets"):
        state = dataset_state_from_json(item)
        if state.dataset_id in datasets:
            raise InvalidRequest(f"Dataset {state.dataset_id} is reported more than once.")
        datasets[state.dataset_id] = state
    capacity = obj.get("capacity")
    return NodeState(
        node_uuid=node_uuid,
        era=obj.get("era"),
        generation=_whole(_field(obj, "generation")),
        datasets=datasets,
        reported_at=now,
        conditions=tuple(condition_from_json(c) for c in obj.get("conditions") or ()),
        capacity=None if capacity is None else capacity_from_json(capacity),
        capacities=tuple(capacity_from_json(c) for c in obj.get("capacities") or ()),
        orphans=tuple(orphan_from_json(o) for o in obj.get("orphans") or ()),
        snapshots=tuple(reported_snapshot_from_json(x) for x in obj.get("snapshots") or ()),
    )


def _most_advanced(
    reports: Iterable[NodeState], primaries: Mapping[UUID, UUID]
) -> dict[UUID, tuple[UUID, DatasetState]]:
    best: dict[UUID, tuple[UUID, DatasetState]] = {}
    for report in sorted(reports, key=lambda r: str(r.node_uuid)):
        for dataset_id, state in report.datasets.items():
            current = best.get(dataset_id)
            rank = (_ADVANCEMENT[state.status], primaries.get(dataset_id) == report.node_uuid)
            if current is None or rank > (
                _ADVANCEMENT[current[1].status], primaries.get(dataset_id) == current[0]
            ):
                best[dataset_id] = (report.node_uuid, state)
    return best


def state_datasets_to_json(
    cluster_state: ClusterState,
    node: UUID | None = None,
    primaries: Mapping[UUID, UUID] | None = None,
) -> list[JSON]:
    """
    Flocker's ``/v1/state/datasets``: one entry per dataset any node reports.

    The most advanced report wins: mounted gives ``primary`` and ``path``,
    attached gives ``primary``, present gives neither; ``device`` (a Shoal
    addition) is the device path on that node when attached or mounted. As in Flocker,
    ``maximum_size`` is left out when the volume has none. With ``node``, only
    that node's report counts (``?node=``: a ReadOnlyMany reader's own view). Among
    reports as advanced, the dataset's primary's (``primaries``) wins: a ReadOnlyMany
    dataset mounted on its readers too is shown where its primary has it.
    """
    result = []
    reports = [r for r in cluster_state.reports.values() if node in (None, r.node_uuid)]
    best = _most_advanced(reports, primaries or {})
    for dataset_id in sorted(best, key=str):
        node, state = best[dataset_id]
        result.append(state_entry_to_json(dataset_id, node, state))
    return result


def state_entry_to_json(dataset_id: UUID, node: UUID, state: DatasetState) -> JSON:
    """One entry of ``/v1/state/datasets``: ``node``'s report ``state`` of ``dataset_id``."""
    entry: JSON = {"dataset_id": str(dataset_id)}
    if state.maximum_size is not None:
        entry["maximum_size"] = state.maximum_size
    if state.status is not VolumeStatus.PRESENT:
        entry["primary"] = str(node)
    if state.status is VolumeStatus.MOUNTED:
        entry["path"] = state.path
    if state.status is not VolumeStatus.PRESENT and state.device is not None:
        entry["device"] = state.device
    return entry


def most_advanced(
    candidates: Iterable[tuple[UUID, DatasetState]], primary: UUID | None
) -> tuple[UUID, DatasetState] | None:
    """The report of one dataset that ``/v1/state/datasets`` shows among ``(node, state)``
    pairs (as :func:`state_datasets_to_json` chooses: the most advanced, then the primary's,
    then the first node by id), or ``None`` if there are none."""
    best = None
    for node, state in sorted(candidates, key=lambda c: str(c[0])):
        rank = (_ADVANCEMENT[state.status], primary == node)
        if best is None or rank > best[0]:
            best = (rank, node, state)
    return None if best is None else (best[1], best[2])


def event_to_json(event: Event) -> JSON:
    """One entry of the event history."""
    return {
        "id": event.event_id,
        "at": event.at,
        "kind": event.kind,
        "message": event.message,
        "dataset_id": None if event.dataset_id is None else str(event.dataset_id),
        "node_uuid": None if event.node_uuid is None else str(event.node_uuid),
        "actor": event.actor,
        "details": dict(event.details),
    }


def event_from_json(obj: Mapping[str, Any]) -> Event:
    """One event from its JSON."""
    dataset_id = obj.get("dataset_id")
    node_uuid = obj.get("node_uuid")
    return Event(
        event_id=obj.get("id"),
        at=_field(obj, "at"),
        kind=_field(obj, "kind"),
        message=_field(obj, "message"),
        dataset_id=None if dataset_id is None else parse_uuid(dataset_id, "dataset_id"),
        node_uuid=None if node_uuid is None else parse_uuid(node_uuid, "node_uuid"),
        actor=obj.get("actor"),
        details=obj.get("details") or {},
    )


def versions_to_json(versions: Versions) -> JSON:
    """The two counters a watcher waits on."""
    return {"configuration": versions.configuration, "state": versions.state}


def versions_from_json(obj: Mapping[str, Any]) -> Versions:
    """The two counters from their JSON."""
    return Versions(configuration=_field(obj, "configuration"), state=_field(obj, "state"))
