"""
The API's side of placement: read classes and nodes, then ask :mod:`control.binding`.

Used by the create, move and bind handlers of :mod:`control.api.app`; the
rules themselves are pure (:mod:`control.binding`, :mod:`control.placement`).
"""

from __future__ import annotations

from uuid import UUID

from control.binding import check_target, class_for, new_dataset
from control.classes import StorageClass
from control.model import AccessMode, ClusterState, Dataset
from control.placement import candidate, candidates
from control.store.threaded import ThreadedStore
from control.topology import parse_enum


def access_mode_of(value: object) -> AccessMode | None:
    """The access mode a request body names, if any (by value or short name)."""
    return None if value is None else parse_enum(AccessMode, value, "access_mode")


async def place_new(
    store: ThreadedStore,
    asked: Dataset,
    class_name: str | None,
    mode: AccessMode | None,
    now: float,
    node_timeout: float,
) -> tuple[Dataset, ClusterState]:
    """``asked`` with its class applied and its primary decided; and the state read."""
    cls = class_for(class_name, await store.classes())
    state = await store.cluster_state()
    found = candidates(state, now, node_timeout)
    return new_dataset(asked, cls, mode, found), state


async def class_of(store: ThreadedStore, name: str | None) -> StorageClass | None:
    """A dataset's class (``None`` without one)."""
    return None if name is None else await store.storage_class(name)


async def check_move(
    store: ThreadedStore, dataset: Dataset, target: UUID, state: ClusterState
) -> None:
    """Refuse moving or binding ``dataset`` to ``target`` against its class and backend."""
    node = state.nodes.get(target)
    found = None if node is None else candidate(node, state)
    check_target(dataset, await class_of(store, dataset.storage_class), found, state)
