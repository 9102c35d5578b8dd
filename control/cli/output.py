"""Readable output: aligned tables, short ages and durations, JSON forms of client values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import UUID

from control.client.interface import NodeInfo, StateDataset
from control.model import UNBOUND
from control.wire import JSON, node_with_liveness_to_json


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, no trailing blanks."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def duration(seconds: float) -> str:
    """A short duration: ``45s``, ``3m``, ``2h``, ``4d``."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def ago(then: float | None, now: float) -> str:
    """When something last happened, relative to ``now``."""
    return "never" if then is None else f"{duration(now - then)} ago"


def labels_text(labels: Mapping[str, str]) -> str:
    """Labels as ``k=v,k=v`` (``-`` when there are none)."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def node_name(node: UUID | None, names: Mapping[UUID, str]) -> str:
    """A node's host (or name) if known, else its uuid."""
    if node is None:
        return "-"
    if node == UNBOUND:
        return "unbound"
    return names.get(node, str(node))


def node_names(nodes: Sequence[NodeInfo]) -> dict[UUID, str]:
    """Each node's display name: its ``name`` label, else its host."""
    return {n.node.uuid: n.node.display_name for n in nodes}


def node_info_json(info: NodeInfo) -> JSON:
    """A node as JSON, like ``GET /v1/shoal/nodes``."""
    return node_with_liveness_to_json(
        info.node, info.live, info.liveness, info.capacity, info.capacities
    )


def state_json(state: StateDataset | None) -> JSON | None:
    """A dataset's actual state as JSON, like ``GET /v1/state/datasets``."""
    if state is None:
        return None
    return {
        "dataset_id": str(state.dataset_id),
        "primary": None if state.primary is None else str(state.primary),
        "path": state.path,
        "maximum_size": state.maximum_size,
    }
