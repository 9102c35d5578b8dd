"""
Datasets maps made from another by a few changes, remembered with the datasets that differ
(issue 16).

A changed report of a node with 2,000 datasets usually changes one or two of them. The
service's report reader makes its datasets map from the node's last one with only those
changed (:mod:`control.api.reports`), and knows which; without this, the store found them
again by comparing the two maps entry by entry
(:func:`control.store.report_writes.dataset_changes`), a pass over every dataset of the node.
:data:`DERIVED` keeps, for each node, the last map made so, the map it was made from, and the
ids that differ; a lookup answers only for those very two objects (held here, so neither can
be another map at the same address), so its answer is the one the comparison would give.
Written on the reactor thread, read on the store's threads: each entry is replaced whole.
"""

from __future__ import annotations

from uuid import UUID

from pyrsistent import PMap


class Derivations:
    """Each node's last datasets map made from another, and the ids that differ."""

    def __init__(self) -> None:
        self._last: dict[UUID, tuple[PMap, PMap, frozenset[UUID]]] = {}

    def record(self, node: UUID, base: PMap, made: PMap, differ: frozenset[UUID]) -> None:
        """``made`` is ``base`` with exactly the datasets ``differ`` added, changed or gone."""
        self._last[node] = (base, made, differ)

    def differ(self, node: UUID, base: PMap, made: PMap) -> frozenset[UUID] | None:
        """The datasets whose states differ between ``base`` and ``made``, if ``made`` was
        recorded as made from ``base``; else ``None``."""
        found = self._last.get(node)
        if found is None or found[0] is not base or found[1] is not made:
            return None
        return found[2]

    def forget(self, node: UUID) -> None:
        """Drop what is kept of ``node``."""
        self._last.pop(node, None)


DERIVED = Derivations()
"""The service's one record (maps are told apart by identity, so one serves every store)."""
