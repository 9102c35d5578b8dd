"""
The events of snapshots, restores, clones and resize (pure, like :mod:`control.events`).

The stores record them in the same transaction as the write that causes
them: ``snapshot_created``, ``snapshot_deleted`` and ``resized`` with the
actor who asked, ``restored`` and ``cloned`` instead of ``created`` for a
dataset made from a source, and ``snapshot_ready`` when a node reports the
snapshot made (actor: that node).
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from control.model import Dataset, DatasetSnapshot, Event, NodeState, SourceKind

KINDS = ("snapshot_created", "snapshot_ready", "snapshot_deleted", "restored", "cloned", "resized")
"""The kinds of event this module makes (besides :data:`control.events.KINDS`)."""


def _snapshot_event(
    kind: str, snapshot: DatasetSnapshot, at: float, actor: str | None, message: str
) -> Event:
    return Event(
        kind=kind,
        at=at,
        message=message,
        dataset_id=snapshot.dataset_id,
        node_uuid=snapshot.node,
        actor=actor,
        details={"snapshot_id": str(snapshot.snapshot_id), "name": snapshot.name,
                 "size": snapshot.size},
    )


def snapshot_created(snapshot: DatasetSnapshot, at: float, actor: str | None) -> Event:
    """A snapshot was asked for; its node makes it."""
    return _snapshot_event(
        "snapshot_created", snapshot, at, actor,
        f"snapshot {snapshot.name!r} asked for; node {snapshot.node} makes it",
    )


def snapshot_ready(snapshot: DatasetSnapshot, at: float, reporter: UUID) -> Event:
    """A node reported the snapshot made."""
    return _snapshot_event(
        "snapshot_ready", snapshot, at, str(reporter),
        f"snapshot {snapshot.name!r} is ready ({snapshot.size} bytes)",
    )


def ready_events(ready: Iterable[DatasetSnapshot], reports: Iterable[NodeState]) -> list[Event]:
    """A ``snapshot_ready`` event for each of ``ready``, at the report of the node reporting it."""
    by_snapshot = {s.snapshot_id: r for r in reports for s in r.snapshots}
    return [
        snapshot_ready(
            s, by_snapshot[s.snapshot_id].reported_at or 0.0, by_snapshot[s.snapshot_id].node_uuid
        )
        for s in ready
    ]


def snapshot_deleted(snapshot: DatasetSnapshot, at: float, actor: str | None) -> Event:
    """A snapshot was marked deleted; its node destroys it."""
    return _snapshot_event(
        "snapshot_deleted", snapshot, at, actor,
        f"snapshot {snapshot.name!r} deleted; its node destroys it",
    )


def dataset_from_source(dataset: Dataset, at: float, actor: str | None) -> Event:
    """A dataset was created as a restore of a snapshot or a clone of a dataset."""
    assert dataset.source is not None
    restored = dataset.source.kind is SourceKind.SNAPSHOT
    what = "restored from snapshot" if restored else "cloned from dataset"
    return Event(
        kind="restored" if restored else "cloned",
        at=at,
        message=f"{what} {dataset.source.source_id} on node {dataset.primary}",
        dataset_id=dataset.dataset_id,
        node_uuid=dataset.primary,
        actor=actor,
        details={
            "primary": str(dataset.primary),
            "maximum_size": dataset.maximum_size,
            "source_kind": dataset.source.kind.value,
            "source_id": str(dataset.source.source_id),
            "filesystem": dataset.filesystem,
        },
    )


def dataset_resized(before: Dataset, after: Dataset, at: float, actor: str | None) -> Event:
    """A dataset was grown; its primary grows the volume and the filesystem."""
    return Event(
        kind="resized",
        at=at,
        message=f"resized from {before.maximum_size} to {after.maximum_size} bytes",
        dataset_id=after.dataset_id,
        node_uuid=after.primary,
        actor=actor,
        details={"from": before.maximum_size, "to": after.maximum_size},
    )
