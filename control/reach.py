"""
Whom a state report concerns: the targeted state wake of the watch (issue 16).

During 1,000 concurrent moves every changed report moved the state version, and
each one woke every agent waiting on another node (the new primary of each move
waits for the old one to let the volume go): about 13 reports and 7
configuration reads per move instead of 2 and 2. A store that writes a group of
reports says whom the state versions it wrote concern
(:class:`~control.store.interface.StateReach`), computed here (pure), and the
watch wakes a targeted waiter on state only for a version that names it
(:mod:`control.api.watch`).

A changed report concerns its node; each dataset whose reported state changed
(added, changed or gone); each such dataset's primary and readers as
configured when the report was written (the nodes that act on it, and so may
wait on its state elsewhere: the new primary for the old one to let go, a
reader for its primary to create the volume, a primary for its readers to let
go); and the primary and readers of each dataset copied from it (a clone's
primary waits for its source's volume to exist). What it cannot tell concerns
everyone (``None``): a node's first report (nothing to compare with), the state
of a copy (its source's primary makes it, :func:`control.snapshots.clones_to_make`,
and the configuration it gets depends on the reports), more than :data:`MOST`
changed datasets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from uuid import UUID

from control.model import Dataset, NodeState

MOST = 256
"""The most changed datasets whose reach is looked up; a group changing more concerns everyone."""


def changed_datasets(changes: Mapping[UUID, frozenset[UUID] | None]) -> frozenset[UUID] | None:
    """The datasets whose reported state changed, of ``changes`` (each changed node's
    changed datasets, ``None`` when not known); ``None``: not known, or more than :data:`MOST`."""
    found: set[UUID] = set()
    for ids in changes.values():
        if ids is None:
            return None
        found |= ids
        if len(found) > MOST:
            return None
    return frozenset(found)


def state_reach(
    nodes: Iterable[UUID], changed: frozenset[UUID], datasets: Iterable[Dataset]
) -> frozenset[UUID] | None:
    """Whom reports of ``nodes`` that changed the state of the ``changed`` datasets concern
    (see the module's docstring); ``datasets``: the records of the changed datasets and of
    those copied from them (others are ignored). ``None``: everyone (a copy's state changed)."""
    reach = set(nodes) | changed
    for dataset in datasets:
        source = dataset.source
        if dataset.dataset_id in changed:
            if source is not None:
                return None
        elif source is None or source.source_id not in changed:
            continue
        reach.add(dataset.dataset_id)
        reach.add(dataset.primary)
        reach.update(dataset.readers)
    return frozenset(reach)


def dataset_changes(old: NodeState | None, new: NodeState) -> frozenset[UUID] | None:
    """The datasets whose state ``new`` reports differently from ``old`` (added, changed or
    gone); ``None`` without ``old``. (The SQL store has a faster one for thousands of
    datasets, :func:`control.store.report_writes.dataset_changes`.)"""
    if old is None:
        return None
    before, after = old.datasets, new.datasets
    return frozenset(k for k in set(before) | set(after) if before.get(k) != after.get(k))
