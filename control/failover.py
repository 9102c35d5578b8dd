"""
The failover planner: what to do about silent, fenced and draining nodes (pure).

:func:`plan` looks at the configuration, the cluster state, ``now`` and the
settings, and returns decisions as values; the executor
(:mod:`control.failover_service`) applies them through guarded store writes
that re-check each decision's facts in their own transaction. Every pass
recomputes from the full picture (level-triggered), so a pass that was cut
short, or a control service restart, is repaired by the next one.

The rules (docs/failover.md):

- a node silent for two heartbeats is *suspect*, for the grace *dead*
  (events only, once per change);
- a dead node that is not fenced is fenced automatically;
- a fenced node's leases are released;
- each live dataset whose primary is fenced and whose failover is on gets a
  new primary (:func:`choose_target`); one whose failover is off, or that no
  node can take, stays, and says why (:func:`held_reasons`);
- a draining node's unleased datasets move off the same way;
- an automatic fence is lifted once the node has registered again and
  reports holding no volume of a dataset now primary elsewhere.

Never: fence a node heard from within the grace, move a dataset off a node
that is neither fenced nor draining, or onto a node that is fenced, draining
or not live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from uuid import UUID

from attrs import evolve, field, frozen
from pyrsistent import PMap, pmap

from control.failover_events import FAILOVER_ACTOR
from control.liveness import FailoverSettings, Liveness, liveness, silence
from control.model import (
    Capacity,
    ClusterState,
    Configuration,
    Dataset,
    Fence,
    Node,
    VolumeStatus,
)
from control.topology import TopologyTerm, allowed, describe_topology, node_labels

# -- decisions ---------------------------------------------------------------


@frozen
class MarkLiveness:
    """A node's liveness changed (an event only)."""

    node_uuid: UUID
    liveness: Liveness
    silent: float


@frozen
class FenceNode:
    """Fence a dead node, unless it was heard from after ``silent_since``."""

    node_uuid: UUID
    fence: Fence
    silent_since: float | None


@frozen
class UnfenceNode:
    """Lift exactly ``fence`` from a node that came back clean."""

    node_uuid: UUID
    fence: Fence
    reason: str


@frozen
class ReleaseLease:
    """Release a fenced node's lease on a dataset."""

    dataset_id: UUID
    node_uuid: UUID
    reason: str


@frozen
class MoveDataset:
    """Give a dataset a new primary (``kind``: ``failed_over``, or ``moved`` by a drain)."""

    dataset_id: UUID
    from_node: UUID
    to_node: UUID
    reason: str
    kind: str = "failed_over"

    @property
    def release(self) -> bool:
        """Whether the write also releases the old primary's lease (a failover does)."""
        return self.kind == "failed_over"


@frozen
class HoldDataset:
    """A dataset stays on a fenced or draining node, and why (an event, once per reason)."""

    dataset_id: UUID
    node_uuid: UUID
    reason: str


Decision = MarkLiveness | FenceNode | UnfenceNode | ReleaseLease | MoveDataset | HoldDataset


@frozen
class Memory:
    """What the planner told already (events are made once per change), kept between passes.

    Lost on a restart, which at worst repeats an event."""

    liveness: PMap = field(factory=pmap)
    held: PMap = field(factory=pmap)


@frozen
class Plan:
    """One pass's decisions, in the order to apply them, and the memory to keep."""

    decisions: tuple[Decision, ...]
    memory: Memory


# -- facts -------------------------------------------------------------------


def _capacity(
    state: ClusterState, node_uuid: UUID, backend: str | None = None
) -> Capacity | None:
    """What ``backend`` (``None``: the node's first) of the node reported."""
    report = state.reports.get(node_uuid)
    return None if report is None else report.capacity_of(backend)


def failover_blocker(
    dataset: Dataset, capacity: Capacity | None, drain: bool = False
) -> str | None:
    """Why ``dataset`` (whose primary reported ``capacity``) must not fail over, or ``None``.

    Failover is on by default for a dataset on a shared backend, never on a
    node-local one, and off when the dataset says so. A ``drain`` (the
    operator asked) moves it whatever its failover option, on a shared
    backend only.
    """
    if dataset.failover is False and not drain:
        return (
            "failover is off for this dataset; move it by hand (`shoal dataset move`) or "
            "turn failover on (`shoal dataset failover DATASET --on`)"
        )
    if capacity is None:
        return (
            "its node never reported its backend, so no other node is known to reach the "
            "volume; move it by hand once you know it is safe"
        )
    if not capacity.shared:
        return (
            f"its backend {capacity.backend!r} is node-local, so no other node can reach "
            "the volume; bring the node back or restore the data elsewhere"
        )
    return None


def _usable(node: Node, now: float, settings: FailoverSettings, started: float) -> bool:
    return (
        node.fence is None
        and not node.draining
        and liveness(node, now, settings, started) is Liveness.LIVE
    )


def _rank(capacity: Capacity, primaries: int, node: Node) -> tuple[int, int, str]:
    free = -1 if capacity.free is None else capacity.free
    return (-free, primaries, str(node.uuid))


def choose_target(
    holder: UUID,
    capacity: Capacity,
    state: ClusterState,
    primaries: Mapping[UUID, int],
    now: float,
    settings: FailoverSettings,
    started: float,
    asked_by: UUID | None = None,
    topology: tuple[TopologyTerm, ...] = (),
) -> UUID | None:
    """
    The node to take a dataset off ``holder`` (whose backend reported ``capacity``), or ``None``.

    Candidates are live, unfenced, not draining, inside the dataset's allowed
    ``topology`` (its storage class's; none: anywhere), and report the same shared
    backend. ``asked_by`` (the node holding a lease on the dataset: its plugin
    asked for it) is the only candidate when it is given; otherwise the one
    with most free capacity wins, then the one primary for fewest datasets
    (``primaries``), then the smallest uuid.
    """
    ranked = []
    for node in state.nodes.values():
        theirs = _capacity(state, node.uuid, capacity.backend)
        if (
            node.uuid == holder
            or (asked_by is not None and node.uuid != asked_by)
            or theirs is None
            or theirs.backend != capacity.backend
            or not theirs.shared
            or not _usable(node, now, settings, started)
            or not allowed(topology, node_labels(node))
        ):
            continue
        ranked.append((_rank(theirs, primaries.get(node.uuid, 0), node), node.uuid))
    return min(ranked)[1] if ranked else None


def _primaries(configuration: Configuration) -> dict[UUID, int]:
    counts: dict[UUID, int] = {}
    for dataset in configuration.datasets.values():
        if not dataset.deleted:
            counts[dataset.primary] = counts.get(dataset.primary, 0) + 1
    return counts


def holds_foreign(node: Node, state: ClusterState, configuration: Configuration) -> bool:
    """Whether ``node``'s latest report holds (attached or mounted) a volume of a dataset
    whose primary is another node."""
    report = state.reports.get(node.uuid)
    if report is None:
        return False
    for dataset_id, held in report.datasets.items():
        dataset = configuration.datasets.get(dataset_id)
        if (
            held.status in (VolumeStatus.ATTACHED, VolumeStatus.MOUNTED)
            and dataset is not None
            and dataset.primary != node.uuid
        ):
            return True
    return False


def came_back_clean(node: Node, state: ClusterState, configuration: Configuration) -> bool:
    """Whether an automatically fenced node registered again, then reported in its
    current era, holding nothing now primary elsewhere."""
    fence = node.fence
    report = state.reports.get(node.uuid)
    if fence is None or not fence.automatic or fence.rejoined_at is None or report is None:
        return False
    fresh = (
        report.reported_at is not None
        and report.reported_at >= fence.rejoined_at
        and report.era == node.era
    )
    return fresh and not holds_foreign(node, state, configuration)


# -- the plan ----------------------------------------------------------------


@frozen
class _Pass:
    """The facts one pass plans from (``topologies``: each storage class's allowed topology)."""

    configuration: Configuration
    state: ClusterState
    now: float
    settings: FailoverSettings
    started: float
    topologies: Mapping[str, tuple[TopologyTerm, ...]] = pmap()

    def topology_of(self, dataset: Dataset) -> tuple[TopologyTerm, ...]:
        """Where ``dataset`` may live: its class's allowed topology (none: anywhere)."""
        if dataset.storage_class is None:
            return ()
        return self.topologies.get(dataset.storage_class, ())


def _liveness_decisions(p: _Pass, memory: Memory) -> tuple[list[Decision], PMap]:
    found: list[Decision] = []
    was_known = memory.liveness
    known = was_known.evolver()  # one evolver: a PMap.set per node made a map each
    for node in _sorted(p.state.nodes.values()):
        now_is = liveness(node, p.now, p.settings, p.started)
        was = was_known.get(node.uuid, Liveness.LIVE)
        if now_is is not was:
            found.append(MarkLiveness(node.uuid, now_is, silence(node, p.now, p.started)))
        known.set(node.uuid, now_is)
    return found, known.persistent()


def _fence_decisions(p: _Pass) -> tuple[list[Decision], dict[UUID, Fence]]:
    """Fences for dead nodes, and every node's fence as it will be after them."""
    found: list[Decision] = []
    fences = {n.uuid: n.fence for n in p.state.nodes.values() if n.fence is not None}
    for node in _sorted(p.state.nodes.values()):
        if node.fence is not None:
            continue
        if liveness(node, p.now, p.settings, p.started) is not Liveness.DEAD:
            continue
        quiet = silence(node, p.now, p.started)
        fence = Fence(
            at=p.now,
            reason=(
                f"no report for {quiet:.1f} s, longer than the failover grace of "
                f"{p.settings.grace:g} s"
            ),
            actor=FAILOVER_ACTOR,
            automatic=True,
        )
        found.append(FenceNode(node.uuid, fence, node.last_seen))
        fences[node.uuid] = fence
    return found, fences


def _release_decisions(p: _Pass, fences: Mapping[UUID, Fence]) -> list[Decision]:
    found: list[Decision] = []
    if not fences:
        return found
    for dataset_id, lease in sorted(p.configuration.live_leases(p.now).items(), key=_key):
        if lease.node_uuid in fences:
            reason = f"node {lease.node_uuid} is fenced, so nothing there can use the dataset"
            found.append(ReleaseLease(dataset_id, lease.node_uuid, reason))
    return found


def _due(dataset: Dataset, node: Node, fence: Fence, p: _Pass) -> bool:
    """Whether the dataset's own grace has passed (a longer one waits past the node's fence)."""
    if not fence.automatic or dataset.failover_grace is None:
        return True
    if dataset.failover_grace <= p.settings.grace:
        return True
    return silence(node, p.now, p.started) >= dataset.failover_grace


def _move_decisions(
    p: _Pass, fences: Mapping[UUID, Fence]
) -> tuple[list[Decision], dict[UUID, str]]:
    """Failovers off fenced nodes and moves off draining ones, plus why others stay."""
    found: list[Decision] = []
    held: dict[UUID, str] = {}
    affected = set(fences) | {n.uuid for n in p.state.nodes.values() if n.draining}
    if not affected:
        return found, held  # the usual pass: nothing to move, so no need to look further
    primaries = _primaries(p.configuration)
    leased = p.configuration.live_leases(p.now)
    moving = [d for d in p.configuration.datasets.values() if d.primary in affected]
    for dataset in sorted(moving, key=lambda d: str(d.dataset_id)):
        node = p.state.nodes.get(dataset.primary)
        if dataset.deleted or node is None:
            continue
        fence = fences.get(node.uuid)
        capacity = _capacity(p.state, node.uuid, dataset.backend)
        if fence is not None:
            blocker = failover_blocker(dataset, capacity)
            kind = "failed_over"
            reason = f"node {node.display_name} is fenced: {fence.reason}"
            if blocker is None and not _due(dataset, node, fence, p):
                continue
        elif node.draining:
            blocker = failover_blocker(dataset, capacity, drain=True)
            kind = "moved"
            reason = f"node {node.display_name} is draining"
            lease = leased.get(dataset.dataset_id)
            if blocker is None and lease is not None:
                continue  # it moves once its lease goes
        else:
            continue
        target = None
        if blocker is None:
            assert capacity is not None
            lease = leased.get(dataset.dataset_id)
            asked_by = None if lease is None or lease.node_uuid == node.uuid else lease.node_uuid
            topology = p.topology_of(dataset)
            target = choose_target(
                node.uuid, capacity, p.state, primaries, p.now, p.settings, p.started, asked_by,
                topology,
            )
            if target is None and asked_by is not None:
                blocker = (
                    f"node {asked_by} holds a lease on it but cannot take it (not live, fenced, "
                    "draining or on another backend); release that lease to let it move"
                )
            elif target is None:
                inside = "" if not topology else f" inside {describe_topology(topology)}"
                blocker = (
                    f"no live, unfenced, undrained node{inside} reports the shared backend "
                    f"{capacity.backend!r}; it moves once one does"
                )
        if target is None:
            held[dataset.dataset_id] = f"{reason}; it stays because {blocker}"
            continue
        primaries[target] = primaries.get(target, 0) + 1
        primaries[node.uuid] = primaries.get(node.uuid, 1) - 1
        found.append(MoveDataset(dataset.dataset_id, node.uuid, target, reason, kind))
    return found, held


def _unfence_decisions(p: _Pass) -> list[Decision]:
    found: list[Decision] = []
    for node in _sorted(p.state.nodes.values()):
        if node.fence is not None and came_back_clean(node, p.state, p.configuration):
            reason = (
                "the node registered again and reports it holds no volume of a dataset "
                "whose primary is another node"
            )
            found.append(UnfenceNode(node.uuid, node.fence, reason))
    return found


def plan(
    configuration: Configuration,
    state: ClusterState,
    now: float,
    settings: FailoverSettings,
    started: float,
    memory: Memory | None = None,
    topologies: Mapping[str, tuple[TopologyTerm, ...]] | None = None,
) -> Plan:
    """Every decision for this pass, in order: liveness events, fences, lease releases,
    moves, holds, unfences; and the memory for the next pass."""
    memory = Memory() if memory is None else memory
    p = _Pass(configuration, state, now, settings, started, pmap(topologies or {}))
    marks, known = _liveness_decisions(p, memory)
    fences_decided, fences = _fence_decisions(p)
    releases = _release_decisions(p, fences)
    moves, held = _move_decisions(p, fences)
    holds: list[Decision] = [
        HoldDataset(dataset_id, configuration.datasets[dataset_id].primary, reason)
        for dataset_id, reason in held.items()
        if memory.held.get(dataset_id) != reason
    ]
    unfences = _unfence_decisions(p)
    decisions = (*marks, *fences_decided, *releases, *moves, *holds, *unfences)
    return Plan(decisions, Memory(liveness=known, held=pmap(held)))


def held_reasons(
    configuration: Configuration,
    state: ClusterState,
    now: float,
    settings: FailoverSettings,
    started: float,
    topologies: Mapping[str, tuple[TopologyTerm, ...]] | None = None,
) -> dict[UUID, str]:
    """Why each dataset on a fenced or draining node stays there now (for the listings)."""
    p = _Pass(configuration, state, now, settings, started, pmap(topologies or {}))
    fences = {n.uuid: n.fence for n in state.nodes.values() if n.fence is not None}
    _, held = _move_decisions(p, fences)
    return held


def visible_state(state: ClusterState, configuration: Configuration) -> ClusterState:
    """``state`` as the listings show it: a fenced node's reports of datasets now primary
    elsewhere are left out (it is cleaning them up; they are not its to hold)."""
    reports = state.reports
    for node in state.nodes.values():
        report = reports.get(node.uuid)
        if node.fence is None or report is None:
            continue
        foreign = [
            dataset_id
            for dataset_id in report.datasets
            if dataset_id in configuration.datasets
            and configuration.datasets[dataset_id].primary != node.uuid
        ]
        if foreign:
            kept = report.datasets.evolver()
            for dataset_id in foreign:
                kept.remove(dataset_id)
            reports = reports.set(node.uuid, evolve(report, datasets=kept.persistent()))
    return evolve(state, reports=reports)


def _sorted(nodes: Iterable[Node]) -> list[Node]:
    return sorted(nodes, key=lambda n: n.uuid.int)  # the order of str(uuid), without it


def _key(item: tuple[UUID, object]) -> int:
    return item[0].int
