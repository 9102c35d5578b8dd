"""
Binding: where a new dataset goes, and whether a node may take one (pure).

The API asks these rules, fed with the classes and the cluster state, before
a create, a move or a bind reaches the store:

- :func:`class_for` picks a new dataset's class: the one it names, else the
  default class, else none (a dataset without a class behaves as before
  classes: it names its primary, any node may take it).
- :func:`new_dataset` fills a new dataset from its class (size, filesystem,
  access mode) and decides its primary: the one asked for if the class allows
  it, else for an Immediate class :func:`control.placement.place`, else
  :data:`~control.model.UNBOUND` (WaitForFirstConsumer).
- :func:`check_target` refuses a move or a bind to a node outside the class's
  allowed topology or without its backend, naming the term, and a move of a
  dataset whose volume is on a node-local backend.

Refusals are :class:`~control.errors.Conflict` (409): the request conflicts
with the class's rules or the cluster as it is now (no default class, a mode
the class does not allow, no node that fits); an unknown class is a 404.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from uuid import UUID

from attrs import evolve

from control.classes import StorageClass
from control.errors import Conflict, NotFound
from control.model import (
    AccessMode,
    Capacity,
    ClusterState,
    Condition,
    ConditionKind,
    Dataset,
)
from control.placement import Candidate, Placement, check_node, place
from control.topology import (
    BindingMode,
    check_access_mode,
    describe_topology,
    node_labels,
    topology_refusal,
)


def class_for(name: str | None, classes: Iterable[StorageClass]) -> StorageClass | None:
    """The class a new dataset gets: the named one (400 if unknown), else the default."""
    known = {c.name: c for c in classes}
    if name is not None:
        if name not in known:
            have = ", ".join(sorted(known)) or "none yet (`shoal class create`)"
            raise NotFound(f"Storage class {name} does not exist; the classes are: {have}.")
        return known[name]
    return next((c for c in known.values() if c.default), None)


def new_dataset(
    asked: Dataset,
    cls: StorageClass | None,
    mode: AccessMode | None,
    candidates: Iterable[Candidate],
    reserved: Mapping[UUID, int] | None = None,
) -> Dataset:
    """``asked`` (whose primary may be :data:`UNBOUND`) with its class applied and its
    primary decided, or a refusal naming the rule no node meets."""
    if cls is None:
        if mode is not None:
            check_access_mode(mode)
        if not asked.bound:
            raise Conflict(
                "Name a primary node, or a storage class (there is no default class): "
                "`shoal dataset create --node NODE` or `--class CLASS`."
            )
        return asked if mode is None else evolve(asked, access_mode=mode)
    chosen = cls.access_mode(mode)
    size = asked.maximum_size if asked.maximum_size is not None else cls.default_size
    filled = evolve(
        asked,
        maximum_size=size,
        storage_class=cls.name,
        access_mode=chosen,
        failover=cls.failover if asked.failover is None else asked.failover,
        failover_grace=cls.failover_grace if asked.failover_grace is None else asked.failover_grace,
        backend=cls.backend,
    )
    if asked.bound:
        found = {c.uuid: c for c in candidates}.get(asked.primary)
        if found is not None:
            _refuse(cls, found, chosen)
        return filled
    if cls.binding_mode is BindingMode.WAIT:
        return filled
    decision = place(cls.need(size, chosen), candidates, reserved)
    if isinstance(decision, Placement):
        backend = filled.backend or decision.backend or None
        return evolve(filled, primary=decision.node, backend=backend)
    raise Conflict(f"{decision.message} Storage class {cls.name} cannot place it now.")


def _refuse(cls: StorageClass, candidate: Candidate, mode: AccessMode) -> None:
    """Refuse ``candidate`` for a dataset of ``cls``: topology and backend only (capacity
    is admission's, liveness the caller's)."""
    need = cls.need(None, mode)
    refusal = check_node(need, evolve(candidate, unusable=None))
    if refusal is not None:
        raise Conflict(
            f"{refusal.message} (storage class {cls.name} allows "
            f"{_where(cls)}). Choose a node it allows."
        )


def _where(cls: StorageClass) -> str:
    backend = "any backend" if cls.backend is None else f"backend {cls.backend}"
    return f"{describe_topology(cls.allowed_topologies)} on {backend}"


def _node_local(dataset: Dataset, state: ClusterState) -> Capacity | None:
    """The capacity of the node-local backend ``dataset``'s volume is on, if it is."""
    report = state.reports.get(dataset.primary)
    capacity = None if report is None else report.capacity_of(dataset.backend)
    if capacity is None or capacity.shared:
        return None
    has_volume = dataset.dataset_id in report.datasets if report is not None else False
    return capacity if has_volume else None


def check_target(
    dataset: Dataset,
    cls: StorageClass | None,
    target: Candidate | None,
    state: ClusterState,
) -> None:
    """Refuse moving or binding ``dataset`` to ``target`` when its class does not allow
    that node, or when its volume lives on its node's node-local backend."""
    if target is None or target.uuid == dataset.primary:
        return
    if dataset.bound:
        local = _node_local(dataset, state)
        if local is not None:
            raise Conflict(
                f"Dataset {dataset.name or dataset.dataset_id} cannot move: its volume is on "
                f"the node-local backend {local.backend!r} of its node, which no other node "
                "can reach. It stays pinned to that node; copy the data out through a "
                "container if it must live elsewhere."
            )
    if cls is not None:
        _refuse(cls, target, dataset.access_mode)


def placement_conditions(
    datasets: Iterable[Dataset],
    classes: Iterable[StorageClass],
    state: ClusterState,
    now: float,
) -> list[Condition]:
    """Conditions the control service itself sees on live datasets: ``unbound`` (waiting for
    its first consumer) and ``outside_topology`` (its node's labels changed so that its class
    no longer allows it there; it is never moved for that)."""
    by_name = {c.name: c for c in classes}
    found = []
    for dataset in datasets:
        if dataset.deleted:
            continue
        if dataset.released:
            found.append(Condition(
                dataset.dataset_id, ConditionKind.WAITING, "released",
                "deleted with its volume retained (a Retain class): `shoal dataset adopt` "
                "makes it a dataset again, with its data", now,
            ))
            continue
        if not dataset.bound:
            found.append(Condition(
                dataset.dataset_id, ConditionKind.WAITING, "unbound",
                "waiting for its first consumer: a container mounting it, or "
                "`shoal dataset attach`, binds it to that node", now,
            ))
            continue
        cls = by_name.get(dataset.storage_class or "")
        node = state.nodes.get(dataset.primary)
        if cls is None or node is None or not cls.allowed_topologies:
            continue
        refusal = topology_refusal(cls.allowed_topologies, node_labels(node))
        if refusal is not None:
            found.append(Condition(
                dataset.dataset_id, ConditionKind.ERROR, "outside_topology",
                f"its node {node.display_name} is no longer allowed by storage class "
                f"{cls.name}: {refusal}. It stays there (Shoal never moves data silently); "
                "move it to an allowed node, or restore the node's labels", now,
            ))
    return found
