"""
Conversion between model values and table rows, kept out of the model.

Rows are as SQLAlchemy Core returns them: mappings, except datasets, which
are read as tuples in table column order (cheaper: listing ten thousand of
them is the hot path).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from pyrsistent import PMap, pmap

from control.model import (
    FILESYSTEMS,
    AccessMode,
    Capacity,
    Dataset,
    DatasetState,
    DataSource,
    Event,
    Lease,
    Node,
    NodeState,
    SourceKind,
    VolumeStatus,
)
from control.wire import (
    capacity_from_json,
    capacity_to_json,
    condition_from_json,
    condition_to_json,
    dataset_to_json,
    event_from_json,
    event_to_json,
    fence_from_json,
    fence_to_json,
    orphan_from_json,
    orphan_to_json,
    reported_snapshot_from_json,
    reported_snapshot_to_json,
)

Row = Mapping[Any, Any]


def dataset_row(dataset: Dataset) -> dict[str, Any]:
    """The ``datasets`` row of ``dataset``."""
    return {
        "dataset_id": str(dataset.dataset_id),
        "primary": str(dataset.primary),
        "maximum_size": dataset.maximum_size,
        "metadata": dict(dataset.metadata),
        "deleted": dataset.deleted,
        "deleted_generation": dataset.deleted_generation,
        "epoch": dataset.epoch,
        "failover": dataset.failover,
        "failover_grace": dataset.failover_grace,
        **_source_columns(dataset),
    }


def _source_columns(dataset: Dataset) -> dict[str, Any]:
    source = dataset.source
    return {
        "source_kind": None if source is None else source.kind.value,
        "source_id": None if source is None else str(source.source_id),
        "filesystem": dataset.filesystem,
        "storage_class": dataset.storage_class,
        "access_mode": dataset.access_mode.value,
        "released": dataset.released,
        "released_from": None if dataset.released_from is None else str(dataset.released_from),
        "readers": sorted(str(r) for r in dataset.readers) or None,
        "backend": dataset.backend,
        "name": dataset.name,
        "listing": listing_fragment(dataset),
    }


def listing_fragment(dataset: Dataset) -> str:
    """``dataset``'s item of ``GET /v1/configuration/datasets``, encoded as the API encodes
    (compact JSON): stored with its row, so that a listing read straight from the database is
    these items joined (:func:`control.store.queries.dataset_listing`)."""
    return json.dumps(dataset_to_json(dataset), allow_nan=False, separators=(",", ":"))


def _source_from(kind: str | None, source_id: str | None) -> DataSource | None:
    if kind is None or source_id is None:
        return None
    return DataSource(SourceKind(kind), UUID(source_id))


_EMPTY: PMap = pmap()
_ACCESS_MODES = {mode.value: mode for mode in AccessMode}


def dataset_from_row(row: Sequence[Any], uuids: dict[str, UUID] | None = None) -> Dataset:
    """
    The dataset stored in ``row``, whose columns are in the order of the table
    (the source and filesystem columns are read by name).

    ``uuids`` caches parsed primaries across the rows of one listing (there
    are few nodes, and listing ten thousand datasets is the hot path).
    """
    dataset_id, primary, maximum_size, metadata, deleted, deleted_generation = row[:6]
    named = row._mapping  # type: ignore[attr-defined]
    epoch, failover, failover_grace = named["epoch"], named["failover"], named["failover_grace"]
    uuids = {} if uuids is None else uuids
    primary_uuid = uuids.get(primary)
    if primary_uuid is None:
        primary_uuid = uuids[primary] = UUID(primary)
    return Dataset(
        dataset_id=UUID(dataset_id),
        primary=primary_uuid,
        maximum_size=maximum_size,
        metadata=pmap(metadata) if metadata else _EMPTY,
        deleted=bool(deleted),
        deleted_generation=deleted_generation,
        epoch=epoch,
        failover=None if failover is None else bool(failover),
        failover_grace=failover_grace,
        source=_source_from(named["source_kind"], named["source_id"]),
        filesystem=named["filesystem"] or FILESYSTEMS[0],
        storage_class=named["storage_class"],
        access_mode=_ACCESS_MODES[named["access_mode"] or AccessMode.RWO.value],
        released=bool(named["released"]),
        released_from=None if named["released_from"] is None else UUID(named["released_from"]),
        readers=frozenset(UUID(r) for r in named["readers"] or ()),
        backend=named["backend"],
    )


def lease_row(lease: Lease) -> dict[str, Any]:
    """The ``leases`` row of ``lease``."""
    return {
        "dataset_id": str(lease.dataset_id),
        "node_uuid": str(lease.node_uuid),
        "expires": lease.expires,
    }


def lease_from_row(row: Row) -> Lease:
    """The lease stored in ``row``."""
    return Lease(
        dataset_id=UUID(row["dataset_id"]), node_uuid=UUID(row["node_uuid"]), expires=row["expires"]
    )


def node_row(node: Node) -> dict[str, Any]:
    """The ``nodes`` row of ``node``."""
    return {
        "uuid": str(node.uuid),
        "host": node.host,
        "era": node.era,
        "labels": dict(node.labels),
        "last_seen": node.last_seen,
        "mount_root": node.mount_root,
        "identity": node.identity,
        "fence": None if node.fence is None else fence_to_json(node.fence),
        "draining": node.draining,
    }


def node_from_row(row: Row) -> Node:
    """The node stored in ``row``."""
    return Node(
        uuid=UUID(row["uuid"]),
        host=row["host"],
        era=row["era"],
        labels=row["labels"],
        last_seen=row["last_seen"],
        mount_root=row["mount_root"],
        identity=row["identity"],
        fence=None if row["fence"] is None else fence_from_json(row["fence"]),
        draining=bool(row["draining"]),
    )


def dataset_state_json(state: DatasetState) -> dict[str, Any]:
    """One dataset's entry of a report as JSON (keyed by its id): the ``node_states.datasets``
    document of schema revisions before 0011."""
    return {
        "status": state.status.value,
        "maximum_size": state.maximum_size,
        "device": state.device,
        "path": state.path,
    }


def dataset_state_row(node_uuid: str, state: DatasetState) -> dict[str, Any]:
    """The ``node_datasets`` row of one dataset's state in node ``node_uuid``'s report."""
    return {
        "node_uuid": node_uuid,
        "dataset_id": str(state.dataset_id),
        "status": state.status.value,
        "maximum_size": state.maximum_size,
        "device": state.device,
        "path": state.path,
    }


STATUSES = {status.value: status for status in VolumeStatus}
"""Each volume status by its stored value."""


def dataset_state_from_row(row: Sequence[Any]) -> DatasetState:
    """The state in a ``node_datasets`` row read as ``(dataset_id, status, maximum_size,
    device, path)``."""
    dataset_id, status, maximum_size, device, path = row
    return DatasetState(UUID(dataset_id), STATUSES[status], maximum_size, device, path)


def node_state_row(report: NodeState) -> dict[str, Any]:
    """The ``node_states`` row of ``report``: all but its datasets (:func:`dataset_state_row`),
    and without the ``datasets`` column (a trigger refuses a write of it)."""
    return {
        "node_uuid": str(report.node_uuid),
        "era": report.era,
        "generation": report.generation,
        "reported_at": report.reported_at,
        "conditions": [condition_to_json(c) for c in report.conditions],
        "capacity": _capacity_json(report),
        "orphans": [orphan_to_json(o) for o in report.orphans],
        "snapshots": [reported_snapshot_to_json(s) for s in report.snapshots],
    }


def _capacity_json(report: NodeState) -> Any:
    """The ``capacity`` column: the first backend's JSON, or a list of every backend's
    when the node reports several (a row written before lists holds one object)."""
    if report.capacities:
        return [capacity_to_json(c) for c in report.capacities]
    return None if report.capacity is None else capacity_to_json(report.capacity)


def node_state_from_row(row: Row, states: Iterable[DatasetState]) -> NodeState:
    """The report stored in ``row`` with its datasets' ``states``."""
    capacity = row["capacity"]
    capacities: tuple[Capacity, ...] = ()
    if isinstance(capacity, list):
        capacities = tuple(capacity_from_json(c) for c in capacity)
        capacity = capacity[0] if capacity else None
    return NodeState(
        node_uuid=UUID(row["node_uuid"]),
        era=row["era"],
        generation=row["generation"],
        reported_at=row["reported_at"],
        datasets={state.dataset_id: state for state in states},
        conditions=tuple(condition_from_json(c) for c in row["conditions"] or ()),
        capacity=None if capacity is None else capacity_from_json(capacity),
        capacities=capacities,
        orphans=tuple(orphan_from_json(o) for o in row["orphans"] or ()),
        snapshots=tuple(reported_snapshot_from_json(s) for s in row["snapshots"] or ()),
    )


def event_row(event: Event) -> dict[str, Any]:
    """The ``events`` row of ``event``: its JSON less the id, which the database assigns."""
    row = event_to_json(event)
    del row["id"]
    return row


def event_from_row(row: Row) -> Event:
    """The event stored in ``row``."""
    return event_from_json({**row, "id": row["event_id"]})
