"""
Placement: which node a dataset goes to, or why none can take it (pure).

:func:`place` takes what a dataset needs (:class:`Need`: its backend, size,
allowed topology and access mode) and the nodes as :class:`Candidate` values
(labels, liveness, and per backend the capacity each reported), and returns a
:class:`Placement` or a :class:`Refusal` naming the rule that no node meets.

The rules, applied as filters in this order (a refusal names the first one
that leaves no node, with each node's reason):

1. ``usable``: the node is live, not fenced and not draining;
2. ``topology``: its labels match one allowed topology term (none: anywhere);
3. ``backend``: it reports the class's backend (any, when the class names none);
4. ``capacity``: that backend's largest volume (and free space) fits the size.

Among the nodes left, the one with most free capacity wins (spreading new
datasets), then the smallest uuid: the same inputs always give the same node.
On a node with several backends that fit, a class naming no backend takes a
shared one before a node-local one, then the roomiest.
``reserved`` counts bytes already promised to a node since its report, so
placing many datasets between two reports still spreads them.

:func:`check_node` asks the same rules about one given node (a bind on first
use, a move), naming the term the node fails.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from uuid import UUID

from attrs import field, frozen

from control.model import Capacity, ClusterState, Node
from control.topology import (
    RWX_REFUSAL,
    AccessMode,
    TopologyTerm,
    allowed,
    describe_topology,
    node_labels,
    topology_refusal,
)
from control.units import describe_size


class Rule(enum.Enum):
    """The rules of placement, in the order :func:`place` applies them."""

    ACCESS_MODE = "access_mode"
    USABLE = "usable"
    TOPOLOGY = "topology"
    BACKEND = "backend"
    CAPACITY = "capacity"


def _terms(value: Iterable[TopologyTerm]) -> tuple[TopologyTerm, ...]:
    return tuple(value)


@frozen
class Need:
    """What a dataset needs of its node."""

    backend: str | None = None
    size: int | None = None
    topology: tuple[TopologyTerm, ...] = field(default=(), converter=_terms)
    access_mode: AccessMode = AccessMode.RWO


def _capacities(value: Iterable[Capacity]) -> tuple[Capacity, ...]:
    return tuple(value)


@frozen
class Candidate:
    """A node as placement sees it: its labels, whether it may take data, its backends.

    ``unusable`` says why the node may take no dataset now (not live, fenced,
    draining), ``None`` when it may.
    """

    uuid: UUID
    name: str
    labels: Mapping[str, str]
    capacities: tuple[Capacity, ...] = field(default=(), converter=_capacities)
    unusable: str | None = None


@frozen
class Placement:
    """The decision: ``node`` on its ``backend`` (``""`` when it has not reported one)."""

    node: UUID
    backend: str


UNKNOWN = Capacity("")
"""The capacity of a node that has not reported one: it fits anything, with no free space
known (so it ranks below every node that reported some)."""


@frozen
class Refusal:
    """No node can take the dataset: ``rule`` is the one no node met, ``message`` why."""

    rule: Rule
    message: str
    reasons: tuple[tuple[str, str], ...] = ()


def _free(capacity: Capacity, reserved: int) -> int:
    return -1 if capacity.free is None else capacity.free - reserved


def _fits(capacity: Capacity, size: int | None, reserved: int) -> bool:
    if size is None:
        return True
    if capacity.maximum_volume_size is not None and size > capacity.maximum_volume_size:
        return False
    return capacity.free is None or size <= capacity.free - reserved


def _backends(need: Need, candidate: Candidate) -> list[Capacity]:
    return [c for c in candidate.capacities if need.backend in (None, c.backend)]


def _backend_rank(capacity: Capacity, reserved: int) -> tuple[bool, int, str]:
    """Which of a node's backends a dataset takes: a shared one before a node-local one
    (a class naming no backend should not pin its datasets), then the roomiest."""
    return (not capacity.shared, -_free(capacity, reserved), capacity.backend)


def _failed(need: Need, candidate: Candidate, reserved: int) -> Rule | Capacity:
    """The first rule ``candidate`` fails, or the backend it would use (most room)."""
    if candidate.unusable is not None:
        return Rule.USABLE
    if need.topology and not allowed(need.topology, candidate.labels):
        return Rule.TOPOLOGY
    if not candidate.capacities and need.backend is None:
        return UNKNOWN  # it has not reported yet: an unknown capacity fits anything
    best: Capacity | None = None
    seen = False
    for capacity in candidate.capacities:
        if need.backend is not None and capacity.backend != need.backend:
            continue
        seen = True
        if _fits(capacity, need.size, reserved) and (
            best is None or _backend_rank(capacity, reserved) < _backend_rank(best, reserved)
        ):
            best = capacity
    if best is not None:
        return best
    return Rule.CAPACITY if seen else Rule.BACKEND


def _reason(rule: Rule, need: Need, candidate: Candidate, reserved: int) -> str:
    """Why ``candidate`` fails ``rule``, as a person reads it."""
    if rule is Rule.USABLE:
        return candidate.unusable or "it is not usable"
    if rule is Rule.TOPOLOGY:
        return topology_refusal(need.topology, candidate.labels) or "it is outside the topology"
    backends = _backends(need, candidate)
    if rule is Rule.BACKEND:
        have = ", ".join(sorted(c.backend for c in candidate.capacities)) or "none reported"
        return f"it has no {need.backend} backend (it has: {have})"
    size = "the volume" if need.size is None else describe_size(need.size)
    limits = "; ".join(_limit(c, reserved) for c in backends)
    return f"a volume of {size} does not fit ({limits})"


def _limit(capacity: Capacity, reserved: int) -> str:
    parts = [capacity.backend]
    if capacity.maximum_volume_size is not None:
        parts.append(f"largest volume {describe_size(capacity.maximum_volume_size)}")
    if capacity.free is not None:
        parts.append(f"{describe_size(max(0, capacity.free - reserved))} free")
    return ", ".join(parts)


_WHAT = {
    Rule.USABLE: "no node is live, unfenced and not draining",
    Rule.BACKEND: "no node in the allowed topology reports the backend {backend}",
    Rule.CAPACITY: "no node in the allowed topology has room for {size} on {backend}",
}


def _what(rule: Rule, need: Need) -> str:
    if rule is Rule.TOPOLOGY:
        return f"no usable node matches the allowed topology {describe_topology(need.topology)}"
    size = "the volume" if need.size is None else describe_size(need.size)
    return _WHAT[rule].format(backend=need.backend or "any", size=size)


SHOWN = 5
"""How many nodes' reasons a refusal names (the rest are counted)."""


def place(
    need: Need, candidates: Iterable[Candidate], reserved: Mapping[UUID, int] | None = None
) -> Placement | Refusal:
    """The node for a dataset needing ``need``, or a refusal naming the rule none meets."""
    if need.access_mode is AccessMode.RWX:
        return Refusal(Rule.ACCESS_MODE, RWX_REFUSAL)
    reserved = reserved or {}
    best: tuple[tuple[bool, int, int], Placement] | None = None
    failures: dict[Rule, list[Candidate]] = {}
    for candidate in candidates:
        held = reserved.get(candidate.uuid, 0)
        found = _failed(need, candidate, held)
        if isinstance(found, Rule):
            failures.setdefault(found, []).append(candidate)
            continue
        rank = (not found.shared, -_free(found, held), candidate.uuid.int)
        if best is None or rank < best[0]:
            best = (rank, Placement(candidate.uuid, found.backend))
    if best is not None:
        return best[1]
    if not failures:
        return Refusal(Rule.USABLE, "No node has registered yet: start an agent first.")
    rule = max(failures, key=list(Rule).index)  # the furthest rule any node got to
    failed = sorted(failures[rule], key=lambda c: (c.name, c.uuid.int))
    reasons = tuple(
        (c.name, _reason(rule, need, c, reserved.get(c.uuid, 0))) for c in failed[:SHOWN]
    )
    detail = "; ".join(f"{name}: {why}" for name, why in reasons)
    more = f"; and {len(failed) - SHOWN} more" if len(failed) > SHOWN else ""
    message = f"No node can take the dataset: {_what(rule, need)} ({detail}{more})."
    return Refusal(rule, message, reasons)


def check_node(need: Need, candidate: Candidate, reserved: int = 0) -> Refusal | None:
    """Why ``candidate`` cannot take a dataset needing ``need`` (naming the term), or ``None``."""
    if need.access_mode is AccessMode.RWX:
        return Refusal(Rule.ACCESS_MODE, RWX_REFUSAL)
    found = _failed(need, candidate, reserved)
    if not isinstance(found, Rule):
        return None
    why = _reason(found, need, candidate, reserved)
    message = f"Node {candidate.name} cannot take the dataset: {why}."
    return Refusal(found, message, ((candidate.name, why),))


def candidate(node: Node, state: ClusterState, unusable: str | None = None) -> Candidate:
    """``node`` as placement sees it, with the capacity of its latest report."""
    report = state.reports.get(node.uuid)
    capacities = () if report is None else report.all_capacities()
    return Candidate(node.uuid, node.display_name, node_labels(node), capacities, unusable)


def unusable_reason(node: Node, now: float, node_timeout: float) -> str | None:
    """Why ``node`` may take no new dataset (fenced, draining, not live), or ``None``."""
    if node.fence is not None:
        return f"it is fenced ({node.fence.reason})"
    if node.draining:
        return "it is draining"
    if not node.is_live(now, node_timeout):
        return f"it is not live (no report within {node_timeout:g} s)"
    return None


def candidates(state: ClusterState, now: float, node_timeout: float) -> list[Candidate]:
    """Every registered node as placement sees it at ``now``."""
    return [
        candidate(node, state, unusable_reason(node, now, node_timeout))
        for node in state.nodes.values()
    ]
