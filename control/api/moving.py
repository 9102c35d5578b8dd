"""
Flocker's move (``POST /v1/configuration/datasets/{id}`` with a primary), checked and
written a group at a time.

A move is checked against the new primary (live, if the request asks; not fenced or
draining), the dataset's class and backend, and the new primary's capacity, then
written. Done request by request, that is four or five trips to the database threads
per move (the nodes, the dataset, the cluster state, the class, the write), each
waiting for the reactor between them, and one transaction committed to disk per move.
Instead the handler queues a :class:`PendingMove` in
:class:`~control.api.group.GroupCommit`, and each group is one trip
(:func:`move_group`): the nodes, the cluster state and the classes read once for the
group, each move's dataset read, each move checked alone by the same rules in the same
order as before (:func:`check`), and the moves that pass written together
(:meth:`~control.store.interface.Store.move_datasets`), each judged again there by
:func:`control.rules.move_dataset` against the database.

A later move of a group sees the earlier ones: when a group names a dataset again, the
moves before it are written first and the dataset is read again, so that each move is
checked against the dataset as the moves before it left it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from uuid import UUID

from attrs import frozen

from control import failover_rules as fr
from control import rules
from control.admission import check_move
from control.api.group import Take
from control.binding import check_target
from control.classes import StorageClass
from control.errors import ShoalError
from control.model import ClusterState, Dataset, Node
from control.placement import candidate
from control.store.interface import NewMove, Store


@frozen
class PendingMove:
    """A move as its request asked it, waiting for its group (``require_live``: whether
    the request opted in to a live primary)."""

    dataset_id: UUID
    primary: UUID
    if_tag: str | None
    now: float
    actor: str | None
    require_live: bool
    node_timeout: float


Moved = tuple[Dataset, int, Dataset | None] | ShoalError | Exception
"""The answer to one :class:`PendingMove`: the dataset stored, its generation and the
dataset as it was before (to tell the watchers of both); or the refusal."""


@frozen
class Found:
    """What a group's checks read: every node (the cluster state's, whose version a node's
    fence or drain mark moves), the cluster state, the classes by name (read only if a
    dataset of the group has a class). Only the targets' liveness is current."""

    nodes: Mapping[UUID, Node]
    state: ClusterState
    classes: Callable[[str], StorageClass | None]


def check(pending: PendingMove, current: Dataset | None, found: Found) -> None:
    """Refuse a move that the node, the dataset's class or the node's capacity forbids (the
    store's write refuses the rest), in the order the handler always checked them."""
    primary, now, timeout = pending.primary, pending.now, pending.node_timeout
    if pending.require_live:
        rules.check_live(found.nodes.get(primary), now, timeout)
    if current is None or current.deleted:
        return
    if current.primary != primary:
        fr.check_placeable(found.nodes.get(primary), pending.dataset_id)
    state = found.state
    node = state.nodes.get(primary)
    cls = None if current.storage_class is None else found.classes(current.storage_class)
    check_target(current, cls, None if node is None else candidate(node, state), state)
    check_move(current, primary, state, now, timeout)


def check_one(store: Store, pending: PendingMove) -> Dataset | None:
    """Read what :func:`check` needs and check ``pending`` (blocking: one trip to the
    store's threads); returns the dataset as it is before the move."""
    current = store.dataset(pending.dataset_id)
    check(pending, current, _found(store, [current], [pending]))
    return current


def write_group(store: Store, take: Take) -> list[Moved]:
    """Take a group from the queue and store it (:func:`move_group`; blocking: run it in the
    store's threads, so that the group holds every move that arrived until it runs)."""
    return move_group(store, take())


def move_group(store: Store, pendings: Sequence[PendingMove]) -> list[Moved]:
    """Check and store ``pendings`` (blocking: run in the store's threads); their answers."""
    current = store.datasets_of([p.dataset_id for p in pendings])
    found = _found(store, current.values(), pendings)
    answers: dict[int, Moved] = {}
    batch: list[tuple[int, NewMove, Dataset | None]] = []
    for index, pending in enumerate(pendings):
        if any(new.dataset_id == pending.dataset_id for _, new, _ in batch):
            answers.update(_write(store, batch, current))
            batch = []
        before = current[pending.dataset_id]
        try:
            check(pending, before, found)
        except Exception as refusal:  # a refusal, or (a bug) a failure of this move alone
            answers[index] = refusal
            continue
        new = NewMove(pending.dataset_id, pending.primary, pending.if_tag, pending.now,
                      pending.actor)
        batch.append((index, new, before))
    answers.update(_write(store, batch, current))
    return [answers[index] for index in range(len(pendings))]


def _write(store: Store, batch: list[tuple[int, NewMove, Dataset | None]],
           current: dict[UUID, Dataset | None]) -> dict[int, Moved]:
    """Store ``batch``; each move's answer by its index (and ``current`` updated with the
    datasets stored)."""
    if not batch:
        return {}
    answers: dict[int, Moved] = {}
    written = store.move_datasets([new for _, new, _ in batch])
    for (index, new, before), answer in zip(batch, written, strict=True):
        if isinstance(answer, Exception):
            answers[index] = answer
            continue
        stored, generation = answer
        current[new.dataset_id] = stored
        answers[index] = (stored, generation, before)
    return answers


def _found(
    store: Store, datasets: Iterable[Dataset | None], pendings: Iterable[PendingMove]
) -> Found:
    """The nodes, the cluster state and (if any of ``datasets`` has a class) the classes.

    Only the targets' liveness is read fresh (:meth:`Store.cluster_state_of`): :func:`check`
    asks whether the target is live, never another node (laying every node's times over
    the state was 37% of a group at 1,000 nodes, issue 16)."""
    named = any(d is not None and d.storage_class is not None for d in datasets)
    classes = {c.name: c for c in store.classes()} if named else {}
    state = store.cluster_state_of(frozenset(p.primary for p in pendings))
    return Found(state.nodes, state, classes.get)
