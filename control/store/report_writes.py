"""
State reports written a group at a time, each writing only what changed: :func:`write_reports`.

:meth:`~control.store.sql.SQLStore.report_states` stores the reports that
arrived together (:class:`~control.api.group.GroupCommit`) in one
transaction: one commit (an fsync on SQLite) for the group instead of one per
report, which is what 1,000 agents reporting during concurrent moves queued on
(issue 16). Each report is still judged alone and in order by the same rule
(:func:`control.rules.check_report`), against its node's report as stored or as
an earlier report of the group left it, so it gets the answer it would have got
alone, and a refused one records nothing.

Only what changed is written: a node whose reports repeat its last observation
moves two times (:func:`control.store.queries.flush_seen`, for the whole group
in two statements); a changed report updates only the columns whose facts
differ from the stored report's (:func:`changed_columns`), and only the rows of
the datasets whose states changed (:func:`write_dataset_changes`), so an agent
that only acknowledges a new generation, or changed one of its 2,000 datasets,
does not rewrite them all.

:func:`quiet` says whether a report that repeats the last one can be kept in
memory (:mod:`control.store.seen`) instead: when no deleted dataset and no
unsettled snapshot exists, no report (written or not) has anything to purge or
settle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from attrs import evolve, frozen
from pyrsistent import PMap
from sqlalchemy import Connection, exists, select, update

from control import events as ev
from control import rules
from control.derived import DERIVED
from control.errors import NotFound, ShoalError
from control.model import Event, Node, NodeState
from control.store import queries as q
from control.store import rows
from control.store.interface import ReportAnswer, Reported
from control.store.tables import datasets, node_states, snapshots

_ANY_DELETED = select(exists().where(datasets.c.deleted == True))  # noqa: E712
_ANY_UNSETTLED = select(
    exists().where((snapshots.c.ready == False) | (snapshots.c.deleted == True))  # noqa: E712
)
"""Whether anything is left for a report to purge or settle, built once."""


def quiet(connection: Connection) -> bool:
    """Whether no deleted dataset and no unsettled snapshot exists: no report can purge or
    settle anything (both appear only by configuration writes, which move the generation)."""
    return not connection.execute(_ANY_DELETED).scalar() and not connection.execute(
        _ANY_UNSETTLED
    ).scalar()


@frozen
class Group:
    """What a group of reports did: each one's answer, each changed node's newest report
    (as now stored, but for its ``reported_at``), and the events they made."""

    answers: list[ReportAnswer]
    changed: dict[UUID, NodeState]
    events: list[Event]
    changes: dict[UUID, frozenset[UUID] | None]
    """Each changed node's :func:`dataset_changes` from its stored report, where known."""


def judge_reports(
    reports: Sequence[Reported],
    generation: int,
    node_of: Callable[[UUID], Node | None],
    last_of: Callable[[UUID], NodeState | None],
    checked: PathsChecked,
    found_changes: Mapping[int, tuple[NodeState, frozenset[UUID] | None]] | None = None,
) -> tuple[Group, dict[UUID, NodeState | None], dict[UUID, NodeState]]:
    """Judge ``reports`` in order against the configuration at ``generation`` (pure but for
    the lookups): the group, each accepted node's report as stored before it, and each
    accepted node's newest report. ``found_changes``: :func:`dataset_changes` already
    found, by ``id(report)``: the report it was found against and what it found."""
    answers: list[ReportAnswer] = []
    stored: dict[UUID, NodeState | None] = {}
    latest: dict[UUID, NodeState] = {}
    changed: dict[UUID, NodeState] = {}
    found: list[Event] = []
    diffs: dict[UUID, frozenset[UUID] | None] = {}
    for report, identity in reports:
        uuid = report.node_uuid
        try:
            node = node_of(uuid)
            if node is None:
                raise NotFound(f"Node {uuid} has not registered; its agent must register first.")
            before = stored[uuid] if uuid in stored else last_of(uuid)
            old = latest.get(uuid, before)
            known = None if found_changes is None else found_changes.get(id(report))
            changes = known[1] if known is not None and known[0] is old else dataset_changes(
                old, report
            )
            checked.check(node, old, report, generation, identity, changes)
        except ShoalError as refusal:
            answers.append(refusal)
            continue
        checked.passed(node, report.datasets)
        stored.setdefault(uuid, before)
        fresh = old is None or not same_observation(old, report, changes)
        if fresh:
            at = report.reported_at if report.reported_at is not None else 0.0
            found.extend(report_events(old, report, changes, at))
            changed[uuid] = report
            if uuid in diffs:  # a second change: from the report stored before the group
                diffs[uuid] = _net(before, report, diffs[uuid], changes)
            else:
                diffs[uuid] = changes  # an earlier report of it only repeated ``before``'s
        elif uuid in changed:
            changed[uuid] = report  # the same facts, sent later
        latest[uuid] = report
        answers.append(fresh)
    return Group(answers, changed, found, diffs), stored, latest


_MISSING = object()


def _net(
    before: NodeState | None, after: NodeState,
    first: frozenset[UUID] | None, then: frozenset[UUID] | None,
) -> frozenset[UUID] | None:
    """:func:`dataset_changes` from ``before`` to ``after``, given those of the steps between
    (``first``, then ``then``): a dataset that changed in neither step did not change, so
    only those that changed in one are compared (``None``: not known)."""
    if before is None or first is None or then is None:
        return None
    old, new = before.datasets, after.datasets
    return frozenset(d for d in first | then if old.get(d, _MISSING) != new.get(d, _MISSING))


def dataset_changes(old: NodeState | None, new: NodeState) -> frozenset[UUID] | None:
    """The ids of the datasets whose state ``new`` reports differently from ``old`` (added,
    changed or gone), in one pass over ``new``'s; ``None`` when there is no ``old``.

    A report decoded from a body repeating the last one shares its states (or all of its
    datasets), so most entries are the same object (:mod:`control.api.reports`): those are
    found the same by identity, without a lookup in ``old``'s map (a persistent map's
    lookup is four Python calls). A map the reader made from ``old``'s by a few changes is
    answered from what it recorded (:mod:`control.derived`), without a pass."""
    if old is None:
        return None
    before, after = old.datasets, new.datasets
    if before is after:
        return frozenset()
    derived = DERIVED.differ(new.node_uuid, before, after)
    if derived is not None:
        return derived
    held = {id(state): dataset_id for dataset_id, state in before.items()}
    get = before.get
    differ = []
    kept = 0  # the datasets of ``old`` that ``new`` still reports, changed or not
    for dataset_id, state in after.items():
        key = held.get(id(state))  # the same state object (alive in ``old``), under which key
        if key is not None and (key is dataset_id or key == dataset_id):
            kept += 1
            continue
        was = get(dataset_id, _MISSING)
        if was is not _MISSING:
            kept += 1
            if was is state or was == state:
                continue
        differ.append(dataset_id)
    if kept != len(before):
        differ.extend(dataset_id for dataset_id in before if dataset_id not in after)
    return frozenset(differ)


class SameDatasets:
    """Each node's last pair of datasets maps found equal by :func:`dataset_changes`, by
    identity: its stored report's and the one a repeated body decodes to
    (:mod:`control.api.reports` hands the same map again), so a heartbeat repeating a
    report read from the database (after a restart) is not compared entry by entry again
    (thread-safe: each entry is replaced whole)."""

    def __init__(self) -> None:
        self._pairs: dict[UUID, tuple[PMap, PMap]] = {}

    def changes(self, old: NodeState | None, new: NodeState) -> frozenset[UUID] | None:
        """:func:`dataset_changes` of ``old`` and ``new``."""
        if old is None:
            return None
        pair = self._pairs.get(new.node_uuid)
        if pair is not None and pair[0] is old.datasets and pair[1] is new.datasets:
            return frozenset()
        found = dataset_changes(old, new)
        if found is not None and not found and old.datasets is not new.datasets:
            self._pairs[new.node_uuid] = (old.datasets, new.datasets)
        else:
            self.forget(new.node_uuid)  # keep no maps alive that will not be asked about
        return found

    def forget(self, node_uuid: UUID) -> None:
        """Drop ``node_uuid``'s pair (its stored report now holds the decoded map itself)."""
        self._pairs.pop(node_uuid, None)


def same_observation(old: NodeState, new: NodeState, changes: frozenset[UUID] | None) -> bool:
    """:meth:`~control.model.NodeState.same_observation`, given :func:`dataset_changes`."""
    return (
        changes is not None
        and not changes
        and old.facts_besides_datasets() == new.facts_besides_datasets()
    )


def _only(report: NodeState, ids: frozenset[UUID]) -> NodeState:
    """``report`` with only the datasets ``ids`` (those it has)."""
    datasets = report.datasets
    return evolve(report, datasets={i: datasets[i] for i in ids if i in datasets})


def report_events(
    old: NodeState | None, new: NodeState, changes: frozenset[UUID] | None, at: float
) -> list[Event]:
    """:func:`control.events.report_events`, looking only at the datasets that changed."""
    if old is None or changes is None:
        return ev.report_events(old, new, at)
    return ev.report_events(_only(old, changes), _only(new, changes), at)


class PathsChecked:
    """Each node's datasets whose paths were checked (:func:`control.rules.check_report`),
    and against which mount root: a report is then checked in full only for the states
    that changed (thread-safe: each entry is replaced whole)."""

    def __init__(self) -> None:
        self._checked: dict[UUID, tuple[str | None, PMap]] = {}

    def check(
        self, node: Node, old: NodeState | None, report: NodeState, generation: int,
        identity: str | None, changes: frozenset[UUID] | None,
    ) -> None:
        """:func:`control.rules.check_report`; the paths of the states ``old`` shares with
        ``report`` are not checked again when ``old``'s were checked against this root."""
        kept = self._checked.get(node.uuid)
        partial = (
            changes is not None and old is not None and kept is not None
            and kept[0] == node.mount_root and kept[1] is old.datasets
        )
        rules.check_report(
            node, old, _only(report, changes) if partial and changes is not None else report,
            generation, identity,
        )

    def passed(self, node: Node, datasets: PMap) -> None:
        """A report of ``datasets`` passed :meth:`check` against ``node``'s mount root."""
        self._checked[node.uuid] = (node.mount_root, datasets)


def write_reports(
    connection: Connection,
    stored: dict[UUID, NodeState | None],
    latest: dict[UUID, NodeState],
    group: Group,
) -> None:
    """Write each node's newest report in the caller's transaction: the changed columns and
    dataset rows of the changed ones, and when the others were sent; every node as seen when
    its newest report was sent."""
    changed = group.changed
    for uuid, report in changed.items():
        before = stored[uuid]
        if before is None:
            q.put_report(connection, report, exists=False)
        else:
            changes = group.changes[uuid] if uuid in group.changes else dataset_changes(
                before, report
            )
            connection.execute(
                update(node_states).where(node_states.c.node_uuid == str(uuid))
                .values(**changed_columns(before, report))
            )
            write_dataset_changes(connection, before, report, changes)
    times = {
        uuid: (report.reported_at, None if uuid in changed else report.reported_at)
        for uuid, report in latest.items()
        if report.reported_at is not None
    }
    if times:
        q.flush_seen(connection, times)


def changed_columns(old: NodeState, new: NodeState) -> dict[str, Any]:
    """The ``node_states`` columns of ``new`` whose facts differ from ``old``'s, and when
    ``new`` was sent (:func:`control.store.rows.node_state_row` encodes them; the datasets
    are rows of their own, :func:`write_dataset_changes`)."""
    columns: dict[str, Any] = {"reported_at": new.reported_at}
    if new.era != old.era:
        columns["era"] = new.era
    if new.generation != old.generation:
        columns["generation"] = new.generation
    encoded = [
        name
        for name, same in (
            ("conditions", new.conditions == old.conditions),
            ("capacity", new.capacity == old.capacity and new.capacities == old.capacities),
            ("orphans", new.orphans == old.orphans),
            ("snapshots", new.snapshots == old.snapshots),
        )
        if not same
    ]
    if encoded:
        whole = rows.node_state_row(evolve(new, datasets={}))
        columns.update({name: whole[name] for name in encoded})
    return columns


def write_dataset_changes(
    connection: Connection, old: NodeState, new: NodeState,
    changes: frozenset[UUID] | None = None,
) -> None:
    """Make the stored dataset rows of ``old`` (a node's report as stored) say what ``new``'s
    datasets say: the rows of the datasets in ``changes`` (:func:`dataset_changes`, found
    when ``None``) updated, inserted or deleted, and no other (a report that changed one of
    2,000 datasets writes one row)."""
    if changes is None:
        changes = dataset_changes(old, new) or frozenset()
    if not changes:
        return
    node = str(new.node_uuid)
    before, after = old.datasets, new.datasets
    q.update_dataset_states(connection, node, (
        after[i] for i in sorted(changes, key=str) if i in after and i in before
    ))
    q.drop_dataset_states(connection, node, sorted(
        (i for i in changes if i not in after), key=str
    ))
    q.put_dataset_states(connection, node, (
        after[i] for i in sorted(changes, key=str) if i in after and i not in before
    ))
