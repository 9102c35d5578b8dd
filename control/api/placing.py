"""
The API's side of placement: read classes and nodes, then ask :mod:`control.binding`.

Used by the create, move and bind handlers of :mod:`control.api.app`; the
rules themselves are pure (:mod:`control.binding`, :mod:`control.placement`).
"""

from __future__ import annotations

from uuid import UUID

from control import readers
from control.binding import check_target, class_for, new_dataset
from control.classes import StorageClass
from control.errors import Conflict, NotFound
from control.model import AccessMode, ClusterState, Dataset
from control.placement import Candidate, candidate, candidates, unusable_reason
from control.store.interface import Store
from control.store.threaded import ThreadedStore
from control.topology import ReclaimPolicy, parse_enum


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
    classes, state = await store.compute(_classes_and_state, store.store)
    cls = class_for(class_name, classes)
    return new_dataset(asked, cls, mode, candidates_for(asked, state, now, node_timeout)), state


def candidates_for(
    asked: Dataset, state: ClusterState, now: float, node_timeout: float
) -> list[Candidate]:
    """The nodes placement looks at: only the primary asked for, if any (a create then
    costs the same with a thousand nodes as with one), else every node."""
    if not asked.bound:
        return candidates(state, now, node_timeout)
    node = state.nodes.get(asked.primary)
    if node is None:
        return []
    return [candidate(node, state, unusable_reason(node, now, node_timeout))]


def _classes_and_state(store: Store) -> tuple[list[StorageClass], ClusterState]:
    """Both reads a placement needs, in one trip to the database threads."""
    return store.classes(), store.cluster_state()


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


async def retains(store: ThreadedStore, dataset: Dataset) -> bool:
    """Whether deleting ``dataset`` releases it (its class retains volumes)."""
    if dataset.deleted or dataset.released:
        return False
    cls = await class_of(store, dataset.storage_class)
    return cls is not None and cls.reclaim_policy is ReclaimPolicy.RETAIN


def adopter(dataset: Dataset | None, asked: UUID | None, state: ClusterState) -> UUID:
    """The node to adopt a released dataset on: the one asked, else the node it was released
    from, else the first node (by uuid) that reports its volume; refused (409) without."""
    if dataset is None:
        raise NotFound("No such dataset: `shoal dataset released` lists the released ones.")
    if asked is not None:
        return asked
    if dataset.released_from is not None:
        return dataset.released_from
    dataset_id = dataset.dataset_id
    holders = sorted(
        (r.node_uuid for r in state.reports.values() if dataset_id in r.datasets), key=str
    )
    if not holders:
        raise Conflict(
            f"No node reports the volume of dataset {dataset_id} now: name the node to adopt "
            "it on (`shoal dataset adopt VOLUME --node NODE`)."
        )
    return holders[0]


def reader_refusal(dataset: Dataset, node: UUID, state: ClusterState) -> str | None:
    """Why ``node`` cannot read the ReadOnlyMany ``dataset`` (its backend), or ``None``."""
    known = state.nodes.get(node)
    if known is None:
        return None  # the store refuses an unknown node (404)
    primary = state.reports.get(dataset.primary)
    ours = None if primary is None else primary.capacity_of(dataset.backend)
    backend = dataset.backend or (ours.backend if ours is not None else None)
    report = state.reports.get(node)
    if report is None or not report.all_capacities():
        return None  # it has not said yet: its agent refuses what its backend cannot do
    theirs = report.capacity_of(backend)
    return readers.reader_refusal(dataset, known.display_name, ours, theirs)
