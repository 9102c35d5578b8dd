"""
Read state reports fast: what a node's report repeats of its last one is not read again.

An agent reports its whole node at least every heartbeat (2-5 s), and most
reports repeat the last one word for word: the report carries no time (the
service stamps it). Parsing, schema-checking and decoding a report of
thousands of datasets took most of the report's time (issue 16).
:class:`ReportReader` keeps, per node, a digest of the last body it decoded
and the report it made of it; a byte-identical body is the same report again,
stamped with the new time.

Any other body usually differs from the last in a few datasets (one was
attached, another mounted). The reader keeps the last body's entries as byte
pieces (:mod:`control.api.spans`) with the state each decodes to; a new body's
entries whose bytes are a kept piece are that state again, the same object, and
only the other entries and the body's other members are decoded and
schema-checked. A body that cannot be read so (any doubt: another layout, a
malformed entry, a dataset listed twice) is read whole, so that it is decoded,
or refused, with the words it always was.
"""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

from attrs import evolve, frozen
from twisted.web.server import Request

from control.api import schemas, spans
from control.api.body import parse_json, read_raw, validate
from control.derived import DERIVED
from control.errors import InvalidRequest
from control.model import DatasetState, NodeState
from control.wire import dataset_state_from_json, node_state_from_json

_MOST = schemas.REPORT_STATE["properties"]["datasets"]["maxItems"]
_MISSING: Any = object()

Where = dict[UUID, "bytes | None"]
"""Each dataset of a node's last report and its entry's piece in the body (``None``: the
last entry's, not kept)."""


def digest(raw: bytes) -> bytes:
    """What :class:`ReportReader` tells report bodies apart by."""
    return hashlib.sha256(raw).digest()  # faster than blake2b here: SHA extensions (issue 16)


@frozen
class _Last:
    """What is kept of a node's last body: its digest, its report, and (when its pieces
    could be proved) its entries' pieces with their states, and where each dataset's is."""

    digest: bytes
    report: NodeState
    index: dict[bytes, DatasetState] | None
    where: Where | None


class ReportReader:
    """Decodes report bodies, remembering each node's last one (reactor thread only)."""

    def __init__(self) -> None:
        self._last: dict[UUID, _Last] = {}

    def read(self, request: Request, node_uuid: UUID, now: float) -> NodeState:
        """The report in ``request``'s body from ``node_uuid``, received at ``now``.

        Refuses what :func:`~control.api.body.read_json` refuses, with the same words.
        """
        raw = read_raw(request)
        return self.decode(raw, digest(raw), node_uuid, now)

    def decode(self, raw: bytes, digested: bytes, node_uuid: UUID, now: float) -> NodeState:
        """:meth:`read` of the body ``raw``, whose :func:`digest` is ``digested``."""
        last = self._last.get(node_uuid)
        if last is not None and last.digest == digested:
            return evolve(last.report, reported_at=now)
        read = None if last is None else _by_pieces(node_uuid, raw, now, last)
        report, index, where = read or _whole(node_uuid, raw, now)
        self._last[node_uuid] = _Last(digested, report, index, where)
        return report

    def forget(self, node_uuid: UUID) -> None:
        """Drop what is kept of ``node_uuid`` (its report was refused: the node is unknown)."""
        self._last.pop(node_uuid, None)
        DERIVED.forget(node_uuid)


def _whole(
    node_uuid: UUID, raw: bytes, now: float
) -> tuple[NodeState, dict[bytes, DatasetState] | None, Where | None]:
    """The body ``raw`` decoded whole (or refused), and its pieces when they can be proved."""
    obj = validate(parse_json(raw), schemas.REPORT_STATE)
    states = [dataset_state_from_json(item) for item in obj["datasets"]]
    datasets = {state.dataset_id: state for state in states}
    if len(datasets) != len(states):
        return node_state_from_json(node_uuid, obj, now), None, None  # refuses it
    report = node_state_from_json(node_uuid, {**obj, "datasets": []}, now)
    report = evolve(report, datasets=datasets)
    index = spans.index_of(raw, states)
    if index is None:
        return report, None, None
    where: Where = {state.dataset_id: piece for piece, state in index.items()}
    where[states[-1].dataset_id] = None
    return report, index, where


def _by_pieces(
    node_uuid: UUID, raw: bytes, now: float, last: _Last
) -> tuple[NodeState, dict[bytes, DatasetState], Where] | None:
    """The body ``raw`` read against ``last``'s pieces (:func:`control.api.spans.read`):
    ``last``'s report with the datasets that differ changed, the same states otherwise;
    ``None``: read it whole. Updates ``last``'s pieces (it is replaced)."""
    index, where = last.index, last.where
    if index is None or where is None:
        return None
    read = spans.read(raw, index)
    if read is None or len(read.pieces) + 1 > _MOST:
        return None
    values = [value for _, value in read.fresh]
    try:
        validate({**read.members, "datasets": values}, schemas.REPORT_STATE)
        states = [dataset_state_from_json(value) for value in values]
        report = node_state_from_json(node_uuid, read.members, now)
    except InvalidRequest:
        return None
    gone = _gone(read, states, where)
    if gone is None:
        return None  # a dataset listed twice: refused as the whole body is
    datasets = last.report.datasets.evolver()
    differ = set(gone)
    for dataset_id in gone:
        piece = where.pop(dataset_id)
        if piece is not None:
            del index[piece]
        datasets.remove(dataset_id)
    old = last.report.datasets
    for (piece, _), state in zip(read.fresh, states, strict=True):
        was = old.get(state.dataset_id)
        if was is not None and was == state:
            state = was
        else:
            datasets.set(state.dataset_id, state)
            differ.add(state.dataset_id)
        replaced = where.get(state.dataset_id)
        if replaced is not None:
            del index[replaced]
        where[state.dataset_id] = piece
        if piece is not None:
            index[piece] = state
    made = datasets.persistent()
    DERIVED.record(node_uuid, old, made, frozenset(differ))
    return evolve(report, datasets=made), index, where


def _gone(read: spans.Spans, states: list[DatasetState], where: Where) -> list[UUID] | None:
    """The datasets of the last report that ``read`` no longer lists; ``None`` if it lists
    a dataset twice (a piece twice, or a decoded entry of a dataset a known piece lists)."""
    pieces = set(read.pieces)
    ids = {state.dataset_id for state in states}
    if len(pieces) != len(read.pieces) or len(ids) != len(states):
        return None
    listed = len(read.pieces) - sum(1 for piece, _ in read.fresh if piece is not None)
    for dataset_id in ids:
        piece = where.get(dataset_id, _MISSING)
        if piece is _MISSING:
            continue
        if piece is not None and piece in pieces:
            return None
        listed += 1
    if listed == len(where):
        return []
    return [
        dataset_id
        for dataset_id, piece in where.items()
        if dataset_id not in ids and (piece is None or piece not in pieces)
    ]
