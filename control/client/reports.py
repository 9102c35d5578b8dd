"""
:class:`ReportEncoder`: a node's state report as the JSON bytes the client sends, with
each dataset's entry encoded once (issue 16).

An idle agent reports the same datasets every heartbeat; encoding their entries
afresh each time (:func:`~control.wire.node_state_to_json` then ``json.dumps``) was
about 0.35 ms per heartbeat at 100 datasets. The encoder keeps the bytes of the
last report's entries, keyed by the entry's value (a frozen
:class:`~control.model.DatasetState`: any difference in any field is another key),
and the joined list while the report holds the very same (immutable) map of
datasets. Everything else in the report (era, generation, conditions, capacity,
orphans, snapshots) is encoded every time. The bytes are always exactly
``json.dumps(node_state_to_json(state), separators=(",", ":"))``, as before.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from attrs import evolve, frozen
from pyrsistent import pmap

from control.model import DatasetState, NodeState
from control.wire import dataset_state_to_json, node_state_to_json

_SEPARATORS = (",", ":")
_EMPTY: Any = pmap()
_EMPTY_LIST = '"datasets":[]'


def dumps(obj: Any) -> str:
    """``obj`` as compact JSON text (the separators treq's ``json=`` used)."""
    return json.dumps(obj, separators=_SEPARATORS)


def _cacheable(state: DatasetState) -> bool:
    """Whether equal entries encode alike: its numbers are whole (``1 == 1.0 == True``
    as keys, but they encode differently) and its texts texts."""
    return (
        (state.maximum_size is None or type(state.maximum_size) is int)
        and (state.device is None or type(state.device) is str)
        and (state.path is None or type(state.path) is str)
    )


@frozen
class _Last:
    """The last report's datasets of one node: the map, its JSON list, each entry's text."""

    datasets: Any
    listed: str
    entries: dict[DatasetState, str]


class ReportEncoder:
    """Encodes node reports, reusing the last report's dataset entries (each node's: a
    client may report for several nodes); see the module."""

    def __init__(self) -> None:
        self._last: dict[UUID, _Last] = {}

    def encode(self, state: NodeState) -> bytes:
        """``state`` as the request body of its report."""
        # Everything but the datasets, encoded afresh by the one encoder of reports; the
        # list is spliced in where its empty one stands. Inside a JSON string every quote
        # is escaped, so the first unescaped ``"datasets":[]`` is the report's own key.
        rest = dumps(node_state_to_json(evolve(state, datasets=_EMPTY)))
        text = rest.replace(_EMPTY_LIST, '"datasets":' + self._datasets_json(state), 1)
        return text.encode("utf-8")

    def _datasets_json(self, state: NodeState) -> str:
        """The JSON list of ``state``'s datasets sorted by id, reusing encoded entries."""
        datasets = state.datasets
        last = self._last.get(state.node_uuid)
        if last is not None and datasets is last.datasets:
            return last.listed
        known = {} if last is None else last.entries
        entries: dict[DatasetState, str] = {}
        parts = []
        for key in sorted(datasets, key=str):
            entry = datasets[key]
            cacheable = _cacheable(entry)
            text = known.get(entry) if cacheable else None
            if text is None:
                text = dumps(dataset_state_to_json(entry))
            if cacheable:
                entries[entry] = text
            parts.append(text)
        listed = "[" + ",".join(parts) + "]"
        self._last[state.node_uuid] = _Last(datasets, listed, entries)
        return listed
