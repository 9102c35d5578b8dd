"""Moves checked and written a group at a time (:mod:`control.api.moving`): every move gets
the answer it gets alone, refusals in the same order."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from control.api import moving
from control.classes import StorageClass
from control.errors import ShoalError
from control.model import Capacity, Dataset, Fence, Node, NodeState, tag_for
from control.store.memory import MemoryStore
from control.topology import Requirement, TopologyTerm

NOW = 1_700_000_000.0
GiB = 1024**3
TIMEOUT = 30.0


def _id(n: int) -> UUID:
    return UUID(int=n)


A, FENCED, DRAINING, SILENT, SMALL, ZONE_B, UNKNOWN = (_id(i) for i in range(1, 8))


def _cluster() -> MemoryStore:
    """Nodes of every kind a move may be refused for, and datasets 101-108 on node A."""
    store = MemoryStore()
    zones = {A: "a", FENCED: "a", DRAINING: "a", SILENT: "a", SMALL: "a", ZONE_B: "b"}
    for node, zone in zones.items():
        seen = NOW - 3600 if node == SILENT else NOW
        store.register_node(Node(uuid=node, host=f"h{node.int}", era=f"e{node.int}",
                                 labels={"zone": zone}, last_seen=seen, mount_root="/m"))
        maximum = GiB if node == SMALL else 100 * GiB
        capacity = Capacity("loopback", 100 * GiB, maximum, maximum, shared=False)
        store.report_state(NodeState(node, f"e{node.int}", 0, {}, capacity=capacity))
    store.fence_node(FENCED, Fence(NOW, "test"))
    store.set_draining(DRAINING, True, NOW)
    store.create_class(StorageClass("zoned", allowed_topologies=(
        TopologyTerm((Requirement("zone", ("a",)),)),
    )), now=NOW)
    for n in range(101, 109):
        cls = "zoned" if n == 105 else None
        store.create_dataset(Dataset(dataset_id=_id(n), primary=A, maximum_size=10 * GiB,
                                     storage_class=cls), None, now=NOW)
    store.create_dataset(Dataset(dataset_id=_id(109), primary=A, maximum_size=GiB // 2),
                         None, now=NOW)
    return store


def _moves(generation: int) -> list[moving.PendingMove]:
    stale = tag_for(generation - 1)

    def move(dataset: int, primary: UUID, live: bool = False, tag: str | None = None) -> Any:
        return moving.PendingMove(_id(dataset), primary, tag, NOW, "test", live, TIMEOUT)

    return [
        move(101, FENCED),  # fenced: 409
        move(102, DRAINING),  # draining: 409
        move(103, SILENT, live=True),  # not live, and the request asks for a live one
        move(104, SMALL),  # cannot create 10 GiB: 400
        move(105, ZONE_B),  # outside the class's topology
        move(999, A),  # no such dataset: 404
        move(106, UNKNOWN),  # unknown node: the store's 409
        move(107, SILENT),  # not live, but not asked for: moved
        move(109, SMALL),  # small enough: moved
        move(109, A),  # the same dataset again: sees the move before
        move(108, A),  # the primary it has: unchanged
        move(108, ZONE_B, tag=stale),  # a stale tag: 412
    ]


def _alone(store: MemoryStore, pending: moving.PendingMove) -> Any:
    try:
        current = moving.check_one(store, pending)
        stored, generation = store.move_dataset(
            pending.dataset_id, pending.primary, pending.if_tag, pending.now, actor=pending.actor
        )
    except ShoalError as refusal:
        return refusal
    return stored, generation, current


def _same(answer: Any) -> Any:
    if isinstance(answer, ShoalError):
        return type(answer), str(answer)
    return answer


def test_group_answers_as_moves_one_by_one() -> None:
    """A group of moves, refused for every reason a move is refused and mixed with good ones,
    gets the answers, the datasets and the generations the same moves get one by one."""
    grouped, alone = _cluster(), _cluster()
    pendings = _moves(grouped.versions().configuration)
    answers = moving.move_group(grouped, pendings)
    expected = [_alone(alone, p) for p in pendings]
    assert [_same(a) for a in answers] == [_same(e) for e in expected]
    assert grouped.configuration(NOW).datasets == alone.configuration(NOW).datasets
    assert grouped.versions() == alone.versions()
    kinds = [type(a).__name__ if isinstance(a, ShoalError) else a[0].primary for a in answers]
    assert kinds == ["Conflict", "Conflict", "Conflict", "InvalidRequest", "Conflict",
                     "NotFound", "Conflict", SILENT, SMALL, A, A, "PreconditionFailed"]


def test_a_dataset_moved_twice_in_a_group_is_checked_after_the_first() -> None:
    """The second move of a dataset in one group starts from its first move (its epoch, and
    the before it answers), not from the dataset as the group first read it."""
    store = _cluster()
    first = moving.PendingMove(_id(109), SMALL, None, NOW, None, False, TIMEOUT)
    second = moving.PendingMove(_id(109), A, None, NOW, None, False, TIMEOUT)
    [one, two] = moving.move_group(store, [first, second])
    assert not isinstance(one, Exception) and not isinstance(two, Exception)
    assert one[0].primary == SMALL and two[2] == one[0]
    assert two[0].primary == A and two[0].epoch == one[0].epoch + 1
