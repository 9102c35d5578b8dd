"""
Flocker's create (``POST /v1/configuration/datasets``) decided and written a group at a time.

A create needs the storage classes and the cluster state for its placement
and admission, then a write. Done request by request, that is two trips to
the database threads and two reads per create. Instead the handler queues a
:class:`PendingCreate` (what the request asked, parsed and checked on the
reactor) in :class:`~control.api.group.GroupCommit`, and each group is one
trip (:func:`create_group`): the classes and the state read once for the
whole group, in one transaction
(:meth:`~control.store.interface.Store.placement_inputs`), after every
create of it arrived (so each sees every write committed before its
request), each create decided alone by the same pure
rules in the same order as before (:func:`decide`), and the decided ones
written together (:meth:`~control.store.interface.Store.create_datasets`).
Every create gets its own answer: its dataset and generation, or its refusal.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen

from control import failover_rules as fr
from control import rules
from control.admission import check_create
from control.api.group import Take
from control.api.placing import candidates_for
from control.binding import class_for, new_dataset
from control.classes import StorageClass
from control.errors import ShoalError
from control.model import ClusterState, Dataset, Node
from control.store.interface import Created, NewDataset, Store


@frozen
class PendingCreate:
    """A create as its request asked it, waiting for its group.

    ``require_live``: whether the request opted in to a live primary, or the
    refusal of its malformed header (raised where the check would have been).
    """

    asked: Dataset
    if_tag: str | None
    now: float
    actor: str | None
    require_live: bool | ShoalError
    node_timeout: float


def decide(
    pending: PendingCreate, classes: Sequence[StorageClass], state: ClusterState,
    nodes: Sequence[Node] | None,
) -> NewDataset:
    """What ``pending`` asks to store, placed and admitted, or its refusal (``nodes``: every
    registered node, read when a create of the group requires a live primary)."""
    now, timeout = pending.now, pending.node_timeout
    candidates = candidates_for(pending.asked, state, now, timeout)
    dataset = new_dataset(pending.asked, class_for(None, classes), None, candidates)
    if isinstance(pending.require_live, ShoalError):
        raise pending.require_live
    if pending.require_live:
        primary = dataset.primary
        rules.check_live(next((n for n in nodes or () if n.uuid == primary), None), now, timeout)
    fr.check_placeable(state.nodes.get(dataset.primary), None)
    check_create(dataset.maximum_size, dataset.primary, state, now, timeout)
    return NewDataset(dataset, pending.if_tag, now, pending.actor)


def write_group(store: Store, take: Take) -> list[Created]:
    """Take a group from the queue and store it (:func:`create_group`; blocking: run it in the
    store's threads, so that the group holds every create that arrived until it runs)."""
    return create_group(store, take())


def create_group(store: Store, pendings: Sequence[PendingCreate]) -> list[Created]:
    """Decide and store ``pendings`` (blocking: run in the store's threads); their answers."""
    classes, state, nodes = store.placement_inputs(any(p.require_live is True for p in pendings))
    answers: dict[int, Created] = {}
    decided: list[tuple[int, NewDataset]] = []
    for index, pending in enumerate(pendings):
        try:
            decided.append((index, decide(pending, classes, state, nodes)))
        except Exception as refusal:  # a refusal, or (a bug) a failure of this create alone
            answers[index] = refusal
    created = store.create_datasets([new for _, new in decided]) if decided else []
    for (index, _), answer in zip(decided, created, strict=True):
        answers[index] = answer
    return [answers[index] for index in range(len(pendings))]

