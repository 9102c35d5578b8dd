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
differ from the stored report's (:func:`changed_columns`), so an agent that
only acknowledges a new generation does not re-encode its 2,000 datasets.

:func:`quiet` says whether a report that repeats the last one can be kept in
memory (:mod:`control.store.seen`) instead: when no deleted dataset and no
unsettled snapshot exists, no report (written or not) has anything to purge or
settle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from attrs import evolve, frozen
from sqlalchemy import Connection, exists, select, update

from control import events as ev
from control import rules
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


def judge_reports(
    reports: Sequence[Reported],
    generation: int,
    node_of: Callable[[UUID], Node | None],
    last_of: Callable[[UUID], NodeState | None],
) -> tuple[Group, dict[UUID, NodeState | None], dict[UUID, NodeState]]:
    """Judge ``reports`` in order against the configuration at ``generation`` (pure but for
    the lookups): the group, each accepted node's report as stored before it, and each
    accepted node's newest report."""
    answers: list[ReportAnswer] = []
    stored: dict[UUID, NodeState | None] = {}
    latest: dict[UUID, NodeState] = {}
    changed: dict[UUID, NodeState] = {}
    found: list[Event] = []
    for report, identity in reports:
        uuid = report.node_uuid
        try:
            node = node_of(uuid)
            if node is None:
                raise NotFound(f"Node {uuid} has not registered; its agent must register first.")
            before = stored[uuid] if uuid in stored else last_of(uuid)
            old = latest.get(uuid, before)
            rules.check_report(node, old, report, generation, identity)
        except ShoalError as refusal:
            answers.append(refusal)
            continue
        stored.setdefault(uuid, before)
        fresh = old is None or not old.same_observation(report)
        if fresh:
            at = report.reported_at if report.reported_at is not None else 0.0
            found.extend(ev.report_events(old, report, at))
            changed[uuid] = report
        elif uuid in changed:
            changed[uuid] = report  # the same facts, sent later
        latest[uuid] = report
        answers.append(fresh)
    return Group(answers, changed, found), stored, latest


def write_reports(
    connection: Connection,
    stored: dict[UUID, NodeState | None],
    latest: dict[UUID, NodeState],
    changed: dict[UUID, NodeState],
) -> None:
    """Write each node's newest report in the caller's transaction: the changed columns of
    the changed ones, and when the others were sent; every node as seen when its newest
    report was sent."""
    for uuid, report in changed.items():
        before = stored[uuid]
        if before is None:
            q.put_report(connection, report, exists=False)
        else:
            columns = changed_columns(before, report)
            connection.execute(
                update(node_states).where(node_states.c.node_uuid == str(uuid)).values(**columns)
            )
    times = {
        uuid: (report.reported_at, None if uuid in changed else report.reported_at)
        for uuid, report in latest.items()
        if report.reported_at is not None
    }
    if times:
        q.flush_seen(connection, times)


def changed_columns(old: NodeState, new: NodeState) -> dict[str, Any]:
    """The ``node_states`` columns of ``new`` whose facts differ from ``old``'s, and when
    ``new`` was sent (:func:`control.store.rows.node_state_row` encodes them whole)."""
    columns: dict[str, Any] = {"reported_at": new.reported_at}
    if new.era != old.era:
        columns["era"] = new.era
    if new.generation != old.generation:
        columns["generation"] = new.generation
    encoded = [
        name
        for name, same in (
            ("datasets", new.datasets == old.datasets),
            ("conditions", new.conditions == old.conditions),
            ("capacity", new.capacity == old.capacity and new.capacities == old.capacities),
            ("orphans", new.orphans == old.orphans),
            ("snapshots", new.snapshots == old.snapshots),
        )
        if not same
    ]
    if encoded:
        whole = rows.node_state_row(
            new if "datasets" in encoded else evolve(new, datasets={})
        )
        columns.update({name: whole[name] for name in encoded})
    return columns
