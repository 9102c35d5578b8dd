"""
Brief, structured summaries of one loop pass, for the agent's logs (pure).

:func:`observed_fields` sums up a :class:`~agent.discovery.LocalState`;
:func:`decided_fields` sums up a change tree. Both return flat dicts of
log fields, short even for a node with thousands of datasets.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from agent.changes import Change, NoOp, Wait, actions, leaves
from agent.discovery import LocalState
from agent.executor import describe

MOST_LISTED = 10
"""At most this many changes are spelt out in a ``decided`` log line."""


def observed_fields(local: LocalState) -> dict[str, Any]:
    """How many of this cluster's volumes are in each discovered state."""
    counts = Counter(found.state.value for found in local.datasets.values())
    return {"volumes": len(local.volumes), "states": dict(sorted(counts.items()))}


def _brief(change: Change) -> str:
    fields = describe(change)
    kind = fields.pop("change")
    dataset = fields.pop("dataset_id", "")
    return f"{kind}({dataset[:8]})" if dataset else kind


def decided_fields(changes: Change) -> dict[str, Any]:
    """The actions decided (the first few by name and dataset), the number of waits."""
    todo = actions(changes)
    waits = sum(1 for leaf in leaves(changes) if isinstance(leaf, Wait))
    fields: dict[str, Any] = {"actions": len(todo), "waits": waits}
    if todo:
        fields["changes"] = [_brief(change) for change in todo[:MOST_LISTED]]
    elif isinstance(changes, NoOp):
        fields["sleep"] = changes.sleep
    return fields
