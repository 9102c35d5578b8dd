"""
What a dataset's STATUS says, and how its conditions read (pure).

:func:`status_of` is the one place that turns a dataset, its actual state
and the conditions the nodes report into the word(s) ``shoal dataset
list/show`` print; :func:`condition_text` renders one condition. Agents name
other nodes by uuid in their messages; :func:`with_names` puts the names in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import UUID

from control.cli.output import duration, node_name
from control.client.interface import NodeCondition, StateDataset
from control.client.waiting import blocking
from control.model import ConditionKind, Dataset
from control.progress import Stage, progress_towards
from control.wire import JSON, condition_to_json


def with_names(text: str, names: Mapping[UUID, str]) -> str:
    """``text`` with each known node uuid replaced by the node's name."""
    for uuid, name in names.items():
        text = text.replace(f"node {uuid}", name).replace(str(uuid), name)
    return text


def _progress(dataset: Dataset, state: StateDataset | None, names: Mapping[UUID, str]) -> str:
    if dataset.deleted:
        return "deleting" if state is not None else "deleted"
    progress = progress_towards(state, dataset.primary)
    if progress.stage is Stage.UNREPORTED:
        return "pending"
    if progress.stage is Stage.ELSEWHERE:
        return f"moving (on {node_name(progress.holder, names)})"
    return progress.stage.value


def status_of(
    dataset: Dataset,
    state: StateDataset | None,
    names: Mapping[UUID, str],
    conditions: Sequence[NodeCondition] = (),
) -> str:
    """
    The dataset's status in a few words.

    ``mounted`` (on its primary) wins; otherwise an error a node reports reads
    ``error: <message>``, a wait ``waiting: <message>``; else how far the
    volume is (``pending``, ``attached``, ``moving (on node1)``, ...).
    """
    progress = _progress(dataset, state, names)
    if progress == "mounted":
        return progress
    found = blocking(conditions, dataset.dataset_id)
    if not found:
        return progress
    first = found[0].condition
    word = "error" if first.kind is ConditionKind.ERROR else "waiting"
    return f"{word}: {with_names(first.message, names)}"


def condition_text(found: NodeCondition, names: Mapping[UUID, str], now: float) -> str:
    """One condition as a line: ``node1: error (create, 3 attempts, for 2m, permanent): ...``."""
    c = found.condition
    facts = [c.step] if c.step else []
    if c.kind is ConditionKind.ERROR:
        facts.append(f"{c.attempts} attempt{'s' if c.attempts != 1 else ''}")
    facts.append(f"for {duration(now - c.since)}")
    if c.permanent:
        facts.append("permanent")
    where = node_name(found.node_uuid, names)
    return f"{where}: {c.kind.value} ({', '.join(facts)}): {with_names(c.message, names)}"


def condition_json(found: NodeCondition) -> JSON:
    """One condition with its node, as ``--json`` prints it."""
    return {**condition_to_json(found.condition), "node_uuid": str(found.node_uuid)}
