"""The failover executor: passes on the clock, failures retried, the SQL store end to end."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from twisted.internet.task import Clock

from control.errors import Unavailable
from control.events import EventQuery
from control.failover import Memory
from control.failover_service import FailoverService, run_pass
from control.liveness import FailoverSettings
from control.model import Capacity, Dataset, Lease, Node, NodeState
from control.runners import synchronous_runner
from control.store.factory import open_store
from control.store.interface import Store
from control.store.memory import MemoryStore

T = 1_000.0
A, B = UUID(int=1), UUID(int=2)
D = UUID(int=101)
SETTINGS = FailoverSettings(grace=10.0)


def populate(store: Store) -> None:
    """Two nodes on a shared pool, seen at T, and a leased dataset on A."""
    for node in (A, B):
        store.register_node(Node(node, f"h{node.int}", "era", last_seen=T, mount_root="/m"))
        pool = Capacity("pool", free=1, shared=True)
        store.report_state(NodeState(node, "era", 0, {}, T, capacity=pool))
    store.create_dataset(Dataset(D, A), None, now=T)
    store.acquire_lease(Lease(D, A, None), None, T)


def test_sql_store_fails_over_end_to_end(tmp_path: Path) -> None:
    """A pass over the SQL store fences, releases and fails over, and a second pass is a no-op."""
    store = open_store(f"sqlite:///{tmp_path / 'control.db'}", upgrade=True)
    try:
        populate(store)
        store.report_state(NodeState(B, "era", 2, {}, T + 11, capacity=Capacity("pool", free=1)))
        memory = run_pass(store, T + 11, SETTINGS, T, Memory())
        dataset = store.dataset(D)
        assert dataset is not None and (dataset.primary, dataset.epoch) == (B, 1)
        assert store.configuration(T + 11).leases == {}
        fenced = {n.uuid: n.fence for n in store.nodes()}
        assert fenced[A] is not None and fenced[B] is None
        before = store.versions()
        run_pass(store, T + 11.5, SETTINGS, T, memory)
        assert store.versions() == before
    finally:
        store.close()


class FlakyStore(MemoryStore):
    """A memory store whose database is unreachable for the first ``failures`` reads."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def configuration(self, now: float):  # type: ignore[no-untyped-def]
        """Fail while failures are left, then answer."""
        if self.failures:
            self.failures -= 1
            raise Unavailable("The database is unavailable.")
        return super().configuration(now)


def test_passes_run_on_the_clock_and_survive_failures() -> None:
    """Passes run twice a heartbeat; a failed pass is logged and the next one acts."""
    store = FlakyStore(failures=1)
    populate(store)
    clock = Clock()
    clock.advance(T)
    service = FailoverService(store, synchronous_runner, clock, SETTINGS)
    service.start()
    clock.advance(1.0)  # the first pass fails: the database is unreachable
    assert store.failures == 0
    clock.advance(10.0)
    dataset = store.dataset(D)
    assert dataset is not None and dataset.primary == A  # B is silent too: no target
    kinds = [e.kind for e in store.events(EventQuery(node_uuid=A))]
    assert kinds[-3:] == ["node_fenced", "lease_released", "failover_held"]
    assert "no live, unfenced, undrained node" in store.events(EventQuery(dataset_id=D))[-1].message
    service.stop()
    assert not clock.getDelayedCalls()


def test_only_the_leader_runs_passes_and_a_new_leader_starts_afresh() -> None:
    """A follower changes nothing; once it leads, every node gets a fresh grace from then."""
    store = MemoryStore()
    populate(store)
    clock = Clock()
    clock.advance(T)
    leading = [False]
    service = FailoverService(store, synchronous_runner, clock, SETTINGS,
                              leading=lambda: leading[0])
    service.start()
    clock.advance(30.0)  # A and B have been silent for 30 s, beyond the grace
    before = store.versions()
    assert all(n.fence is None for n in store.nodes())
    leading[0] = True
    clock.advance(1.0)
    assert service.started > T + 30.0
    assert store.versions() == before  # the new leader's grace has only begun
    clock.advance(SETTINGS.grace + 2.0)
    assert any(n.fence is not None for n in store.nodes())
    service.stop()


def test_a_pass_stops_applying_once_the_replica_no_longer_leads() -> None:
    """Decisions planned while leading are dropped when the leadership goes mid-pass."""
    store = MemoryStore()
    populate(store)
    asked: list[bool] = []

    def leading() -> bool:
        asked.append(False)
        return False

    run_pass(store, T + 30.0, SETTINGS, T, Memory(), leading)
    assert asked and all(n.fence is None for n in store.nodes())


class CountingStore(MemoryStore):
    """A memory store that counts its ``append_events`` writes."""

    def __init__(self) -> None:
        super().__init__()
        self.appends = 0

    def append_events(self, events):  # type: ignore[no-untyped-def]
        """Count the write, then record the events."""
        self.appends += 1
        return super().append_events(events)


def test_a_pass_records_every_liveness_change_in_one_write() -> None:
    """Nodes turning suspect together make one event each, written in one transaction."""
    store = CountingStore()
    populate(store)
    store.appends = 0
    run_pass(store, T + 5, SETTINGS, T, Memory())
    suspect = [e for e in store.events(EventQuery()) if e.kind == "node_suspect"]
    assert sorted(e.node_uuid for e in suspect) == [A, B]
    assert store.appends == 1
