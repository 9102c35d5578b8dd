"""
Read state reports fast: a node's report that repeats its last body is not parsed again.

An agent reports its whole node at least every heartbeat (2-5 s), and most
reports repeat the last one word for word: the report carries no time (the
service stamps it). Parsing, schema-checking and decoding a report of
thousands of datasets took most of the report's time (issue 16).
:class:`ReportReader` keeps, per node, a digest of the last body it decoded
and the report it made of it; a byte-identical body is the same report again,
stamped with the new time. Any other body is read in full.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

from attrs import evolve
from twisted.web.server import Request

from control.api import schemas
from control.api.body import parse_json, read_raw, validate
from control.model import NodeState
from control.wire import node_state_from_json


def _digest(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=20).digest()


class ReportReader:
    """Decodes report bodies, remembering each node's last one (reactor thread only)."""

    def __init__(self) -> None:
        self._last: dict[UUID, tuple[bytes, NodeState]] = {}

    def read(self, request: Request, node_uuid: UUID, now: float) -> NodeState:
        """The report in ``request``'s body from ``node_uuid``, received at ``now``.

        Refuses what :func:`~control.api.body.read_json` refuses, with the same words.
        """
        raw = read_raw(request)
        digest = _digest(raw)
        last = self._last.get(node_uuid)
        if last is not None and last[0] == digest:
            return evolve(last[1], reported_at=now)
        report = node_state_from_json(
            node_uuid, validate(parse_json(raw), schemas.REPORT_STATE), now
        )
        self._last[node_uuid] = (digest, report)
        return report

    def forget(self, node_uuid: UUID) -> None:
        """Drop what is kept of ``node_uuid`` (its report was refused)."""
        self._last.pop(node_uuid, None)
