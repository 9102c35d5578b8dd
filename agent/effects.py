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

from attrs import evolve

from agent.backends.interface import BlockDeviceSnapshot
from agent.changes import Change, CreateSnapshot, MountFilesystem, actions
from agent.discovery import DiscoveredState, LocalState, with_snapshots

KNOWN_EFFECTS = (CreateSnapshot, MountFilesystem)
"""The changes whose success is a fact the report may give before it is observed."""

CONFIRM_AFTER = 0.5
"""Seconds the loop waits on the watch before the pass that confirms a pass whose every
action's effect is known (:func:`all_known`); a configuration change ends the wait."""


def after_changes(local: LocalState, done: Iterable[tuple[Change, object]]) -> LocalState:
    """``local`` with the effects of the changes ``done`` (each with what its action returned).

    A snapshot made is listed as the backend returned it; a filesystem
    mounted makes its dataset mounted there (first among its mount paths),
    if the pass had seen the dataset on that device. Other changes add
    nothing: their effects wait for the next observation.
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
    after = evolve(local, datasets=datasets)
    if made:
        after = with_snapshots(after, [*local.snapshots.values(), *made])
    return after


def all_known(local: LocalState, changes: Change, done: Iterable[tuple[Change, object]]) -> bool:
    """Whether the pass that observed ``local`` and ran ``changes`` did something, and
    :func:`after_changes` knows the effect of every action of it from ``done``: each action
    done, a snapshot made, a filesystem mounted on the device the pass saw (pure)."""
    known = [change for change, result in done if _known(local, change, result)]
    ran = actions(changes)
    return bool(ran) and all(change in known for change in ran)


def _known(local: LocalState, change: Change, result: object) -> bool:
    if isinstance(change, CreateSnapshot):
        return isinstance(result, BlockDeviceSnapshot)
    if isinstance(change, MountFilesystem):
        found = local.datasets.get(change.dataset_id)
        return found is not None and found.device == change.device
    return False
