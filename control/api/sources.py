"""
Find what a restore or clone copies, as a create request names it (by id or by name).

The API resolves the request's ``source`` here, then fills the new dataset's
defaults with :func:`control.snapshots.new_from_source`; the store checks the
source again under its lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from control.errors import NotFound
from control.model import Dataset, DatasetSnapshot, DataSource, SourceKind
from control.store.threaded import ThreadedStore


async def find_source(
    store: ThreadedStore, asked: Mapping[str, Any] | None, now: float
) -> tuple[DataSource | None, DatasetSnapshot | Dataset | None]:
    """``(source, record)`` of a create's ``source`` (``(None, None)`` without one).

    By id, the record may be ``None`` (the rules refuse it with 404); by name,
    an unknown name is refused here (404).
    """
    if asked is None:
        return None, None
    kind = SourceKind(asked["kind"])
    if "id" in asked:
        source_id = UUID(asked["id"])
        if kind is SourceKind.SNAPSHOT:
            return DataSource(kind, source_id), await store.snapshot(source_id)
        return DataSource(kind, source_id), await store.dataset(source_id)
    name = asked["name"]
    found: DatasetSnapshot | Dataset | None
    if kind is SourceKind.SNAPSHOT:
        snapshots = await store.snapshots()
        found = next((s for s in snapshots if s.name == name and not s.deleted), None)
        if found is None:
            raise NotFound(f"No snapshot is named {name[:80]!r} (`shoal snapshot list`).")
        return DataSource(kind, found.snapshot_id), found
    configuration = await store.configuration(now)
    found = next(
        (d for d in configuration.datasets.values() if d.name == name and not d.deleted), None
    )
    if found is None:
        raise NotFound(f"No dataset is named {name[:80]!r} (`shoal dataset list`).")
    return DataSource(kind, found.dataset_id), found
