"""
Turn what a person types into a node or a dataset (pure functions).

A NODE is a full uuid, a host or ``name`` label, or a unique uuid prefix.
A dataset (or a snapshot) is a full id, the ``name`` of one that is not deleted,
or a unique id prefix. Ambiguity and absence are refused with the candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from control.client.interface import NodeInfo
from control.errors import InvalidRequest, NotFound
from control.model import Dataset, DatasetSnapshot


def _as_uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def _by_prefix(text: str, ids: Sequence[UUID]) -> list[UUID]:
    prefix = text.lower()
    return [i for i in ids if str(i).startswith(prefix)] if prefix else []


def _one(matches: Sequence[UUID], what: str, text: str, describe: dict[UUID, str]) -> UUID:
    if len(matches) > 1:
        listed = ", ".join(sorted(f"{describe.get(m, '?')} ({m})" for m in matches))
        raise InvalidRequest(f"{what} {text!r} is ambiguous: it matches {listed}.")
    return matches[0]


def resolve_node(text: str, nodes: Sequence[NodeInfo]) -> UUID:
    """The uuid of the node ``text`` names; refuses an unknown or ambiguous one."""
    ids = [n.node.uuid for n in nodes]
    describe = {n.node.uuid: n.node.display_name for n in nodes}
    exact = _as_uuid(text)
    if exact is not None and exact in ids:
        return exact
    named = [
        n.node.uuid for n in nodes if text in (n.node.host, n.node.labels.get("name"))
    ]
    matches = named or _by_prefix(text, ids)
    if not matches:
        known = ", ".join(sorted(n.node.display_name for n in nodes)) or "none"
        raise NotFound(f"No node {text!r}; the registered nodes are: {known}.")
    return _one(matches, "Node", text, describe)


def resolve_dataset(text: str, datasets: Sequence[Dataset]) -> Dataset:
    """The dataset ``text`` names; refuses an unknown or ambiguous one."""
    by_id = {d.dataset_id: d for d in datasets}
    describe = {d.dataset_id: d.name or "no name" for d in datasets}
    exact = _as_uuid(text)
    if exact is not None and exact in by_id:
        return by_id[exact]
    named = [d.dataset_id for d in datasets if d.name == text and not d.deleted]
    matches = named or _by_prefix(text, list(by_id))
    if not matches:
        raise NotFound(
            f"No dataset {text!r}: give its id, a unique id prefix or its name "
            "(`shoal dataset list` shows them)."
        )
    return by_id[_one(matches, "Dataset", text, describe)]


def resolve_snapshot(text: str, snapshots: Sequence[DatasetSnapshot]) -> DatasetSnapshot:
    """The snapshot ``text`` names: its id, the name of a live one, or a unique id prefix."""
    by_id = {s.snapshot_id: s for s in snapshots}
    describe = {s.snapshot_id: s.name for s in snapshots}
    exact = _as_uuid(text)
    if exact is not None and exact in by_id:
        return by_id[exact]
    named = [s.snapshot_id for s in snapshots if s.name == text and not s.deleted]
    matches = named or _by_prefix(text, list(by_id))
    if not matches:
        raise NotFound(
            f"No snapshot {text!r}: give its id, a unique id prefix or its name "
            "(`shoal snapshot list` shows them)."
        )
    return by_id[_one(matches, "Snapshot", text, describe)]
