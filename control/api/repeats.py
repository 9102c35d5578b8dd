"""
State reports (``PUT /v1/shoal/state/{node}``), a repeated heartbeat answered at once:
:class:`Reporting`.

An idle agent sends the same report every heartbeat, byte for byte (a report carries
no time), and at 1,000 nodes that is 200 reports a second, each queued for the store's
threads (:class:`~control.api.group.GroupCommit`) to be judged again, with the same
answer, as a heartbeat. :class:`Reporting` remembers, for each node, the body of its
last report the store answered ``False`` (a heartbeat), and answers a report with the
same body through :meth:`~control.store.interface.Store.renew_report`, on the reactor:
no parsing, no trip to a thread, no read. The store renews only while that judgement
still holds, so the answer is the one the whole path would give; when it does not
(anything was written since, the flush of heartbeats failed, another certificate sent
it, or the store never renews), the report goes the whole way.

A store that must read the database to know (PostgreSQL: other replicas write,
:attr:`~control.store.interface.Store.renews_by_reading`) is asked through ``check``
instead: a group of repeated reports, one trip to the store's threads and one read
(:meth:`~control.store.interface.Store.renew_reports`), still no parsing and no
judgement; a report it does not renew goes the whole way after it.

A report of a node whose earlier report is still on its way (judged in the order they
came) is never answered at once, and a node's remembered body is forgotten as soon as
another report of it is sent, so the remembered body is always the last one judged. A
repeat the check did not renew, while a later report of its node came (and may already be
recorded), is refused as superseded (503: the agent sends its current report again)
rather than judged after it, which would record the older observation over the newer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from control.api.body import read_raw
from control.api.reporting import Answer
from control.api.reports import ReportReader, digest
from control.errors import NotFound, Unavailable
from control.model import Versions
from control.store.interface import Renewal

Renew = Callable[[UUID, "str | None", float], "Versions | None"]
""":meth:`~control.store.interface.Store.renew_report`."""

Check = Callable[[Renewal], "Deferred[Versions | None]"]
"""Queues a repeated report to be renewed after reading the database: its counters, or
``None`` (:meth:`~control.store.interface.Store.renew_reports`, a group at a time)."""

Judge = Callable[[Any], "Deferred[Answer]"]
"""Queues ``(report, identity)`` to be judged and recorded: its
:data:`~control.api.reporting.Answer` (:meth:`~control.api.group.GroupCommit.create`)."""


class Reporting:
    """Reads, judges and answers state reports (reactor thread only)."""

    def __init__(self, renew: Renew, judge: Judge, check: Check | None = None) -> None:
        self._renew = renew
        self._judge = judge
        self._check = check
        self.reader = ReportReader()
        self._heartbeat: dict[UUID, bytes] = {}
        """Each node's body last answered ``False`` with none of its reports in flight."""
        self._in_flight: dict[UUID, int] = {}
        self._arrived: dict[UUID, int] = {}
        """How many reports of each node came (the order a checked repeat is judged in)."""

    async def report(
        self, request: Request, node_uuid: UUID, identity: str | None, now: float
    ) -> Answer:
        """Whether the report in ``request``'s body (from ``identity``, received at ``now``)
        changed what ``node_uuid`` observes, the counters, and whom the state versions
        written concern (:data:`~control.api.reporting.Answer`; a renewal writes none); or
        its refusal, raised."""
        raw = read_raw(request)
        digested = digest(raw)
        arrival = self._arrived[node_uuid] = self._arrived.get(node_uuid, 0) + 1
        if node_uuid not in self._in_flight and self._heartbeat.get(node_uuid) == digested:
            renewed = self._renew(node_uuid, identity, now)
            if renewed is None and self._check is not None:
                renewed = await self._checked((node_uuid, identity, now))
                if renewed is None and self._arrived.get(node_uuid) != arrival:
                    raise Unavailable(
                        f"a later state report of node {node_uuid} came while this one "
                        "waited to be checked against the database, so this older one is "
                        "not recorded; send the node's current report again"
                    )
            if renewed is not None:
                return False, renewed, None
        report = self.reader.decode(raw, digested, node_uuid, now)
        self._heartbeat.pop(node_uuid, None)
        self._in_flight[node_uuid] = self._in_flight.get(node_uuid, 0) + 1
        try:
            changed, versions, reached = await self._judge((report, identity))
        except NotFound:
            self.reader.forget(node_uuid)
            self._arrived.pop(node_uuid, None)
            raise
        finally:
            left = self._in_flight.pop(node_uuid) - 1
            if left:
                self._in_flight[node_uuid] = left
        if not changed and node_uuid not in self._in_flight:
            self._heartbeat[node_uuid] = digested
        return changed, versions, reached

    async def _checked(self, renewal: Renewal) -> Versions | None:
        """``check``'s renewal (the node's report counted in flight meanwhile, so a report
        of it sent meanwhile goes the whole way); ``None`` when the check failed too."""
        assert self._check is not None
        node_uuid = renewal[0]
        self._in_flight[node_uuid] = self._in_flight.get(node_uuid, 0) + 1
        try:
            return await self._check(renewal)
        except Exception:
            return None  # judged the whole way, which fails or answers as it must
        finally:
            left = self._in_flight.pop(node_uuid) - 1
            if left:
                self._in_flight[node_uuid] = left
