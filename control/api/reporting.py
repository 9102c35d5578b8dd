"""
State reports (``PUT /v1/shoal/state/{node}``) written a group at a time.

1,000 agents report at least every heartbeat, and during concurrent moves
most of their reports said something new and each was one write transaction,
queued on the database's one writer (issue 16). The handler instead queues the
decoded report in a :class:`~control.api.group.GroupCommit` (the creates'
queue), and each group is one trip to the store's threads: the reports that
repeat their node's last one are taken in memory as heartbeats, the others
written in one transaction (:meth:`~control.store.interface.Store.report_states`),
then both counters read once for the group. Every report gets its own answer.
"""

from __future__ import annotations

from typing import Any

from control.api.group import Take
from control.model import Versions
from control.store.interface import Store


def write_group(store: Store, take: Take) -> list[tuple[bool, Versions] | Exception]:
    """Take a group of ``(report, identity)`` from the queue and record it (blocking: run it
    in the store's threads): each report's answer (whether it changed, and the counters
    read after the group) or its refusal."""
    reports: list[Any] = take()
    answers = store.report_states(reports)
    versions = store.versions()
    return [a if isinstance(a, Exception) else (a, versions) for a in answers]
