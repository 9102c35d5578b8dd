"""
Read state reports fast: what a node's report repeats of its last one is not read again.

An agent reports its whole node at least every heartbeat (2-5 s), and most
reports repeat the last one word for word: the report carries no time (the
service stamps it). Parsing, schema-checking and decoding a report of
thousands of datasets took most of the report's time (issue 16).
:class:`ReportReader` keeps, per node, a digest of the last body it decoded
and the report it made of it; a byte-identical body is the same report again,
stamped with the new time.

Any other body is parsed, and usually differs from the last in a few datasets
(one was attached, another mounted): each dataset entry that says exactly what
the last report's state of that dataset says (the same fields, no others) is
that state again, the same object; only the other entries are schema-checked
and decoded. A body that fails the check is checked again whole, so that its
refusal names what is wrong as before.
"""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

from attrs import evolve
from twisted.web.server import Request

from control.api import schemas
from control.api.body import parse_json, read_raw, validate
from control.errors import InvalidRequest
from control.model import DatasetState, NodeState
from control.wire import node_state_from_json

_FIELDS = frozenset({"dataset_id", "status", "maximum_size", "device", "path"})
"""The fields of a reported dataset (``schemas.DATASET_STATE``)."""

_MOST = schemas.REPORT_STATE["properties"]["datasets"]["maxItems"]


def digest(raw: bytes) -> bytes:
    """What :class:`ReportReader` tells report bodies apart by."""
    return hashlib.blake2b(raw, digest_size=20).digest()


def _repeated(items: list[Any], kept: dict[str, DatasetState]) -> tuple[list[str], list[Any]]:
    """The dataset ids (as written) of the ``items`` that say exactly what the state kept
    under that id says (the same fields, no others; one loop, no calls: it runs for thousands
    of entries), and the other items, in order."""
    repeated: list[str] = []
    fresh: list[Any] = []
    get = kept.get
    fields = _FIELDS
    for item in items:
        if type(item) is dict:
            key = item.get("dataset_id")
            if isinstance(key, str) and (state := get(key)) is not None:
                size = item.get("maximum_size")
                if (
                    (size is None or type(size) is int)
                    and item.keys() <= fields
                    and size == state.maximum_size
                    and item.get("status") == state.status._value_
                    and item.get("device") == state.device
                    and item.get("path") == state.path
                ):
                    repeated.append(key)
                    continue
        fresh.append(item)
    return repeated, fresh


class ReportReader:
    """Decodes report bodies, remembering each node's last one (reactor thread only)."""

    def __init__(self) -> None:
        self._last: dict[UUID, tuple[bytes, NodeState, dict[str, DatasetState]]] = {}

    def read(self, request: Request, node_uuid: UUID, now: float) -> NodeState:
        """The report in ``request``'s body from ``node_uuid``, received at ``now``.

        Refuses what :func:`~control.api.body.read_json` refuses, with the same words.
        """
        raw = read_raw(request)
        return self.decode(raw, digest(raw), node_uuid, now)

    def decode(self, raw: bytes, digested: bytes, node_uuid: UUID, now: float) -> NodeState:
        """:meth:`read` of the body ``raw``, whose :func:`digest` is ``digested``."""
        last = self._last.get(node_uuid)
        if last is not None and last[0] == digested:
            return evolve(last[1], reported_at=now)
        obj = parse_json(raw)
        patched = None if last is None else _patched(node_uuid, obj, now, last[1], last[2])
        if patched is None:
            report = node_state_from_json(node_uuid, validate(obj, schemas.REPORT_STATE), now)
            by_text = {str(k): v for k, v in report.datasets.items()}
        else:
            report, by_text = patched
        self._last[node_uuid] = (digested, report, by_text)
        return report

    def forget(self, node_uuid: UUID) -> None:
        """Drop what is kept of ``node_uuid`` (its report was refused)."""
        self._last.pop(node_uuid, None)


def _patched(
    node_uuid: UUID, obj: Any, now: float, last: NodeState, kept: dict[str, DatasetState]
) -> tuple[NodeState, dict[str, DatasetState]] | None:
    """The report ``obj``, reusing the states of ``last`` (``kept``: them by dataset id text)
    its entries repeat, and the same by text; ``None``: read it whole (nothing repeated, or
    anything unusual: the whole check then answers).

    The datasets map is ``last``'s, changed where ``obj`` differs: O(changes) map updates,
    not a map built of thousands of entries again."""
    items = obj.get("datasets") if type(obj) is dict else None
    if type(items) is not list or len(items) > _MOST:
        return None
    repeated, fresh = _repeated(items, kept)
    seen = set(repeated)
    if not seen or len(seen) != len(repeated):
        return None  # nothing repeated, or a dataset listed twice: refused as the whole body is
    partial = {**obj, "datasets": fresh}
    try:
        validate(partial, schemas.REPORT_STATE)
    except InvalidRequest:
        return None
    try:
        report = node_state_from_json(node_uuid, partial, now)
    except InvalidRequest:
        return None
    added = {str(dataset_id): state for dataset_id, state in report.datasets.items()}
    if not seen.isdisjoint(added):
        return None  # a dataset listed twice: refused as the whole body is
    datasets = last.datasets.evolver()
    by_text = dict(kept)
    if len(seen) != len(kept):
        for key, state in kept.items():
            if key not in seen:
                datasets.remove(state.dataset_id)
                del by_text[key]
    for key, state in added.items():
        datasets.set(state.dataset_id, state)
        by_text[key] = state
    return evolve(report, datasets=datasets.persistent()), by_text
