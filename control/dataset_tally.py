"""
Datasets by state, kept up to date change by change: :class:`Tally`.

:func:`control.cluster_metrics.count_datasets` counts the whole cluster at once
(O(datasets)). A tally holds that count together with what it was counted from
(the configuration's datasets at a generation, each node's report summary, the
fenced nodes), and each update judges again only the datasets the change
touches, so a change costs O(what it changed), not O(cluster):

- :meth:`Tally.with_datasets`: the configuration at a new generation, given the
  ids of the datasets that changed since the tally's generation;
- :meth:`Tally.with_summaries`: nodes' new report summaries (the datasets whose
  entries differ are found with set operations, in C);
- :meth:`Tally.with_fenced`: nodes fenced or unfenced (the datasets they report).

Every update returns a new tally whose counts are what a count from scratch of
its inputs gives (a property test drives random sequences of changes and
compares with :func:`control.cluster_metrics.dataset_states`). A change that
touches more than a quarter of the datasets is counted again from scratch,
which is then the cheaper way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from uuid import UUID

from attrs import evolve, frozen
from pyrsistent import PMap, pmap

from control.cluster_metrics import DatasetHealth, NodeSummary, count_datasets
from control.model import UNBOUND, Dataset

EMPTY = NodeSummary({}, frozenset(), frozenset())
"""The summary of a node that reports nothing."""


def judge(
    dataset: Dataset | None, summaries: Mapping[UUID, NodeSummary], fenced: frozenset[UUID]
) -> DatasetHealth | None:
    """One dataset's health given every node's summary (``None``: no such dataset).

    The one-dataset form of :func:`control.cluster_metrics.count_datasets`: a
    fenced node's report of a dataset primary elsewhere is left out (its error
    conditions are not).
    """
    if dataset is None:
        return None
    key, primary = dataset.dataset_id.int, dataset.primary
    if dataset.deleted:
        converged = not any(
            key in s.reported for n, s in summaries.items() if n not in fenced or n == primary
        )
    elif dataset.released or primary == UNBOUND:
        converged = not any(
            key in s.mounted for n, s in summaries.items() if n not in fenced or n == primary
        )
    else:
        mounted = summaries.get(primary, EMPTY).mounted
        converged = key in mounted and _big_enough(dataset.maximum_size, mounted[key])
    if converged:
        return DatasetHealth.CONVERGED
    if any(key in s.errors for s in summaries.values()):
        return DatasetHealth.ERROR
    return DatasetHealth.PENDING


def _big_enough(wanted: int | None, have: int | None) -> bool:
    return wanted is None or have is None or have >= wanted


def touched_by(old: NodeSummary, new: NodeSummary) -> set[int]:
    """The datasets (``uuid.int``) whose entries differ between a node's two summaries."""
    changed = set(old.reported ^ new.reported)
    changed |= old.errors ^ new.errors
    changed.update(key for key, _ in old.mounted.items() ^ new.mounted.items())
    return changed


@frozen
class Tally:
    """How many datasets are converged, pending and in error, with what that was counted from."""

    generation: int
    """The configuration generation of :attr:`datasets`."""
    datasets: Mapping[UUID, Dataset]
    summaries: PMap
    """Each reporting node's :class:`~control.cluster_metrics.NodeSummary`, by node."""
    fenced: frozenset[UUID]
    counts: PMap
    """:class:`~control.cluster_metrics.DatasetHealth` -> how many datasets."""

    @classmethod
    def of(
        cls,
        generation: int,
        datasets: Mapping[UUID, Dataset],
        summaries: Mapping[UUID, NodeSummary],
        fenced: frozenset[UUID],
    ) -> Tally:
        """A tally counted from scratch."""
        kept = pmap(summaries)
        return cls(generation, datasets, kept, fenced,
                   pmap(count_datasets(datasets, kept, fenced)))

    def with_datasets(
        self, generation: int, datasets: Mapping[UUID, Dataset], changed: Iterable[UUID]
    ) -> Tally:
        """The tally of ``datasets`` at ``generation``, where only ``changed`` (the ids
        created, changed or removed since :attr:`generation`) differ from :attr:`datasets`."""
        return self._judged(set(changed), generation=generation, datasets=datasets)

    def with_summaries(self, summaries: Mapping[UUID, NodeSummary]) -> Tally:
        """The tally with ``summaries`` as every node's report summary (a node left out
        reports nothing); the unchanged ones (the same objects) cost nothing."""
        keys: set[int] = set()
        same = len(summaries) == len(self.summaries)
        for node in self.summaries.keys() | summaries.keys():
            old, new = self.summaries.get(node), summaries.get(node)
            if old is not new:
                same = False
                keys |= touched_by(old or EMPTY, new or EMPTY)
        if same:
            return self
        return self._judged({UUID(int=key) for key in keys}, summaries=pmap(summaries))

    def with_fenced(self, fenced: frozenset[UUID]) -> Tally:
        """The tally with ``fenced`` as the fenced nodes."""
        flipped = self.fenced ^ fenced
        if not flipped:
            return self
        keys: set[int] = set()
        for node in flipped:
            keys |= self.summaries.get(node, EMPTY).reported
        return self._judged({UUID(int=key) for key in keys}, fenced=fenced)

    def _judged(self, keys: set[UUID], **changes: object) -> Tally:
        """The tally with ``changes`` made, judging again only ``keys``."""
        after: Tally = evolve(self, **changes)  # type: ignore[arg-type]
        if len(keys) > max(64, len(after.datasets) // 4):
            return Tally.of(after.generation, after.datasets, after.summaries, after.fenced)
        counts = dict(self.counts)
        for key in keys:
            before = judge(self.datasets.get(key), self.summaries, self.fenced)
            now = judge(after.datasets.get(key), after.summaries, after.fenced)
            if before is not now:
                if before is not None:
                    counts[before] -= 1
                if now is not None:
                    counts[now] += 1
        return evolve(after, counts=pmap(counts))
