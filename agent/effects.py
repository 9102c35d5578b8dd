"""
What a pass's changes are known to have done, before the next pass observes it (pure).

An action that succeeded returns (or guarantees) part of the next
observation: the snapshot the backend made, whole; the filesystem mounted
where it was asked. :func:`after_changes` adds those facts to the pass's
observation, so the loop reports them as soon as the changes ran, instead of
one observation later (a snapshot is ready, a dataset mounted, that much
sooner). The next pass observes as always and reports again if it differs.

When every action of a pass is such a fact (:func:`all_known`), that next pass
only confirms what was reported: the loop makes it :data:`CONFIRM_AFTER`
later, on the watch, instead of at once, so a request arriving meanwhile (a
snapshot of the dataset just mounted) starts a pass at once rather than
waiting for a confirmation pass to observe the node.
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import evolve, frozen

from agent.backends.interface import BlockDeviceSnapshot
from agent.changes import (
    AttachVolume,
    Change,
    CreateSnapshot,
    DetachVolume,
    MountAttached,
    MountFilesystem,
    actions,
)
from agent.discovery import DiscoveredDataset, DiscoveredState, LocalState, with_snapshots
from agent.fs.interface import FilesystemInfo

KNOWN_EFFECTS = (CreateSnapshot, MountFilesystem, MountAttached, DetachVolume)
"""The changes whose success is a fact the report may give before it is observed."""

CONFIRM_AFTER = 0.5
"""Seconds the loop waits on the watch before the pass that confirms a pass whose every
action's effect is known (:func:`all_known`); a configuration change ends the wait."""


@frozen
class AttachedMount:
    """What a :class:`~agent.changes.MountAttached` that mounted returns: the ``device`` it
    mounted and the ``filesystem`` found there."""

    device: str
    filesystem: FilesystemInfo


def after_changes(local: LocalState, done: Iterable[tuple[Change, object]]) -> LocalState:
    """``local`` with the effects of the changes ``done`` (each with what its action returned).

    A snapshot made is listed as the backend returned it; a filesystem
    mounted makes its dataset mounted there (first among its mount paths),
    if the pass had seen the dataset on that device; a volume attached and
    mounted in the pass (:class:`~agent.changes.MountAttached`) makes its
    dataset, seen unattached, mounted there on the device it returned
    (a skipped mount, ``None``, adds nothing); a volume detached (read-write,
    after its unmounts in the same pass) is no longer attached here, so the
    node that waits for it to let go is woken one observation sooner. Other
    changes add nothing: their effects wait for the next observation.
    """
    made: list[BlockDeviceSnapshot] = []
    datasets = dict(local.datasets)
    for change, result in done:
        if isinstance(change, CreateSnapshot) and isinstance(result, BlockDeviceSnapshot):
            made.append(result)
        elif isinstance(change, MountFilesystem):
            found = datasets.get(change.dataset_id)
            if found is not None and found.device == change.device:
                others = tuple(p for p in found.mount_paths if p != change.path)
                datasets[change.dataset_id] = evolve(
                    found, state=DiscoveredState.MOUNTED_HERE, mount_paths=(change.path, *others)
                )
        elif isinstance(change, MountAttached) and isinstance(result, AttachedMount):
            found = datasets.get(change.dataset_id)
            if found is not None and found.blockdevice_id == change.blockdevice_id:
                datasets[change.dataset_id] = _attached_and_mounted(
                    found, change, result, local.instance_id
                )
        elif isinstance(change, DetachVolume) and not change.read_only:
            found = datasets.get(change.dataset_id)
            if found is not None and found.blockdevice_id == change.blockdevice_id:
                datasets[change.dataset_id] = _detached(found)
    after = evolve(local, datasets=datasets)
    if made:
        after = with_snapshots(after, [*local.snapshots.values(), *made])
    return after


def _attached_and_mounted(
    found: DiscoveredDataset, change: MountAttached, mounted: AttachedMount, instance_id: str
) -> DiscoveredDataset:
    """``found`` (seen before the attach) as attached here and mounted at the change's path."""
    return evolve(
        found,
        state=DiscoveredState.MOUNTED_HERE,
        attached_to=instance_id,
        device=mounted.device,
        mount_paths=(change.path,),
        filesystem=mounted.filesystem,
        read_only=False,
        readers=frozenset(),
    )


def _detached(found: DiscoveredDataset) -> DiscoveredDataset:
    """``found`` (seen attached here) as attached nowhere: the detach succeeded."""
    return evolve(
        found,
        state=DiscoveredState.UNATTACHED,
        attached_to=None,
        device=None,
        mount_paths=(),
        filesystem=None,
    )


def all_known(local: LocalState, changes: Change, done: Iterable[tuple[Change, object]]) -> bool:
    """Whether the pass that observed ``local`` and ran ``changes`` did something, and
    :func:`after_changes` knows the effect of every action of it from ``done``: each action
    done, a snapshot made, a filesystem mounted on the device the pass saw, a volume seen
    unattached attached and mounted (the attach with its mount), one seen attached here
    detached (pure)."""
    known = [change for change, result in done if _known(local, change, result)]
    mounted = {c.blockdevice_id for c in known if isinstance(c, MountAttached)}
    ran = actions(changes)
    # The attach that a known MountAttached followed is known with it (its device mounted).
    known += [
        c for c in ran
        if isinstance(c, AttachVolume) and not c.read_only and c.blockdevice_id in mounted
    ]
    return bool(ran) and all(change in known for change in ran)


def reported_after(changes: Change) -> bool:
    """Whether a pass running ``changes`` reports its observation only once they ran: it acts,
    and every action is a snapshot, whose report (the snapshot made, or the observation if
    it failed) follows within the action's time; one report instead of two, and none sent
    while the filesystem is frozen (pure)."""
    ran = actions(changes)
    return bool(ran) and all(isinstance(change, CreateSnapshot) for change in ran)


def _known(local: LocalState, change: Change, result: object) -> bool:
    if isinstance(change, CreateSnapshot):
        return isinstance(result, BlockDeviceSnapshot)
    found = local.datasets.get(getattr(change, "dataset_id", None))
    if isinstance(change, MountFilesystem):
        return found is not None and found.device == change.device
    if isinstance(change, MountAttached):
        return (
            isinstance(result, AttachedMount)
            and found is not None
            and found.blockdevice_id == change.blockdevice_id
        )
    if isinstance(change, DetachVolume):
        return (
            not change.read_only
            and found is not None
            and found.blockdevice_id == change.blockdevice_id
        )
    return False
