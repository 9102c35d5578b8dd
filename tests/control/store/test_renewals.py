"""Repeated heartbeats renewed in memory (:meth:`SQLStore.renew_report`), SQLite and PostgreSQL:
a renewal answers what judging the report again would, and none is made once anything changed."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from attrs import evolve
from hypothesis import given, settings
from hypothesis import strategies as st

from control.errors import Conflict, Forbidden, ShoalError
from control.events import EventRetention
from control.model import Fence, Node, NodeState, Versions
from control.store.migrate import upgrade
from control.store.renewals import Renewals
from control.store.sql import SQLStore
from tests.control.store.conformance import (
    NOW,
    StoreConformance,
    add_dataset,
    add_node,
    report,
)
from tests.control.store.failover_conformance import FailoverConformance
from tests.control.store.report_conformance import ReportGroupConformance


@pytest.fixture
def open_sole(sql_url: str) -> Iterator[Callable[..., SQLStore]]:
    """Opens stores as the service does: heartbeats in memory, the database's only writer."""
    upgrade(sql_url)
    opened: list[SQLStore] = []

    def open_(sole_writer: bool = True, retention: EventRetention | None = None) -> SQLStore:
        opened.append(
            SQLStore(sql_url, retention, seen_in_memory=True, sole_writer=sole_writer)
        )
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


class TestSoleWriter(StoreConformance, FailoverConformance, ReportGroupConformance):
    """The SQL store as the service opens it (heartbeats in memory, renewed when repeated)
    still keeps the Store contract."""

    @pytest.fixture
    def store(self, open_sole: Callable[..., SQLStore]) -> SQLStore:
        """An empty store on a freshly migrated database."""
        return open_sole()

    @pytest.fixture
    def with_retention(self, open_sole: Callable[..., SQLStore]) -> Callable[..., SQLStore]:
        """Opens an empty store keeping the given event history."""
        return lambda retention=None: open_sole(retention=retention)

    @pytest.fixture
    def reopen(self, open_sole: Callable[..., SQLStore]) -> Callable[[], SQLStore]:
        """Opens another store on the same database."""
        return open_sole


def renew(store: SQLStore, node: UUID, identity: str | None, at: float) -> Versions | None:
    """The store's renewal of a repeated heartbeat as the service asks for it: in memory
    (SQLite, the only writer), or after one read (PostgreSQL)."""
    if store.renews_by_reading:
        return store.renew_reports([(node, identity, at)])[0]
    return store.renew_report(node, identity, at)


def _beating(store: SQLStore, identity: str | None = None) -> tuple[UUID, NodeState]:
    """A node with one dataset whose report was judged a heartbeat (it repeated the first)."""
    node = add_node(store)
    dataset = add_dataset(store, node)
    first = report(node, store.versions().configuration, dataset.dataset_id, at=NOW + 1)
    assert store.report_states([(first, identity)]) == [True]
    assert store.report_states([(evolve(first, reported_at=NOW + 2), identity)]) == [False]
    return node, first


def _judged_again(
    store: SQLStore, last: NodeState, at: float, identity: str | None = None
) -> object:
    """What judging ``last`` again (at ``at``) answers: ``False`` or the refusal."""
    return store.report_states([(evolve(last, reported_at=at), identity)])[0]


def test_a_repeated_heartbeat_is_renewed_as_judged(open_sole: Callable[..., SQLStore]) -> None:
    """The renewal answers the counters, moves the node's times, and judging the same report
    right after agrees: unchanged, at the same counters."""
    store = open_sole()
    node, last = _beating(store)
    renewed = renew(store, node, None, NOW + 3)
    assert renewed == store.versions()
    state = store.cluster_state()
    assert (state.nodes[node].last_seen, state.reports[node].reported_at) == (NOW + 3, NOW + 3)
    assert _judged_again(store, last, NOW + 4) is False
    assert store.versions() == renewed
    assert renew(store, node, None, NOW + 5) == renewed


def test_only_a_heartbeat_is_renewed(open_sole: Callable[..., SQLStore]) -> None:
    """Nothing is renewed for an unknown node, after a node's first (changed) report, after a
    changed report, or without being the database's only writer."""
    store = open_sole()
    assert renew(store, uuid4(), None, NOW) is None
    node = add_node(store)
    first = report(node, store.versions().configuration, at=NOW + 1)
    assert store.report_states([(first, None)]) == [True]
    assert renew(store, node, None, NOW + 2) is None
    assert _judged_again(store, first, NOW + 3) is False
    assert renew(store, node, None, NOW + 4) is not None
    dataset = add_dataset(store, node)
    changed = report(node, store.versions().configuration, dataset.dataset_id, at=NOW + 5)
    assert store.report_states([(changed, None)]) == [True]
    assert renew(store, node, None, NOW + 6) is None
    shared = open_sole(sole_writer=False)
    other, _ = _beating(shared)
    assert shared.renew_report(other, None, NOW + 5) is None
    assert (renew(shared, other, None, NOW + 5) is None) == (not shared.renews_by_reading)


def _node(store: SQLStore, uuid: UUID) -> Node:
    return next(n for n in store.nodes() if n.uuid == uuid)


WRITES: dict[str, Callable[[SQLStore, UUID], object]] = {
    "a new era": lambda s, n: s.register_node(evolve(_node(s, n), era="rebooted")),
    "a fence": lambda s, n: s.fence_node(n, Fence(at=NOW, reason="test", actor="op")),
    "draining": lambda s, n: s.set_draining(n, True, NOW, actor="op"),
    "a create": lambda s, n: add_dataset(s, n),
    "another node's report": lambda s, n: s.report_state(
        report(add_node(s, host="10.0.0.9"), s.versions().configuration, at=NOW)
    ),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_no_renewal_once_anything_was_written(
    open_sole: Callable[..., SQLStore], write: str
) -> None:
    """Any write transaction since the heartbeat was judged ends its renewal; the report is
    then judged again (a new era refuses it, as before)."""
    store = open_sole()
    node, last = _beating(store)
    WRITES[write](store, node)
    assert renew(store, node, None, NOW + 3) is None
    judged = _judged_again(store, last, NOW + 4)
    if write == "a new era":
        assert isinstance(judged, Conflict)
        assert renew(store, node, None, NOW + 5) is None
    else:
        assert judged is False
        assert renew(store, node, None, NOW + 5) == store.versions()


def test_what_writes_nothing_keeps_the_renewal(open_sole: Callable[..., SQLStore]) -> None:
    """The flush of heartbeat times and a registration that says nothing new write nothing a
    report's judgement reads: the renewal holds."""
    store = open_sole()
    node, _ = _beating(store)
    assert store.flush_seen() == 1
    store.register_node(evolve(_node(store, node), last_seen=NOW + 2.5))
    assert renew(store, node, None, NOW + 3) == store.versions()


def test_another_certificate_is_not_renewed(open_sole: Callable[..., SQLStore]) -> None:
    """A heartbeat judged for one certificate is not renewed for another, which judging
    refuses; after a refusal nothing is renewed until a report is judged a heartbeat again."""
    store = open_sole()
    node = store.register_node(
        Node(uuid=uuid4(), host="10.0.0.1", era="era", mount_root="/m", identity="cert-a")
    ).uuid
    first = report(node, store.versions().configuration, at=NOW + 1)
    store.report_states([(first, "cert-a")])
    assert _judged_again(store, first, NOW + 2, "cert-a") is False
    assert renew(store, node, "cert-b", NOW + 3) is None
    assert isinstance(_judged_again(store, first, NOW + 3, "cert-b"), Forbidden)
    assert renew(store, node, "cert-a", NOW + 4) is None
    assert _judged_again(store, first, NOW + 5, "cert-a") is False
    assert renew(store, node, "cert-a", NOW + 6) == store.versions()


def test_no_renewal_while_the_flush_fails(open_sole: Callable[..., SQLStore]) -> None:
    """After a failed flush every heartbeat must reach the database: none is renewed."""
    store = open_sole()
    node, _ = _beating(store)
    store._seen.failed({})  # type: ignore[union-attr]  # as a failed flush leaves it
    assert renew(store, node, None, NOW + 3) is None
    store._seen.flushed()  # type: ignore[union-attr]
    assert renew(store, node, None, NOW + 4) == store.versions()


@pytest.mark.parametrize("write", sorted(WRITES))
def test_another_replicas_write_ends_the_renewal(
    open_sole: Callable[..., SQLStore], write: str
) -> None:
    """On PostgreSQL a write by another replica (which this one hears of only later) ends the
    renewal at once, and the other's flush of heartbeat times does not; judged again, the
    report gets its own answer and is then renewed again."""
    store = open_sole()
    if not store.renews_by_reading:
        pytest.skip("renewed in memory: the store is its database's only writer")
    node, last = _beating(store)
    other = open_sole()
    other.report_states([(evolve(last, reported_at=NOW + 2.5), None)])
    assert other.flush_seen() == 1
    assert renew(store, node, None, NOW + 3) == store.versions()
    WRITES[write](other, node)
    assert renew(store, node, None, NOW + 4) is None
    judged = _judged_again(store, last, NOW + 5)
    assert isinstance(judged, Conflict) if write == "a new era" else judged is False
    assert (renew(store, node, None, NOW + 6) is None) == (write == "a new era")


def test_renewals_hold_only_at_their_mark() -> None:
    """A judgement kept at a row's version holds at that version, for its own identity only."""
    renewals = Renewals()
    node, versions = uuid4(), Versions(3, 4)
    renewals.keep(node, "731", "me", versions)
    assert renewals.held(node, "me", "731")
    assert not renewals.held(node, "you", "731")
    assert not renewals.held(node, "me", "732")
    assert not renewals.held(uuid4(), "me", "731")
    assert renewals.renewable(node, "me") is None


def test_renewals_count_every_write() -> None:
    """A mark is taken only while no write is in flight, and holds only until the next one
    begins, whoever it is for; each node's judgement holds for its own identity."""
    renewals = Renewals()
    node, versions = uuid4(), Versions(3, 4)
    with renewals.writing():
        assert renewals.mark() is None
    mark = renewals.mark()
    assert mark is not None
    renewals.keep(node, mark, "me", versions)
    assert renewals.renewable(node, "me") == versions
    assert renewals.renewable(node, "you") is None
    assert renewals.renewable(uuid4(), "me") is None
    with renewals.writing():
        assert renewals.renewable(node, "me") is None
    assert renewals.renewable(node, "me") is None
    renewals.keep(node, renewals.mark() or 0, "me", versions)
    renewals.drop(node)
    assert renewals.renewable(node, "me") is None


# -- the property: whenever a renewal is made, judging the report agrees --------------

STEPS = ["beat", "change", "era", "same registration", "fence", "unfence", "create", "delete",
         "flush", "other node", "other certificate"]


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite file to copy for each example."""
    path = tmp_path_factory.mktemp("renewals") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.sampled_from(STEPS), max_size=12))
def test_a_renewal_always_agrees_with_the_judgement(
    migrated: Path, tmp_path_factory: pytest.TempPathFactory, steps: list[str]
) -> None:
    """After any sequence of reports and writes, a renewal (when one is made) answers what
    judging the same report at once answers: unchanged, at the same counters; and none is
    made when that judgement would refuse the report or find it changed."""
    path = tmp_path_factory.mktemp("example") / "control.db"
    shutil.copy(migrated, path)
    store = SQLStore(f"sqlite:///{path}", seen_in_memory=True, sole_writer=True)
    try:
        node = store.register_node(
            Node(uuid=uuid4(), host="10.0.0.1", era="era", mount_root="/m", identity="cert")
        ).uuid
        dataset = add_dataset(store, node).dataset_id
        sent = report(node, store.versions().configuration, dataset, at=NOW)
        at = NOW
        for step in steps:
            at += 1
            with contextlib.suppress(ShoalError):  # refused: nothing changed
                sent = _step(store, node, dataset, sent, step, at)
            renewed = renew(store, node, "cert", at + 0.5)
            if renewed is None:
                continue
            before = store.versions()
            assert renewed == before
            assert _judged_again(store, sent, at + 0.7, "cert") is False
            assert store.versions() == before
    finally:
        store.close()


def _step(store: SQLStore, node: UUID, dataset: UUID, sent: NodeState, step: str,
          at: float) -> NodeState:
    """Do ``step``; the report the node sends from then on."""
    current = _node(store, node)
    if step in ("beat", "other certificate"):
        store.report_states([(evolve(sent, reported_at=at), "cert" if step == "beat" else "x")])
    elif step == "change":
        generation = store.versions().configuration
        changed = evolve(sent, generation=generation, reported_at=at, era=current.era,
                         datasets={} if sent.datasets else report(node, 0, dataset).datasets)
        store.report_states([(changed, "cert")])
        return changed
    elif step == "era":
        store.register_node(evolve(current, era=f"era-{at}", last_seen=at))
    elif step == "same registration":
        store.register_node(evolve(current, last_seen=at))
    elif step == "fence":
        store.fence_node(node, Fence(at=at, reason="test", actor="op"))
    elif step == "unfence":
        if current.fence is not None:
            store.unfence_node(node, at, actor="op", reason="test")
    elif step == "create":
        add_dataset(store, node)
    elif step == "delete":
        store.delete_dataset(dataset, None, at)
    elif step == "flush":
        store.flush_seen()
    elif step == "other node":
        store.report_state(report(add_node(store, host=f"10.1.{int(at) % 250}.1"),
                                  store.versions().configuration, at=at))
    return sent
