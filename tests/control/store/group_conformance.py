"""
Conformance cases of group commit (:meth:`~control.store.interface.Store.create_datasets`).

Mixed into each store's conformance test class next to
:class:`~tests.control.store.conformance.StoreConformance`. That what a group
answered was committed is the SQL store's own test (``test_sql.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

from control.errors import Conflict, PreconditionFailed
from control.events import EventQuery, EventRetention
from control.model import Dataset, Event, tag_for
from control.store.interface import NewDataset, Store
from tests.control.store.conformance import NOW, add_node


def _new(primary: object, name: str | None = None, **kwargs: object) -> NewDataset:
    metadata = {} if name is None else {"name": name}
    dataset = Dataset(dataset_id=uuid4(), primary=primary, metadata=metadata)  # type: ignore[arg-type]
    return NewDataset(dataset, now=NOW, **kwargs)  # type: ignore[arg-type]


class GroupConformance:
    """Group commit: each create of a group answered alone, in order; refusals change nothing."""

    def test_group_creates_answered_in_order(self, store: Store) -> None:
        """Every create of a group is stored, with generations one apart in the order given."""
        node = add_node(store)
        before = store.versions().configuration
        creates = [_new(node, f"g{i}") for i in range(5)]
        answers = store.create_datasets(creates)
        assert [a[1] for a in answers] == [before + 1 + i for i in range(5)]  # type: ignore[index]
        assert [a[0].dataset_id for a in answers] == [  # type: ignore[index]
            c.dataset.dataset_id for c in creates
        ]
        assert store.versions().configuration == before + 5
        stored = store.configuration(NOW).datasets
        assert all(c.dataset.dataset_id in stored for c in creates)

    def test_placement_inputs_are_the_three_reads(self, store: Store) -> None:
        """placement_inputs reads what classes, cluster_state and nodes read, the nodes only
        when asked for."""
        node = add_node(store)
        classes, state, nodes = store.placement_inputs(True)
        assert classes == store.classes()
        assert state.version == store.cluster_state().version
        assert set(state.nodes) == {node} == set(store.cluster_state().nodes)
        assert nodes == store.nodes()
        assert store.placement_inputs(False)[2] is None

    def test_group_events_in_order(self, store: Store) -> None:
        """The creates' events are recorded with increasing ids in the order of the group."""
        node = add_node(store)
        creates = [_new(node, f"e{i}") for i in range(4)]
        store.create_datasets(creates)
        events = store.events(EventQuery(node_uuid=None))
        created = [e.dataset_id for e in events if e.kind == "created"]
        assert created == [c.dataset.dataset_id for c in creates]

    def test_refused_create_in_group_changes_nothing(self, store: Store) -> None:
        """A refused create gets its refusal; the others of its group are stored without it."""
        node = add_node(store)
        before = store.versions().configuration
        good1, good2 = _new(node, "a"), _new(node, "b")
        unknown = _new(uuid4(), "c")
        answers = store.create_datasets([good1, unknown, good2])
        assert isinstance(answers[1], Conflict)
        assert answers[0][1] == before + 1  # type: ignore[index]
        assert answers[2][1] == before + 2  # type: ignore[index]
        datasets = store.configuration(NOW).datasets
        assert unknown.dataset.dataset_id not in datasets
        assert {good1.dataset.dataset_id, good2.dataset.dataset_id} <= set(datasets)
        events = store.events(EventQuery(dataset_id=unknown.dataset.dataset_id))
        assert events == []

    def test_later_create_sees_earlier_in_group(self, store: Store) -> None:
        """A create whose name an earlier create of the same group took is refused (409)."""
        node = add_node(store)
        first, second = _new(node, "same"), _new(node, "same")
        answers = store.create_datasets([first, second])
        assert isinstance(answers[1], Conflict)
        assert store.configuration(NOW).datasets[first.dataset.dataset_id].name == "same"
        assert second.dataset.dataset_id not in store.configuration(NOW).datasets

    def test_tags_checked_against_the_group_so_far(self, store: Store) -> None:
        """Two creates with the same tag: the first wins it, the second is refused (412)."""
        node = add_node(store)
        tag = tag_for(store.versions().configuration)
        both = [_new(node, "t1", if_tag=tag), _new(node, "t2", if_tag=tag)]
        answers = store.create_datasets(both)
        assert not isinstance(answers[0], Exception)
        assert isinstance(answers[1], PreconditionFailed)

    def test_all_refused_group_changes_nothing(self, store: Store) -> None:
        """A group whose every create is refused leaves the generation where it was."""
        before = store.versions().configuration
        answers = store.create_datasets([_new(uuid4()), _new(uuid4())])
        assert all(isinstance(a, Conflict) for a in answers)
        assert store.versions().configuration == before
        assert store.create_datasets([]) == []

    def test_same_id_twice_in_group(self, store: Store) -> None:
        """The second create of a group naming an id the first took is refused (409)."""
        node = add_node(store)
        first = _new(node, "x1")
        again = NewDataset(Dataset(dataset_id=first.dataset.dataset_id, primary=node), now=NOW)
        answers = store.create_datasets([first, again])
        assert not isinstance(answers[0], Exception)
        assert isinstance(answers[1], Conflict)
        assert store.configuration(NOW).datasets[first.dataset.dataset_id].name == "x1"

    def test_group_refuses_ids_and_names_stored_before(self, store: Store) -> None:
        """Ids in use (deleted ones too) and live names stored before the group are refused;
        a deleted dataset's name is free again."""
        node = add_node(store)
        [(live, _), (gone, _)] = store.create_datasets([_new(node, "live"), _new(node, "gone")])
        store.delete_dataset(gone.dataset_id, None, NOW)
        same_id = NewDataset(Dataset(dataset_id=gone.dataset_id, primary=node), now=NOW)
        answers = store.create_datasets([same_id, _new(node, "live"), _new(node, "gone")])
        assert isinstance(answers[0], Conflict)
        assert isinstance(answers[1], Conflict)
        assert not isinstance(answers[2], Exception)

    def test_group_prunes_events(
        self, with_retention: Callable[[EventRetention], Store]
    ) -> None:
        """A group's creates prune the history as creates one by one do: by dataset and by age."""
        store = with_retention(EventRetention(per_dataset=2, max_age=60))
        node = add_node(store)
        reused = uuid4()
        store.append_events([Event("e", NOW - 100, "old"), Event("e", NOW, "a", reused),
                             Event("e", NOW, "b", reused)])
        again = NewDataset(Dataset(dataset_id=reused, primary=node), now=NOW + 1)
        store.create_datasets([_new(node, "p1"), again])
        kinds = [e.message for e in store.events(EventQuery(dataset_id=reused))]
        assert kinds == ["b", f"created on node {node}"]
        assert "old" not in [e.message for e in store.events(EventQuery())]
