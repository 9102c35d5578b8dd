"""
One node's datasets and the fenced nodes, kept between reads: :class:`NodeViews`.

An agent fetches its node's configuration every time the watch wakes it. At
100,000 datasets over 1,000 nodes, looking up and sorting the node's datasets
in the cached snapshot on every fetch, and reading which nodes are fenced, were
most of the answer's cost (issue 16). :class:`NodeViews` keeps, per node (and
the ids it asks about), the sorted list it found and the generation it found it
at; a later generation reuses the same list when the snapshot's change log says
none of the datasets that concern the node changed in between (a move onto or
off the node changes the moved dataset, so it is seen). The same list object
is returned, so the API can keep the answer it encoded from it.

The fenced nodes are taken from the cached actual state, kept for as long as
its nodes are the same (a report changes only the reports).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from uuid import UUID

from attrs import frozen
from pyrsistent import PSet, pset

from control.model import Dataset, Node
from control.store.snapshot import Snapshot

LIMIT = 20_000
"""Forget every kept list once this many are kept (each ``also`` makes its own)."""

_NONE: PSet = pset()


@frozen
class _Kept:
    generation: int
    ids: frozenset[UUID]
    datasets: list[Dataset]


class NodeViews:
    """Each node's datasets by the generation they were found at; safe to share between threads."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._kept: dict[tuple[UUID, frozenset[UUID]], _Kept] = {}
        self._fenced: tuple[Mapping[UUID, Node], frozenset[UUID]] | None = None
        self._lock = threading.Lock()

    def datasets(self, snapshot: Snapshot, node_uuid: UUID, also: frozenset[UUID]) -> list[Dataset]:
        """The datasets whose primary is ``node_uuid`` or whose id is in ``also``, by id, at
        ``snapshot``'s generation (the list kept from an earlier one when none changed)."""
        key = (node_uuid, also)
        kept = self._kept.get(key)
        if kept is not None and self._still(kept, snapshot, node_uuid, also):
            if kept.generation != snapshot.generation:
                self._keep(key, _Kept(snapshot.generation, kept.ids, kept.datasets))
            return kept.datasets
        found = snapshot.datasets_for(node_uuid, also)
        self._keep(key, _Kept(snapshot.generation, frozenset(d.dataset_id for d in found), found))
        return found

    @staticmethod
    def _still(kept: _Kept, snapshot: Snapshot, node_uuid: UUID, also: frozenset[UUID]) -> bool:
        """Whether ``kept`` is what :meth:`Snapshot.datasets_for` would find at ``snapshot``."""
        if kept.generation == snapshot.generation:
            return True
        if kept.generation > snapshot.generation:
            return False
        changed = snapshot.changes.since(kept.generation)
        if changed is None:
            return False
        if not changed:
            return True
        mine = snapshot.index.by_primary.get(node_uuid, _NONE)  # an Ids (or none)
        return changed.isdisjoint(kept.ids) and not any(
            i in mine or i in also for i in changed
        )

    def _keep(self, key: tuple[UUID, frozenset[UUID]], kept: _Kept) -> None:
        with self._lock:
            if len(self._kept) >= self._limit:
                self._kept = {}
            self._kept[key] = kept

    def fenced(self, nodes: Mapping[UUID, Node]) -> frozenset[UUID]:
        """The fenced nodes among ``nodes`` (the cached actual state's), kept while they are
        the same mapping."""
        memo = self._fenced
        if memo is not None and memo[0] is nodes:
            return memo[1]
        fenced = frozenset(u for u, n in nodes.items() if n.fence is not None)
        self._fenced = (nodes, fenced)
        return fenced
