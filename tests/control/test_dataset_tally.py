"""The dataset counts kept change by change agree with a count from scratch."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrsistent import pmap

from control.cluster_metrics import DatasetHealth, dataset_states, summarise
from control.dataset_tally import Tally, judge, touched_by
from control.model import (
    UNBOUND,
    ClusterState,
    Configuration,
    Dataset,
    DatasetState,
    Fence,
    Node,
    NodeState,
)
from tests.control.test_cluster_metrics import (
    DATASETS,
    GIB,
    N1,
    N2,
    NODES,
    RARELY,
    STATUSES,
    attached,
    counts,
    error_of,
    mounted,
    report,
)

N3 = UUID(int=3)
REPORTERS = (N1, N2, N3)
SIZES = st.sampled_from([None, GIB, 2 * GIB])


def datasets() -> st.SearchStrategy[Dataset]:
    """Any dataset of the small universe: live, deleted, released or unbound."""
    return st.builds(
        Dataset, st.sampled_from(DATASETS), st.sampled_from([*NODES, N3]), SIZES,
        deleted=RARELY, released=RARELY,
    )


@st.composite
def reports(draw: st.DrawFn) -> NodeState:
    """Any report of one node: datasets in any status and size, some failing."""
    found = [
        DatasetState(dataset_id, draw(st.sampled_from(STATUSES)), draw(SIZES))
        for dataset_id in draw(st.lists(st.sampled_from(DATASETS), unique=True))
    ]
    failing = draw(st.lists(st.sampled_from(DATASETS), unique=True, max_size=2))
    return report(draw(st.sampled_from(REPORTERS)), *found,
                  conditions=tuple(error_of(d) for d in failing))


STEPS = st.one_of(
    st.tuples(st.just("write"), datasets()),
    st.tuples(st.just("purge"), st.sampled_from(DATASETS)),
    st.tuples(st.just("report"), reports()),
    st.tuples(st.just("silent"), st.sampled_from(REPORTERS)),
    st.tuples(st.just("fence"), st.frozensets(st.sampled_from(REPORTERS))),
)


class Cluster:
    """The inputs, changed plainly, and the tally, changed step by step."""

    def __init__(self) -> None:
        self.generation = 0
        self.datasets: dict[UUID, Dataset] = {}
        self.reports: dict[UUID, NodeState] = {}
        self.fenced: frozenset[UUID] = frozenset()
        self.tally = Tally.of(0, pmap(), {}, frozenset())

    def step(self, kind: str, value: Any) -> None:
        """Make one change to the inputs and the same to the tally."""
        if kind in ("write", "purge"):
            dataset_id = value.dataset_id if kind == "write" else value
            if kind == "write":
                self.datasets[dataset_id] = value
            else:
                self.datasets.pop(dataset_id, None)
            self.generation += 1
            self.tally = self.tally.with_datasets(
                self.generation, pmap(self.datasets), [dataset_id]
            )
        elif kind in ("report", "silent"):
            if kind == "report":
                self.reports[value.node_uuid] = value
            else:
                self.reports.pop(value, None)
            summaries = {node: summarise(r) for node, r in self.reports.items()}
            # Unchanged nodes keep their summary object, as the report cache does.
            kept = {n: self.tally.summaries.get(n, s) if n != getattr(value, "node_uuid", value)
                    else s for n, s in summaries.items()}
            self.tally = self.tally.with_summaries(kept)
        else:
            self.fenced = value
            self.tally = self.tally.with_fenced(value)

    def from_scratch(self) -> dict[DatasetHealth, int]:
        """:func:`dataset_states` of the inputs."""
        nodes = {
            node: Node(node, "h", fence=Fence(1.0, "x") if node in self.fenced else None)
            for node in REPORTERS
        }
        return dataset_states(
            Configuration(self.generation, pmap(self.datasets)),
            ClusterState(1, pmap(nodes), pmap(self.reports)),
        )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEPS, max_size=30))
def test_any_sequence_of_changes_counts_as_from_scratch(steps: list[tuple[str, Any]]) -> None:
    """After every write, purge, report, silence or fence the tally equals a fresh count."""
    cluster = Cluster()
    for kind, value in steps:
        cluster.step(kind, value)
        assert dict(cluster.tally.counts) == cluster.from_scratch()
        assert cluster.tally.generation == cluster.generation


def test_a_change_judges_only_what_it_touched() -> None:
    """A report changing one dataset leaves the others' counts as they were."""
    config = {d: Dataset(d, N1, GIB) for d in DATASETS}
    first = report(N1, *(mounted(d) for d in DATASETS))
    tally = Tally.of(1, pmap(config), {N1: summarise(first)}, frozenset())
    assert dict(tally.counts) == counts(len(DATASETS), 0, 0)
    second = report(N1, attached(DATASETS[0]), *(mounted(d) for d in DATASETS[1:]),
                    conditions=(error_of(DATASETS[0]),))
    assert touched_by(summarise(first), summarise(second)) == {DATASETS[0].int}
    after = tally.with_summaries({N1: summarise(second)})
    assert dict(after.counts) == counts(len(DATASETS) - 1, 0, 1)


def test_unchanged_inputs_return_the_same_tally() -> None:
    """The same summaries and fences are no change at all."""
    summary = summarise(report(N1, mounted(DATASETS[0])))
    tally = Tally.of(1, pmap({DATASETS[0]: Dataset(DATASETS[0], N1, GIB)}), {N1: summary},
                     frozenset())
    assert tally.with_summaries({N1: summary}) is tally
    assert tally.with_fenced(frozenset()) is tally


def test_a_large_change_is_counted_from_scratch() -> None:
    """Creating many datasets at once gives the same counts as a fresh tally of them."""
    many = {UUID(int=1000 + i): Dataset(UUID(int=1000 + i), N1, GIB) for i in range(300)}
    summary = summarise(report(N1, *(mounted(d) for d in list(many)[:100])))
    empty = Tally.of(0, pmap(), {N1: summary}, frozenset())
    grown = empty.with_datasets(1, pmap(many), many)
    assert dict(grown.counts) == counts(100, 200, 0)


def test_judge_of_an_unbound_or_missing_dataset() -> None:
    """An unbound dataset mounted nowhere is converged; a missing one is not counted."""
    assert judge(Dataset(DATASETS[0], UNBOUND), {}, frozenset()) is DatasetHealth.CONVERGED
    assert judge(None, {}, frozenset()) is None
