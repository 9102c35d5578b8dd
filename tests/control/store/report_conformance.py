"""
Conformance cases of grouped reports (:meth:`~control.store.interface.Store.report_states`).

Mixed into each store's conformance test class next to
:class:`~tests.control.store.conformance.StoreConformance`.
"""

from __future__ import annotations

from uuid import uuid4

from control.errors import Conflict, NotFound
from control.events import EventQuery, report_events
from control.model import DataSource, SourceKind
from control.store.interface import Store
from tests.control.store.conformance import NOW, add_dataset, add_node, report


class ReportGroupConformance:
    """Each report of a group answered alone, in order; a refused one records nothing."""

    def test_group_of_reports_answered_in_order(self, store: Store) -> None:
        """Reports of several nodes in one group are each recorded and answered."""
        a, b = add_node(store), add_node(store, host="10.0.0.2")
        dataset = add_dataset(store, a)
        generation = store.versions().configuration
        before = store.versions().state
        answers = store.report_states([
            (report(a, generation, dataset.dataset_id, at=NOW + 1), None),
            (report(b, generation, at=NOW + 2), None),
        ])
        assert answers == [True, True]
        state = store.cluster_state()
        assert set(state.reports[a].datasets) == {dataset.dataset_id}
        assert (state.nodes[a].last_seen, state.nodes[b].last_seen) == (NOW + 1, NOW + 2)
        assert store.versions().state > before

    def test_a_refused_report_does_not_stop_the_group(self, store: Store) -> None:
        """An unregistered node's report and a stale one are refused; the others recorded."""
        a, b = add_node(store), add_node(store, host="10.0.0.2")
        generation = store.versions().configuration
        store.report_state(report(b, generation, at=NOW))
        answers = store.report_states([
            (report(uuid4(), generation, at=NOW + 1), None),
            (report(a, generation, at=NOW + 2), None),
            (report(b, generation, at=NOW + 3, era="another"), None),
        ])
        assert isinstance(answers[0], NotFound)
        assert answers[1] is True
        assert isinstance(answers[2], Conflict)
        state = store.cluster_state()
        assert state.reports[a].reported_at == NOW + 2
        assert state.reports[b].era == "era"

    def test_reports_of_one_node_are_judged_in_order(self, store: Store) -> None:
        """A node's second report in a group is judged against its first: the same facts
        again are no change, and an older generation than the first's is refused."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        generation = store.versions().configuration
        store.report_state(report(a, generation - 1, at=NOW))
        answers = store.report_states([
            (report(a, generation, dataset.dataset_id, at=NOW + 1), None),
            (report(a, generation, dataset.dataset_id, at=NOW + 2), None),
            (report(a, generation - 1, at=NOW + 3), None),
        ])
        assert answers[:2] == [True, False]
        assert isinstance(answers[2], Conflict)
        latest = store.cluster_state().reports[a]
        assert (latest.generation, set(latest.datasets)) == (generation, {dataset.dataset_id})
        assert latest.reported_at == NOW + 2

    def test_a_group_makes_the_events_of_its_reports(self, store: Store) -> None:
        """A dataset mounted and then gone within one group makes both events, in order."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        generation = store.versions().configuration
        steps = [
            report(a, generation, at=NOW),
            report(a, generation, dataset.dataset_id, at=NOW + 1),
            report(a, generation, at=NOW + 2),
        ]
        store.report_state(steps[0])
        store.report_states([(steps[1], None), (steps[2], None)])
        expected = [e.kind for e in report_events(steps[0], steps[1], NOW + 1)
                    + report_events(steps[1], steps[2], NOW + 2)]
        kinds = [e.kind for e in store.events(EventQuery(dataset_id=dataset.dataset_id))]
        assert "unmounted" in expected
        assert kinds[-len(expected):] == expected

    def test_an_unchanged_report_is_seen_through_the_state(self, store: Store) -> None:
        """A report repeating the last one, after configuration writes moved the generation,
        is seen at once in the state (its time) and in the node's liveness (last seen)."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        generation = store.versions().configuration
        store.report_state(report(a, generation, dataset.dataset_id, at=NOW + 1))
        add_dataset(store, a)  # the generation moves on; the node has not acted on it yet
        before = store.versions().state
        assert store.report_states([(report(a, generation, dataset.dataset_id, at=NOW + 5),
                                     None)]) == [False]
        assert store.versions().state == before
        state = store.cluster_state()
        assert state.reports[a].reported_at == NOW + 5
        assert state.nodes[a].last_seen == NOW + 5
        assert [n.last_seen for n in store.nodes()] == [NOW + 5]

    def test_a_group_says_whom_its_state_version_concerns(self, store: Store) -> None:
        """A report letting go of a dataset moved to B reaches its node, the dataset and B,
        for exactly the state version it wrote; not C."""
        a, b = add_node(store), add_node(store, host="10.0.0.2")
        c = add_node(store, host="10.0.0.3")
        dataset = add_dataset(store, a)
        generation = store.versions().configuration
        store.report_states([(report(a, generation, dataset.dataset_id, at=NOW), None),
                             (report(c, generation, at=NOW), None)])
        store.move_dataset(dataset.dataset_id, b, None, now=NOW)
        generation = store.versions().configuration
        before = store.versions().state
        answers, reached = store.report_states_reaching([(report(a, generation, at=NOW + 1),
                                                          None)])
        assert answers == [True]
        assert reached is not None
        assert (reached.first, reached.last) == (before + 1, store.versions().state)
        assert reached.generation == generation
        assert {a, b, dataset.dataset_id} <= reached.concerns
        assert c not in reached.concerns

    def test_a_group_changing_nothing_reaches_no_one(self, store: Store) -> None:
        """A group that wrote no state version has no reach; nor does a refused report."""
        a = add_node(store)
        generation = store.versions().configuration
        store.report_state(report(a, generation, at=NOW))
        answers, reached = store.report_states_reaching([
            (report(a, generation, at=NOW + 1), None),
            (report(uuid4(), generation, at=NOW + 1), None),
        ])
        assert answers[0] is False and isinstance(answers[1], NotFound)
        assert reached is None

    def test_a_first_report_concerns_everyone(self, store: Store) -> None:
        """A node's first report (nothing to compare with) has no reach: it concerns everyone."""
        a = add_node(store)
        dataset = add_dataset(store, a)
        generation = store.versions().configuration
        answers, reached = store.report_states_reaching([
            (report(a, generation, dataset.dataset_id, at=NOW), None)
        ])
        assert answers == [True] and reached is None

    def test_a_source_reaches_its_clones_primary_and_a_clone_everyone(self, store: Store) -> None:
        """A source's volume appearing reaches the primary of its clone (waiting for it); a
        change of the clone's own state concerns everyone (its source's primary makes it)."""
        a, b = add_node(store), add_node(store, host="10.0.0.2")
        c = add_node(store, host="10.0.0.3")
        source = add_dataset(store, a)
        clone = add_dataset(store, b, source=DataSource(SourceKind.DATASET, source.dataset_id))
        generation = store.versions().configuration
        store.report_states([(report(node, generation, at=NOW), None) for node in (a, b, c)])
        _, reached = store.report_states_reaching([
            (report(a, generation, source.dataset_id, at=NOW + 1), None)
        ])
        assert reached is not None
        assert {a, b, source.dataset_id, clone.dataset_id} <= reached.concerns
        assert c not in reached.concerns
        _, reached = store.report_states_reaching([
            (report(b, generation, clone.dataset_id, at=NOW + 2), None)
        ])
        assert reached is None
