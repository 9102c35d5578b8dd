"""
Conformance cases of moves in groups (:meth:`~control.store.interface.Store.move_datasets`).

Mixed into each store's conformance test class next to
:class:`~tests.control.store.group_conformance.GroupConformance`.
"""

from __future__ import annotations

from uuid import uuid4

from control.errors import Conflict, NotAllowed, NotFound, PreconditionFailed
from control.events import EventQuery
from control.model import Lease, tag_for
from control.store.interface import NewMove, Store
from tests.control.store.conformance import NOW, add_dataset, add_node


class MoveGroupConformance:
    """Moves in a group: each answered alone and in order, as if made one after another."""

    def test_group_moves_answered_in_order(self, store: Store) -> None:
        """Every move of a group is stored, with generations one apart in the order given,
        each with its new primary and epoch, and its event in the same order."""
        old, new = add_node(store), add_node(store, "10.0.0.2")
        datasets = [add_dataset(store, old) for _ in range(4)]
        before = store.versions().configuration
        answers = store.move_datasets([NewMove(d.dataset_id, new, now=NOW) for d in datasets])
        assert [a[1] for a in answers] == [before + 1 + i for i in range(4)]  # type: ignore[index]
        assert store.versions().configuration == before + 4
        stored = store.configuration(NOW).datasets
        for dataset, answer in zip(datasets, answers, strict=True):
            assert answer[0] == stored[dataset.dataset_id]  # type: ignore[index]
            assert stored[dataset.dataset_id].primary == new
            assert stored[dataset.dataset_id].epoch == dataset.epoch + 1
        moved = [e.dataset_id for e in store.events(EventQuery()) if e.kind == "moved"]
        assert moved == [d.dataset_id for d in datasets]

    def test_refused_moves_change_nothing(self, store: Store) -> None:
        """An unknown dataset (404), an unknown primary (409), a deleted dataset (400s) and a
        lease held elsewhere (409) are refused alone; the moves between them are stored."""
        old, new = add_node(store), add_node(store, "10.0.0.2")
        good, gone, leased, other = (add_dataset(store, old) for _ in range(4))
        store.delete_dataset(gone.dataset_id, None, NOW)
        store.acquire_lease(Lease(leased.dataset_id, old, NOW + 600), None, NOW)
        before = store.versions().configuration
        answers = store.move_datasets([
            NewMove(uuid4(), new, now=NOW),
            NewMove(good.dataset_id, new, now=NOW),
            NewMove(other.dataset_id, uuid4(), now=NOW),
            NewMove(gone.dataset_id, new, now=NOW),
            NewMove(leased.dataset_id, new, now=NOW),
        ])
        assert isinstance(answers[0], NotFound)
        assert answers[1][1] == before + 1  # type: ignore[index]
        assert isinstance(answers[2], Conflict)
        assert isinstance(answers[3], NotAllowed)
        assert isinstance(answers[4], Conflict)
        assert store.versions().configuration == before + 1
        stored = store.configuration(NOW).datasets
        assert stored[other.dataset_id].primary == old
        assert stored[leased.dataset_id].primary == old
        for refused in (other, gone, leased):
            kinds = [e.kind for e in store.events(EventQuery(dataset_id=refused.dataset_id))]
            assert "moved" not in kinds

    def test_later_move_sees_earlier_in_group(self, store: Store) -> None:
        """Two moves of one dataset: the second starts from where the first left it."""
        a, b, c = add_node(store), add_node(store, "10.0.0.2"), add_node(store, "10.0.0.3")
        dataset = add_dataset(store, a)
        answers = store.move_datasets([NewMove(dataset.dataset_id, b, now=NOW),
                                       NewMove(dataset.dataset_id, c, now=NOW)])
        first, second = answers[0][0], answers[1][0]  # type: ignore[index]
        assert (first.primary, first.epoch) == (b, dataset.epoch + 1)
        assert (second.primary, second.epoch) == (c, dataset.epoch + 2)
        assert store.configuration(NOW).datasets[dataset.dataset_id] == second

    def test_tags_checked_against_the_group_so_far(self, store: Store) -> None:
        """Two moves with the same tag: the first wins it, the second is refused (412)."""
        old, new = add_node(store), add_node(store, "10.0.0.2")
        one, two = add_dataset(store, old), add_dataset(store, old)
        tag = tag_for(store.versions().configuration)
        answers = store.move_datasets([NewMove(one.dataset_id, new, tag, NOW),
                                       NewMove(two.dataset_id, new, tag, NOW)])
        assert not isinstance(answers[0], Exception)
        assert isinstance(answers[1], PreconditionFailed)
        assert store.configuration(NOW).datasets[two.dataset_id].primary == old

    def test_same_primary_and_empty_group(self, store: Store) -> None:
        """A move to the primary it has answers the dataset unchanged, as one move does; an
        empty group answers nothing."""
        node = add_node(store)
        dataset = add_dataset(store, node)
        [(stored, _)] = store.move_datasets([NewMove(dataset.dataset_id, node, now=NOW)])
        assert stored == dataset
        assert store.move_datasets([]) == []
