"""
Property tests of the failover planner over simulated clocks, partitions and restarts.

A small cluster (three nodes on one shared backend, a few datasets) runs the
real planner (:func:`control.failover.plan`) and applies its decisions
through a real :class:`~control.store.memory.MemoryStore`, while simulated
agents report, fetch their configuration, and fence themselves after the
node lease on their own (skewed) clocks. Whatever the interleaving of
partitions, silences and control restarts, no dataset is ever given to a
fenced node, an epoch only grows, only a fenced node loses datasets, a node
that reports within the grace is never fenced, and no two agents can write
one dataset at the same moment.
"""

from __future__ import annotations

from uuid import UUID

from attrs import define, evolve, field
from hypothesis import given, settings
from hypothesis import strategies as st

from control.failover import FenceNode, Memory, MoveDataset, plan
from control.failover_service import apply
from control.liveness import FailoverSettings
from control.model import Capacity, Dataset, DatasetState, Node, NodeState, VolumeStatus
from control.store.memory import MemoryStore

START = 1_000.0
NODES = [UUID(int=i) for i in (1, 2, 3)]
GRACE = 10.0
SETTINGS = FailoverSettings(grace=GRACE)


@define
class Agent:
    """A simulated agent: what it believes it may write, and when it last reached the service."""

    uuid: UUID
    rate: float
    contact: float = START
    view: frozenset[UUID] = frozenset()
    partitioned: bool = False

    def writes(self, dataset_id: UUID, now: float) -> bool:
        """Whether the agent can still write ``dataset_id`` at ``now`` (its lease holds)."""
        lease_left = (now - self.contact) * self.rate < SETTINGS.node_lease
        return dataset_id in self.view and lease_left


@define
class Cluster:
    """The simulated cluster: a real store, the planner's memory, and the agents."""

    store: MemoryStore
    agents: dict[UUID, Agent]
    now: float = START
    started: float = START
    memory: Memory = field(factory=Memory)
    reported: dict[UUID, float] = field(factory=dict)
    epochs: dict[UUID, int] = field(factory=dict)


def _setup(rates: list[float], failover: list[bool | None], primaries: list[int]) -> Cluster:
    store = MemoryStore()
    for uuid in NODES:
        store.register_node(Node(uuid, f"h{uuid.int}", "era", last_seen=START, mount_root="/m"))
    for i, (option, primary) in enumerate(zip(failover, primaries, strict=True)):
        dataset = Dataset(UUID(int=100 + i), NODES[primary], failover=option)
        store.create_dataset(dataset, None, now=START)
    cluster = Cluster(store, {u: Agent(u, r) for u, r in zip(NODES, rates, strict=True)})
    for agent in cluster.agents.values():
        _agent_step(cluster, agent)
    return cluster


def _agent_step(cluster: Cluster, agent: Agent) -> None:
    """The agent reports what it holds (cleaned up if fenced), then reads its configuration."""
    store, now = cluster.store, cluster.now
    node = next(n for n in store.nodes() if n.uuid == agent.uuid)
    if node.fence is not None:
        agent.view = frozenset()  # it lets go of everything, then registers again
        store.register_node(evolve(node, last_seen=now))
    held = {
        d: DatasetState(d, VolumeStatus.MOUNTED, path=f"/m/{d}", device="/dev/x")
        for d in agent.view
    }
    capacity = Capacity("shared-pool", total=10**12, free=10**11, shared=True)
    generation = store.versions().configuration
    store.report_state(
        NodeState(agent.uuid, "era", generation, held, now, capacity=capacity)
    )
    cluster.reported[agent.uuid] = now
    agent.contact = now
    fenced = next(n for n in store.nodes() if n.uuid == agent.uuid).fence is not None
    _, mine = store.datasets_for_node(agent.uuid, frozenset())
    agent.view = frozenset() if fenced else frozenset(d.dataset_id for d in mine if not d.deleted)


def _control_pass(cluster: Cluster) -> None:
    """One failover pass, checking each applied decision against the safety rules."""
    store, now = cluster.store, cluster.now
    before = store.cluster_state()
    decided = plan(store.configuration(now), before, now, SETTINGS, cluster.started, cluster.memory)
    for decision in decided.decisions:
        state = store.cluster_state()
        changed = apply(store, decision, now, state)
        if isinstance(decision, FenceNode) and changed:
            heard = max(cluster.reported.get(decision.node_uuid, START), cluster.started)
            assert now - heard >= GRACE, "a node heard from within the grace was fenced"
        if isinstance(decision, MoveDataset) and changed:
            after = store.cluster_state().nodes
            assert after[decision.from_node].fence is not None, "moved off an unfenced node"
            target = after[decision.to_node]
            assert target.fence is None and not target.draining, "moved onto a fenced node"
    cluster.memory = decided.memory
    for dataset in store.configuration(now).datasets.values():
        assert dataset.epoch >= cluster.epochs.get(dataset.dataset_id, 0), "an epoch went back"
        cluster.epochs[dataset.dataset_id] = dataset.epoch


def _check_single_writer(cluster: Cluster) -> None:
    for dataset_id in cluster.epochs:
        writers = [a.uuid for a in cluster.agents.values() if a.writes(dataset_id, cluster.now)]
        assert len(writers) <= 1, f"two writers of {dataset_id}: {writers}"


STEP = st.one_of(
    st.tuples(st.just("advance"), st.floats(0.1, 12.0)),
    st.tuples(st.just("partition"), st.integers(0, 2)),
    st.tuples(st.just("heal"), st.integers(0, 2)),
    st.tuples(st.just("restart"), st.just(0)),
)


@settings(max_examples=150, deadline=None)
@given(
    rates=st.lists(st.floats(0.9, 1.1), min_size=3, max_size=3),
    failover=st.lists(st.sampled_from([None, True, False]), min_size=3, max_size=3),
    primaries=st.lists(st.integers(0, 2), min_size=3, max_size=3),
    steps=st.lists(STEP, max_size=40),
)
def test_failover_is_safe_in_every_interleaving(
    rates: list[float],
    failover: list[bool | None],
    primaries: list[int],
    steps: list[tuple[str, float]],
) -> None:
    """No fenced target, no epoch going back, no fence within the grace, never two writers."""
    cluster = _setup(rates, failover, primaries)
    for action, value in steps:
        if action == "advance":
            _advance(cluster, float(value))
        elif action == "restart":
            cluster.started, cluster.memory = cluster.now, Memory()
        else:
            cluster.agents[NODES[int(value)]].partitioned = action == "partition"


def _advance(cluster: Cluster, seconds: float) -> None:
    """Time passes in heartbeat-sized ticks: the control service plans, reachable agents talk."""
    end = cluster.now + seconds
    while cluster.now < end:
        cluster.now = min(end, cluster.now + SETTINGS.heartbeat)
        _check_single_writer(cluster)
        _control_pass(cluster)
        _check_single_writer(cluster)
        for agent in cluster.agents.values():
            if not agent.partitioned:
                _agent_step(cluster, agent)
        _check_single_writer(cluster)


@settings(max_examples=60, deadline=None)
@given(
    silences=st.lists(st.floats(0.1, GRACE * 0.99), min_size=1, max_size=20),
    restart_at=st.integers(0, 20),
)
def test_node_reporting_within_grace_keeps_its_datasets(
    silences: list[float], restart_at: int
) -> None:
    """A node that always reports again within the grace is never fenced and loses nothing."""
    cluster = _setup([1.0, 1.0, 1.0], [True, True, None], [0, 0, 1])
    flapper = cluster.agents[NODES[0]]
    for i, quiet in enumerate(silences):
        if i == restart_at:
            cluster.started, cluster.memory = cluster.now, Memory()
        flapper.partitioned = True
        _advance(cluster, quiet)
        flapper.partitioned = False
        _agent_step(cluster, flapper)
    node = next(n for n in cluster.store.nodes() if n.uuid == NODES[0])
    assert node.fence is None
    mine = cluster.store.datasets_for_node(NODES[0], frozenset())[1]
    assert {d.dataset_id for d in mine} == {UUID(int=100), UUID(int=101)}
