"""
State reports (``PUT /v1/shoal/state/{node}``) written a group at a time.

1,000 agents report at least every heartbeat, and during concurrent moves
most of their reports said something new and each was one write transaction,
queued on the database's one writer (issue 16). The handler instead queues the
decoded report in a :class:`~control.api.group.GroupCommit` (the creates'
queue), and each group is one trip to the store's threads: the reports that
repeat their node's last one are taken in memory as heartbeats, the others
written in one transaction (:meth:`~control.store.interface.Store.report_states`),
then both counters read once for the group. Every report gets its own answer,
with whom the state version the group wrote concerns (the watch's targeted state
wake, :mod:`control.reach`).
"""

from __future__ import annotations

from typing import Any

from control.api.group import Take
from control.model import Versions
from control.store.interface import StateReach, Store

Answer = tuple[bool, Versions, StateReach | None]
"""A recorded report's answer: whether it changed, the counters read after its group, and
whom the state versions the group wrote concern (``None``: none, or everyone)."""


def write_group(store: Store, take: Take) -> list[Answer | Exception]:
    """Take a group of ``(report, identity)`` from the queue and record it (blocking: run it
    in the store's threads): each report's :data:`Answer`, or its refusal."""
    reports: list[Any] = take()
    answers, reached = store.report_states_reaching(reports)
    versions = store.versions()
    return [a if isinstance(a, Exception) else (a, versions, reached) for a in answers]


def renew_group(store: Store, take: Take) -> list[Versions | None]:
    """Take a group of repeated reports (:data:`~control.store.interface.Renewal`) from the
    queue and renew those whose judgement still holds, after one read (blocking:
    :meth:`~control.store.interface.Store.renew_reports`)."""
    return store.renew_reports(take())
