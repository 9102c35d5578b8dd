"""
What a pass's changes are known to have done, before the next pass observes it (pure).

An action that succeeded returns (or guarantees) part of the next
observation: the snapshot the backend made, whole; the filesystem mounted
where it was asked. :func:`after_changes` adds those facts to the pass's
observation, so the loop reports them as soon as the changes ran, instead of
one observation later (a snapshot is ready, a dataset mounted, that much
sooner). The next pass observes as always and reports again if it differs.
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import evolve

from agent.backends.interface import BlockDeviceSnapshot
from agent.changes import Change, CreateSnapshot, MountFilesystem
from agent.discovery import DiscoveredState, LocalState, with_snapshots

KNOWN_EFFECTS = (CreateSnapshot, MountFilesystem)
"""The changes whose success is a fact the report may give before it is observed."""


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
